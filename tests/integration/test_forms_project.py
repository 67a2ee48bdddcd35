"""A project's forms in the browser: new project, settings, deleting, permissions,
integrations, audit; and the account bar.

Each browser is its own HTTP client with its own cookie jar (tests/integration/webclient.py),
against the app on a real Postgres. The forms must be the API's gates by
another door: refused without the page's CSRF token, refused (403) to those
the API refuses, refused with a one-line 400 for the input the API refuses,
escaped everywhere, and, when they work, change exactly what the API's calls
change.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from typing import Any

import pytest
from multidict import CIMultiDictProxy

from tests.integration.conftest import CHROOT, Api, create, table_rows
from tests.integration.webclient import Browser, csrf_of, signed_in

pytestmark = pytest.mark.integration

HTML = {"Accept": "text/html,application/xhtml+xml"}
XSS = "<script>alert(1)</script>"
Reply = tuple[int, str, CIMultiDictProxy[str]]


@pytest.fixture
async def browsers(api: Api) -> AsyncIterator[dict[str, Browser]]:
    """alice, bob and root signed in; `anon` signed out."""
    made = {name: await signed_in(api, name) for name in ("alice", "bob", "root")}
    made["anon"] = Browser(api)
    try:
        yield made
    finally:
        for b in made.values():
            await b.close()


async def post(b: Browser, path: str, data: list[tuple[str, str]], **kw: Any) -> Reply:
    """A form POST with repeated fields (checkboxes), as a browser sends it."""
    async with b.http.post(path, data=data, allow_redirects=False, **kw) as resp:
        return resp.status, await resp.text(), resp.headers


async def submit(b: Browser, form_page: str, action: str, data: list[tuple[str, str]]) -> Reply:
    """POST `data` to `action` with the CSRF token of `form_page`, accepting HTML."""
    token = csrf_of((await b.get(form_page))[1])
    return await post(b, action, [("csrf_token", token), *data], headers=HTML)


def project_fields(**over: Any) -> list[tuple[str, str]]:
    values: dict[str, Any] = {
        "description": "d",
        "instructions": "",
        "homepage": "",
        "contact": "",
        "chroots": [CHROOT],
        "repos": "",
        "enable_net": False,
        "rebuild_dependents": False,
        "unlisted_on_hp": False,
        **over,
    }
    out: list[tuple[str, str]] = []
    for key, value in values.items():
        if isinstance(value, list):
            out += [(key, v) for v in value]
        elif value is True:
            out.append((key, "on"))
        elif value is not False:
            out.append((key, str(value)))
    return out


async def shown_by_api(api: Api, owner: str, name: str) -> dict[str, Any]:
    """What the API says of a project (as root), without what names or dates it."""
    status, copr = await api.call(
        "GET", "/api_3/project", params={"ownername": owner, "projectname": name}
    )
    assert status == 200, copr
    status, settings = await api.call("GET", f"/api/projects/{owner}/{name}", "root")
    assert status == 200, settings
    for key in ("id", "name", "full_name", "ownername", "repo_url", "webhook_secret"):
        copr.pop(key, None)
        settings.pop(key, None)
    copr["chroot_repos"] = sorted(copr["chroot_repos"])  # their URLs name the project
    return {"copr": copr, "settings": settings}


def error_line(page: str) -> str:
    found = re.search(r'<p class="error" role="alert" id="form-error">([^<]*)</p>', page)
    assert found, page[-2000:]
    return unescape(found.group(1))


async def events(api: Api) -> list[tuple[str, str, str | None]]:
    rows = await api.kopers.store.pool.fetch(
        "SELECT e.action, e.object, u.name FROM events e LEFT JOIN users u ON u.id = e.user_id"
        " WHERE e.action NOT LIKE 'user.%' ORDER BY e.id"
    )
    return [(r["action"], r["object"], r["name"]) for r in rows]


async def group(api: Api, name: str, members: dict[str, bool]) -> None:
    store = api.kopers.store
    made = await store.create_group(name)
    for user, admin in members.items():
        await store.add_group_member(made, await store.get_user(user), admin)


# The account bar -------------------------------------------------------------------------


async def test_the_account_bar_names_the_user_or_offers_to_sign_in(
    api: Api, browsers: dict[str, Browser]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    status, page, _ = await browsers["anon"].get("/coprs/alice/p/builds/?state=failed")
    assert status == 200
    bar = page.split('<nav class="account"', 1)[1].split("</nav>", 1)[0]
    assert 'href="/login/?next=/coprs/alice/p/builds/%3Fstate%3Dfailed"' in bar
    assert 'href="/api/"' in bar and "Sign out" not in bar
    # Signed out, no page makes a login cookie for the bar.
    assert browsers["anon"].cookie("kopers_login") is None
    status, page, _ = await browsers["alice"].get("/coprs/alice/p/")
    bar = page.split('<nav class="account"', 1)[1].split("</nav>", 1)[0]
    assert '<a href="/coprs/alice/" class="me">alice</a>' in bar and 'href="/api/"' in bar
    assert 'action="/logout/" method="post"' in bar and "Sign in" not in bar
    # The sign-out form works with the token the bar carries.
    status, _, _headers = await post(browsers["alice"], "/logout/", [("csrf_token", csrf_of(bar))])
    assert status == 303 and browsers["alice"].cookie() is None
    # An error page has the bar too; the owner page offers a new project to its owner.
    status, page, _ = await browsers["bob"].get("/coprs/alice/nothing/")
    assert status == 404 and 'class="me">bob</a>' in page
    status, page, _ = await browsers["bob"].get("/coprs/bob/")
    assert 'href="/coprs/bob/add/"' in page
    status, page, _ = await browsers["bob"].get("/coprs/alice/")
    assert "/add/" not in page


# Attacks ---------------------------------------------------------------------------------


async def _targets(api: Api) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every form POST of alice's project p, with fields that would change something."""
    store = api.kopers.store
    project = await store.get_project("alice", "p")
    alice = await store.get_user("alice")
    hook = await store.create_hook(project.id, "https://hooks.example.com/k", "s" * 20, alice.id)
    base = "/coprs/alice/p/"
    return [
        ("/coprs/alice/add/", [("name", "q"), *project_fields()]),
        (base + "edit/", project_fields(description="changed")),
        (base + "delete/", [("confirm", "p")]),
        (base + "permissions/request/", [("builder", "on")]),
        (base + "permissions/set/", [("user", "bob"), ("builder", "approved")]),
        (base + "integrations/secret/", []),
        (base + "integrations/hooks/", [("url", "https://example.org/h")]),
        (base + f"integrations/hooks/{hook.id}/delete/", []),
    ]


async def test_every_form_refuses_a_post_without_the_pages_csrf_token(
    api: Api, browsers: dict[str, Browser]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    alice = browsers["alice"]
    other_token = csrf_of((await browsers["bob"].get("/api/"))[1])
    for path, data in await _targets(api):
        before = await table_rows(api.kopers.store.pool)
        for token in ([], [("csrf_token", "")], [("csrf_token", other_token)]):
            status, page, _ = await post(alice, path, [*token, *data], headers=HTML)
            assert status == 403, (path, token, page)
            assert "did not come from this site" in page
        # From another origin, even with the right token.
        right = [("csrf_token", csrf_of((await alice.get("/api/"))[1]))]
        origin = {**HTML, "Origin": "https://evil.example"}
        status, _, _ = await post(alice, path, [*right, *data], headers=origin)
        assert status == 403, path
        assert await table_rows(api.kopers.store.pool) == before, path


async def test_a_user_without_rights_gets_a_403_page_and_changes_nothing(
    api: Api, browsers: dict[str, Browser]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    bob = browsers["bob"]
    for path in ("edit/", "delete/", "integrations/"):
        status, page, headers = await bob.get("/coprs/alice/p/" + path, headers=HTML)
        assert status == 403 and headers["Content-Type"].startswith("text/html"), path
        assert "may not" in page
    project = await api.kopers.store.get_project("alice", "p")
    status, page, _ = await bob.get("/coprs/alice/add/", headers=HTML)
    assert status == 403 and "may not create projects owned by alice" in unescape(page)
    for path, data in await _targets(api):
        if path.endswith("permissions/request/"):
            continue  # any user may ask for a role
        before = await table_rows(api.kopers.store.pool)
        status, page, _ = await submit(bob, "/api/", path, data)
        assert status == 403, (path, page)
        assert "<h1>Forbidden</h1>" in page and project.webhook_secret not in page
        assert await table_rows(api.kopers.store.pool) == before, path


async def test_a_browser_signed_out_is_sent_to_sign_in_and_its_posts_refused(
    api: Api, browsers: dict[str, Browser]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    anon = browsers["anon"]
    for path in (
        "/coprs/alice/add/",
        "/coprs/g/sig/add/",
        "/coprs/alice/p/edit/",
        "/coprs/alice/p/delete/",
        "/coprs/alice/p/permissions/",
        "/coprs/alice/p/integrations/",
        "/coprs/alice/p/audit/",
    ):
        status, _, headers = await anon.get(path)
        assert status == 303 and headers["Location"] == f"/login/?next={path}", path
    # Its login cookie's token passes the CSRF check; a form still needs a user.
    token = csrf_of((await anon.get("/login/"))[1])
    for path, data in await _targets(api):
        before = await table_rows(api.kopers.store.pool)
        status, page, _ = await post(anon, path, [("csrf_token", token), *data], headers=HTML)
        assert status == 403 and "sign in first" in page, path
        assert await table_rows(api.kopers.store.pool) == before, path


async def test_hostile_text_is_escaped_on_the_forms_and_pages(
    api: Api, browsers: dict[str, Browser]
) -> None:
    alice = browsers["alice"]
    repo = 'http://x.example/"><script>alert(1)</script>'
    fields = project_fields(description=XSS, instructions=XSS, homepage=XSS, repos=repo)
    status, page, headers = await submit(
        alice, "/coprs/alice/add/", "/coprs/alice/add/", [("name", "p"), *fields]
    )
    assert status == 303 and headers["Location"] == "/coprs/alice/p/", page
    for path in ("/coprs/alice/p/", "/coprs/alice/p/edit/", "/coprs/alice/", "/"):
        status, page, _ = await alice.get(path)
        assert status == 200 and "<script>alert" not in page, path
    status, page, _ = await alice.get("/coprs/alice/p/edit/")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://x.example/&#34;&gt;&lt;script&gt;" in page
    # A refused form shows the hostile values again, escaped.
    bad = project_fields(description=XSS, chroots=[XSS])
    status, page, _ = await submit(
        alice,
        "/coprs/alice/add/",
        "/coprs/alice/add/",
        [("name", '"><img src=x onerror=alert(1)>'), *bad],
    )
    assert status == 400 and "<img src=x" not in page and "<script>alert" not in page
    assert 'value="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in page
    # The permissions list and the audit page show names and details as text.
    await submit(
        browsers["bob"],
        "/coprs/alice/p/permissions/",
        "/coprs/alice/p/permissions/request/",
        [("admin", "on")],
    )
    for path in ("/coprs/alice/p/permissions/", "/coprs/alice/p/audit/"):
        status, page, _ = await alice.get(path)
        assert status == 200 and "<script>alert" not in page, path


# Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "over", "message"),
    [
        ("p", {"chroots": ["fedora-99-x86_64"]}, "chroots not available on this server"),
        ("p", {"chroots": []}, "at least one chroot must be selected"),
        ("p", {"repos": "http://x.example:port/repo"}, "repos[0] is not a valid URL"),
        ("p", {"description": "x" * 70000}, "description is longer than"),
        ("bad name!", {}, "invalid project name"),
        ("taken", {}, "project alice/taken already exists"),
    ],
)
async def test_bad_input_is_a_400_with_the_form_again_and_nothing_written(
    api: Api, browsers: dict[str, Browser], name: str, over: dict[str, Any], message: str
) -> None:
    assert (await create(api, "alice", "alice", "taken"))[0] == 200
    alice = browsers["alice"]
    before = await table_rows(api.kopers.store.pool)
    data = [("name", name), *project_fields(**{"instructions": "keep <me>", **over})]
    status, page, _ = await submit(alice, "/coprs/alice/add/", "/coprs/alice/add/", data)
    assert status == 400 and message in error_line(page), page[-1500:]
    assert "\n" not in error_line(page)
    assert ">keep &lt;me&gt;</textarea>" in page and f'value="{name}"' in page
    assert await table_rows(api.kopers.store.pool) == before
    if over:
        # The settings form too: nothing of a refused change is written, not even the rest.
        fields = [*project_fields(**{"description": "new", **over}), ("keep_builds", "3")]
        status, page, _ = await submit(
            alice, "/coprs/alice/taken/edit/", "/coprs/alice/taken/edit/", fields
        )
        assert status == 400 and message in error_line(page)
        assert await table_rows(api.kopers.store.pool) == before
    status, page, _ = await submit(
        alice,
        "/coprs/alice/taken/edit/",
        "/coprs/alice/taken/edit/",
        [*project_fields(), ("keep_builds", "0")],
    )
    assert status == 400 and "keep_builds must be a positive whole number" in error_line(page)
    assert await table_rows(api.kopers.store.pool) == before


# What the forms change ---------------------------------------------------------------------


async def test_a_new_project_is_what_the_api_would_make(
    api: Api, browsers: dict[str, Browser]
) -> None:
    alice = browsers["alice"]
    repos = ["https://repo.example/el/$chroot/", "copr://bob/other"]
    fields = project_fields(
        description="desc",
        instructions="dnf it",
        homepage="https://h.example",
        repos="\r\n".join(repos),
        enable_net=True,
        unlisted_on_hp=True,
        rebuild_dependents=True,
    )
    status, page, headers = await submit(
        alice, "/coprs/alice/add/", "/coprs/alice/add/", [("name", "web"), *fields]
    )
    assert status == 303 and headers["Location"] == "/coprs/alice/web/", page
    body = {
        "name": "api",
        "description": "desc",
        "instructions": "dnf it",
        "homepage": "https://h.example",
        "chroots": [CHROOT],
        "additional_repos": repos,
        "enable_net": True,
        "unlisted_on_hp": True,
    }
    status, made = await api.call("POST", "/api_3/project/add/alice", "alice", json=body)
    assert status == 200, made
    status, _ = await api.call(
        "PATCH", "/api/projects/alice/api", "alice", json={"rebuild_dependents": True}
    )
    assert status == 200
    assert await shown_by_api(api, "alice", "web") == await shown_by_api(api, "alice", "api")
    web_events = [e for e in await events(api) if e[1] == "alice/web"]
    assert web_events == [
        ("project.create", "alice/web", "alice"),
        ("project.storage", "alice/web", "alice"),
    ]
    status, page, _ = await alice.get("/coprs/alice/web/")
    assert status == 200 and "dnf it" in page


async def test_settings_change_what_the_apis_edit_and_settings_change(
    api: Api, browsers: dict[str, Browser]
) -> None:
    for name in ("web", "api"):
        body = {
            "name": name,
            "chroots": [CHROOT],
            "description": "old",
            "instructions": "i",
            "homepage": "https://old.example",
            "additional_repos": ["https://r.example/"],
        }
        assert (await api.call("POST", "/api_3/project/add/alice", "alice", json=body))[0] == 200
    fields = [
        *project_fields(
            description="new",
            instructions="",
            homepage="",
            repos="https://a.example/ https://b.example/",
            enable_net=True,
            unlisted_on_hp=True,
            rebuild_dependents=True,
        ),
        ("keep_builds", "5"),
        ("quota_mib", ""),
    ]
    # A project admin may change the settings as the API lets one.
    await api.call(
        "PUT",
        "/api_3/project/permissions/set/alice/web",
        "alice",
        json={"bob": {"admin": "approved"}},
    )
    bob = browsers["bob"]
    status, page, headers = await submit(
        bob, "/coprs/alice/web/edit/", "/coprs/alice/web/edit/", fields
    )
    assert status == 303 and headers["Location"] == "/coprs/alice/web/", page
    edit = {
        "description": "new",
        "instructions": "",
        "homepage": "",
        "repos": ["https://a.example/", "https://b.example/"],
        "enable_net": True,
        "unlisted_on_hp": True,
    }
    assert (await api.call("PUT", "/api_3/project/edit/alice/api", "alice", json=edit))[0] == 200
    # Copr's modify leaves a field sent as "" be: clear them as a form does, by the store.
    project = await api.kopers.store.get_project("alice", "api")
    await api.kopers.store.pool.execute(
        "UPDATE projects SET instructions = '', homepage = NULL WHERE id = $1", project.id
    )
    patch = {"keep_builds": 5, "rebuild_dependents": True}
    assert (await api.call("PATCH", "/api/projects/alice/api", "alice", json=patch))[0] == 200
    assert await shown_by_api(api, "alice", "web") == await shown_by_api(api, "alice", "api")
    assert [e for e in await events(api) if e[1] == "alice/web"][-2:] == [
        ("project.edit", "alice/web", "bob"),
        ("project.storage", "alice/web", "bob"),
    ]
    # Sent again unchanged, the form changes nothing and logs nothing.
    before = await table_rows(api.kopers.store.pool)
    status, page, _ = await submit(bob, "/coprs/alice/web/edit/", "/coprs/alice/web/edit/", fields)
    assert status == 303
    after = await table_rows(api.kopers.store.pool)
    assert {t for t in before if before[t] != after[t]} <= {"web_sessions"}
    # A project admin may not delete it: the page does not offer to.
    status, page, _ = await bob.get("/coprs/alice/web/edit/")
    assert "/delete/" not in page
    status, _, _ = await bob.get("/coprs/alice/web/delete/", headers=HTML)
    assert status == 403


async def test_deleting_needs_the_name_typed_then_goes_as_the_apis_delete(
    api: Api, browsers: dict[str, Browser]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    alice = browsers["alice"]
    status, page, _ = await alice.get("/coprs/alice/p/edit/")
    assert 'href="/coprs/alice/p/delete/"' in page
    status, page, _ = await alice.get("/coprs/alice/p/delete/")
    assert status == 200 and '<label for="confirm">' in page
    before = await table_rows(api.kopers.store.pool)
    for typed in ("", "P", "other"):
        status, page, _ = await submit(
            alice, "/coprs/alice/p/delete/", "/coprs/alice/p/delete/", [("confirm", typed)]
        )
        assert status == 400 and "nothing was deleted" in error_line(page)
    assert await table_rows(api.kopers.store.pool) == before
    status, _, headers = await submit(
        alice, "/coprs/alice/p/delete/", "/coprs/alice/p/delete/", [("confirm", "p")]
    )
    assert status == 303 and headers["Location"] == "/coprs/alice/"
    status, _ = await api.call(
        "GET", "/api_3/project", params={"ownername": "alice", "projectname": "p"}
    )
    assert status == 404
    assert (await events(api))[-1] == ("project.delete", "alice/p", "alice")


async def test_roles_are_asked_for_and_approved_through_the_apis_rules(
    api: Api, browsers: dict[str, Browser]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    alice, bob = browsers["alice"], browsers["bob"]
    page_path = "/coprs/alice/p/permissions/"
    status, page, _ = await bob.get(page_path)
    assert status == 200 and "Who has what" not in page
    status, _, headers = await submit(bob, page_path, page_path + "request/", [("builder", "on")])
    assert status == 303 and headers["Location"] == page_path
    status, got = await api.call("GET", "/api_3/project/permissions/get/alice/p", "alice")
    assert got["permissions"] == {"bob": {"admin": "nothing", "builder": "request"}}
    # The owner has no role to ask for: the API's 400, as the form's one line.
    status, page, _ = await submit(alice, page_path, page_path + "request/", [("admin", "on")])
    assert status == 400 and "is owner of the 'alice/p' project" in error_line(page)
    status, page, _ = await alice.get(page_path)
    assert "Who has what" in page and "<td>bob</td>" in page
    status, _, _ = await submit(
        alice,
        page_path,
        page_path + "set/",
        [("user", "bob"), ("builder", "approved"), ("admin", "nothing")],
    )
    assert status == 303
    status, got = await api.call("GET", "/api_3/project/permissions/get/alice/p", "alice")
    assert got["permissions"] == {"bob": {"admin": "nothing", "builder": "approved"}}
    # Bad values are the API's 400s; the owner cannot be given a role.
    for data, message in (
        ([("user", "nobody"), ("builder", "approved")], "user 'nobody' doesn't exist"),
        ([("user", "bob"), ("builder", "boss")], "invalid 'builder' permission state"),
        ([("user", "alice"), ("admin", "approved")], "is owner of the 'alice/p' project"),
    ):
        before = await table_rows(api.kopers.store.pool)
        status, page, _ = await submit(alice, page_path, page_path + "set/", data)
        assert status == 400 and message in error_line(page), page[-800:]
        assert await table_rows(api.kopers.store.pool) == before
    # Asking for a role one holds is the API's 400 too; giving it up works.
    status, page, _ = await submit(bob, page_path, page_path + "request/", [])
    assert status == 303
    status, got = await api.call("GET", "/api_3/project/permissions/get/alice/p", "alice")
    assert got["permissions"]["bob"] == {"admin": "nothing", "builder": "nothing"}
    assert [e[0] for e in await events(api)][-3:] == [
        "permission.request",
        "permission.set",
        "permission.request",
    ]


async def test_integrations_show_the_urls_the_server_takes_and_rotate_the_secret(
    api: Api, browsers: dict[str, Browser]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    alice = browsers["alice"]
    project = await api.kopers.store.get_project("alice", "p")
    path = "/coprs/alice/p/integrations/"
    status, page, headers = await alice.get(path)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    urls = dict(
        re.findall(r'<tr data-forge="(\w+)">.*?<code class="webhook-url">([^<]+)</code>', page)
    )
    assert set(urls) == {"github", "gitlab", "bitbucket", "pagure", "custom"}
    base = api.kopers.config.server.public_url
    for forge, url in urls.items():
        tail = "PACKAGE_NAME/" if forge == "custom" else ""
        assert url == f"{base}/webhooks/{forge}/{project.id}/{project.webhook_secret}/{tail}"
    # The server takes them: a delivery to one reaches the project (not the 404 of a wrong URL).
    local = urls["gitlab"].removeprefix(base)

    async def deliver() -> int:
        gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong"}
        async with api.client.post(local, json={}, headers=gitlab) as resp:
            return resp.status

    assert await deliver() != 404
    status, _, headers = await submit(alice, path, path + "secret/", [])
    assert status == 303 and headers["Location"] == path
    rotated = await api.kopers.store.get_project("alice", "p")
    assert rotated.webhook_secret != project.webhook_secret
    assert await deliver() == 404
    status, page, _ = await alice.get(path)
    assert rotated.webhook_secret in page and project.webhook_secret not in page
    # Outgoing hooks: added with the API's checks, the secret shown once, deleted.
    status, page, _ = await submit(alice, path, path + "hooks/", [("url", "http://2130706433/")])
    assert status == 400 and "url must name a host" in error_line(page)
    status, page, _ = await submit(
        alice, path, path + "hooks/", [("url", "https://hooks.example.com/k?a=<b>")]
    )
    assert status == 200 and 'id="hook-secret"' in page and "?a=&lt;b&gt;" in page
    [hook] = await api.kopers.store.hooks_of(project.id)
    assert f">{hook.secret}</code>" in page
    status, page, _ = await alice.get(path)
    assert hook.secret not in page
    status, _, _ = await submit(alice, path, path + f"hooks/{hook.id}/delete/", [])
    assert status == 303 and await api.kopers.store.hooks_of(project.id) == []
    assert [e[0] for e in await events(api)][-3:] == [
        "project.webhook-secret",
        "hook.create",
        "hook.delete",
    ]


async def test_the_audit_page_shows_what_the_events_api_shows_the_same_user(
    api: Api, browsers: dict[str, Browser]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    await api.call("PATCH", "/api/projects/alice/p", "alice", json={"keep_builds": 2})
    for name in ("bob", "root"):
        status, page, _ = await browsers[name].get("/coprs/alice/p/audit/")
        assert status == 200
        status, listed = await api.call("GET", "/api/events", name, params={"project": "alice/p"})
        ids = [int(i) for i in re.findall(r'<tr data-event="(\d+)">', page)]
        assert ids == [e["id"] for e in listed["items"]] and len(ids) == 2
        assert ("127.0.0.1" in page) == (name == "root")  # addresses are for site admins


# Group projects -----------------------------------------------------------------------------


async def test_group_projects_have_the_same_forms_under_g(
    api: Api, browsers: dict[str, Browser]
) -> None:
    await group(api, "sig", {"alice": False})
    alice, bob = browsers["alice"], browsers["bob"]
    status, page, _ = await bob.get("/coprs/g/sig/add/", headers=HTML)
    assert status == 403 and "Only members of group sig may" in page
    status, page, _ = await alice.get("/coprs/g/sig/")
    assert 'href="/coprs/g/sig/add/"' in page
    status, page, headers = await submit(
        alice, "/coprs/g/sig/add/", "/coprs/g/sig/add/", [("name", "gp"), *project_fields()]
    )
    assert status == 303 and headers["Location"] == "/coprs/g/sig/gp/", page
    project = await api.kopers.store.get_project("@sig", "gp")
    assert project.chroots == (CHROOT,)
    # A plain member may not change the group's project: its admins may.
    base = "/coprs/g/sig/gp/"
    status, _, _ = await alice.get(base + "edit/", headers=HTML)
    assert status == 403
    await group(api, "ops", {})
    await api.kopers.store.add_group_member(
        await api.kopers.store.get_group("sig"), await api.kopers.store.get_user("bob"), True
    )
    status, page, _ = await bob.get(base + "edit/")
    assert status == 200 and f'action="{base}edit/"' in page
    for tab in ("edit/", "permissions/", "integrations/", "audit/"):
        assert f'href="{base}{tab}"' in page
    status, _, _ = await submit(
        bob, base + "edit/", base + "edit/", project_fields(description="group desc")
    )
    assert status == 303
    assert (await api.kopers.store.get_project("@sig", "gp")).description == "group desc"
    status, page, _ = await bob.get(base + "integrations/")
    assert f"/webhooks/github/{project.id}/{project.webhook_secret}/" in page
    status, _, _ = await submit(
        alice, base + "permissions/", base + "permissions/request/", [("admin", "on")]
    )
    assert status == 303
    status, _, _ = await submit(
        bob,
        base + "permissions/",
        base + "permissions/set/",
        [("user", "alice"), ("admin", "approved")],
    )
    assert status == 303
    status, page, _ = await alice.get(base + "edit/")
    assert status == 200 and "/delete/" not in page  # a project admin may not delete
    status, _, headers = await submit(bob, base + "delete/", base + "delete/", [("confirm", "gp")])
    assert status == 303 and headers["Location"] == "/coprs/g/sig/"
    status, page, _ = await bob.get(base + "audit/", headers=HTML)
    assert status == 404
