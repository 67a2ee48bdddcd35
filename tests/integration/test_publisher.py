"""Publishing with real gpg, rpmsign, createrepo_c and dnf (kopers.publish.publisher)."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import sys
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
from tests.dnfroot import stop_dnf_gpg_agents
from tests.rpms import noarch_rpm

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("gpg", "gpgv", "rpmbuild", "rpmsign", "rpm", "dnf")),
        reason="needs gpg, gpgv, rpmbuild, rpmsign, rpm and dnf",
    ),
]

CHROOT = "debian-12-x86_64"
OWNER, PROJECT = "alice", "tools"


def build_rpm(workdir: Path, name: str, release: int = 1) -> tuple[Path, Path]:
    """Build a tiny noarch package; return (binary RPM, SRPM)."""
    return noarch_rpm(workdir, name, "1.0", release)


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


def hidden_entries(chroot_dir: Path) -> list[str]:
    """Hidden names in a chroot directory other than the package index."""
    return sorted(
        p.name for p in chroot_dir.iterdir() if p.name.startswith(".") and p.name != ".kopers-index"
    )


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
    stop_dnf_gpg_agents(tmp_path / "root")  # the installroot of the dnf tests


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
    assert hidden_entries(chroot_dir) == []  # no staging left
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
    assert "gpgcheck=1\n" in repo_text and "repo_gpgcheck=1\n" in repo_text
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
    # Signed metadata (repo_gpgcheck=1 needs it), unsigned package.
    await repo.update_repodata(
        chroot_dir, sign=functools.partial(env.signer.sign_detached, OWNER, PROJECT)
    )
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


async def test_dnf_refuses_metadata_with_a_bad_signature(env: Env) -> None:
    # The negative for repo_gpgcheck=1: repomd.xml changed after signing.
    rpm, _ = build_rpm(env.tmp, "tampered")
    await env.publisher.publish(OWNER, PROJECT, CHROOT, 1, "tampered", [rpm])
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    repomd = chroot_dir / "repodata" / "repomd.xml"
    repomd.write_text(repomd.read_text().replace("<revision>", "<revision>1"))
    pubkey = env.layout.pubkey_path(OWNER, PROJECT)
    reposdir = env.tmp / "repos"
    reposdir.mkdir()
    (reposdir / "k.repo").write_text(
        render_repo_file("http://h", OWNER, PROJECT, chroot_dir.as_uri() + "/", pubkey.as_uri())
    )
    result = subprocess.run(
        # Not -q: with skip_if_unavailable=True the refusal is only a warning.
        ["dnf", "-y", f"--installroot={env.tmp / 'root'}", "--releasever=12",
         f"--setopt=reposdir={reposdir}", "--disableplugin=*", "install", "tampered"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Bad GPG signature" in (result.stdout + result.stderr)


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

        async def _run(
            self,
            chroot_dir: Path,
            sign: repo.SignFn | None,
            changed: set[str],
            scan: bool,
            rebuild: bool,
        ) -> None:
            self.runs += 1
            await super()._run(chroot_dir, sign, changed, scan, rebuild)

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
    assert hidden_entries(chroot_dir) == []
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


def createrepo_c_packages(chroot_dir: Path, tmp: Path) -> set[tuple[str, str, str]]:
    """What a full createrepo_c run finds in a copy of the visible build directories."""
    copy = tmp / f"copy-{time.monotonic_ns()}"
    copy.mkdir()
    for build in chroot_dir.iterdir():
        if build.is_dir() and not build.name.startswith(".") and build.name != "repodata":
            shutil.copytree(build, copy / build.name, copy_function=os.link)
    # The venv's createrepo_c: the same library version as the bindings.
    run(Path(sys.executable).parent / "createrepo_c", "--quiet", copy)
    return repo_packages(copy)


async def test_restart_parses_only_new_packages(env: Env) -> None:
    # The index is persisted: a new updater (a restarted server) reads no
    # RPM it has indexed before.
    parsed: list[str] = []
    first = Publisher(env.layout, env.signer, repo.RepoUpdater(_crash_point=parsed.append))
    for i in range(3):
        await first.publish(
            OWNER, PROJECT, CHROOT, i + 1, f"p{i}", list(build_rpm(env.tmp, f"p{i}"))
        )
    assert parsed.count("parse") == 6  # 3 builds x (RPM + SRPM)

    parsed.clear()
    restarted = Publisher(env.layout, env.signer, repo.RepoUpdater(_crash_point=parsed.append))
    rpm, _ = build_rpm(env.tmp, "late")
    await restarted.publish(OWNER, PROJECT, CHROOT, 9, "late", [rpm])
    assert parsed.count("parse") == 1
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    assert {n for n, _, _ in repo_packages(chroot_dir)} == {"p0", "p1", "p2", "late"}


async def test_remove_build_leaves_repodata_before_disk(env: Env) -> None:
    seen: list[bool] = []

    class Watching(repo.RepoUpdater):
        async def _run(
            self,
            chroot_dir: Path,
            sign: repo.SignFn | None,
            changed: set[str],
            scan: bool,
            rebuild: bool,
        ) -> None:
            seen.append((chroot_dir / "00000002-gone").is_dir())
            await super()._run(chroot_dir, sign, changed, scan, rebuild)

    publisher = Publisher(env.layout, env.signer, Watching())
    await publisher.publish(OWNER, PROJECT, CHROOT, 1, "stays", list(build_rpm(env.tmp, "stays")))
    await publisher.publish(OWNER, PROJECT, CHROOT, 2, "gone", list(build_rpm(env.tmp, "gone")))
    seen.clear()
    await publisher.remove_build(OWNER, PROJECT, 2, CHROOT, "gone")
    assert seen == [True]  # the files were still there while the repodata changed
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    assert not (chroot_dir / "00000002-gone").exists()
    assert {n for n, _, _ in repo_packages(chroot_dir)} == {"stays"}
    assert hidden_entries(chroot_dir) == []


async def test_prune_keeps_newest_builds_per_package(env: Env) -> None:
    foo = [build_rpm(env.tmp, "foo", release=r) for r in (1, 2, 3)]
    for build_id, files in zip((1, 2, 5), foo, strict=True):
        await env.publisher.publish(OWNER, PROJECT, CHROOT, build_id, "foo", list(files))
    await env.publisher.publish(OWNER, PROJECT, CHROOT, 3, "bar", list(build_rpm(env.tmp, "bar")))
    log = env.tmp / "builder-live.log"
    log.write_text("failed\n")
    await env.publisher.publish_logs(OWNER, PROJECT, CHROOT, 7, "bar", [log])  # a failure

    removed = await env.publisher.prune(OWNER, PROJECT, CHROOT, keep=1)
    # bar's newest build (7) failed, so its newest with RPMs (3) stays too.
    assert removed == ["00000001-foo", "00000002-foo"]
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    assert sorted(p.name for p in chroot_dir.iterdir() if not p.name.startswith(".")) == [
        "00000003-bar", "00000005-foo", "00000007-bar", "repodata",
    ]  # fmt: skip
    assert {(n, loc.split("/")[0]) for n, _, loc in repo_packages(chroot_dir)} == {
        ("foo", "00000005-foo"),
        ("bar", "00000003-bar"),
    }
    assert await env.publisher.prune(OWNER, PROJECT, CHROOT, keep=1) == []
    assert await env.publisher.prune(OWNER, PROJECT, "fedora-40-x86_64", keep=1) == []


async def test_regenerate_recovers_what_the_index_missed(env: Env) -> None:
    for i in range(3):
        await env.publisher.publish(
            OWNER, PROJECT, CHROOT, i + 1, f"r{i}", list(build_rpm(env.tmp, f"r{i}"))
        )
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    # Changes behind Kopers' back, inside existing build directories, which
    # an incremental update does not look into.
    extra, _ = build_rpm(env.tmp, "sneaked")
    shutil.copy(extra, chroot_dir / "00000001-r0")
    for srpm in (chroot_dir / "00000002-r1").glob("*.src.rpm"):
        srpm.unlink()
    (chroot_dir / ".kopers-index" / "index.sqlite").write_bytes(b"garbage")  # and a broken index

    await env.publisher.regenerate(OWNER, PROJECT, CHROOT)
    assert repo_packages(chroot_dir) == createrepo_c_packages(chroot_dir, env.tmp)
    assert "sneaked" in {n for n, _, _ in repo_packages(chroot_dir)}
    keyring = env.tmp / "trusted.gpg"
    run("gpg", "--batch", "--dearmor", "-o", keyring, env.layout.pubkey_path(OWNER, PROJECT))
    repodata = chroot_dir / "repodata"
    run("gpgv", "--keyring", keyring, repodata / "repomd.xml.asc", repodata / "repomd.xml")


async def test_a_corrupt_index_is_rebuilt(env: Env) -> None:
    await env.publisher.publish(OWNER, PROJECT, CHROOT, 1, "a", list(build_rpm(env.tmp, "a")))
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    (chroot_dir / ".kopers-index" / "index.sqlite").write_bytes(b"not a database" * 100)
    await env.publisher.publish(OWNER, PROJECT, CHROOT, 2, "b", list(build_rpm(env.tmp, "b")))
    assert repo_packages(chroot_dir) == createrepo_c_packages(chroot_dir, env.tmp)


async def test_usage_counts_the_project_tree(env: Env) -> None:
    def walked() -> int:
        root = env.layout.project_dir(OWNER, PROJECT)
        return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())

    assert await env.publisher.usage(OWNER, PROJECT) == 0  # no such project yet
    await env.publisher.init_project(OWNER, PROJECT, chroots=[CHROOT])
    assert await env.publisher.usage(OWNER, PROJECT) == walked()
    await env.publisher.publish(OWNER, PROJECT, CHROOT, 1, "big", list(build_rpm(env.tmp, "big")))
    with_build = await env.publisher.usage(OWNER, PROJECT)
    assert with_build == walked()

    started = time.monotonic()
    assert await env.publisher.usage(OWNER, PROJECT) == with_build  # cached
    print(f"\ncached usage(): {(time.monotonic() - started) * 1000:.2f} ms")

    await env.publisher.remove_build(OWNER, PROJECT, 1, CHROOT, "big")
    assert await env.publisher.usage(OWNER, PROJECT) == walked() < with_build
    await env.publisher.remove_project(OWNER, PROJECT)
    assert await env.publisher.usage(OWNER, PROJECT) == 0


async def test_a_chroot_without_index_is_scanned_first(env: Env) -> None:
    # As after an upgrade from createrepo_c-only Kopers, or a deleted index:
    # the first (hinted) publish must still index the builds already there.
    for i in range(2):
        await env.publisher.publish(
            OWNER, PROJECT, CHROOT, i + 1, f"old{i}", list(build_rpm(env.tmp, f"old{i}"))
        )
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    shutil.rmtree(chroot_dir / ".kopers-index")
    rpm, _ = build_rpm(env.tmp, "new")
    await env.publisher.publish(OWNER, PROJECT, CHROOT, 3, "new", [rpm])
    assert {n for n, _, _ in repo_packages(chroot_dir)} == {"old0", "old1", "new"}


async def test_failed_logs_replacing_a_result_take_its_packages_out(env: Env) -> None:
    # A retried task whose first attempt was published, and whose retry failed.
    rpm, _ = build_rpm(env.tmp, "retried")
    await env.publisher.publish(OWNER, PROJECT, CHROOT, 6, "retried", [rpm])
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    assert {n for n, _, _ in repo_packages(chroot_dir)} == {"retried"}
    log = env.tmp / "builder-live.log"
    log.write_text("error: Bad exit status\n")
    await env.publisher.publish_logs(OWNER, PROJECT, CHROOT, 6, "retried", [log])
    assert repo_packages(chroot_dir) == set()
    assert repo_packages(chroot_dir) == createrepo_c_packages(chroot_dir, env.tmp)
