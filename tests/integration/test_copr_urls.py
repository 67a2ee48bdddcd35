"""Every page URL users bring from Copr answers: 200 for an existing project, a 404 page otherwise.

Signed in as the projects' owner (the forms' pages need an editor), for a user
project and a group project, and for the same URLs of projects, owners and
builds that do not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.integration.conftest import Api, create
from tests.integration.webclient import Browser, signed_in

pytestmark = pytest.mark.integration

TABS = (
    "",
    "builds/",
    "build/{build}/",
    "packages/",
    "package/hello/",
    "monitor/",
    "add_build/",
    "edit/",
    "permissions/",
    "integrations/",
)


@pytest.fixture
async def alice(api: Api, make_srpm: Callable[..., Path]) -> AsyncIterator[tuple[Browser, dict]]:
    store = api.kopers.store
    group = await store.create_group("grp")
    await store.add_group_member(group, await store.get_user("alice"), True)
    builds = {}
    for owner, name in (("alice", "p"), ("@grp", "gp")):
        assert (await create(api, "alice", owner, name))[0] == 200
        status, body = await api.upload(
            "alice", make_srpm("hello"), {"ownername": owner, "projectname": name}
        )
        assert status == 200, body
        builds[owner] = int(body["id"])
    browser = await signed_in(api, "alice")
    try:
        yield browser, builds
    finally:
        await browser.close()


def pages_of(base: str, build: int) -> list[str]:
    return [base + tab.format(build=build) for tab in TABS]


async def test_every_copr_shaped_url_answers_200_for_an_existing_project(
    alice: tuple[Browser, dict],
) -> None:
    browser, builds = alice
    paths = [
        "/login/",
        "/logout/",
        "/api/",
        "/coprs/alice/",
        "/coprs/alice/add/",
        "/coprs/g/grp/",
        "/coprs/g/grp/add/",
        *pages_of("/coprs/alice/p/", builds["alice"]),
        *pages_of("/coprs/g/grp/gp/", builds["@grp"]),
    ]
    for path in paths:
        status, text, headers = await browser.get(path)
        assert status == 200, (path, status, text[:300])
        assert headers["Content-Type"].startswith("text/html"), path
        assert "</html>" in text, path


async def test_every_copr_shaped_url_of_a_missing_thing_is_a_404_page(
    alice: tuple[Browser, dict],
) -> None:
    browser, builds = alice
    paths = [
        "/coprs/nobody/",
        "/coprs/g/nogroup/",
        "/coprs/alice/p/build/999999/",
        f"/coprs/alice/p/build/{builds['@grp']}/",  # a build of another project
        "/coprs/alice/p/package/nothere/",
        *pages_of("/coprs/alice/none/", builds["alice"]),
        *pages_of("/coprs/nobody/p/", builds["alice"]),
        *pages_of("/coprs/g/grp/none/", builds["@grp"]),
        *pages_of("/coprs/g/nogroup/gp/", builds["@grp"]),
    ]
    for path in paths:
        status, text, headers = await browser.get(path)
        assert status == 404, (path, status, text[:300])
        assert headers["Content-Type"].startswith("text/html"), path
        assert "<h1>Not found</h1>" in text, path


class _Controls(HTMLParser):
    """Form controls of a page, and which of them have a label."""

    def __init__(self) -> None:
        super().__init__()
        self.labelled_ids: set[str] = set()
        self.controls: list[tuple[str, dict[str, str | None]]] = []
        self._in_label = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label":
            self._in_label += 1
            if a.get("for"):
                self.labelled_ids.add(str(a["for"]))
        elif tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.controls.append((tag, a | {"_wrapped": "yes" if self._in_label else None}))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self._in_label:
            self._in_label -= 1

    def unlabelled(self) -> list[str]:
        return [
            f"<{tag} name={a.get('name')!r} id={a.get('id')!r}>"
            for tag, a in self.controls
            if not (a["_wrapped"] or a.get("id") in self.labelled_ids or a.get("aria-label"))
        ]


async def test_every_control_on_every_page_has_a_label(alice: tuple[Browser, dict]) -> None:
    probe = _Controls()
    probe.feed('<label for="a">A</label><input id="a">')
    probe.feed('<label>B <input name="b"></label><input name="c">')
    assert probe.unlabelled() == ["<input name='c' id=None>"]  # the check tells them apart
    browser, builds = alice
    paths = [
        "/",
        "/login/",
        "/api/",
        "/coprs/alice/add/",
        *pages_of("/coprs/alice/p/", builds["alice"]),
        *pages_of("/coprs/g/grp/gp/", builds["@grp"]),
    ]
    seen = 0
    for path in paths:
        _, text, _ = await browser.get(path)
        controls = _Controls()
        controls.feed(text)
        seen += len(controls.controls)
        assert controls.unlabelled() == [], path
    assert seen > 20  # the forms are there: this checked something


async def test_a_page_holding_the_sessions_token_is_never_cached_nor_framed(
    alice: tuple[Browser, dict], api: Api
) -> None:
    """The account bar's sign-out form carries the session's token, good for every form."""
    browser, _ = alice
    for path in (
        "/",
        "/coprs/alice/",
        "/coprs/alice/p/",
        "/coprs/alice/p/monitor/",
        "/coprs/nobody/",
    ):
        _, text, headers = await browser.get(path)
        assert 'name="csrf_token"' in text, path
        assert headers.get("Cache-Control") == "no-store", path
        assert headers.get("X-Frame-Options") == "DENY", path
    # Signed out, nothing secret is on the page: it may be cached.
    anonymous = Browser(api)
    try:
        _, text, headers = await anonymous.get("/coprs/alice/p/")
        assert 'name="csrf_token"' not in text and "Cache-Control" not in headers
    finally:
        await anonymous.close()
