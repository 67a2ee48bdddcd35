"""Random publishes and removals keep the repodata equal to createrepo_c's.

A seeded random sequence of 70 steps on one chroot, through the real
Publisher (rpmsign, gpg, createrepo_c bindings): publish a new build of 1-4
signed RPMs (sometimes with its SRPM), republish an existing build with
other RPMs, remove a build, or prune to the newest 1-2 builds per package.
The RPMs are subpackages of one spec, built once at two releases. Blocks
hold 3 packages here (256 by default), so the metadata files are several
concatenated gzip members and removals rebuild and merge blocks.

After every step:
- the packages in Kopers' repodata, as (NEVRA, location) read with
  createrepo_c's bindings, equal what a full `createrepo_c` run finds in a
  copy of the chroot's build directories, and what the test's own model of
  the chroot expects;
- `repomd.xml.asc` verifies against `repomd.xml` with the project key.

dnf takes about a second per run, so it checks every 10th step and the end
rather than every step: in a fresh `--installroot` with the rendered .repo
file (`gpgcheck=1`, `repo_gpgcheck=1`) and `-y`, which is what makes dnf
import the key for both checks non-interactively, `dnf repoquery` must list
exactly the expected NEVRAs and `dnf install` one of them. The whole test
runs in about 15-25 s on 2 cores (70 createrepo_c runs, 7 dnf checks).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
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

OWNER, PROJECT, CHROOT = "alice", "random", "debian-12-x86_64"
SEED = 20240611
STEPS = 70
DNF_EVERY = 10
SUBPACKAGES = 12
PACKAGES = ("alpha", "beta", "gamma")  # source package names of the builds
BLOCK_PACKAGES = 3

SPEC_HEAD = """\
Name: pool
Version: 1.0
Release: {release}
Summary: Kopers consistency test packages
License: MIT
BuildArch: noarch
%description
Subpackages for the Kopers repodata consistency test.
"""
SUBPACKAGE = """
%package -n {sub}
Summary: Subpackage {sub}
%description -n {sub}
Subpackage {sub} of the Kopers consistency test.
%files -n {sub}
/usr/share/pool/{sub}
"""
SPEC_TAIL = """
%install
mkdir -p %{{buildroot}}/usr/share/pool
for sub in {subs}; do echo $sub > %{{buildroot}}/usr/share/pool/$sub; done
%changelog
* Mon Jan 01 2024 Kopers Tests <tests@kopers.example> - 1.0-{release}
- A changelog entry, so that other.xml has something in it.
"""

Nevra = str
Entry = tuple[Nevra, str]  # (NEVRA, location_href)


@dataclass(frozen=True)
class Pool:
    rpms: tuple[Path, ...]  # binary RPMs, both releases
    srpms: tuple[Path, ...]
    nevra: dict[str, Nevra]  # file name -> NEVRA


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    """12 subpackages at releases 1 and 2, each built once with rpmbuild."""
    base = tmp_path_factory.mktemp("pool")
    subs = [f"pool-sub{i:02d}" for i in range(SUBPACKAGES)]
    for release in (1, 2):
        spec = base / f"pool-{release}.spec"
        spec.write_text(
            SPEC_HEAD.format(release=release)
            + "".join(SUBPACKAGE.format(sub=sub) for sub in subs)
            + SPEC_TAIL.format(subs=" ".join(subs), release=release)
        )
        subprocess.run(
            ["rpmbuild", "--define", f"_topdir {base}/top", "-ba", str(spec)],
            check=True,
            capture_output=True,
        )
    rpms = tuple(sorted((base / "top" / "RPMS" / "noarch").glob("*.rpm")))
    srpms = tuple(sorted((base / "top" / "SRPMS").glob("*.src.rpm")))
    nevra = {p.name: _nevra(cr.package_from_rpm(str(p))) for p in (*rpms, *srpms)}
    return Pool(rpms, srpms, nevra)


def _nevra(pkg: cr.Package) -> Nevra:
    return f"{pkg.name}-{pkg.epoch or 0}:{pkg.version}-{pkg.release}.{pkg.arch}"


def repodata_entries(repo_root: Path) -> set[Entry]:
    """Every package in a repository's primary, parsed with createrepo_c.

    Not through `cr.Metadata`: it keys packages by checksum, and the same
    RPM signed within the same second in two builds has the same checksum.
    """
    repomd = cr.Repomd(str(repo_root / "repodata" / "repomd.xml"))
    found: list[Entry] = []

    def collect(pkg: cr.Package) -> bool:
        found.append((_nevra(pkg), pkg.location_href))
        return True

    cr.xml_parse_primary(str(repo_root / repomd["primary"].location_href), pkgcb=collect)
    assert len(found) == len(set(found)), "a location listed twice"
    return set(found)


def createrepo_c_entries(chroot_dir: Path, work: Path) -> set[Entry]:
    """A full createrepo_c run over a copy (hard links) of the build directories."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for build in chroot_dir.iterdir():
        if build.is_dir() and not build.name.startswith(".") and build.name != "repodata":
            shutil.copytree(build, work / build.name, copy_function=os.link)
    subprocess.run(
        [Path(sys.executable).parent / "createrepo_c", "--quiet", str(work)],
        check=True,
        capture_output=True,
    )
    return repodata_entries(work)


@dataclass
class Model:
    """What the chroot should hold: build directory name -> RPM file names."""

    builds: dict[str, list[str]] = field(default_factory=dict)
    next_id: int = 1

    def entries(self, pool: Pool) -> set[Entry]:
        return {
            (pool.nevra[name], f"{build}/{name}")
            for build, names in self.builds.items()
            for name in names
        }


@dataclass
class Env:
    layout: Layout
    signer: Signer
    publisher: Publisher
    tmp: Path


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    # Small blocks, so that the repodata spans several blocks and removals
    # rebuild and merge them: the default (256) would put this whole test
    # repository in one block.
    monkeypatch.setattr(repoindex, "BLOCK_PACKAGES", BLOCK_PACKAGES)
    layout = Layout(results_dir=tmp_path / "results", public_url="http://kopers.test/")
    signer = Signer(tmp_path / "keys")
    yield Env(layout, signer, Publisher(layout, signer), tmp_path)
    await signer.close()


def run(*argv: str | Path) -> str:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result.stdout


def check_signature(env: Env, keyring: Path) -> None:
    repodata = env.layout.chroot_dir(OWNER, PROJECT, CHROOT) / "repodata"
    run("gpgv", "--keyring", keyring, repodata / "repomd.xml.asc", repodata / "repomd.xml")


def check_with_dnf(env: Env, step: int, expected: set[Entry], install: str | None) -> None:
    """dnf sees exactly the expected NEVRAs (and installs one), both checks on."""
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    reposdir = env.tmp / f"dnf-{step}" / "repos"
    root = env.tmp / f"dnf-{step}" / "root"
    reposdir.mkdir(parents=True)
    root.mkdir()
    repo_text = render_repo_file(
        env.layout.public_url,
        OWNER,
        PROJECT,
        chroot_dir.as_uri() + "/",
        env.layout.pubkey_path(OWNER, PROJECT).as_uri(),
    )
    assert "gpgcheck=1\n" in repo_text and "repo_gpgcheck=1\n" in repo_text
    (reposdir / "kopers.repo").write_text(repo_text)
    # No `rpm --import` first: -y alone must get dnf past both key checks.
    dnf = [
        "dnf", "-y", "-q", f"--installroot={root}", "--releasever=12",
        f"--setopt=reposdir={reposdir}", "--setopt=install_weak_deps=False",
        "--disableplugin=*",
    ]  # fmt: skip
    listed = run(
        *dnf, "repoquery", "--available", "--qf", "%{name}-%{epoch}:%{version}-%{release}.%{arch}"
    )
    try:
        assert set(listed.split()) == {nevra for nevra, _ in expected}, f"step {step}"
        if install is not None:
            run(*dnf, "install", install)
            assert run("rpm", "--root", root, "-q", install).startswith(install)
    finally:
        stop_dnf_gpg_agents(root)
    shutil.rmtree(env.tmp / f"dnf-{step}")


async def test_random_publishes_and_removals(env: Env, pool: Pool) -> None:
    rng = random.Random(SEED)
    model = Model()
    chroot_dir = env.layout.chroot_dir(OWNER, PROJECT, CHROOT)
    await env.publisher.init_project(OWNER, PROJECT, chroots=[CHROOT])
    keyring = env.tmp / "trusted.gpg"
    run("gpg", "--batch", "--dearmor", "-o", keyring, env.layout.pubkey_path(OWNER, PROJECT))
    counts = {"add": 0, "republish": 0, "remove": 0, "prune": 0}

    def pick_files() -> list[Path]:
        files = rng.sample(pool.rpms, rng.randint(1, 4))
        if rng.random() < 0.3:
            files.append(rng.choice(pool.srpms))
        return files

    for step in range(1, STEPS + 1):
        roll = rng.random()
        if not model.builds or roll < 0.45:
            op = "add"
            build_id, package = model.next_id, rng.choice(PACKAGES)
            model.next_id += 1
        elif roll < 0.55:
            op = "republish"
            name = rng.choice(sorted(model.builds))
            build_id, package = int(name[:8]), name[9:]
        elif roll < 0.9:
            op = "remove"
        else:
            op = "prune"
        counts[op] += 1

        if op in ("add", "republish"):
            files = pick_files()
            build_dir = await env.publisher.publish(
                OWNER, PROJECT, CHROOT, build_id, package, files
            )
            model.builds[build_dir.name] = [f.name for f in files]
        elif op == "remove":
            name = rng.choice(sorted(model.builds))
            await env.publisher.remove_build(OWNER, PROJECT, int(name[:8]), CHROOT, name[9:])
            del model.builds[name]
        else:
            removed = await env.publisher.prune(OWNER, PROJECT, CHROOT, keep=rng.randint(1, 2))
            assert set(removed) <= set(model.builds)
            for name in removed:
                del model.builds[name]

        expected = model.entries(pool)
        ours = repodata_entries(chroot_dir)
        assert ours == createrepo_c_entries(chroot_dir, env.tmp / "copy"), f"step {step}: {op}"
        assert ours == expected, f"step {step}: {op}"
        check_signature(env, keyring)
        if step % DNF_EVERY == 0 or step == STEPS:
            binaries = sorted(n.rsplit("-", 2)[0] for n, _ in expected if not n.endswith(".src"))
            check_with_dnf(env, step, expected, rng.choice(binaries) if binaries else None)

    print(f"\nsteps: {counts}, {len(model.builds)} builds at the end")
    assert counts["add"] + counts["remove"] >= 50
