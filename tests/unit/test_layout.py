"""Paths and URLs of published results (kopers.publish.layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kopers.errors import BadRequest
from kopers.publish.layout import Layout, build_dir_name, parse_build_dir_name

ROOT = Path("/srv/kopers/results")


@pytest.fixture
def layout() -> Layout:
    return Layout(results_dir=ROOT, public_url="https://kopers.example.org/")


def test_public_url_loses_trailing_slash(layout: Layout) -> None:
    assert layout.public_url == "https://kopers.example.org"
    assert layout.results_url == "https://kopers.example.org/results"


def test_paths(layout: Layout) -> None:
    assert layout.project_dir("alice", "tools") == ROOT / "alice" / "tools"
    assert layout.pubkey_path("alice", "tools") == ROOT / "alice" / "tools" / "pubkey.gpg"
    assert layout.chroot_dir("alice", "tools", "fedora-40-x86_64") == (
        ROOT / "alice" / "tools" / "fedora-40-x86_64"
    )
    assert layout.build_dir("alice", "tools", "fedora-40-x86_64", 42, "hello") == (
        ROOT / "alice" / "tools" / "fedora-40-x86_64" / "00000042-hello"
    )


def test_urls(layout: Layout) -> None:
    base = "https://kopers.example.org/results/alice/tools"
    assert layout.repo_url("alice", "tools") == base
    assert layout.chroot_repo_url("alice", "tools", "epel-9-x86_64") == f"{base}/epel-9-x86_64/"
    assert layout.result_url("alice", "tools", "epel-9-x86_64", 7, "python3-foo") == (
        f"{base}/epel-9-x86_64/00000007-python3-foo/"
    )
    assert layout.pubkey_url("alice", "tools") == f"{base}/pubkey.gpg"


def test_group_owner_keeps_literal_at(layout: Layout) -> None:
    assert layout.project_dir("@sig", "proj") == ROOT / "@sig" / "proj"
    assert layout.repo_url("@sig", "proj") == "https://kopers.example.org/results/@sig/proj"
    assert layout.pubkey_url("@sig", "proj").endswith("/results/@sig/proj/pubkey.gpg")


def test_large_build_ids_are_not_truncated() -> None:
    assert build_dir_name(123456789, "x") == "123456789-x"


def test_plus_and_dots_are_allowed(layout: Layout) -> None:
    path = layout.build_dir("a.b", "c++-tools", "fedora-rawhide-aarch64", 1, "libstdc++")
    assert path == ROOT / "a.b" / "c++-tools" / "fedora-rawhide-aarch64" / "00000001-libstdc++"


@pytest.mark.parametrize(
    "owner",
    ["../x", "..", ".", "a/b", "", "@", "@@x", "x@y", ".hidden", "a..b", "a b", "-x", "x" * 200],
)
def test_bad_owner_is_rejected(layout: Layout, owner: str) -> None:
    with pytest.raises(BadRequest):
        layout.project_dir(owner, "proj")
    with pytest.raises(BadRequest):
        layout.repo_url(owner, "proj")


@pytest.mark.parametrize("project", ["../x", "..", "a/b", "", ".git", "a\nb", "p:suffix", "a..b"])
def test_bad_project_is_rejected(layout: Layout, project: str) -> None:
    with pytest.raises(BadRequest):
        layout.project_dir("alice", project)
    with pytest.raises(BadRequest):
        layout.pubkey_url("alice", project)


@pytest.mark.parametrize("chroot", ["../x", "repodata", "fedora-40", "Fedora-40-x86_64", "a/b-c-d"])
def test_bad_chroot_is_rejected(layout: Layout, chroot: str) -> None:
    with pytest.raises(BadRequest):
        layout.chroot_dir("alice", "proj", chroot)
    with pytest.raises(BadRequest):
        layout.chroot_repo_url("alice", "proj", chroot)


@pytest.mark.parametrize("package", ["../x", "..", "a/b", "", ".x", "a b"])
def test_bad_package_is_rejected(layout: Layout, package: str) -> None:
    with pytest.raises(BadRequest):
        layout.build_dir("alice", "proj", "fedora-40-x86_64", 1, package)
    with pytest.raises(BadRequest):
        layout.result_url("alice", "proj", "fedora-40-x86_64", 1, package)


@pytest.mark.parametrize("build_id", [0, -1, True])
def test_bad_build_id_is_rejected(layout: Layout, build_id: int) -> None:
    with pytest.raises(BadRequest):
        layout.build_dir("alice", "proj", "fedora-40-x86_64", build_id, "hello")


def test_every_valid_path_stays_inside_results_dir(layout: Layout) -> None:
    path = layout.build_dir("@g.-_", "p+._-", "a-b-c", 1, "_+.-")
    assert path.resolve().is_relative_to(ROOT.resolve())


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("00000042-hello", (42, "hello")),
        ("123456789-x", (123456789, "x")),
        ("00000001-libstdc++", (1, "libstdc++")),
        ("00000007-python3-foo", (7, "python3-foo")),
    ],
)
def test_parse_build_dir_name(name: str, parsed: tuple[int, str]) -> None:
    assert parse_build_dir_name(name) == parsed
    assert build_dir_name(*parsed) == name


@pytest.mark.parametrize(
    "name",
    ["repodata", "42-hello", "000000042-hello", "00000000-hello", "00000001-", "00000001-.x",
     "00000001-a b", ".00000001-x", "00000001"],
)  # fmt: skip
def test_parse_build_dir_name_rejects_other_names(name: str) -> None:
    assert parse_build_dir_name(name) is None
