"""Lists on the web pages: which page, how many rows, which builds, which projects. Pure.

A page's query values come from anyone, and a hand-edited URL should still
show a useful page, so nothing here refuses: a page number that is not a
number or is below 1 is page 1, one past MAX_PAGE is MAX_PAGE (a page past the
end of a list is an empty page with a way back), a page size is clamped to
1..MAX_PER_PAGE. A filter value that is not one (an unknown state, a package
name no package can have) is ignored, and the page shows a note saying so.

Pages ask the store for one row more than they show: that row says whether
there is a next page, without counting the whole list.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from kopers.models import BuildState, Project

T = TypeVar("T")

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_PAGE = 100_000  # MAX_PAGE * MAX_PER_PAGE stays far below bigint
# A state filter is applied to builds the store has read (the state is derived
# from the build's tasks): it looks at the newest MAX_SCAN builds at most.
MAX_SCAN = 10_000
MAX_SEARCH_CHARS = 200
MAX_SHOWN = 40  # of a refused value, in a note
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PACKAGE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*")
STATES = tuple(s.value for s in BuildState)


def shown(value: str) -> str:
    """A refused value as a note quotes it: short, without control characters."""
    value = _CONTROL.sub("?", value)
    return value if len(value) <= MAX_SHOWN else value[: MAX_SHOWN - 1] + "…"


def _number(raw: str | None, default: int, lo: int, hi: int) -> int:
    """ASCII digits clamped to lo..hi; anything else is `default`."""
    if raw is None:
        return default
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit():
        return default
    if len(raw) > len(str(hi)):  # no int() of thousands of digits
        return hi
    return max(lo, min(hi, int(raw)))


@dataclass(frozen=True, slots=True)
class Window:
    """One page of a list: its number (from 1) and its size."""

    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def size_param(self) -> int | None:
        """The page size for links to other pages; None (left out) when it is the default."""
        return None if self.per_page == DEFAULT_PER_PAGE else self.per_page

    @property
    def fetch(self) -> int:
        """How many rows to ask for: one more than shown tells whether a next page exists."""
        return self.per_page + 1


def window(page: str | None, per_page: str | None = None) -> Window:
    """The page a request asks for, clamped."""
    return Window(
        _number(page, 1, 1, MAX_PAGE),
        _number(per_page, DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
    )


@dataclass(frozen=True, slots=True)
class Paged(Generic[T]):
    """The rows of one page, and whether pages come before and after it."""

    items: tuple[T, ...]
    window: Window
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.window.page > 1


def page_of(fetched: Sequence[T], win: Window) -> Paged[T]:
    """A page from rows fetched at `win.offset` with limit `win.fetch`."""
    return Paged(tuple(fetched[: win.per_page]), win, len(fetched) > win.per_page)


def slice_page(rows: Sequence[T], win: Window) -> Paged[T]:
    """A page of a list held whole."""
    return page_of(rows[win.offset : win.offset + win.fetch], win)


@dataclass(frozen=True, slots=True)
class BuildFilter:
    """The builds list's filters, and a note for each value that was ignored."""

    state: BuildState | None = None
    package: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.state is not None or self.package is not None


def build_filter(state: str | None, package: str | None) -> BuildFilter:
    """The filters of `?state=&package=`; unknown values are ignored with a note."""
    notes = []
    picked_state = None
    if state := (state or "").strip():
        if state in STATES:
            picked_state = BuildState(state)
        else:
            listed = ", ".join(STATES)
            notes.append(f"Unknown state “{shown(state)}” ignored; the states are {listed}.")
    picked_package = None
    if package := (package or "").strip():
        if len(package) <= 255 and ".." not in package and _PACKAGE.fullmatch(package):
            picked_package = package
        else:
            notes.append(f"“{shown(package)}” is not a package name; the filter was ignored.")
    return BuildFilter(picked_state, picked_package, tuple(notes))


def query(**params: str | int | None) -> str:
    """`?a=1&b=x` of the values that are set, for links between pages; "" without any."""
    pairs = [(k, str(v)) for k, v in params.items() if v is not None and v != ""]
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def search_text(raw: str | None) -> str:
    """A search box's text: trimmed, without control characters, at most MAX_SEARCH_CHARS."""
    return _CONTROL.sub(" ", raw or "").strip()[:MAX_SEARCH_CHARS]


def search(projects: Iterable[Project], text: str) -> list[Project]:
    """The projects whose owner, name or description holds `text`, in any case."""
    needle = text.casefold()
    return [
        p
        for p in projects
        if needle in p.full_name.casefold() or needle in p.description.casefold()
    ]
