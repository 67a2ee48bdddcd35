"""The dnf copr hub file and the per-chroot commands the project page shows (kopers.api.hub)."""

from __future__ import annotations

import configparser
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kopers.api.hub import hub_of, instructions, render_hub_conf
from kopers.models import Project
from kopers.publish.layout import Layout

CHROOT = "debian-12-x86_64"


def project(owner: str = "admin", chroots: tuple[str, ...] = (CHROOT,)) -> Project:
    return Project(
        id=1,
        owner=owner,
        name="demo",
        description="",
        instructions="",
        homepage=None,
        contact=None,
        chroots=chroots,
        additional_repos=(),
        enable_net=False,
        created_by=1,
        created_on=datetime.now(UTC),
    )


def plugin_view(conf: str, hub: str) -> tuple[str, str]:
    """(copr_url, copr_hostname) as dnf-plugins-core's copr plugin derives them from a hub file."""
    ini = configparser.ConfigParser()
    ini.read_string(conf)
    hostname = ini.get(hub, "hostname")
    protocol = ini.get(hub, "protocol", fallback="https")
    port = ini.get(hub, "port", fallback="443")
    url = f"{protocol}://{hostname}"
    if int(port) != 443:
        url += ":" + port
        hostname += ":" + port
    return url, hostname


@pytest.mark.parametrize(
    ("public_url", "name", "plugin_url"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://copr.example", "copr.example", "http://copr.example:80"),
        ("https://copr.example:8443", "copr.example:8443", "https://copr.example:8443"),
        ("https://copr.example", "copr.example", "https://copr.example"),
    ],
)
def test_the_hub_file_leads_the_plugin_to_the_public_url(
    public_url: str, name: str, plugin_url: str
) -> None:
    hub = hub_of(public_url)
    assert hub is not None and hub.name == name
    conf = render_hub_conf(hub, public_url)
    url, hostname = plugin_view(conf, name)
    assert url == plugin_url
    assert hostname == name or (hostname == f"{name}:80" and public_url == "http://copr.example")
    assert hub.file_name.endswith(".conf") and "/" not in hub.file_name and ":" not in hub.file_name


def test_a_public_url_with_a_path_makes_no_hub() -> None:
    assert hub_of("https://example.org/kopers") is None
    assert hub_of("https://example.org/") is not None


def test_plain_http_commands_install_the_hub_file_then_enable_with_the_real_chroot() -> None:
    url = "http://127.0.0.1:8080"
    p = project(chroots=(CHROOT, "fedora-40-x86_64"))
    got = instructions(url, p, Layout(Path("/r"), url))
    assert [c.chroot for c in got.commands] == [CHROOT, "fedora-40-x86_64"]
    first = got.commands[0]
    fetch, enable = first.command.split(" && ")
    assert shlex.split(fetch) == [
        "curl",
        "-fsS",
        "--create-dirs",
        "-o",
        "/etc/dnf/plugins/copr.d/kopers-127.0.0.1-8080.conf",
        f"{url}/dnf-copr-hub.conf",
    ]
    assert shlex.split(enable) == ["dnf", "copr", "enable", "127.0.0.1:8080/admin/demo", CHROOT]
    assert first.repo_file_url == f"{url}/coprs/admin/demo/repo/debian-12/dnf.repo?arch=x86_64"
    assert "CHROOT" not in first.command
    assert got.hub_conf_url == f"{url}/dnf-copr-hub.conf"
    assert got.key_url == f"{url}/results/admin/demo/pubkey.gpg"


def test_https_commands_are_the_short_form_and_groups_get_their_own_urls() -> None:
    url = "https://copr.example"
    got = instructions(url, project(owner="@sig"), Layout(Path("/r"), url))
    [only] = got.commands
    assert only.command == f"dnf copr enable copr.example/@sig/demo {CHROOT}"
    assert only.repo_file_url.startswith(f"{url}/coprs/g/sig/demo/repo/debian-12/")
    assert got.hub_conf_url is None


def test_without_a_hub_the_repo_file_is_fetched_by_hand() -> None:
    url = "https://example.org/kopers"
    got = instructions(url, project(), Layout(Path("/r"), url))
    argv = shlex.split(got.commands[0].command)
    assert argv[:3] == ["curl", "-fsS", "-o"]
    assert argv[3] == "/etc/yum.repos.d/_copr:example.org:admin:demo.repo"
    assert argv[4] == f"{url}/coprs/admin/demo/repo/debian-12/dnf.repo?arch=x86_64"
