"""Publishing with real gpg, rpmsign, createrepo_c and dnf (kopers.publish.publisher)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import createrepo_c as cr
import pytest

from kopers.publish import repo
from kopers.publish.layout import Layout
from kopers.publish.publisher import Publisher
from kopers.publish.repofile import render_repo_file
from kopers.publish.signing import Signer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("gpg", "gpgv", "rpmbuild", "rpmsign", "rpm", "dnf")),
        reason="needs gpg, gpgv, rpmbuild, rpmsign, rpm and dnf",
    ),
]

CHROOT = "debian-12-x86_64"
OWNER, PROJECT = "alice", "tools"

SPEC = """\
Name: {name}
Version: 1.0
Release: {release}
Summary: Kopers test package
License: MIT
BuildArch: noarch
%description
A package used by the Kopers tests.
%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo {name} > %{{buildroot}}/usr/share/{name}/hello.txt
%files
/usr/share/{name}/hello.txt
"""


def build_rpm(workdir: Path, name: str, release: int = 1) -> tuple[Path, Path]:
    """Build a tiny noarch package; return (binary RPM, SRPM)."""
    top = workdir / f"rpmbuild-{name}-{release}"
    spec = workdir / f"{name}-{release}.spec"
    spec.write_text(SPEC.format(name=name, release=release))
    subprocess.run(
        ["rpmbuild", "--define", f"_topdir {top}", "-ba", str(spec)],
        check=True,
        capture_output=True,
    )
    (rpm,) = (top / "RPMS" / "noarch").glob("*.rpm")
    (srpm,) = (top / "SRPMS").glob("*.src.rpm")
    return rpm, srpm


def repo_packages(chroot_dir: Path) -> set[tuple[str, str, str]]:
    """(name, arch, location) of every package in the chroot's repodata."""
    md = cr.Metadata()
    md.locate_and_load_xml(str(chroot_dir))
    found = set()
    keys = md.keys()
    for key in keys:
        pkg = md.get(key)
        found.add((pkg.name, pkg.arch, pkg.location_href))
    return found


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result


@dataclass
class Env:
    layout: Layout
    signer: Signer
    publisher: Publisher
    tmp: Path


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    layout = Layout(results_dir=tmp_path / "results", public_url="http://kopers.test:8080/")
    signer = Signer(tmp_path / "keys")
    yield Env(layout, signer, Publisher(layout, signer), tmp_path)
    await signer.close()


async def test_publish_sign_and_install_with_dnf(env: Env) -> None:
    rpm, srpm = build_rpm(env.tmp, "hello-kopers")
    log = env.tmp / "builder-live.log"
    log.write_text("built\n")

    started = time.monotonic()
    await env.publisher.init_project(OWNER, PROJECT, chroots=[CHROOT])
    print(f"\ninit_project (key + empty repo): {time.monotonic() - started:.3f}s")
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    assert repo_packages(chroot_dir) == set()  # empty but valid repodata

    started = time.monotonic()
    build_dir = await env.publisher.publish(
        OWNER, PROJECT, CHROOT, 1, "hello-kopers", [rpm, srpm, log]
    )
    print(f"publish (2 RPMs + log): {time.monotonic() - started:.3f}s")

    assert build_dir == env.layout.build_dir(OWNER, PROJECT, CHROOT, 1, "hello-kopers")
    assert sorted(p.name for p in build_dir.iterdir()) == sorted([rpm.name, srpm.name, log.name])
    assert not [p for p in chroot_dir.iterdir() if p.name.startswith(".")]  # no staging left
    assert repo_packages(chroot_dir) == {
        ("hello-kopers", "noarch", f"00000001-hello-kopers/{rpm.name}"),
        ("hello-kopers", "src", f"00000001-hello-kopers/{srpm.name}"),
    }

    # The published RPMs carry the project's signature; the originals do not.
    pubkey = env.layout.pubkey_path(OWNER, PROJECT)
    dbdir = env.tmp / "rpmdb"
    dbdir.mkdir()
    run("rpm", "--dbpath", dbdir, "--import", pubkey)
    checked = run("rpm", "--dbpath", dbdir, "-Kv", build_dir / rpm.name, build_dir / srpm.name)
    assert checked.stdout.count("Signature, key ID") == 2, checked.stdout
    assert "Signature" not in run("rpm", "--dbpath", dbdir, "-Kv", rpm).stdout

    # repomd.xml is signed too.
    keyring = env.tmp / "trusted.gpg"
    run("gpg", "--batch", "--dearmor", "-o", keyring, pubkey)
    repodata = chroot_dir / "repodata"
    run("gpgv", "--keyring", keyring, repodata / "repomd.xml.asc", repodata / "repomd.xml")

    # dnf, as a client of the rendered .repo file with gpgcheck=1.
    repo_text = render_repo_file(
        env.layout.public_url,
        OWNER,
        PROJECT,
        chroot_dir.as_uri() + "/",
        pubkey.as_uri(),
    )
    assert repo_text.startswith("[copr:kopers.test:alice:tools]\n")
    assert "gpgcheck=1\n" in repo_text
    reposdir = env.tmp / "yum.repos.d"
    reposdir.mkdir()
    (reposdir / "_copr:kopers.test:alice:tools.repo").write_text(repo_text)
    root = env.tmp / "root"
    root.mkdir()
    run("rpm", "--root", root, "--import", pubkey)
    run(
        "dnf", "-y", "-q", f"--installroot={root}", "--releasever=12",
        f"--setopt=reposdir={reposdir}", "--setopt=install_weak_deps=False",
        "--disableplugin=*", "install", "hello-kopers",
    )  # fmt: skip
    assert run("rpm", "--root", root, "-q", "hello-kopers").stdout.startswith("hello-kopers-1.0-1")
    assert (root / "usr/share/hello-kopers/hello.txt").read_text() == "hello-kopers\n"


async def test_dnf_refuses_an_unsigned_package(env: Env) -> None:
    # The negative of the test above: proves gpgcheck=1 is really enforced.
    await env.publisher.init_project(OWNER, PROJECT)
    rpm, _ = build_rpm(env.tmp, "unsigned")
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    (chroot_dir / "00000009-unsigned").mkdir(parents=True)
    shutil.copy(rpm, chroot_dir / "00000009-unsigned")
    await repo.update_repodata(chroot_dir)
    assert not (chroot_dir / "repodata" / "repomd.xml.asc").exists()
    pubkey = env.layout.pubkey_path(OWNER, PROJECT)
    reposdir = env.tmp / "repos"
    reposdir.mkdir()
    (reposdir / "k.repo").write_text(
        render_repo_file("http://h", OWNER, PROJECT, chroot_dir.as_uri() + "/", pubkey.as_uri())
    )
    root = env.tmp / "root"
    root.mkdir()
    run("rpm", "--root", root, "--import", pubkey)
    result = subprocess.run(
        ["dnf", "-y", "-q", f"--installroot={root}", "--releasever=12",
         f"--setopt=reposdir={reposdir}", "--disableplugin=*", "install", "unsigned"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "not signed" in (result.stdout + result.stderr)


async def test_concurrent_publishes_all_land_in_repodata(env: Env) -> None:
    names = [f"pkg{i}" for i in range(6)]
    built = {name: build_rpm(env.tmp, name) for name in names}
    await env.publisher.init_project(OWNER, PROJECT)
    started = time.monotonic()
    await asyncio.gather(
        *(
            env.publisher.publish(OWNER, PROJECT, CHROOT, i + 1, name, list(built[name]))
            for i, name in enumerate(names)
        )
    )
    print(f"\n6 concurrent publishes: {time.monotonic() - started:.3f}s")
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    found = {(name, arch) for name, arch, _ in repo_packages(chroot_dir)}
    assert found == {(n, a) for n in names for a in ("noarch", "src")}
    # Old metadata files are pruned: at most this and the previous generation.
    assert len(list((chroot_dir / "repodata").glob("*-primary.xml.gz"))) <= 2


async def test_concurrent_updates_are_coalesced(tmp_path: Path) -> None:
    class CountingUpdater(repo.RepoUpdater):
        runs = 0

        async def _regenerate(self, chroot_dir: Path, sign: repo.SignFn | None) -> None:
            self.runs += 1
            await super()._regenerate(chroot_dir, sign)

    chroot_dir = tmp_path / "chroot"
    rpm, _ = build_rpm(tmp_path, "coalesce")
    (chroot_dir / "00000001-coalesce").mkdir(parents=True)
    shutil.copy(rpm, chroot_dir / "00000001-coalesce")
    updater = CountingUpdater()
    started = time.monotonic()
    await asyncio.gather(*(updater.update(chroot_dir) for _ in range(10)))
    print(f"\n10 coalesced updates: {time.monotonic() - started:.3f}s")
    # The first run, then exactly one more covering the nine that waited.
    assert updater.runs == 2
    assert {n for n, _, _ in repo_packages(chroot_dir)} == {"coalesce"}


async def test_hidden_and_staged_packages_are_not_indexed(tmp_path: Path) -> None:
    chroot_dir = tmp_path / "chroot"
    rpm, _ = build_rpm(tmp_path, "visible")
    hidden_rpm, _ = build_rpm(tmp_path, "hidden")
    for sub, source in (("00000001-visible", rpm), (".incoming-00000002-hidden-x", hidden_rpm)):
        (chroot_dir / sub).mkdir(parents=True)
        shutil.copy(source, chroot_dir / sub)
    await repo.update_repodata(chroot_dir)
    assert {n for n, _, _ in repo_packages(chroot_dir)} == {"visible"}


async def test_remove_build_drops_package(env: Env) -> None:
    a = build_rpm(env.tmp, "keep")
    b = build_rpm(env.tmp, "drop")
    await env.publisher.publish(OWNER, PROJECT, CHROOT, 1, "keep", list(a))
    drop_dir = await env.publisher.publish(OWNER, PROJECT, CHROOT, 2, "drop", list(b))
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    assert {n for n, _, _ in repo_packages(chroot_dir)} == {"keep", "drop"}

    await env.publisher.remove_build(OWNER, PROJECT, 2, CHROOT, "drop")
    assert not drop_dir.exists()
    assert {n for n, _, _ in repo_packages(chroot_dir)} == {"keep"}
    assert not [p for p in chroot_dir.iterdir() if p.name.startswith(".")]
    # Removing again, or from a chroot that was never published, is harmless.
    await env.publisher.remove_build(OWNER, PROJECT, 2, CHROOT, "drop")
    await env.publisher.remove_build(OWNER, PROJECT, 2, "fedora-40-x86_64", "drop")


async def test_republish_replaces_build(env: Env) -> None:
    first = build_rpm(env.tmp, "again", release=1)
    second = build_rpm(env.tmp, "again", release=2)
    await env.publisher.publish(OWNER, PROJECT, CHROOT, 5, "again", list(first))
    build_dir = await env.publisher.publish(OWNER, PROJECT, CHROOT, 5, "again", [second[0]])
    assert [p.name for p in build_dir.iterdir()] == [second[0].name]
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    assert repo_packages(chroot_dir) == {
        ("again", "noarch", f"00000005-again/{second[0].name}"),
    }


async def test_group_project_and_remove_project(env: Env) -> None:
    rpm, srpm = build_rpm(env.tmp, "grouped")
    fpr = await env.publisher.init_project("@sig", "proj")
    build_dir = await env.publisher.publish("@sig", "proj", CHROOT, 3, "grouped", [rpm, srpm])
    assert build_dir.parent.parent.parent.name == "@sig"
    assert (
        env.layout.pubkey_path("@sig", "proj")
        .read_text()
        .startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    )
    assert await env.signer.fingerprint("@sig", "proj") == fpr

    await env.publisher.remove_project("@sig", "proj")
    assert not env.layout.project_dir("@sig", "proj").exists()
    assert list((env.layout.results_dir / "@sig").iterdir()) == []
    assert await env.signer.fingerprint("@sig", "proj") is None


async def test_failed_publish_leaves_nothing_behind(env: Env) -> None:
    rpm, _ = build_rpm(env.tmp, "partial")
    await env.publisher.init_project(OWNER, PROJECT)
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    with pytest.raises(Exception, match="does not exist"):
        await env.publisher.publish(
            OWNER, PROJECT, CHROOT, 4, "partial", [rpm, env.tmp / "missing.log"]
        )
    # A corrupt "RPM" makes rpmsign fail after staging: staging is cleaned up.
    bogus = env.tmp / "bogus-1-1.noarch.rpm"
    bogus.write_bytes(b"not an rpm")
    with pytest.raises(Exception, match="rpmsign"):
        await env.publisher.publish(OWNER, PROJECT, CHROOT, 4, "partial", [rpm, bogus])
    assert not chroot_dir.exists() or list(chroot_dir.iterdir()) == []


async def test_publish_logs_of_a_failed_build(env: Env) -> None:
    await env.publisher.init_project(OWNER, PROJECT, chroots=[CHROOT])
    rpm, _ = build_rpm(env.tmp, "failed")
    log = env.tmp / "builder-live.log"
    log.write_text("error: Bad exit status\n")
    build_dir = await env.publisher.publish_logs(OWNER, PROJECT, CHROOT, 8, "failed", [log, rpm])
    assert [p.name for p in build_dir.iterdir()] == ["builder-live.log"]
    await repo.update_repodata(env.layout.chroot_dir(OWNER, PROJECT, CHROOT))
    assert repo_packages(env.layout.chroot_dir(OWNER, PROJECT, CHROOT)) == set()


async def test_readers_never_see_half_written_repodata(env: Env) -> None:
    await env.publisher.init_project(OWNER, PROJECT, chroots=[CHROOT])
    repodata = env.layout.chroot_dir(OWNER, PROJECT, CHROOT) / "repodata"
    built = [build_rpm(env.tmp, f"r{i}") for i in range(4)]
    stop = False
    checks = 0

    def reader() -> None:
        # What a dnf client does: read repomd.xml, then fetch what it names.
        nonlocal checks
        while not stop:
            names = repo.read_repomd_locations(repodata / "repomd.xml")
            assert names, "repomd.xml missing or unreadable"
            for name in names:
                assert (repodata / name).is_file(), f"{name} named but absent"
            checks += 1

    watcher = asyncio.create_task(asyncio.to_thread(reader))
    try:
        for i, files in enumerate(built):
            await env.publisher.publish(OWNER, PROJECT, CHROOT, i + 1, f"r{i}", list(files))
            await env.publisher.remove_build(OWNER, PROJECT, i + 1, CHROOT, f"r{i}")
    finally:
        stop = True
        await watcher
    assert checks > 10
