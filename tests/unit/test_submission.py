"""Build option parsing and chroot selection (pure)."""

from datetime import UTC, datetime

import pytest

from kopers.api.bodies import build_request
from kopers.errors import BadRequest
from kopers.models import Project
from kopers.submission import BuildRequest, parse_options, select_chroots

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
    assert parse_options(build_request({"timeout": "3600"}), PROJECT, 18000).timeout == 3600
    assert parse_options(build_request({"timeout": None}), PROJECT, 18000).timeout == 18000
    with pytest.raises(BadRequest, match="whole number"):
        build_request({"timeout": "soon"})
    # Copr takes small timeouts: a build of a few seconds is a real one.
    assert parse_options(build_request({"timeout": "5"}), PROJECT, 18000).timeout == 5
    with pytest.raises(BadRequest, match="between"):
        parse_options(BuildRequest(timeout=0), PROJECT, 18000)
    with pytest.raises(BadRequest, match="between"):
        parse_options(BuildRequest(timeout=48 * 3600 + 1), PROJECT, 18000)
    with pytest.raises(BadRequest, match="timeout"):
        build_request({"timeout": "0"})


def test_after_and_with_build_id_exclude_each_other() -> None:
    both = build_request({"after_build_id": "7", "with_build_id": 8})
    assert (both.after_build_id, both.with_build_id) == (7, 8)
    with pytest.raises(BadRequest, match="cannot be used together"):
        parse_options(both, PROJECT, 18000)
