"""`copr-cli buildscm` against a local git repository served by `git daemon` on 127.0.0.1.

The source step clones on the host, builds the SRPM in a builder VM, and the
chroot task then builds that SRPM: two VM boots.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.gitdaemon import git_daemon
from tests.e2e.server import CHROOT, Server

pytestmark = pytest.mark.e2e

SPEC = """\
Name:           kopers-fromgit
Version:        3.1
Release:        1%{?dist}
Summary:        Built from git
License:        MIT
BuildArch:      noarch
Source0:        greeting.txt

%description
A package built from a git repository.

%prep

%build

%install
install -D -m 644 %{SOURCE0} %{buildroot}/usr/share/kopers-fromgit/greeting.txt

%files
/usr/share/kopers-fromgit/greeting.txt
"""


@pytest.fixture(scope="module")
def git_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    files = {
        "pkg/kopers-fromgit.spec": SPEC,
        "pkg/greeting.txt": "hello from git, on the release branch\n",
    }
    with git_daemon(tmp_path_factory.mktemp("git"), "pkg.git", files) as repo:
        repo.commit({}, branch="release", message="release")
        repo.commit({"pkg/greeting.txt": "main branch: must not be built\n"}, branch="main")
        yield repo.url


def test_buildscm_from_local_git(server: Server, git_url: str, tmp_path: Path) -> None:
    server.user("erin")
    assert server.copr("erin", "create", "scm", "--chroot", CHROOT).returncode == 0
    r = server.copr(
        "erin",
        "buildscm",
        "scm",
        "--clone-url",
        git_url,
        "--commit",
        "release",
        "--subdir",
        "pkg",
        "--spec",
        "kopers-fromgit.spec",
        "--nowait",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    build_id = int(r.stdout.rsplit("Created builds:", 1)[1].split()[0])
    build = server.wait_build(build_id)
    assert build["state"] == "succeeded", build
    assert build["source_package"]["name"] == "kopers-fromgit"
    assert build["source_package"]["version"] == "3.1-1"

    dest = tmp_path / "dl"
    r = server.copr("erin", "download-build", str(build_id), "-d", str(dest))
    assert r.returncode == 0, r.stderr
    rpm = dest / CHROOT / "kopers-fromgit-3.1-1.deb12.kopers.noarch.rpm"
    files = subprocess.run(["rpm2cpio", str(rpm)], capture_output=True, check=True).stdout
    assert b"hello from git, on the release branch" in files
    repomd = server.get(f"/results/erin/scm/{CHROOT}/repodata/repomd.xml")
    assert "primary" in repomd

    r = server.copr("erin", "buildscm", "scm", "--clone-url", "file:///etc", "--nowait")
    assert r.returncode == 1 and "clone_url must be" in r.stderr
