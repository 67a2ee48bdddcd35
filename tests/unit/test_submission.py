"""Build option parsing and chroot selection (pure)."""

from datetime import UTC, datetime

import pytest

from kopers.errors import BadRequest
from kopers.models import Project
from kopers.submission import parse_options, select_chroots

PROJECT = Project(
    id=1,
    owner="alice",
    name="p",
    description="",
    instructions="",
    homepage=None,
    contact=None,
    chroots=("debian-12-x86_64", "fedora-40-x86_64", "fedora-41-x86_64"),
    additional_repos=(),
    enable_net=False,
    created_by=1,
    created_on=datetime.now(UTC),
)


def test_all_chroots_by_default_and_patterns() -> None:
    assert select_chroots(PROJECT, None, None) == PROJECT.chroots
    assert select_chroots(PROJECT, ["fedora-*"], None) == ("fedora-40-x86_64", "fedora-41-x86_64")
    assert select_chroots(PROJECT, None, ["fedora-4*"]) == ("debian-12-x86_64",)


def test_unknown_chroot_is_a_clear_error() -> None:
    with pytest.raises(BadRequest, match="not enabled in project alice/p"):
        select_chroots(PROJECT, ["epel-9-x86_64"], None)


def test_excluding_everything_is_refused() -> None:
    with pytest.raises(BadRequest, match="no chroot"):
        select_chroots(PROJECT, None, ["*"])


def test_timeout_accepts_strings_and_checks_range() -> None:
    assert parse_options({"timeout": "3600"}, PROJECT, 18000).timeout == 3600
    assert parse_options({"timeout": None}, PROJECT, 18000).timeout == 18000
    with pytest.raises(BadRequest, match="whole number"):
        parse_options({"timeout": "soon"}, PROJECT, 18000)
    with pytest.raises(BadRequest, match="between"):
        parse_options({"timeout": 5}, PROJECT, 18000)
