"""What a hostile build leaves in its result directory never reaches the host.

The real Runner and result boundary against a FakeVm (tests/fakevm.py) whose
result directory a `tamper` function fills the way a spec running as root in
the VM could. Each case must end the task failed, with a reason naming the
offending entry, with nothing of a host file copied into Kopers' data and
nothing written outside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kopers.models import BuildState
from tests.fakevm import FakeVmPool
from tests.integration.conftest import Api
from tests.integration.test_runner_limits import assert_vm_gone, run_task, submit, task

pytestmark = pytest.mark.integration
SECRET = "kopers-canary-secret-1f0a"


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A host file outside the data directory that no build may read or change."""
    path = tmp_path / "canary" / "private.key"
    path.parent.mkdir()
    path.write_text(f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n")
    return path


def link_manifest(canary: Path) -> Callable[[Path], None]:
    return lambda out: (out / "manifest.txt").unlink() or (out / "manifest.txt").symlink_to(canary)


def link_rpm(canary: Path) -> Callable[[Path], None]:
    return lambda out: (out / "stolen-1-1.noarch.rpm").symlink_to(canary)


def escaping_directory(canary: Path) -> Callable[[Path], None]:
    def tamper(out: Path) -> None:
        (out / "d").symlink_to("../../../../../../..")  # d/<host path> would escape

    return tamper


def directory_named_rpm(_: Path) -> Callable[[Path], None]:
    return lambda out: (out / "x.rpm").mkdir()


def junk_rpm(_: Path) -> Callable[[Path], None]:
    return lambda out: (out / "x.rpm").write_text("not an rpm\n")


def many_files(_: Path) -> Callable[[Path], None]:
    def tamper(out: Path) -> None:
        for i in range(10_000):
            (out / f"f{i}-1-1.noarch.rpm").write_bytes(b"")

    return tamper


def sparse_file(_: Path) -> Callable[[Path], None]:
    def tamper(out: Path) -> None:
        with (out / "huge-1-1.noarch.rpm").open("wb") as handle:
            handle.truncate(5 << 30)  # 5 GiB apparent, nothing on disk

    return tamper


def manifest_to_dev_zero(_: Path) -> Callable[[Path], None]:
    return lambda out: (
        (out / "manifest.txt").unlink() or (out / "manifest.txt").symlink_to("/dev/zero")
    )


def huge_manifest(_: Path) -> Callable[[Path], None]:
    def tamper(out: Path) -> None:
        with (out / "manifest.txt").open("a") as handle:
            handle.write(("pkg-1-1.noarch\n" * 4096) * 80)  # about 5 MiB

    return tamper


def other_name(_: Path) -> Callable[[Path], None]:
    return lambda out: (out / "evil.sh").write_text("#!/bin/sh\n")


CASES = [
    (link_manifest, "'manifest.txt' is a link"),
    (link_rpm, "'stolen-1-1.noarch.rpm' is a link"),
    (escaping_directory, "'d' is a link"),
    (directory_named_rpm, "'x.rpm' is a dir"),
    (junk_rpm, "x.rpm is not an RPM file"),
    (many_files, "10003 entries in its result directory; at most 1000"),
    (sparse_file, "at most 4294967296 are taken"),
    (manifest_to_dev_zero, "'manifest.txt' is a link"),
    (huge_manifest, "manifest.txt is larger than"),
    (other_name, "'evil.sh' is neither an RPM nor manifest.txt"),
]


def write_manifest(out: Path) -> None:
    (out / "manifest.txt").write_text("bash-5.2-1.x86_64\n")


@pytest.mark.parametrize(("make_tamper", "expected"), CASES, ids=[c[0].__name__ for c in CASES])
async def test_a_hostile_result_directory_fails_the_build_and_reaches_nothing(
    api: Api,
    make_srpm: Callable[..., Path],
    tmp_path: Path,
    canary: Path,
    make_tamper: Callable[[Path], Callable[[Path], None]],
    expected: str,
) -> None:
    before = canary.read_bytes(), canary.stat().st_mtime_ns
    (tmp_path / "vms").mkdir()
    outside = sorted(os.listdir(tmp_path))
    tamper = make_tamper(canary)

    def hostile(out: Path) -> None:
        write_manifest(out)  # what the real builder leaves; the tamper may replace it
        tamper(out)

    build_id = await submit(api, make_srpm("kopers-hostile", "1"))
    pool = FakeVmPool(tmp_path / "vms", tamper=hostile)
    state = await run_task(api, pool, build_id)

    assert state == BuildState.FAILED
    _, reason, _ = await task(api, build_id)
    assert expected in reason, reason
    assert "\n" not in reason
    assert (canary.read_bytes(), canary.stat().st_mtime_ns) == before
    root = api.kopers.paths.root
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 << 20:
            assert SECRET.encode() not in path.read_bytes(), path
    assert sorted(os.listdir(tmp_path)) == outside, "nothing appears beside the data directory"
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 64 << 20
    assert not [p for p in (api.kopers.paths.results).rglob("*.rpm")], "nothing is published"
    assert_vm_gone(pool)
