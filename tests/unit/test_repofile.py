"""The .repo file served to `dnf copr enable` (kopers.publish.repofile)."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from kopers.errors import BadRequest
from kopers.publish.layout import Layout
from kopers.publish.repofile import hub_hostname, render_repo_file, repo_id

BASEURL = "https://kopers.example.org:8443/results/alice/tools/fedora-40-x86_64/"
GPGKEY = "https://kopers.example.org:8443/results/alice/tools/pubkey.gpg"


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_first_line_and_keys() -> None:
    text = render_repo_file("https://kopers.example.org:8443", "alice", "tools", BASEURL, GPGKEY)
    assert text.split("\n", 1)[0] == "[copr:kopers.example.org:alice:tools]"
    assert "\r" not in text
    assert text.endswith("\n")
    section = parse(text)["copr:kopers.example.org:alice:tools"]
    assert dict(section) == {
        "name": "Copr repo for tools owned by alice",
        "baseurl": BASEURL,
        "type": "rpm-md",
        "skip_if_unavailable": "True",
        "gpgcheck": "1",
        "gpgkey": GPGKEY,
        "repo_gpgcheck": "1",
        "enabled": "1",
        "enabled_metadata": "1",
    }


def test_group_owner() -> None:
    text = render_repo_file("http://hub.local", "@sig", "proj", BASEURL, GPGKEY)
    assert text.startswith("[copr:hub.local:group_sig:proj]\n")
    parser = parse(text)
    assert parser.sections() == ["copr:hub.local:group_sig:proj"]
    assert parser["copr:hub.local:group_sig:proj"]["name"] == "Copr repo for proj owned by @sig"


def test_with_layout_urls() -> None:
    layout = Layout(results_dir=Path("/r"), public_url="http://h:8080")
    text = render_repo_file(
        layout.public_url,
        "alice",
        "tools",
        layout.chroot_repo_url("alice", "tools", "debian-12-x86_64"),
        layout.pubkey_url("alice", "tools"),
    )
    section = parse(text)["copr:h:alice:tools"]
    assert section["baseurl"] == "http://h:8080/results/alice/tools/debian-12-x86_64/"
    assert section["gpgkey"] == "http://h:8080/results/alice/tools/pubkey.gpg"


@pytest.mark.parametrize(
    ("hub", "host"),
    [
        ("https://copr.example.org", "copr.example.org"),
        ("https://copr.example.org/", "copr.example.org"),
        ("http://copr.example.org:18777", "copr.example.org"),
        ("http://user@copr.example.org:80/prefix", "copr.example.org"),
        ("copr.example.org", "copr.example.org"),
        ("http://127.0.0.1:8080", "127.0.0.1"),
        ("http://[::1]:8080", "[::1]"),
    ],
)
def test_hub_hostname_drops_port(hub: str, host: str) -> None:
    assert hub_hostname(hub) == host


def test_repo_id_validates_names() -> None:
    assert repo_id("https://h", "alice", "p") == "copr:h:alice:p"
    with pytest.raises(BadRequest):
        repo_id("https://h", "../x", "p")


@pytest.mark.parametrize("bad", ["http://h/x\n[evil]", "", "http://h/\r"])
def test_line_breaks_cannot_inject_sections(bad: str) -> None:
    with pytest.raises(BadRequest):
        render_repo_file("https://h", "alice", "tools", bad, GPGKEY)
    with pytest.raises(BadRequest):
        render_repo_file("https://h", "alice", "tools", BASEURL, bad)
