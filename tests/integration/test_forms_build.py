"""The build forms in the browser: new builds, cancel, resubmit, delete, package rebuild.

Each browser is its own HTTP client with its own session, against the app on
a real Postgres (no VM runs). The forms must refuse what the API refuses, in
the same words, and leave nothing behind when they do: no CSRF token, a token
of another session, a user without build rights, hostile files, URLs and git
refs. Accepted, they must make the builds the API makes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kopers import config as config_mod
from kopers.db.packages import PackageSettings
from kopers.models import BuildState, ScmPackageSource
from kopers.sched.graph import SOURCE, TaskKey
from kopers.worker.runner import Runner
from tests.fakevm import FakeVmPool
from tests.integration.conftest import CHROOT, REPO, Api, create, serving, waiting_build
from tests.integration.rawhttp import snapshot
from tests.integration.webclient import Browser, csrf_of, signed_in
from tests.rpms import srpm_with_header_name

pytestmark = pytest.mark.integration

PAGE = "/coprs/alice/p/add_build/"
HTML = {"Accept": "text/html"}
XSS = '"><script>alert(1)</script>'


@pytest.fixture
async def alice(api: Api) -> AsyncIterator[Browser]:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    browser = await signed_in(api, "alice")
    try:
        yield browser
    finally:
        await browser.close()


@pytest.fixture
async def bob(api: Api) -> AsyncIterator[Browser]:
    browser = await signed_in(api, "bob")
    try:
        yield browser
    finally:
        await browser.close()


def error_of(page: str) -> str:
    found = re.search(r'<p class="error(?:-message)?"[^>]*>(.*?)</p>', page, re.S)
    assert found, page
    return unescape(found.group(1))


def upload_form(token: str | None, path: Path, section: str = "upload", **extra: Any) -> Any:
    form = aiohttp.FormData()
    if token is not None:
        form.add_field("csrf_token", token)
    form.add_field("section", section)
    for chroot in extra.pop("chroots", [CHROOT]):
        form.add_field("chroots", chroot)
    for key, value in extra.items():
        form.add_field(key, value)
    form.add_field("pkgs", path.read_bytes(), filename=path.name, content_type="application/x-rpm")
    return form


async def post_upload(
    browser: Browser, form: Any, path: str = PAGE + "upload/", **kw: Any
) -> tuple[int, str, Any]:
    headers = {**HTML, **kw.pop("headers", {})}
    async with browser.http.post(
        path, data=form, allow_redirects=False, headers=headers, **kw
    ) as resp:
        return resp.status, await resp.text(), resp.headers


async def build_id_of(location: str) -> int:
    found = re.fullmatch(r"/coprs/alice/p/build/(\d+)/", location)
    assert found, location
    return int(found.group(1))


async def builds(api: Api) -> int:
    return await api.count("builds")


# Who may use the forms ------------------------------------------------------------------


async def test_the_new_build_page_sends_a_signed_out_browser_to_sign_in(
    api: Api, alice: Browser
) -> None:
    anonymous = Browser(api)
    try:
        status, _, headers = await anonymous.get(PAGE)
        assert status == 303 and headers["Location"] == "/login/?next=/coprs/alice/p/add_build/"
        group_page = PAGE.replace("alice/p", "g/grp/p")
        status, _, headers = await anonymous.get(group_page, headers=HTML)
        assert status == 303 and headers["Location"] == f"/login/?next={group_page}"
    finally:
        await anonymous.close()


async def test_the_new_build_page_is_for_builders_only(
    api: Api, alice: Browser, bob: Browser
) -> None:
    status, page, _ = await bob.get(PAGE, headers=HTML)
    assert status == 403 and "may not build in alice/p" in error_of(page)
    assert "add_build/url/" not in page
    status, page, headers = await alice.get(PAGE)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    # Every control has its label; the file forms work without JavaScript.
    ids = set(re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page))
    labelled = set(re.findall(r'<label for="([^"]+)"', page))
    assert ids and ids <= labelled, ids - labelled
    assert page.count('enctype="multipart/form-data"') == 2
    assert f'value="{CHROOT}" checked' in page


def form_posts(build_id: int) -> list[tuple[str, dict[str, str]]]:
    """Every form of this page family that changes something, with fields that would work."""
    return [
        (PAGE + "url/", {"pkgs": "https://example.org/hello-1.0-1.src.rpm", "chroots": CHROOT}),
        (PAGE + "scm/", {"clone_url": "https://example.org/hello.git", "chroots": CHROOT}),
        (f"/coprs/build/{build_id}/cancel/", {}),
        (f"/coprs/build/{build_id}/resubmit/", {}),
        (f"/coprs/build/{build_id}/delete/", {"confirm": "yes"}),
        ("/coprs/alice/p/package/hello/rebuild/", {}),
    ]


async def _objects(api: Api) -> tuple[int, int]:
    """A running and an ended build of alice/p, and its package hello (from git)."""
    store = api.kopers.store
    project = await store.get_project("alice", "p")
    user = await store.get_user("alice")
    running = await waiting_build(store, project.id, user.id, False)
    ended = await waiting_build(store, project.id, user.id, True)
    source = ScmPackageSource("https://example.org/hello.git")
    await store.create_package(project.id, "hello", PackageSettings(source))
    return running, ended


async def test_every_form_refuses_a_missing_or_foreign_token_and_changes_nothing(
    api: Api, alice: Browser, bob: Browser, make_srpm: Callable[..., Path]
) -> None:
    running, ended = await _objects(api)
    foreign = await bob.token("/api/")  # a real token, of bob's session
    srpm = make_srpm("hello")
    before = await snapshot(api)
    for path, fields in form_posts(ended) + form_posts(running)[2:3]:
        for token in (None, foreign, "x" * 43):
            sent = fields | ({"csrf_token": token} if token else {})
            status, page, _ = await alice.post(path, sent, headers=HTML)
            assert status == 403, (path, token, page)
            assert "did not come from this site" in error_of(page)
    for token in (None, foreign):
        status, page, _ = await post_upload(alice, upload_form(token, srpm))
        assert status == 403 and "did not come from this site" in error_of(page)
    # Another site's page posting with a good token is refused too.
    good = await alice.token(PAGE)
    status, _, _ = await post_upload(
        alice, upload_form(good, srpm), headers={"Origin": "https://evil.example"}
    )
    assert status == 403
    assert await snapshot(api) == before


async def test_a_user_without_build_rights_gets_403_and_no_build(
    api: Api, alice: Browser, bob: Browser, make_srpm: Callable[..., Path]
) -> None:
    running, ended = await _objects(api)
    before = await snapshot(api)
    token = await bob.token("/api/")
    for path, fields in form_posts(ended) + form_posts(running)[2:3]:
        status, page, _ = await bob.post(path, fields | {"csrf_token": token}, headers=HTML)
        assert status == 403, (path, page)
        assert "may not" in error_of(page) and "\n" not in error_of(page)
    status, page, _ = await post_upload(bob, upload_form(token, make_srpm("hello")))
    assert status == 403 and "may not build in alice/p" in error_of(page)
    assert await snapshot(api) == before
    # Signed out: the forms are refused too (no session, no token of one).
    anonymous = Browser(api)
    try:
        status, _, _ = await anonymous.post(PAGE + "url/", form_posts(ended)[0][1])
        assert status == 403
    finally:
        await anonymous.close()
    assert await snapshot(api) == before


# Hostile input: the API's gates, the API's words ---------------------------------------


async def test_hostile_uploads_are_refused_as_the_api_refuses_them(
    api: Api, alice: Browser, tmp_path: Path
) -> None:
    not_rpm = tmp_path / "notes.src.rpm"
    # Larger than the JSON cap: the form is an upload, under the upload cap.
    not_rpm.write_bytes(b"not an rpm\n" * 200_000)
    hostile = srpm_with_header_name(tmp_path / "srpm", "../00000057/hello")
    token = await alice.token(PAGE)
    for path in (not_rpm, hostile):
        _, api_answer = await api.upload(
            "alice", path, {"ownername": "alice", "projectname": "p", "chroots": [CHROOT]}
        )
        status, page, _ = await post_upload(alice, upload_form(token, path, timeout="77"))
        assert status == 400, page
        assert error_of(page) == api_answer["error"] and "\n" not in error_of(page)
        assert 'name="timeout" min="1" value="77"' in page  # the values sent are kept
    assert await builds(api) == 0
    assert [p for p in api.kopers.paths.incoming.rglob("*")] == []
    assert [p for p in api.kopers.paths.sources.rglob("*")] == []


async def test_a_spec_goes_in_its_own_section_and_no_file_is_refused(
    api: Api, alice: Browser, tmp_path: Path, make_srpm: Callable[..., Path]
) -> None:
    token = await alice.token(PAGE)
    status, page, _ = await post_upload(alice, upload_form(token, make_srpm("hello"), "spec"))
    assert status == 400 and ".spec" in error_of(page)
    empty = aiohttp.FormData()
    empty.add_field("csrf_token", token)
    empty.add_field("pkgs", b"", filename="", content_type="application/octet-stream")
    status, page, _ = await post_upload(alice, empty)
    assert status == 400 and error_of(page) == "choose a file to upload"
    assert await builds(api) == 0 and list(api.kopers.paths.incoming.rglob("*")) == []


@pytest.fixture
async def small_api(dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    """The app with a 1 MiB upload cap."""
    cfg = config_mod.load(
        str(REPO / "kopers.toml"),
        env={
            "KOPERS_DATA_DIR": str(tmp_path / "data"),
            "KOPERS_DATABASE_DSN": dsn,
            "KOPERS_SERVER_MAX_UPLOAD_MIB": "1",
        },
    )
    async with serving(cfg) as served:
        yield served


async def declared_upload(api: Api, browser: Browser, length: int) -> tuple[int, str]:
    """Headers that claim `length` bytes, and a few bytes of body: the answer comes at once."""
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = (
        f"POST {PAGE}upload/ HTTP/1.1\r\nHost: kopers\r\nAccept: text/html\r\n"
        f"Cookie: kopers_session={browser.cookie()}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {length}\r\n\r\n--b\r\n"
    )
    try:
        writer.write(head.encode())
        await writer.drain()
        head_bytes = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length_of = re.search(rb"(?i)content-length: *(\d+)", head_bytes)
        assert length_of, head_bytes
        body = await asyncio.wait_for(reader.readexactly(int(length_of.group(1))), 10)
    finally:
        writer.close()
    return int(head_bytes.split(b" ", 2)[1]), body.decode()


async def test_an_upload_over_the_cap_is_413_whether_declared_or_streamed(
    small_api: Api, tmp_path: Path
) -> None:
    api = small_api
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    browser = await signed_in(api, "alice")
    try:
        big = tmp_path / "big.src.rpm"
        big.write_bytes(b"\0" * (2 << 20))
        token = await browser.token(PAGE)
        status, page = await declared_upload(api, browser, 2 << 30)
        assert status == 413 and "max_upload_mib" in error_of(page)

        async def stream() -> AsyncIterator[bytes]:
            head = (
                f'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
                '--b\r\nContent-Disposition: form-data; name="pkgs"; filename="big.src.rpm"\r\n'
                "Content-Type: application/x-rpm\r\n\r\n"
            )
            yield head.encode()
            for _ in range(4):
                yield b"\0" * (1 << 19)
            yield b"\r\n--b--\r\n"

        headers = {**HTML, "Content-Type": "multipart/form-data; boundary=b"}
        async with browser.http.post(
            PAGE + "upload/", data=stream(), headers=headers, allow_redirects=False
        ) as resp:
            status, page = resp.status, await resp.text()
        assert status == 413 and "max_upload_mib" in error_of(page), page
        assert 'id="from-upload"' in page  # the form again
    finally:
        await browser.close()
    assert await api.count("builds") == 0
    assert list(api.kopers.paths.incoming.rglob("*")) == []


async def test_a_git_ref_starting_with_a_dash_and_bad_urls_are_refused(
    api: Api, alice: Browser
) -> None:
    token = await alice.token(PAGE)
    scm = {"csrf_token": token, "clone_url": "https://example.org/x.git", "chroots": CHROOT}
    status, page, _ = await alice.post(
        PAGE + "scm/", scm | {"committish": "--upload-pack=touch"}, headers=HTML
    )
    assert status == 400 and error_of(page) == "committish must not start with '-'"
    for url in ("file:///etc/passwd", "http:///no-host.src.rpm"):
        form = {"csrf_token": token, "pkgs": url, "chroots": CHROOT}
        status, page, _ = await alice.post(PAGE + "url/", form, headers=HTML)
        _, answer = await api.call(
            "POST",
            "/api_3/build/create/url",
            "alice",
            json={"ownername": "alice", "projectname": "p", "pkgs": [url]},
        )
        assert status == 400 and error_of(page) == answer["error"]
    form = {"csrf_token": token, "pkgs": "https://example.org/a.src.rpm", "chroots": CHROOT}
    both = form | {"after_build_id": "1", "with_build_id": "1"}
    status, page, _ = await alice.post(PAGE + "url/", both, headers=HTML)
    assert status == 400 and "cannot be used together" in error_of(page)
    status, page, _ = await alice.post(PAGE + "url/", form | {"chroots": ""}, headers=HTML)
    assert status == 400 and "chroots" in error_of(page)
    status, page, _ = await alice.post(
        PAGE + "url/", {"csrf_token": token, "pkgs": form["pkgs"]}, headers=HTML
    )
    assert status == 400 and "no chroot of alice/p" in error_of(page)
    assert await builds(api) == 0


async def test_a_url_to_a_refused_address_ends_in_the_source_step_as_the_apis(
    api: Api, alice: Browser, tmp_path: Path
) -> None:
    """The address policy applies where the host fetches: the form's build meets it there."""
    target = "http://169.254.169.254/latest/meta-data/x.src.rpm"
    token = await alice.token(PAGE)
    form = {"csrf_token": token, "pkgs": target, "chroots": CHROOT}
    status, _, headers = await alice.post(PAGE + "url/", form)
    assert status == 303
    build_id = await build_id_of(headers["Location"])
    k = api.kopers
    runner = Runner(k.config, k.paths, k.store, k.hub, k.publisher, FakeVmPool(tmp_path))  # type: ignore[arg-type]
    assert await runner.run(TaskKey(build_id, SOURCE)) == BuildState.FAILED
    [task] = (await k.store.get_build(build_id)).tasks
    assert task.state == BuildState.SKIPPED
    assert "is refused by the address policy (" in (task.reason or "")
    assert list(k.paths.sources.rglob("*.rpm")) == []


async def test_hostile_values_come_back_escaped(api: Api, alice: Browser) -> None:
    token = await alice.token(PAGE)
    form = {
        "csrf_token": token,
        "clone_url": "javascript:" + XSS,
        "subdirectory": XSS,
        "chroots": CHROOT,
    }
    status, page, _ = await alice.post(PAGE + "scm/", form, headers=HTML)
    assert status == 400
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert XSS in error_of(page) and "\n" not in error_of(page)
    # A reason (a builder's words) on the build page is text too.
    project = await api.kopers.store.get_project("alice", "p")
    user = await api.kopers.store.get_user("alice")
    build_id = await waiting_build(api.kopers.store, project.id, user.id, False)
    store = api.kopers.store
    assert await store.set_task_state(build_id, CHROOT, BuildState.PENDING)
    await store.start_task(build_id, CHROOT, BuildState.RUNNING)
    assert await store.finish_task(build_id, CHROOT, BuildState.FAILED, XSS, None)
    status, page, _ = await alice.get(f"/coprs/alice/p/build/{build_id}/")
    assert status == 200 and "<script>" not in page
    reason = re.search(r'<td class="task-reason">(.*?)</td>', page)
    assert reason and unescape(reason.group(1)) == XSS, page
    assert "&lt;script&gt;" in reason.group(1)


# What the forms make -----------------------------------------------------------------


def comparable(build: dict[str, Any]) -> dict[str, Any]:
    drop = {"id", "submitted_on", "started_on", "ended_on", "tasks", "rebuild"}
    return {k: v for k, v in build.items() if k not in drop} | {
        "tasks": [(t["chroot"], t["state"]) for t in build["tasks"]]
    }


async def test_an_srpm_uploaded_by_the_form_makes_the_build_the_api_makes(
    api: Api, alice: Browser, make_srpm: Callable[..., Path]
) -> None:
    srpm = make_srpm("hello", "2.0")
    status, made = await api.upload(
        "alice", srpm, {"ownername": "alice", "projectname": "p", "chroots": [CHROOT]}
    )
    assert status == 200, made
    token = await alice.token(PAGE)
    status, page, headers = await post_upload(alice, upload_form(token, srpm))
    assert status == 303, page
    build_id = await build_id_of(headers["Location"])
    _, by_api = await api.call("GET", f"/api/builds/{made['id']}")
    _, by_form = await api.call("GET", f"/api/builds/{build_id}")
    assert comparable(by_form) == comparable(by_api)
    assert by_form["source_package"]["name"] == "hello"
    stored = api.kopers.paths.source_dir(build_id)
    assert [p.name for p in stored.iterdir()] == [
        p.name for p in api.kopers.paths.source_dir(made["id"]).iterdir()
    ]
    assert list(api.kopers.paths.incoming.rglob("*")) == []
    event = await api.kopers.store.pool.fetchrow(
        "SELECT action, details FROM events WHERE action = 'build.submit' ORDER BY id DESC LIMIT 1"
    )
    assert event["details"]["via"] == "web"
    # The build's page is there, with its live markup as before.
    status, page, _ = await alice.get(headers["Location"])
    assert status == 200 and 'id="build-state"' in page
    assert f'<tr data-chroot="{CHROOT}">' in page and f'id="section-{CHROOT}"' in page


async def test_the_url_git_and_spec_forms_and_a_chain_make_builds(
    api: Api, alice: Browser, tmp_path: Path
) -> None:
    token = await alice.token(PAGE)
    url = {"csrf_token": token, "pkgs": "https://example.org/a-1-1.src.rpm", "chroots": CHROOT}
    status, _, headers = await alice.post(PAGE + "url/", url)
    assert status == 303
    first = await build_id_of(headers["Location"])
    status, _, headers = await alice.post(PAGE + "url/", url | {"after_build_id": str(first)})
    assert status == 303
    second = await build_id_of(headers["Location"])
    # Chained as the API chains it: the second waits for the first, chroot by chroot.
    deps = await api.kopers.store.pool.fetch(
        "SELECT chroot, dep_build_id, dep_chroot FROM task_deps WHERE build_id = $1", second
    )
    assert [tuple(r) for r in deps] == [(CHROOT, first, CHROOT)]
    two = url | {"pkgs": "https://example.org/a.src.rpm\nhttps://example.org/b.src.rpm"}
    status, _, headers = await alice.post(PAGE + "url/", two)
    assert status == 303 and headers["Location"] == "/coprs/alice/p/builds/"
    scm = {
        "csrf_token": token,
        "clone_url": "https://example.org/hello.git",
        "committish": "v1.0",
        "subdirectory": "pkg",
        "spec": "hello.spec",
        "source_build_method": "make_srpm",
        "chroots": CHROOT,
    }
    status, _, headers = await alice.post(PAGE + "scm/", scm)
    assert status == 303
    scm_id = await build_id_of(headers["Location"])
    _, build = await api.call("GET", f"/api_3/build/source-build-config/{scm_id}")
    assert build["source_dict"]["committish"] == "v1.0"
    assert build["source_dict"]["source_build_method"] == "make_srpm"
    spec = tmp_path / "hello.spec"
    spec.write_text(
        "Name: hello\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\n%description\nd\n"
    )
    status, page, headers = await post_upload(alice, upload_form(token, spec, "spec"))
    assert status == 303, page
    spec_id = await build_id_of(headers["Location"])
    _, build = await api.call("GET", f"/api_3/build/{spec_id}")
    assert build["state"] in ("pending", "waiting", "importing")
    assert await builds(api) == 6


async def test_cancel_resubmit_and_delete_do_what_the_api_calls_do(
    api: Api, alice: Browser, bob: Browser
) -> None:
    running, ended = await _objects(api)
    page_path = f"/coprs/alice/p/build/{running}/"
    status, page, _ = await alice.get(page_path)
    assert f'action="/coprs/build/{running}/cancel/"' in page
    assert "/resubmit/" not in page and "/delete/" not in page  # not while it runs
    status, page, _ = await bob.get(page_path)
    assert (
        status == 200 and "/cancel/" not in page and "csrf_token" not in page.split("</header>")[-1]
    )
    token = csrf_of(page := (await alice.get(page_path))[1])
    status, _, headers = await alice.post(f"/coprs/build/{running}/cancel/", {"csrf_token": token})
    assert status == 303 and headers["Location"] == page_path
    assert (await api.kopers.store.get_build(running)).state == BuildState.CANCELED
    status, page, _ = await alice.post(
        f"/coprs/build/{running}/cancel/", {"csrf_token": token}, headers=HTML
    )
    assert status == 409 and "already ended" in error_of(page)

    status, page, _ = await alice.get(f"/coprs/build/{ended}/")
    assert "/resubmit/" in page and "/delete/" in page and "/cancel/" not in page
    status, _, headers = await alice.post(f"/coprs/build/{ended}/resubmit/", {"csrf_token": token})
    assert status == 303
    again = await build_id_of(headers["Location"])
    _, old = await api.call("GET", f"/api/builds/{ended}")
    _, new = await api.call("GET", f"/api/builds/{again}")
    assert new["chroots"] == old["chroots"] and new["source_package"] == old["source_package"]

    # Delete: only with the box ticked.
    status, page, _ = await alice.post(
        f"/coprs/build/{ended}/delete/", {"csrf_token": token}, headers=HTML
    )
    assert status == 400 and "confirm" in error_of(page)
    assert (await api.call("GET", f"/api_3/build/{ended}"))[0] == 200
    status, _, headers = await alice.post(
        f"/coprs/build/{ended}/delete/", {"csrf_token": token, "confirm": "yes"}
    )
    assert status == 303 and headers["Location"] == "/coprs/alice/p/builds/"
    assert (await api.call("GET", f"/api_3/build/{ended}"))[0] == 404
    actions = [
        r["action"]
        for r in await api.kopers.store.pool.fetch(
            "SELECT action FROM events WHERE action LIKE 'build.%' ORDER BY id"
        )
    ]
    assert actions == ["build.cancel", "build.submit", "build.delete"]


async def test_a_package_rebuild_makes_a_build(api: Api, alice: Browser, bob: Browser) -> None:
    await _objects(api)
    path = "/coprs/alice/p/package/hello/"
    status, page, _ = await bob.get(path)
    assert status == 200 and "/rebuild/" not in page
    status, page, _ = await alice.get(path)
    assert 'action="/coprs/alice/p/package/hello/rebuild/"' in page
    status, _, headers = await alice.post(path + "rebuild/", {"csrf_token": csrf_of(page)})
    assert status == 303
    build_id = await build_id_of(headers["Location"])
    _, config = await api.call("GET", f"/api_3/build/source-build-config/{build_id}")
    assert config["source_type"] == "scm"
    assert config["source_dict"]["clone_url"] == "https://example.org/hello.git"
    status, page, _ = await alice.get("/coprs/alice/p/builds/")
    assert 'href="/coprs/alice/p/add_build/"' in page
    status, page, _ = await bob.get("/coprs/alice/p/builds/")
    assert "add_build" not in page


async def test_a_form_of_countless_empty_parts_is_refused_at_once(api: Api, alice: Browser) -> None:
    """Parts are counted: a million empty ones would otherwise cost minutes of parsing."""
    token = await alice.token(PAGE)
    empty = b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n"
    body = (
        b"--B\r\nContent-Disposition: form-data; name=csrf_token\r\n\r\n"
        + token.encode()
        + b"\r\n"
        + empty * 10_000
        + b"--B--\r\n"
    )
    headers = {**HTML, "Content-Type": "multipart/form-data; boundary=B"}
    async with alice.http.post(
        PAGE + "upload/", data=body, headers=headers, allow_redirects=False
    ) as resp:
        status, page = resp.status, await resp.text()
    assert status == 400 and "more than 64 parts" in page, (status, page[:300])
    assert await api.count("builds") == 0
    assert list(api.kopers.paths.incoming.rglob("*")) == []
    # The API's upload counts them too.
    headers = {"Authorization": api.auth["alice"], "Content-Type": headers["Content-Type"]}
    async with api.client.post(
        "/api_3/build/create/upload", data=empty * 100 + b"--B--\r\n", headers=headers
    ) as resp:
        status, answer = resp.status, await resp.text()
    assert status == 400 and "more than 64 multipart parts" in answer, answer
