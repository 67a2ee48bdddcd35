"""The install commands of the project page do what the dnf copr plugin needs, as written.

The plugin (docs/copr-api-v3.md, section 7) reads `dnf copr enable HUB/owner/project
CHROOT`, finds HUB's section in a hub file (or takes https://HUB), and asks for
`<hub>/coprs/<owner>/<project>/repo/<chroot minus its last part>/dnf.repo?arch=<last part>`.
Here each command the page shows is run through those rules: the URL it makes must be
the page's own .repo link (for a user) and must pick the command's chroot on the server.
"""

from __future__ import annotations

import configparser
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kopers.api.dnfrepo import pick_chroot
from kopers.api.hub import hub_of, instructions, render_hub_conf
from kopers.models import Project
from kopers.publish.layout import Layout

CHROOTS = ("debian-12-x86_64", "fedora-40-aarch64", "fedora-40-x86_64", "epel-9-x86_64")


def project(owner: str) -> Project:
    return Project(1, owner, "demo", "", "", None, None, CHROOTS, (), False, 1, datetime.now(UTC))


def plugin_request(argv: list[str], hub_files: dict[str, str]) -> tuple[str, str]:
    """(the URL the plugin fetches, the chroot) for `dnf copr enable ...`, as the plugin does."""
    assert argv[:3] == ["dnf", "copr", "enable"] and len(argv) == 5, argv
    hub, owner, name = argv[3].split("/")
    chroot = argv[4]
    assert len(chroot.split("-")) >= 3, "the plugin refuses a chroot of fewer parts"
    ini = configparser.ConfigParser()
    for text in hub_files.values():
        ini.read_string(text)
    if ini.has_section(hub):
        protocol = ini.get(hub, "protocol", fallback="https")
        port = ini.getint(hub, "port", fallback=443)
        base = f"{protocol}://{ini.get(hub, 'hostname')}" + (f":{port}" if port != 443 else "")
    else:
        base = f"https://{hub}"
    os_version, _, arch = chroot.rpartition("-")
    return f"{base}/coprs/{owner}/{name}/repo/{os_version}/dnf.repo?arch={arch}", chroot


@pytest.mark.parametrize("public_url", ["http://127.0.0.1:8080", "https://copr.example"])
@pytest.mark.parametrize("owner", ["alice", "@sig"])
def test_each_shown_command_fetches_its_own_chroots_repo_file(public_url: str, owner: str) -> None:
    p = project(owner)
    got = instructions(public_url, p, Layout(Path("/r"), public_url))
    hub = hub_of(public_url)
    assert hub is not None
    files = {}
    if got.hub_conf_url is not None:
        files[got.hub_conf_url] = render_hub_conf(hub, public_url)
    assert [c.chroot for c in got.commands] == list(CHROOTS)
    for c in got.commands:
        assert "CHROOT" not in c.command and "OWNER" not in c.command
        enable = c.command.split(" && ")[-1]
        url, chroot = plugin_request(shlex.split(enable), files)
        assert chroot == c.chroot
        path = url.removeprefix(public_url)
        assert path != url, (url, public_url)  # the plugin reaches this server
        os_version, arch = path.split("/repo/")[1].split("/dnf.repo?arch=")
        assert pick_chroot(p.chroots, os_version, arch) == c.chroot
        if owner == "alice":
            assert url == c.repo_file_url
        else:  # the plugin asks for /coprs/@sig/..., the page links /coprs/g/sig/...: both served
            assert c.repo_file_url == url.replace("/coprs/@sig/", "/coprs/g/sig/")
