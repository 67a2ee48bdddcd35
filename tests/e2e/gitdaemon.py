"""A git repository served by `git daemon` on the one loopback address builds may fetch from."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.server import WEBROOT_HOST, free_port


def git(*args: str, cwd: Path) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@dataclass(frozen=True)
class GitRepo:
    """A work tree whose commits are pushed to the bare repository the daemon serves."""

    url: str
    work: Path
    bare: Path

    def commit(
        self, files: Mapping[str, str], branch: str = "main", message: str = "change"
    ) -> str:
        """Write `files` on `branch` (made from the current one if new), commit and push."""
        if (
            branch
            not in git("branch", "--list", "--format=%(refname:short)", cwd=self.work).split()
        ):
            git("checkout", "-q", "-b", branch, cwd=self.work)
        else:
            git("checkout", "-q", branch, cwd=self.work)
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", ".", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "-q", str(self.bare), branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work).strip()


@contextlib.contextmanager
def git_daemon(base: Path, name: str, files: Mapping[str, str]) -> Iterator[GitRepo]:
    """Serve a new repository `name` holding `files` on branch main; yield it."""
    work = base / "work"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    served = base / "served"
    served.mkdir()
    bare = served / name
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=base)
    port = free_port()
    repo = GitRepo(f"git://{WEBROOT_HOST}:{port}/{name}", work, bare)
    repo.commit(files, message="first")
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            f"--base-path={served}",
            f"--listen={WEBROOT_HOST}",
            f"--port={port}",
            str(served),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection((WEBROOT_HOST, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield repo
    finally:
        daemon.terminate()
        daemon.wait()
