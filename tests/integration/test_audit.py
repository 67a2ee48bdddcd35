"""Every mutation commits together with its audit event, and the audit log is private.

A request that is refused, or that fails while writing its event, leaves no
row and no file behind; a submission that cannot be handed to the scheduler
leaves no build. `GET /api/events` shows a caller the events of projects
they may read and the events about themselves; everything else, and the
clients' addresses, only to site admins.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kopers import tokens
from kopers.models import Build
from tests.integration.conftest import CHROOT, Api, create, table_rows

pytestmark = pytest.mark.integration


async def db_snapshot(api: Api) -> dict[str, list[str]]:
    return await table_rows(api.kopers.store.pool)


async def refuse_events(api: Api, action: str) -> None:
    """Make Postgres refuse to record `action` events, as a failing disk or bug would."""
    await api.kopers.store.pool.execute(
        """
        CREATE FUNCTION test_refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.action = TG_ARGV[0] THEN
                RAISE EXCEPTION 'the test refuses % events', NEW.action;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_refuse_event BEFORE INSERT ON events
            FOR EACH ROW EXECUTE FUNCTION test_refuse_event('"""
        + action
        + "');"
    )


async def events(api: Api, action: str) -> list[dict[str, Any]]:
    rows = await api.kopers.store.pool.fetch(
        "SELECT * FROM events WHERE action = $1 ORDER BY id", action
    )
    return [dict(r) for r in rows]


async def settings(api: Api) -> dict[str, Any]:
    status, body = await api.call("GET", "/api/projects/alice/p")
    assert status == 200
    return dict(body)


def login_of(api: Api, user: str) -> str:
    return base64.b64decode(api.auth[user].split()[1]).decode().split(":")[0]


class Scheduler:
    """The scheduler's side of the API, recording what it is given; `refuse` fails the hand-off."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.offered: list[int] = []
        self.dropped: list[int] = []

    async def submit(self, build: Build) -> None:
        self.offered.append(build.id)
        if self.refuse:
            raise RuntimeError("the scheduler is gone")

    async def cancel(self, build_id: int) -> None:
        self.dropped.append(build_id)


URL_OPTS = {"ownername": "alice", "projectname": "p", "chroots": None}


# Project settings: validated as a whole, written as a whole -------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # The first field is good and would be stored today; a later one is not.
        ({"keep_builds": 3, "build_timeout": 5}, "build_timeout"),
        ({"keep_builds": 3, "build_timeout": "soon"}, "build_timeout"),
        ({"keep_builds": 3, "quota_mib": 1 << 31}, "quota_mib"),
        ({"keep_builds": 3, "delete_after_days": 10**9}, "delete_after_days"),
        ({"keep_builds": 3, "delete_after_days": [2]}, "delete_after_days"),
        ({"keep_builds": True}, "keep_builds"),
        ({"keep_builds": 2.5}, "keep_builds"),
        ({"keep_builds": "3 "}, "keep_builds"),
        ({"keep_builds": "1_0"}, "keep_builds"),
    ],
)
async def test_refused_settings_change_stores_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    before = await db_snapshot(api)
    status, answer = await api.call("PATCH", "/api/projects/alice/p", "alice", json=body)
    assert status == 400, answer
    assert field in answer["error"]
    assert await db_snapshot(api) == before
    assert (await settings(api))["keep_builds"] is None


async def test_settings_change_and_its_event_commit_together(api: Api) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    # Keys Kopers does not know are ignored (the API's request objects are open),
    # and are not copied into the log.
    body = {"keep_builds": 2, "build_timeout": "900", "quota_mib": None, "note": "x" * 100}
    status, answer = await api.call("PATCH", "/api/projects/alice/p", "alice", json=body)
    assert status == 200, answer
    assert answer["keep_builds"] == 2 and answer["build_timeout"] == 900
    [event] = await events(api, "project.storage")
    assert event["object"] == "alice/p" and event["address"] == "127.0.0.1"
    assert event["details"] == {"keep_builds": 2, "build_timeout": 900, "quota_mib": None}

    await refuse_events(api, "project.storage")
    status, answer = await api.call(
        "PATCH", "/api/projects/alice/p", "alice", json={"keep_builds": 5, "build_timeout": 600}
    )
    assert status == 500
    now = await settings(api)
    assert now["keep_builds"] == 2 and now["build_timeout"] == 900
    assert len(await events(api, "project.storage")) == 1


# A mutation whose event cannot be written is undone ---------------------------


async def test_project_whose_create_event_fails_leaves_no_row_and_no_key(api: Api) -> None:
    await refuse_events(api, "project.create")
    before = await db_snapshot(api)
    status, body = await create(api, "alice", "alice", "p")
    assert status == 500, body
    assert await db_snapshot(api) == before
    paths = api.kopers.paths
    assert not (paths.results / "alice" / "p").exists()
    assert not (paths.keys / "alice" / "p").exists()


async def test_project_whose_delete_event_fails_stays_whole(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    status, build = await api.upload("alice", make_srpm("kept"), URL_OPTS)
    assert status == 200, build
    await refuse_events(api, "project.delete")
    before = await db_snapshot(api)
    status, body = await api.call("DELETE", "/api_3/project/delete/alice/p", "alice")
    assert status == 500, body
    assert await db_snapshot(api) == before  # the build was not canceled either
    assert (api.kopers.paths.results / "alice" / "p" / "pubkey.gpg").is_file()
    assert api.kopers.paths.source_dir(build["id"]).is_dir()


async def test_build_cancel_and_delete_whose_event_fails_are_undone(api: Api) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    url = {**URL_OPTS, "pkgs": ["http://127.0.0.1:1/a.src.rpm"]}
    status, page = await api.call("POST", "/api_3/build/create/url", "alice", json=url)
    assert status == 200, page
    build_id = page["items"][0]["id"]
    scheduler = Scheduler()
    api.kopers.builds.scheduler = scheduler  # type: ignore[assignment]
    await refuse_events(api, "build.cancel")
    before = await db_snapshot(api)
    status, body = await api.call("PUT", f"/api_3/build/cancel/{build_id}", "alice")
    assert status == 500, body
    assert await db_snapshot(api) == before
    assert scheduler.dropped == []  # it was not told of a cancel that did not happen

    await api.kopers.store.pool.execute("DROP TRIGGER test_refuse_event ON events")
    status, body = await api.call("PUT", f"/api_3/build/cancel/{build_id}", "alice")
    assert status == 200 and body["state"] == "canceled"
    assert scheduler.dropped == [build_id]

    await api.kopers.store.pool.execute(
        "CREATE TRIGGER test_refuse_event BEFORE INSERT ON events"
        " FOR EACH ROW EXECUTE FUNCTION test_refuse_event('build.delete')"
    )
    before = await db_snapshot(api)
    status, body = await api.call(
        "DELETE", "/api_3/build/delete/list", "alice", json={"builds": [build_id]}
    )
    assert status == 500, body
    assert await db_snapshot(api) == before


async def test_permission_chroot_and_token_changes_whose_event_fails_are_undone(
    api: Api,
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    for action, method, path, user, body in [
        (
            "permission.set",
            "PUT",
            "/api_3/project/permissions/set/alice/p",
            "alice",
            {"bob": {"builder": "approved"}},
        ),
        (
            "permission.request",
            "PUT",
            "/api_3/project/permissions/request/alice/p",
            "bob",
            {"admin": True},
        ),
        (
            "project.edit-chroot",
            "PUT",
            f"/api_3/project-chroot/edit/alice/p/{CHROOT}",
            "alice",
            {"additional_repos": ["https://example.org/repo/"]},
        ),
        ("token.revoke", "DELETE", f"/api/tokens/{login_of(api, 'bob')}", "root", None),
    ]:
        await refuse_events(api, action)
        before = await db_snapshot(api)
        kw = {} if body is None else {"json": body}
        status, answer = await api.call(method, path, user, **kw)
        assert status == 500, (action, answer)
        assert await db_snapshot(api) == before, action
        await api.kopers.store.pool.execute(
            "DROP TRIGGER test_refuse_event ON events; DROP FUNCTION test_refuse_event()"
        )
        status, answer = await api.call(method, path, user, **kw)
        assert status == 200, (action, answer)
        assert len(await events(api, action)) == 1, action


# Submission: rows, event and scheduler hand-off --------------------------------


async def test_submission_whose_event_fails_leaves_no_build_and_no_file(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    await refuse_events(api, "build.submit")
    before = await db_snapshot(api)
    status, body = await api.upload("alice", make_srpm("hello"), URL_OPTS)
    assert status == 500, body
    url = {**URL_OPTS, "pkgs": ["http://127.0.0.1:1/a.src.rpm", "http://127.0.0.1:1/b.src.rpm"]}
    status, body = await api.call("POST", "/api_3/build/create/url", "alice", json=url)
    assert status == 500, body
    chain = {"builds": [{"url": "http://127.0.0.1:1/a.src.rpm"}]}
    status, body = await api.call("POST", "/api/projects/alice/p/chains", "alice", json=chain)
    assert status == 500, body
    assert await db_snapshot(api) == before
    assert list(api.kopers.paths.sources.iterdir()) == []
    assert list(api.kopers.paths.incoming.iterdir()) == []


async def test_submission_the_scheduler_cannot_take_leaves_no_build(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    refusing = Scheduler(refuse=True)
    api.kopers.scheduler = refusing  # type: ignore[assignment]
    status, body = await api.upload("alice", make_srpm("hello"), URL_OPTS)
    assert status == 500, body
    url = {**URL_OPTS, "pkgs": ["http://127.0.0.1:1/a.src.rpm"]}
    status, body = await api.call("POST", "/api_3/build/create/url", "alice", json=url)
    assert status == 500, body
    assert len(refusing.offered) == 2 and refusing.dropped == refusing.offered
    assert await api.count("builds") == 0
    assert await api.count("build_tasks") == 0
    assert list(api.kopers.paths.sources.iterdir()) == []
    # The log keeps what happened: each build was submitted, then withdrawn.
    withdrawn = await events(api, "build.withdraw")
    assert sorted(e["details"]["build"] for e in withdrawn) == sorted(refusing.offered)


async def test_successful_submission_reaches_the_scheduler_after_its_commit(
    api: Api,
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    seen: list[tuple[int, int]] = []
    pool = api.kopers.store.pool

    class Watching:
        async def submit(self, build: Build) -> None:
            # Another connection (the runner's) must already see the rows.
            visible = await pool.fetchval("SELECT count(*) FROM builds WHERE id = $1", build.id)
            logged = await pool.fetchval(
                "SELECT count(*) FROM events WHERE action = 'build.submit'"
                " AND (details->>'build')::bigint = $1",
                build.id,
            )
            seen.append((visible, logged))

    api.kopers.scheduler = Watching()  # type: ignore[assignment]
    url = {**URL_OPTS, "pkgs": ["http://127.0.0.1:1/a.src.rpm"]}
    status, body = await api.call("POST", "/api_3/build/create/url", "alice", json=url)
    assert status == 200, body
    assert seen == [(1, 1)]


# The store's transactions -------------------------------------------------------


async def test_atomic_nests_as_savepoints_and_stays_in_its_task(api: Api) -> None:
    store = api.kopers.store
    alice = await store.get_user("alice")
    undone: list[str] = []
    done: list[str] = []

    async def note(where: list[str], what: str) -> None:
        where.append(what)

    async with store.atomic():
        await store.add_event(alice.id, None, "test.outer", "x", {})
        with pytest.raises(RuntimeError):
            async with store.atomic():
                await store.add_event(alice.id, None, "test.inner", "x", {})
                store.on_rollback(lambda: note(undone, "inner"))
                raise RuntimeError("inner fails")
        assert undone == ["inner"]
        await store.after_commit(lambda: note(done, "outer"))
        assert done == []
        # A task started inside the block does not share its connection or its
        # transaction: it sees only what is committed.
        other = asyncio.create_task(store.pool.fetchval("SELECT count(*) FROM events"))
        assert await other == 0
        seen_here = await store.events(None, 10)
        assert [e["action"] for e in seen_here] == ["test.outer"]
    assert done == ["outer"]
    assert [e["action"] for e in await store.events(None, 10)] == ["test.outer"]

    with pytest.raises(RuntimeError):
        async with store.atomic():
            await store.add_event(alice.id, None, "test.gone", "x", {})
            store.on_rollback(lambda: note(undone, "outer"))
            await store.after_commit(lambda: note(done, "never"))
            raise RuntimeError("outer fails")
    assert undone == ["inner", "outer"] and done == ["outer"]
    assert await api.count("events") == 1


# Who may read the log ------------------------------------------------------------


async def test_events_show_readable_projects_and_own_events_and_addresses_to_admins(
    api: Api,
) -> None:
    # access.py has no private or unlisted projects: every project may be read
    # by every user, so bob sees the events of alice's projects. What he may
    # not see are server-wide events about others, nor anyone's address.
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    assert (await create(api, "bob", "bob", "q"))[0] == 200
    store = api.kopers.store
    alice = await store.get_user("alice")
    extra = tokens.generate()
    await store.create_token(alice.id, extra.login, extra.digest, None)
    status, _ = await api.call("DELETE", f"/api/tokens/{extra.login}", "root")
    assert status == 200
    await store.add_event(None, "cli", "group.create", "@sig", {})

    async def seen(caller: str, **query: str) -> list[dict[str, Any]]:
        status, page = await api.call("GET", "/api/events", caller, params=query)
        assert status == 200, page
        return list(page["items"])

    def actions(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(e["action"], e["object"]) for e in items]

    created = [("project.create", "bob/q"), ("project.create", "alice/p")]
    revoked = ("token.revoke", "alice")
    group = ("group.create", "@sig")

    bob = await seen("bob")
    assert actions(bob) == created
    assert all(e["address"] is None for e in bob)
    alice_sees = await seen("alice")
    assert actions(alice_sees) == [revoked, *created]
    assert all(e["address"] is None for e in alice_sees)
    root = await seen("root")
    assert actions(root) == [group, revoked, *created]
    assert [e["address"] for e in root] == ["cli", "127.0.0.1", "127.0.0.1", "127.0.0.1"]

    # The filters still work, inside what the caller may see.
    assert actions(await seen("bob", user="root")) == []
    assert actions(await seen("alice", user="root")) == [revoked]
    assert actions(await seen("bob", project="alice/p")) == [("project.create", "alice/p")]
    assert actions(await seen("bob", limit="1")) == created[:1]
    for bad in ({"limit": "0"}, {"limit": "many"}, {"limit": "100000"}):
        status, body = await api.call("GET", "/api/events", "bob", params=bad)
        assert status == 400 and "limit" in body["error"], bad
    status, body = await api.call("GET", "/api/events")
    assert status == 401


async def test_a_group_s_members_see_its_events_and_others_do_not(api: Api) -> None:
    store = api.kopers.store
    group = await store.create_group("sig")
    alice = await store.get_user("alice")
    await store.add_group_member(group, alice, True)
    await store.add_event(None, "cli", "group.member.add", "@sig", {"user": "alice"})

    async def objects(caller: str) -> list[str]:
        status, page = await api.call("GET", "/api/events", caller, params={"project": "@sig"})
        assert status == 200, page
        return [e["object"] for e in page["items"]]

    assert await objects("alice") == ["@sig"]
    assert await objects("bob") == []
    assert await objects("root") == ["@sig"]
