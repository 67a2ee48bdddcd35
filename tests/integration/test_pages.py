"""The HTML pages on Copr's URLs: every page of a user's and a group's project, their 404 pages,
escaping of every user string, hostile query values, and install commands that work as shown.
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import CHROOT, Api, create, waiting_build

pytestmark = pytest.mark.integration

HOSTILE = '<script>alert("x")</script>\'"<img src=x onerror=alert(1)>'
RAW_MARKERS = ("<script>alert", "<img src=x")


@dataclass
class World:
    build: int  # alice/p's uploaded build (package hello)
    group_build: int  # @grp/gp's build


async def world(api: Api, make_srpm: Callable[..., Path]) -> World:
    store = api.kopers.store
    group = await store.create_group("grp")
    await store.add_group_member(group, await store.get_user("alice"), True)
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    assert (await create(api, "alice", "@grp", "gp"))[0] == 200
    srpm = make_srpm("hello")
    status, b = await api.upload("alice", srpm, {"ownername": "alice", "projectname": "p"})
    assert status == 200, b
    status, g = await api.upload("alice", srpm, {"ownername": "@grp", "projectname": "gp"})
    assert status == 200, g
    return World(int(b["id"]), int(g["id"]))


async def page(api: Api, path: str, **headers: str) -> tuple[int, str, str]:
    async with api.client.get(path, headers=headers) as resp:
        return resp.status, resp.content_type, await resp.text()


def project_pages(base: str, build_id: int) -> list[str]:
    return [
        base,
        f"{base}builds/",
        f"{base}builds/?state=importing",
        f"{base}builds/?package=hello",
        f"{base}packages/",
        f"{base}package/hello/",
        f"{base}monitor/",
        f"{base}build/{build_id}/",
    ]


async def test_every_page_of_a_user_and_a_group_project_answers(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    w = await world(api, make_srpm)
    paths = [
        "/",
        "/?q=gp",
        "/coprs/alice/",
        "/coprs/g/grp/",
        "/coprs/@grp/",
        f"/coprs/build/{w.build}/",
        f"/coprs/build/{w.build}",
        *project_pages("/coprs/alice/p/", w.build),
        *project_pages("/coprs/g/grp/gp/", w.group_build),
    ]
    for path in paths:
        status, kind, text = await page(api, path)
        assert (status, kind) == (200, "text/html"), (path, status, text[:300])
        assert text.startswith("<!DOCTYPE html>") and "</html>" in text, path
    _, _, home = await page(api, "/")
    assert "alice/p" in home and "@grp/gp" in home and f">{w.build}</a>" in home
    _, _, found = await page(api, "/?q=gp")
    assert "@grp/gp" in found and "/coprs/alice/p/" not in found
    _, _, mine = await page(api, "/coprs/alice/")
    assert "/coprs/alice/p/" in mine and "/coprs/g/grp/gp/" not in mine
    _, _, theirs = await page(api, "/coprs/g/grp/")
    assert "/coprs/g/grp/gp/" in theirs
    _, _, build = await page(api, f"/coprs/g/grp/gp/build/{w.group_build}/")
    assert f'data-ws="/ws/builds/{w.group_build}/{CHROOT}/log"' in build
    assert 'href="/coprs/g/grp/gp/"' in build and "/static/buildlog.js" in build


NOT_FOUND = [
    "/coprs/nobody/",
    "/coprs/g/nogroup/",
    "/coprs/@nogroup/",
    "/coprs/build/999999/",
    "/coprs/alice/p/package/nothere/",
    "/coprs/alice/p/build/999999/",
    "/coprs/alice/p/no-such-tab/",
    "/coprs/g/grp/gp/package/nothere/",
    *project_pages("/coprs/alice/none/", 1),
    *project_pages("/coprs/nobody/p/", 1),
    *project_pages("/coprs/g/grp/none/", 1),
    *project_pages("/coprs/g/nogroup/gp/", 1),
]


@pytest.mark.parametrize("path", NOT_FOUND)
async def test_a_missing_thing_is_an_html_404_page(
    api: Api, make_srpm: Callable[..., Path], path: str
) -> None:
    await world(api, make_srpm)
    status, kind, text = await page(api, path)
    assert (status, kind) == (404, "text/html"), (status, text[:300])
    assert "<h1>Not found</h1>" in text and 'class="error-message"' in text


async def test_a_build_is_found_under_its_own_project_only(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    w = await world(api, make_srpm)
    for path in (f"/coprs/alice/p/build/{w.group_build}/", f"/coprs/g/grp/gp/build/{w.build}/"):
        status, kind, text = await page(api, path)
        assert (status, kind) == (404, "text/html"), path
        assert "is not a build of" in text


async def test_the_apis_keep_their_json_errors(api: Api, make_srpm: Callable[..., Path]) -> None:
    await world(api, make_srpm)
    status, body = await api.call("GET", "/api_3/project?ownername=alice&projectname=none")
    assert status == 404 and "does not exist" in body["error"]
    status, body = await api.call("GET", "/api_3/build/999999")
    assert status == 404 and isinstance(body, dict) and "error" in body
    status, body = await api.call("GET", "/api/no/such/route")
    assert status == 404 and isinstance(body, dict)
    # A page's other errors: JSON for a script, a page for a browser.
    status, body = await api.call("GET", "/coprs/%00/p/")
    assert status == 400 and "owner" in body["error"]
    status, kind, text = await page(api, "/coprs/%00/p/", Accept="text/html,*/*;q=0.8")
    assert (status, kind) == (400, "text/html") and "<h1>Bad request</h1>" in text


async def test_user_text_is_escaped_on_every_page(api: Api, make_srpm: Callable[..., Path]) -> None:
    w = await world(api, make_srpm)
    store = api.kopers.store
    pool = store.pool
    project = await store.get_project("alice", "p")
    status, body = await api.call(
        "PUT",
        "/api_3/project/edit/alice/p",
        "alice",
        json={"description": HOSTILE, "instructions": HOSTILE, "homepage": "javascript:alert(1)"},
    )
    assert status == 200, body
    # Past the API's own checks (package rows have a CHECK on their names; builds do not).
    await pool.execute("UPDATE builds SET package_name = $2 WHERE id = $1", w.build, HOSTILE)
    waiting = await waiting_build(store, project.id, (await store.get_user("alice")).id, False)
    assert await store.skip_task(waiting, CHROOT, HOSTILE)
    await pool.execute("UPDATE builds SET package_name = $2 WHERE id = $1", waiting, "hello")
    quoted = "%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E"
    paths = [
        "/",
        f"/?q={quoted}",
        "/coprs/alice/",
        *project_pages("/coprs/alice/p/", w.build),
        f"/coprs/alice/p/build/{waiting}/",
        f"/coprs/build/{waiting}/",
        f"/coprs/alice/p/builds/?state={quoted}&package={quoted}",
        "/coprs/alice/p/package/%3Cscript%3Ealert%28%22x%22%29/",  # a 404 naming it
    ]
    shown = []
    for path in paths:
        status, _, text = await page(api, path)
        assert status in (200, 404), (path, status)
        for marker in RAW_MARKERS:
            assert marker not in text, (path, marker)
        assert "javascript:" not in text, path
        if "&lt;script&gt;alert(" in text:
            shown.append(path)
    # These show no field that holds it: the lists of package "hello" and of its packages.
    quiet = {"builds/?package=hello", "builds/?state=importing", "monitor/", "packages/"}
    assert set(paths) - set(shown) == {f"/coprs/alice/p/{q}" for q in quiet}


async def test_hostile_query_values_are_clamped_or_ignored_never_a_5xx(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    await world(api, make_srpm)
    values = ["-1", str(10**30), "abc", "%00", "%FF", "%D9%A3", "x" * 3000, "0", ""]
    bases = ["/", "/coprs/alice/", "/coprs/alice/p/builds/", "/coprs/alice/p/packages/"]
    for base in bases:
        for name in ("page", "per_page", "state", "package", "q"):
            for value in values:
                status, _, text = await page(api, f"{base}?{name}={value}")
                assert status == 200, (base, name, value, status, text[:200])
    _, _, text = await page(api, f"/coprs/alice/p/builds/?page={10**30}")
    assert "There is nothing on page 100000" in text and 'href="?page=1"' in text
    _, _, text = await page(api, "/coprs/alice/p/builds/?state=%3Cscript%3E")
    assert "Unknown state “&lt;script&gt;” ignored" in text and "importing" in text


async def test_builds_are_filtered_by_state_and_package_and_paged(api: Api) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    store = api.kopers.store
    project = await store.get_project("alice", "p")
    alice = await store.get_user("alice")
    ids = [await waiting_build(store, project.id, alice.id, i % 2 == 0) for i in range(5)]
    await store.pool.execute("UPDATE builds SET package_name = 'one' WHERE id = $1", ids[0])

    def rows(text: str) -> list[int]:
        return [int(x) for x in re.findall(r'<tr data-build="(\d+)">', text)]

    _, _, text = await page(api, "/coprs/alice/p/builds/?per_page=2")
    assert rows(text) == [ids[4], ids[3]] and 'href="?page=2&amp;per_page=2"' in text
    _, _, text = await page(api, "/coprs/alice/p/builds/?per_page=2&page=3")
    assert rows(text) == [ids[0]] and 'rel="next"' not in text and 'rel="prev"' in text
    _, _, text = await page(api, "/coprs/alice/p/builds/?state=canceled")
    assert rows(text) == [ids[4], ids[2], ids[0]]
    assert 'data-new="note"' in text  # a new build is news, not a row, under a filter
    _, _, text = await page(api, "/coprs/alice/p/builds/?state=canceled&per_page=1&page=2")
    assert rows(text) == [ids[2]] and "state=canceled" in text
    _, _, text = await page(api, "/coprs/alice/p/builds/?package=one")
    assert rows(text) == [ids[0]]
    _, _, text = await page(api, "/coprs/alice/p/builds/?state=succeeded")
    assert rows(text) == [] and "No builds match." in text


async def test_the_monitor_and_package_pages_show_the_newest_state_per_chroot(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    w = await world(api, make_srpm)
    build = await api.kopers.store.get_build(w.build)
    [task] = build.tasks
    for path in ("/coprs/alice/p/monitor/", "/coprs/alice/p/package/hello/"):
        _, _, text = await page(api, path)
        assert f'data-state-of="{w.build}:{CHROOT}">{task.state}</span>' in text, path
        assert '<p class="live" id="live" data-events="alice/p"' in text
        assert '<script src="/static/live.js"></script>' in text
    _, _, text = await page(api, "/coprs/alice/p/monitor/")
    assert '<tr data-package="hello">' in text and f'<th scope="col">{CHROOT}</th>' in text


async def test_live_pages_follow_the_stream_the_page_names(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    w = await world(api, make_srpm)
    for path, project in (
        ("/coprs/alice/p/builds/", "alice/p"),
        (f"/coprs/build/{w.group_build}/", "@grp/gp"),
    ):
        _, _, text = await page(api, path)
        events = re.search(r'id="live" data-events="([^"]+)"', text)
        assert events and html.unescape(events.group(1)) == project
        # What static/live.js opens: an EventSource sends Accept: text/event-stream.
        async with api.client.get(
            "/api/events/stream",
            params={"project": project},
            headers={"Accept": "text/event-stream"},
        ) as resp:
            assert resp.status == 200
            assert (await resp.content.readline()).startswith(b"retry: ")
    status, _, script = await page(api, "/static/live.js")
    assert status == 200 and "/api/events/stream?project=" in script


def shown_commands(text: str) -> dict[str, str]:
    rows = re.findall(
        r'<tr class="chroot" data-chroot="([^"]+)">.*?<pre class="command">(.*?)</pre>', text, re.S
    )
    return {chroot: html.unescape(cmd) for chroot, cmd in rows}


@pytest.mark.parametrize(
    ("path", "owner"), [("/coprs/alice/p/", "alice"), ("/coprs/g/grp/gp/", "@grp")]
)
async def test_the_install_command_shown_fetches_a_repo_file_here(
    api: Api, make_srpm: Callable[..., Path], path: str, owner: str
) -> None:
    await world(api, make_srpm)
    _, _, text = await page(api, path)
    commands = shown_commands(text)
    assert list(commands) == [CHROOT]
    public = api.kopers.config.server.public_url
    hub = public.split("://", 1)[1]
    name = path.rstrip("/").rsplit("/", 1)[1]
    argv = shlex.split(commands[CHROOT].split(" && ")[-1])
    assert argv == ["dnf", "copr", "enable", f"{hub}/{owner}/{name}", CHROOT]
    # The plugin's request (docs/copr-api-v3.md 7.2), owner as typed, to this server.
    os_version, _, arch = CHROOT.rpartition("-")
    status, _, repo = await page(
        api, f"/coprs/{owner}/{name}/repo/{os_version}/dnf.repo?arch={arch}"
    )
    assert status == 200 and repo.startswith(
        f"[copr:127.0.0.1:{owner.replace('@', 'group_')}:{name}]\n"
    )
    links = re.findall(r'<a href="([^"]+)">\.repo file</a>', text)
    assert [html.unescape(u).removeprefix(public) for u in links] == [
        f"{path}repo/{os_version}/dnf.repo?arch={arch}"
    ]
    key = re.search(r'<a class="gpg-key" href="([^"]+)">', text)
    assert key and key.group(1) == f"{public}/results/{owner}/{name}/pubkey.gpg"
