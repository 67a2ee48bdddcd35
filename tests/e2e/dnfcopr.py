"""A throwaway dnf client that runs the project page's `dnf copr enable` command as shown.

How the plugin is pointed at a throwaway root (it has no option of its own):
see tests/e2e/test_dnf_copr.py, whose module docstring tells it in full.
"""

from __future__ import annotations

import html
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.dnfroot import dnf, stop_dnf_gpg_agents

PLUGIN_DIR = "/etc/dnf/plugins/"


@dataclass(frozen=True)
class Client:
    """A throwaway dnf client: its root, repos directory, plugin config and cache."""

    base: Path

    @classmethod
    def make(cls, base: Path) -> Client:
        client = cls(base)
        for d in (client.root, client.reposdir, client.plugins / "copr.d", client.cache):
            d.mkdir(parents=True)
        (client.plugins / "copr.conf").write_text("[main]\nenabled=1\n")
        return client

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def reposdir(self) -> Path:
        return self.base / "repos"

    @property
    def plugins(self) -> Path:
        return self.base / "plugins"

    @property
    def cache(self) -> Path:
        return self.base / "cache"

    def run_page_command(self, command: str, env: dict[str, str] | None = None) -> None:
        """Run the page's one-liner (`A && B`) with this client's directories."""
        for part in command.split(" && "):
            argv = [
                arg.replace(PLUGIN_DIR, f"{self.plugins}/") if arg.startswith(PLUGIN_DIR) else arg
                for arg in shlex.split(part)
            ]
            if argv[0] == "dnf":
                argv[1:1] = [
                    "-y",
                    "--disableplugin=local",
                    f"--installroot={self.root}",
                    "--releasever=12",
                    f"--setopt=reposdir={self.reposdir}",
                    f"--setopt=pluginconfpath={self.plugins}",
                    f"--setopt=cachedir={self.cache}",
                ]
            try:
                r = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    env={**os.environ, **(env or {})},
                )
            finally:
                stop_dnf_gpg_agents(self.root)
            assert r.returncode == 0, f"{argv}\n{r.stdout}\n{r.stderr}"

    def install(
        self, package: str, version: str, *options: str, release: str = "1.deb12.kopers"
    ) -> None:
        """dnf install `package` from the enabled repository, its files and both key checks.

        `release` is what Kopers' build gave it; an uploaded RPM keeps its own.
        """
        r = dnf(self.root, self.reposdir, *options, "install", package, cachedir=self.cache)
        assert r.returncode == 0, r.stdout + r.stderr
        q = subprocess.run(
            ["rpm", "--root", str(self.root), "-q", package], capture_output=True, text=True
        )
        assert q.stdout.strip() == f"{package}-{version}-{release}.noarch", q.stdout + q.stderr
        text = (self.root / f"usr/share/{package}/hello.txt").read_text()
        assert text == f"{package} {version}\n"
        # Both checks ran: the key went into the rpm database (packages) and into
        # librepo's keyring for the repository (repomd.xml.asc).
        keys = subprocess.run(
            ["rpm", "--root", str(self.root), "-q", "gpg-pubkey"], capture_output=True, text=True
        )
        assert keys.returncode == 0 and keys.stdout.startswith("gpg-pubkey-"), keys.stdout
        assert list(self.cache.glob("*/pubring")), "no repository key: repo_gpgcheck did not run"


def page_command(page: str, chroot: str) -> str:
    """The command the project page shows for `chroot`."""
    row_start = f'<tr class="chroot" data-chroot="{re.escape(chroot)}">'
    row = re.search(row_start + r'.*?<pre class="command">(.*?)</pre>', page, re.S)
    assert row, page
    return html.unescape(row.group(1))
