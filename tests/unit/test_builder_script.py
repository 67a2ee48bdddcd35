"""The Debian template's builder script, run here: exit statuses and leftover processes.

The script is stdlib Python, so it runs on the test host as it does in the
VM, against the host's rpm, rpmbuild and dnf, with its directories moved
into the test's own. Its cgroup is made under the host's cgroup v2 hierarchy
where one can be written (else those cases skip); without one, the script
falls back to process groups, which is tested by pointing it at a directory
that is not a cgroup.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from kopers.vm.template import default_templates_root
from kopers.worker.session import BuilderStatus
from tests.rpms import NOARCH_SPEC, rpmbuild

NEEDS_RPM = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("rpm", "rpmbuild", "rpmspec")),
    reason="needs rpm, rpmbuild and rpmspec",
)


def load_builder() -> ModuleType:
    path = default_templates_root() / "debian-12" / "builder.py"
    spec = importlib.util.spec_from_file_location("kopers_builder_debian_12", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def writable_cgroup2() -> Path | None:
    """A cgroup v2 hierarchy of this host where a child group with cgroup.kill can be made."""
    for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        if not (root / "cgroup.controllers").exists():
            continue
        probe = root / f"kopers-test-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            continue
        usable = (probe / "cgroup.kill").exists()
        probe.rmdir()
        if usable:
            return root
    return None


@pytest.fixture(params=["cgroup", "process group"])
def builder(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """The builder script, with its directories in tmp_path, for each way of containing."""
    module = load_builder()
    if request.param == "cgroup":
        root = writable_cgroup2()
        if root is None:
            pytest.skip("no writable cgroup v2 hierarchy with cgroup.kill on this host")
        monkeypatch.setattr(module, "CGROUP_ROOT", root)
    else:
        monkeypatch.setattr(module, "CGROUP_ROOT", tmp_path / "not-a-cgroup")
    monkeypatch.setattr(module, "TOPDIR", tmp_path / "top")
    monkeypatch.setattr(module, "REPOSDIR", tmp_path / "repos.d")
    yield module
    leftovers = list(module.CGROUP_ROOT.glob(f"kopers-build-{os.getpid()}-*"))
    assert leftovers == [], "every command's cgroup is removed"


def running(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_what_a_command_leaves_running_is_killed_when_it_ends(
    builder: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    out = bytearray()
    script = "sleep 3600 & echo $!; sleep 3600 >/dev/null 2>&1 & echo $!; echo done; exit 3"
    assert builder.contained(["sh", "-c", script], out.extend) == 3
    first, second, done = out.decode().splitlines()
    assert done == "done"
    assert not running(int(first)) and not running(int(second))
    assert "kopers-builder: 2 processes were left running by sh; killed" in capsys.readouterr().out


def test_a_command_that_leaves_nothing_running_says_nothing(
    builder: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    out = bytearray()
    assert builder.contained(["sh", "-c", "echo hello >&2"], out.extend) == 0
    assert out == b"hello\n"
    assert "left running" not in capsys.readouterr().out


def test_a_daemon_that_left_the_process_group_is_killed_with_the_cgroup(
    builder: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    if builder.CGROUP_ROOT.name == "not-a-cgroup":
        pytest.skip("only a cgroup holds what calls setsid")
    out = bytearray()
    script = "setsid sleep 3600 & echo $!"
    assert builder.contained(["sh", "-c", script], out.extend) == 0
    assert not running(int(out.decode()))
    assert "1 process was left running by sh; killed" in capsys.readouterr().out


def test_without_cgroups_an_escaped_daemon_lives_on_but_holds_nothing_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    builder = load_builder()
    monkeypatch.setattr(builder, "CGROUP_ROOT", tmp_path / "not-a-cgroup")
    out = bytearray()
    # The daemon keeps the command's output open; the command still ends with
    # its own status, once it has exited and its output is read.
    # It waits until the daemon has its own session (field 6 of /proc/PID/stat),
    # so that the daemon is out of the process group when the command ends.
    script = (
        "setsid sleep 3600 & p=$!; "
        'until [ "$(cut -d" " -f6 /proc/$p/stat)" = "$p" ]; do sleep 0.05; done; '
        "echo $p; echo last words"
    )
    assert builder.contained(["sh", "-c", script], out.extend) == 0
    pid, last = out.decode().splitlines()
    try:
        assert last == "last words"
        assert running(int(pid))
    finally:
        os.kill(int(pid), signal.SIGKILL)
    said = capsys.readouterr().out
    assert f"no usable cgroup v2 at {tmp_path / 'not-a-cgroup'}" in said


# -- the exit statuses, each step failing for real --


def run_builder(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str], **job: object
) -> tuple[int, list[str]]:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    status = builder.main(["kopers-builder", str(path)])
    sys.stdout.flush()
    return status, capfd.readouterr().out.splitlines()


def build_job(tmp_path: Path, srpm: Path, **overrides: object) -> dict[str, object]:
    return {
        "build_id": 7,
        "chroot": "debian-12-x86_64",
        "srpm": str(srpm),
        "result_dir": str(tmp_path / "out"),
        "macros": {"dist": ".deb12.kopers", "vendor": "Kopers a/p", "packager": "a via Kopers"},
        "repos": [],
        "enable_net": False,
        **overrides,
    }


def srpm_of(tmp_path: Path, build: str = "", requires: str = "") -> Path:
    spec = NOARCH_SPEC.format(name="kopers-step", version="1", release=1, requires=requires)
    spec = spec.replace("%install\n", f"%build\n{build}\n%install\n")
    return rpmbuild(spec, tmp_path / "srpm")[-1]


@NEEDS_RPM
def test_a_source_package_that_does_not_unpack(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage-1-1.src.rpm"
    garbage.write_bytes(b"not an rpm at all\n")
    status, lines = run_builder(builder, tmp_path, capfd, **build_job(tmp_path, garbage))
    assert status == BuilderStatus.UNPACK_FAILED
    assert lines[-1].startswith("kopers-builder: rpm -i ")


@NEEDS_RPM
def test_a_repository_key_that_cannot_be_fetched(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # A BuildRequires that is not installed: dnf must run, so the key is needed.
    repo = {"id": "extra", "name": "extra", "baseurl": "http://127.0.0.1:9/"}
    srpm = srpm_of(tmp_path, requires="BuildRequires: kopers-nowhere-to-be-found")
    job = build_job(tmp_path, srpm, repos=[repo | {"gpgkey": "http://127.0.0.1:9/k"}])
    status, lines = run_builder(builder, tmp_path, capfd, **job)
    assert status == BuilderStatus.KEY_FAILED
    assert lines[-1].startswith("kopers-builder: fetching http://127.0.0.1:9/k failed")


@NEEDS_RPM
def test_no_repository_key_is_fetched_when_dnf_has_nothing_to_do(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = {"id": "extra", "name": "extra", "baseurl": "http://127.0.0.1:9/"}
    job = build_job(tmp_path, srpm_of(tmp_path), repos=[repo | {"gpgkey": "http://127.0.0.1:9/k"}])
    status, lines = run_builder(builder, tmp_path, capfd, **job)
    assert status == BuilderStatus.BUILT, lines[-5:]
    assert not any(line.startswith(("+ fetch", "+ rpm --import")) for line in lines)
    assert any("no dnf builddep" in line for line in lines)


@NEEDS_RPM
def test_the_recorded_manifest_stands_only_for_the_database_it_was_read_from(
    builder: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "rpmdb.sqlite"
    db.write_bytes(b"a database")
    record = tmp_path / "manifest.json"
    monkeypatch.setattr(builder, "RPMDB", db)
    monkeypatch.setattr(builder, "MANIFEST_RECORD", record)
    assert builder.recorded_manifest() is None  # nothing recorded
    assert builder.record_manifest() == BuilderStatus.BUILT
    assert builder.recorded_manifest() is not None
    # Something installed or imported since: the database changed, rpm -qa it is.
    db.write_bytes(b"a database, changed")
    assert builder.recorded_manifest() is None
    db.write_bytes(b"a database")
    assert builder.recorded_manifest() is not None
    # Transactions still in the write-ahead log are not in the file's digest.
    (tmp_path / "rpmdb.sqlite-wal").write_bytes(b"pending")
    assert builder.recorded_manifest() is None
    (tmp_path / "rpmdb.sqlite-wal").write_bytes(b"")
    assert builder.recorded_manifest() is not None
    record.write_text("not json")
    assert builder.recorded_manifest() is None


@NEEDS_RPM
@pytest.mark.skipif(shutil.which("dnf") is None, reason="needs dnf")
def test_build_dependencies_that_cannot_be_installed(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty-repo"
    empty.mkdir()
    repo = {"id": "empty", "name": "empty", "baseurl": empty.as_uri()}
    srpm = srpm_of(tmp_path, requires="BuildRequires: kopers-nowhere-to-be-found")
    status, lines = run_builder(builder, tmp_path, capfd, **build_job(tmp_path, srpm, repos=[repo]))
    assert status == BuilderStatus.BUILDDEP_FAILED
    assert lines[-1].startswith("kopers-builder: dnf builddep ")


@NEEDS_RPM
def test_no_dnf_builddep_when_rpm_finds_nothing_to_install(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # dnf would fail on this repository (it has no repodata); it is not asked.
    empty = tmp_path / "empty-repo"
    empty.mkdir()
    repo = {"id": "empty", "name": "empty", "baseurl": empty.as_uri()}
    status, lines = run_builder(
        builder, tmp_path, capfd, **build_job(tmp_path, srpm_of(tmp_path), repos=[repo])
    )
    assert status == BuilderStatus.BUILT, lines
    assert not any(line.startswith("+ dnf builddep") for line in lines)
    assert any("no dnf builddep" in line for line in lines)


@NEEDS_RPM
@pytest.mark.parametrize("requires", ["kopers-nowhere-to-be-found", "bash >= 1"])
def test_build_requires_rpm_cannot_vouch_for_go_to_dnf(
    builder: ModuleType, tmp_path: Path, requires: str
) -> None:
    spec = tmp_path / "x.spec"
    spec.write_text(NOARCH_SPEC.format(name="x", version="1", release=1, requires=""))
    job = build_job(tmp_path, tmp_path / "x.src.rpm")
    release, needs = builder.spec_facts(job, spec)
    assert release == "1" and needs == []  # the spec has no %{?dist}
    assert builder.deps_installed(spec, needs)
    spec.write_text(
        NOARCH_SPEC.format(name="x", version="1", release=1, requires=f"BuildRequires: {requires}")
    )
    release, needs = builder.spec_facts(job, spec)
    assert needs == [requires]
    assert not builder.deps_installed(spec, needs)
    # A spec rpmspec cannot read: dnf's to judge.
    spec.write_text("Name: x\nthis is not a spec\n")
    assert builder.spec_facts(job, spec) == ("", None)
    assert not builder.deps_installed(spec, None)


@NEEDS_RPM
def test_a_failing_rpmbuild_with_leftovers(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    srpm = srpm_of(tmp_path, build="sleep 3600 &\nexit 7")
    status, lines = run_builder(builder, tmp_path, capfd, **build_job(tmp_path, srpm))
    assert status == BuilderStatus.RPMBUILD_FAILED
    assert "kopers-builder: 1 process was left running by rpmbuild; killed" in lines
    assert lines[-1].startswith("kopers-builder: rpmbuild -ba ")
    assert lines[-1].endswith("failed with exit code 1")


@NEEDS_RPM
def test_a_build_that_succeeds_with_leftovers(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    srpm = srpm_of(tmp_path, build="sleep 3600 &\n(sleep 3600 >/dev/null 2>&1 &)")
    status, lines = run_builder(builder, tmp_path, capfd, **build_job(tmp_path, srpm))
    assert status == BuilderStatus.BUILT, lines[-5:]
    assert "kopers-builder: 2 processes were left running by rpmbuild; killed" in lines
    assert lines[-1] == "kopers-builder: build succeeded"
    assert list((tmp_path / "out").glob("kopers-step-1-1.deb12.kopers.noarch.rpm"))


@NEEDS_RPM
def test_a_source_package_that_cannot_be_made(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sources = tmp_path / "src"
    sources.mkdir()
    spec = sources / "broken.spec"
    spec.write_text("Name: broken\nthis is not a spec\n")
    job = {
        "mode": "srpm",
        "chroot": "debian-12-x86_64",
        "spec": str(spec),
        "sources": str(sources),
        "result_dir": str(tmp_path / "out"),
    }
    status, lines = run_builder(builder, tmp_path, capfd, **job)
    assert status == BuilderStatus.SRPM_FAILED
    assert lines[-1].startswith("kopers-builder: rpmbuild -bs ")
