"""Page numbers, page sizes, the builds list's filters and the project search (kopers.listing)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kopers import listing
from kopers.listing import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE, Window
from kopers.models import BuildState, Project


@pytest.mark.parametrize(
    ("raw", "page"),
    [
        (None, 1),
        ("", 1),
        ("3", 3),
        (" 4 ", 4),
        ("0", 1),
        ("-1", 1),
        ("abc", 1),
        ("1e3", 1),
        ("\u0663", 1),  # another script's digit
        ("\x00", 1),
        (str(10**30), MAX_PAGE),
        ("9" * 5000, MAX_PAGE),
        (str(MAX_PAGE + 1), MAX_PAGE),
    ],
)
def test_a_page_number_is_clamped_never_refused(raw: str | None, page: int) -> None:
    assert listing.window(raw).page == page


@pytest.mark.parametrize(
    ("raw", "size"),
    [(None, DEFAULT_PER_PAGE), ("0", 1), ("7", 7), (str(10**9), MAX_PER_PAGE), ("x", 50)],
)
def test_a_page_size_is_bounded(raw: str | None, size: int) -> None:
    assert listing.window("1", raw).per_page == size


def test_the_deepest_page_stays_within_bigint() -> None:
    deepest = Window(MAX_PAGE, MAX_PER_PAGE)
    assert deepest.offset + deepest.fetch < 2**63


def test_one_row_more_than_shown_tells_of_a_next_page() -> None:
    win = Window(2, 3)
    assert (win.offset, win.fetch) == (3, 4)
    full = listing.page_of([1, 2, 3, 4], win)
    assert full.items == (1, 2, 3) and full.has_next and full.has_prev
    last = listing.page_of([1, 2], win)
    assert last.items == (1, 2) and not last.has_next
    assert listing.slice_page(list(range(10)), win).items == (3, 4, 5)
    assert listing.slice_page(list(range(10)), Window(9, 3)).items == ()


def test_known_filters_apply_and_unknown_ones_are_ignored_with_a_note() -> None:
    got = listing.build_filter("failed", "hello-world")
    assert got == listing.BuildFilter(BuildState.FAILED, "hello-world", ())
    assert got.active
    bad = listing.build_filter("<script>alert(1)</script>", "a/b\x00")
    assert bad.state is None and bad.package is None and not bad.active
    assert len(bad.notes) == 2
    assert "<script>alert(1)</script>" in bad.notes[0]  # the template escapes it
    assert "\x00" not in bad.notes[1]
    long = listing.build_filter("x" * 5000, None)
    assert len(long.notes[0]) < 300
    assert listing.build_filter(" ", "").notes == ()


def test_links_between_pages_keep_the_filters() -> None:
    assert listing.query(state=BuildState.FAILED, package=None, page=2) == "?state=failed&page=2"
    assert listing.query(q='<a "b">&', page=None) == "?q=%3Ca+%22b%22%3E%26"
    assert listing.query() == ""
    assert Window(1, DEFAULT_PER_PAGE).size_param is None and Window(1, 5).size_param == 5


def project(owner: str, name: str, description: str) -> Project:
    return Project(1, owner, name, description, "", None, None, (), (), False, 1, datetime.now(UTC))


def test_search_matches_owner_name_and_description_in_any_case() -> None:
    ps = [project("alice", "tools", "CLI helpers"), project("@sig", "Web", "a server")]
    assert [p.name for p in listing.search(ps, "ALICE")] == ["tools"]
    assert [p.name for p in listing.search(ps, "web")] == ["Web"]
    assert [p.name for p in listing.search(ps, "helpers")] == ["tools"]
    assert [p.name for p in listing.search(ps, "@sig/")] == ["Web"]
    assert listing.search(ps, "nothing") == []
    assert listing.search_text(" a\x00b ") == "a b"
    assert len(listing.search_text("x" * 1000)) == listing.MAX_SEARCH_CHARS
