"""dnf as a test client in a throw-away --installroot."""

from __future__ import annotations

import subprocess
from pathlib import Path


def stop_dnf_gpg_agents(root: Path) -> None:
    """Stop the gpg-agents dnf started for repo_gpgcheck in an installroot.

    librepo imports a repository's key into `<cache>/<repo>/pubring` with
    gpgme, which starts a gpg-agent there and leaves it running.
    """
    for pubring in root.glob("var/cache/dnf/*/pubring"):
        subprocess.run(["gpgconf", "--homedir", str(pubring), "--kill", "all"], capture_output=True)


def dnf(
    root: Path, reposdir: Path, *args: str, cachedir: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run dnf -y -q on `root` with only the repositories in `reposdir`."""
    # Debian enables dnf's `local` plugin, which re-serves every package fetched
    # over http from an unsigned repository of its own; with gpgcheck=1 the
    # install then fails. dnf on Fedora does not ship with it enabled.
    argv = [
        "dnf",
        "-y",
        "-q",
        "--disableplugin=local",
        f"--installroot={root}",
        "--releasever=12",
        f"--setopt=reposdir={reposdir}",
    ]
    if cachedir is not None:
        argv.append(f"--setopt=cachedir={cachedir}")
    try:
        return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout)
    finally:
        stop_dnf_gpg_agents(root)
        if cachedir is not None:
            for pubring in cachedir.glob("*/pubring"):
                subprocess.run(
                    ["gpgconf", "--homedir", str(pubring), "--kill", "all"], capture_output=True
                )


def install_from(repo_text: str, package: str, tmp_path: Path) -> Path:
    """Install `package` with dnf -y into a new installroot under `tmp_path`, from
    the one served .repo file `repo_text`; the root, after asserting dnf succeeded.

    No `rpm --import`: a .repo file with gpgcheck=1 and repo_gpgcheck=1 names its
    key, and dnf -y takes it from there for both signature checks.
    """
    reposdir, root = tmp_path / "repos", tmp_path / "root"
    reposdir.mkdir()
    root.mkdir()
    (reposdir / "kopers.repo").write_text(repo_text)
    r = dnf(root, reposdir, "install", package, cachedir=tmp_path / "cache")
    assert r.returncode == 0, r.stdout + r.stderr
    return root
