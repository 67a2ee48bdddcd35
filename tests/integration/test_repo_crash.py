"""A publish or removal killed at any step leaves a whole, readable repository.

Each case runs a real `Publisher.publish` (or `remove_build`) in a child
process whose `RepoUpdater` gets a `_crash_point` callback that SIGKILLs
the process at one step:
- `parse`: while parsing the new build's RPMs (after the 2nd of 3);
- `index`: inside the index transaction, before its commit;
- `indexed`: after the index commit, before any repodata is written;
- `write`: while writing the metadata files (after the 1st, or the 3rd);
- `swap`: after the new files are in `repodata/`, before `repomd.xml.asc`
  and `repomd.xml` are renamed over the old ones.

After the kill the repository must still serve the old generation, never a
mix: `repomd.xml` is the old one and verifies against `repomd.xml.asc`,
every file it names is there, primary/filelists/other agree, the package
set is the old one, and dnf (`repo_gpgcheck=1`) reads it. The package index
must pass SQLite's integrity check. Then the next publish, in the test
process, must recover: the repodata equals a full createrepo_c run over the
build directories, the killed build included (it was moved into place
before the kill) or, for a killed removal, excluded (the build is marked
removed, and the removal is noted durably before the mark).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import createrepo_c as cr
import pytest

from kopers.publish import repoindex
from kopers.publish.layout import Layout
from kopers.publish.publisher import Publisher
from kopers.publish.repofile import render_repo_file
from kopers.publish.signing import Signer
from tests.dnfroot import stop_dnf_gpg_agents

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("gpg", "gpgv", "rpmbuild", "rpmsign", "rpm", "dnf")),
        reason="needs gpg, gpgv, rpmbuild, rpmsign, rpm and dnf",
    ),
]

OWNER, PROJECT, CHROOT = "alice", "crash", "debian-12-x86_64"
BLOCK_PACKAGES = 2  # small blocks: the kills then also hit multi-block writes

SPEC = """\
Name: crash
Version: 1.0
Release: 1
Summary: Kopers crash test packages
License: MIT
BuildArch: noarch
%description
Subpackages for the Kopers crash test.
{subpackages}
%install
mkdir -p %{{buildroot}}/usr/share/crash
for sub in {subs}; do echo $sub > %{{buildroot}}/usr/share/crash/$sub; done
"""
SUBPACKAGE = """
%package -n {sub}
Summary: Subpackage {sub}
%description -n {sub}
Subpackage {sub} of the Kopers crash test.
%files -n {sub}
/usr/share/crash/{sub}
"""

# The child: one publish or removal, killed at the n-th call of one step.
CHILD = """
import asyncio, os, signal, sys
from pathlib import Path
from kopers.publish import repoindex
from kopers.publish.layout import Layout
from kopers.publish.publisher import Publisher
from kopers.publish.repo import RepoUpdater
from kopers.publish.signing import Signer

results, keys, point, nth, blocks, action, build_id, package, *files = sys.argv[1:]
repoindex.BLOCK_PACKAGES = int(blocks)
calls = 0

def crash(step):
    global calls
    if step == point:
        calls += 1
        if calls == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)

async def main():
    layout = Layout(Path(results), "http://kopers.test")
    publisher = Publisher(layout, Signer(Path(keys)), RepoUpdater(_crash_point=crash))
    owner, project, chroot = "alice", "crash", "debian-12-x86_64"
    if action == "publish":
        await publisher.publish(
            owner, project, chroot, int(build_id), package, [Path(f) for f in files]
        )
    else:
        await publisher.remove_build(owner, project, int(build_id), chroot, package)

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight small noarch RPMs from one spec, built once."""
    base = tmp_path_factory.mktemp("crash-rpms")
    subs = [f"crash-sub{i}" for i in range(8)]
    spec = base / "crash.spec"
    spec.write_text(
        SPEC.format(
            subpackages="".join(SUBPACKAGE.format(sub=sub) for sub in subs), subs=" ".join(subs)
        )
    )
    subprocess.run(
        ["rpmbuild", "--define", f"_topdir {base}/top", "-bb", str(spec)],
        check=True,
        capture_output=True,
    )
    return sorted((base / "top" / "RPMS" / "noarch").glob("*.rpm"))


@dataclass
class Env:
    layout: Layout
    signer: Signer
    publisher: Publisher
    tmp: Path

    @property
    def chroot_dir(self) -> Path:
        return self.layout.chroot_dir(OWNER, PROJECT, CHROOT)


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setattr(repoindex, "BLOCK_PACKAGES", BLOCK_PACKAGES)
    layout = Layout(results_dir=tmp_path / "results", public_url="http://kopers.test")
    signer = Signer(tmp_path / "keys")
    yield Env(layout, signer, Publisher(layout, signer), tmp_path)
    await signer.close()  # also stops the gpg-agent a killed child left behind


def run(*argv: str | Path) -> str:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result.stdout


def served(chroot_dir: Path) -> set[tuple[str, str]]:
    """(name, location) of the served packages; checks the three files agree."""
    repodata = chroot_dir / "repodata"
    repomd = cr.Repomd(str(repodata / "repomd.xml"))
    ids: dict[str, list[str]] = {}
    found: set[tuple[str, str]] = set()

    def primary(pkg: cr.Package) -> bool:
        ids.setdefault("primary", []).append(pkg.pkgId)
        found.add((pkg.name, pkg.location_href))
        return True

    def other_kinds(kind: str) -> object:
        def collect(pkg: cr.Package) -> bool:
            ids.setdefault(kind, []).append(pkg.pkgId)
            return True

        return collect

    for record in repomd.records:
        assert (chroot_dir / record.location_href).is_file(), record.location_href
    cr.xml_parse_primary(str(chroot_dir / repomd["primary"].location_href), pkgcb=primary)
    cr.xml_parse_filelists(
        str(chroot_dir / repomd["filelists"].location_href), pkgcb=other_kinds("filelists")
    )
    cr.xml_parse_other(str(chroot_dir / repomd["other"].location_href), pkgcb=other_kinds("other"))
    assert sorted(ids.get("primary", [])) == sorted(ids.get("filelists", []))
    assert sorted(ids.get("primary", [])) == sorted(ids.get("other", []))
    return found


def createrepo_c_view(chroot_dir: Path, work: Path) -> set[tuple[str, str]]:
    """A full createrepo_c run over a copy of the builds not marked removed."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for build in chroot_dir.iterdir():
        if build.name.startswith(".") or build.name == "repodata" or not build.is_dir():
            continue
        if (build / repoindex.REMOVED_MARKER).exists():
            continue
        shutil.copytree(build, work / build.name, copy_function=os.link)
    run(Path(sys.executable).parent / "createrepo_c", "--quiet", work)
    return served(work)


def check_signature(env: Env) -> None:
    keyring = env.tmp / "trusted.gpg"
    if not keyring.exists():
        run("gpg", "--batch", "--dearmor", "-o", keyring, env.layout.pubkey_path(OWNER, PROJECT))
    repodata = env.chroot_dir / "repodata"
    run("gpgv", "--keyring", keyring, repodata / "repomd.xml.asc", repodata / "repomd.xml")


def check_dnf_reads(env: Env, names: set[str], tag: str) -> None:
    reposdir = env.tmp / f"repos-{tag}"
    root = env.tmp / f"root-{tag}"
    reposdir.mkdir()
    root.mkdir()
    (reposdir / "kopers.repo").write_text(
        render_repo_file(
            env.layout.public_url,
            OWNER,
            PROJECT,
            env.chroot_dir.as_uri() + "/",
            env.layout.pubkey_path(OWNER, PROJECT).as_uri(),
        )
    )
    try:
        listed = run(
            "dnf", "-y", "-q", f"--installroot={root}", "--releasever=12",
            f"--setopt=reposdir={reposdir}", "--disableplugin=*",
            # Fail loudly instead of skipping the repository.
            "--setopt=*.skip_if_unavailable=False",
            "repoquery", "--available", "--qf", "%{name}",
        )  # fmt: skip
    finally:
        stop_dnf_gpg_agents(root)
    assert set(listed.split()) == names


def check_index(chroot_dir: Path) -> None:
    db = sqlite3.connect(chroot_dir / repoindex.INDEX_DIR / "index.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


def kill_child(env: Env, point: str, nth: int, action: str, *args: str | Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-c", CHILD,
            str(env.layout.results_dir), str(env.tmp / "keys"), point, str(nth),
            str(BLOCK_PACKAGES), action, *(str(a) for a in args),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == -signal.SIGKILL, (
        f"child was not killed at {point}: {result.returncode}: {result.stderr[-2000:]}"
    )


CASES = [
    ("publish", "parse", 2),
    ("publish", "index", 1),
    ("publish", "indexed", 1),
    ("publish", "write", 1),
    ("publish", "write", 3),
    ("publish", "swap", 1),
    ("remove", "index", 1),
    ("remove", "write", 2),
    ("remove", "swap", 1),
]


@pytest.mark.parametrize(("action", "point", "nth"), CASES)
async def test_kill_then_recover(
    env: Env, rpms: list[Path], action: str, point: str, nth: int
) -> None:
    publisher = env.publisher
    await publisher.publish(OWNER, PROJECT, CHROOT, 1, "first", rpms[0:3])
    await publisher.publish(OWNER, PROJECT, CHROOT, 2, "second", rpms[3:5])
    before = served(env.chroot_dir)
    repomd_before = (env.chroot_dir / "repodata" / "repomd.xml").read_bytes()

    if action == "publish":
        kill_child(env, point, nth, "publish", "3", "third", *rpms[5:8])
        assert (env.chroot_dir / "00000003-third").is_dir()  # in place before the kill
    else:
        kill_child(env, point, nth, "remove", "1", "first")
        assert (env.chroot_dir / "00000001-first").is_dir()  # files still there

    # The old generation, whole: never a mix of old and new.
    assert (env.chroot_dir / "repodata" / "repomd.xml").read_bytes() == repomd_before
    check_signature(env)
    assert served(env.chroot_dir) == before
    check_dnf_reads(env, {name for name, _ in before}, "after-kill")
    check_index(env.chroot_dir)

    # The next publish recovers, whatever the kill left behind.
    await publisher.publish(OWNER, PROJECT, CHROOT, 4, "fourth", rpms[7:8])
    after = served(env.chroot_dir)
    assert after == createrepo_c_view(env.chroot_dir, env.tmp / "copy")
    locations = {location.split("/")[0] for _, location in after}
    if action == "publish":
        assert locations == {
            "00000001-first",
            "00000002-second",
            "00000003-third",
            "00000004-fourth",
        }
    else:
        assert locations == {"00000002-second", "00000004-fourth"}
        # Retrying the removal finishes it: the files go too.
        await publisher.remove_build(OWNER, PROJECT, 1, CHROOT, "first")
        assert not (env.chroot_dir / "00000001-first").exists()
        assert served(env.chroot_dir) == after
    check_signature(env)
    check_dnf_reads(env, {name for name, _ in after}, "recovered")
    check_index(env.chroot_dir)
    work_dirs = list((env.chroot_dir / repoindex.INDEX_DIR).glob("work-*"))
    assert work_dirs == []  # the crashed run's work directory was cleaned up
