"""`GET /api/events/stream`: every state change as a server-sent event, live and replayed.

The stream is read the way a browser's EventSource reads it: `id:`, `event:`
and `data:` fields, events ending at a blank line, comments (`:`) ignored,
and `Last-Event-ID` sent again on reconnecting. The event bus runs as the
supervised loop `kopers serve` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kopers.api.app import create_app
from kopers.models import BuildState
from kopers.server import listening
from tests.integration.conftest import CHROOT, Api, serving
from tests.integration.liveserver import free_port
from tests.integration.test_hooks_out import (
    C2,
    WAIT_S,
    hook_config,
    new_build,
    project,
    wait_until,
)

pytestmark = pytest.mark.integration
S = BuildState
PATH = "/api/events/stream"
ACCEPT = {"Accept": "text/event-stream"}  # what EventSource sends


@dataclass(frozen=True)
class Sse:
    id: int
    event: str
    data: dict[str, Any]


class Stream:
    """An open event stream, read event by event."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def next(self) -> Sse:
        fields: dict[str, str] = {}
        async with asyncio.timeout(WAIT_S):
            while True:
                raw = await self.resp.content.readline()
                if not raw:
                    raise EOFError("the stream ended")
                line = raw.decode().rstrip("\n")
                if line.startswith(":"):
                    continue
                if not line:
                    if "data" in fields:
                        return Sse(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    async def take(self, count: int) -> list[Sse]:
        return [await self.next() for _ in range(count)]


@contextlib.asynccontextmanager
async def stream(api: Api, query: str = "", last_id: int | None = None) -> AsyncIterator[Stream]:
    headers = {**ACCEPT, "Last-Event-ID": str(last_id)} if last_id is not None else ACCEPT
    async with api.client.get(PATH + query, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Cache-Control"] == "no-cache"
        yield Stream(resp)


@pytest.fixture
async def world(dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(hook_config(dsn, tmp_path / "data")) as api:
        api.kopers.supervise("event-bus", api.kopers.events.run)
        yield api


def kinds(events: list[Sse]) -> list[tuple[str, str | None, str]]:
    return [(e.event, e.data["chroot"], e.data["state"]) for e in events]


async def stored_after(api: Api, after: int, project_id: int | None = None) -> list[int]:
    rows = await api.kopers.store.pool.fetch(
        "SELECT id FROM notifications WHERE id > $1 AND ($2::bigint IS NULL OR project_id = $2)"
        " ORDER BY id",
        after,
        project_id,
    )
    return [r["id"] for r in rows]


# -- hostile input first --------------------------------------------------------


async def test_bad_stream_requests_are_refused_at_once(world: Api) -> None:
    await project(world)
    failures = []
    queries = {
        "?project=alice/nope": 404,
        "?project=nobody/p": 404,
        "?project=alice": 400,
        "?project=a/b/c": 400,
        "?project=alice/%00": 400,
        "?project=/p": 400,
        "?project=" + "x" * 300 + "/p": 400,
        "?since=abc": 400,
        "?since=-1": 400,
        f"?since={2**63}": 400,
        "?since=" + "1" * 5000: 400,
        "?since=1.5": 400,
    }
    for query, want in queries.items():
        get = world.client.get(PATH + query, headers=ACCEPT)
        async with asyncio.timeout(WAIT_S), get as resp:
            body = await resp.json(content_type=None)
            if resp.status != want or "error" not in body:
                failures.append((query[:60], resp.status, body))
    for bad in ("abc", "-1", str(2**63), "1" * 5000, "1.5", "٣"):
        headers = {**ACCEPT, "Last-Event-ID": bad}
        async with asyncio.timeout(WAIT_S), world.client.get(PATH, headers=headers) as resp:
            if resp.status != 400:
                failures.append((bad[:60], resp.status, await resp.text()))
    # A client that did not ask for a stream (one that reads to the end) is not given one.
    for accept in (None, "*/*", "application/json", "text/html, text/event-streams"):
        headers = {"Accept": accept} if accept else {}
        async with asyncio.timeout(WAIT_S), world.client.get(PATH, headers=headers) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 406 or "text/event-stream" not in body["error"]:
                failures.append((accept, resp.status, body))
    assert not failures, failures


async def test_one_client_cannot_take_every_stream_slot(world: Api) -> None:
    from kopers.api.eventstream import streams_per_address

    bus = world.kopers.events
    cap = streams_per_address(world.kopers.config.limits.connections_per_address)
    assert cap == 8  # the default connections_per_address, 64
    bus.max_subscribers = cap + 1  # room for one more client's stream
    url = world.client.make_url(PATH)

    def client_at(address: str) -> aiohttp.ClientSession:
        """A client connecting from another loopback address: another client to the server."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))

    async with contextlib.AsyncExitStack() as stack:
        greedy = await stack.enter_async_context(client_at("127.0.0.1"))
        for _ in range(cap):
            resp = await stack.enter_async_context(greedy.get(url, headers=ACCEPT))
            assert resp.status == 200
        async with asyncio.timeout(WAIT_S), greedy.get(url, headers=ACCEPT) as refused:
            assert refused.status == 429, f"one client holds {cap + 1} streams"
            body = await refused.json()
            assert str(cap) in body["error"] and "\n" not in body["error"]
        other = await stack.enter_async_context(client_at("127.0.0.2"))
        resp = await stack.enter_async_context(other.get(url, headers=ACCEPT))
        assert resp.status == 200, "everyone else is served while one client is at its cap"
        # The cap of all streams together holds as before.
        third = await stack.enter_async_context(client_at("127.0.0.3"))
        async with asyncio.timeout(WAIT_S), third.get(url, headers=ACCEPT) as full:
            assert full.status == 503, await full.text()
        assert len(bus.subscribers) == cap + 1
    # A closed stream gives its slot back.
    await wait_until(lambda: not bus.subscribers, "every stream closed")
    async with contextlib.AsyncExitStack() as stack:
        again = await stack.enter_async_context(client_at("127.0.0.1"))
        for _ in range(cap):
            resp = await stack.enter_async_context(again.get(url, headers=ACCEPT))
            assert resp.status == 200


# -- live, filtered, replayed ---------------------------------------------------


async def test_live_events_of_one_project_and_of_all(world: Api) -> None:
    store = world.kopers.store
    p = await project(world)
    q = await project(world, "q")
    async with stream(world, "?project=alice/p") as mine, stream(world) as everything:
        build = await new_build(world, p)
        other = await new_build(world, q)
        await store.start_task(build, CHROOT, S.RUNNING)
        events = await mine.take(4)
        assert kinds(events) == [
            ("task.state", CHROOT, "pending"),
            ("build.state", None, "pending"),
            ("task.state", CHROOT, "running"),
            ("build.state", None, "running"),
        ]
        assert {e.data["build"] for e in events} == {build}
        assert [e.id for e in events] == await stored_after(world, 0, p.id)
        first = events[0].data
        assert first["id"] == events[0].id and first["delivery"] is None
        assert first["project"] == "alice/p" and first["project_id"] == p.id
        assert first["url"].endswith(f"/api_3/build/{build}") and first["previous"] is None
        everyone = await everything.take(6)
        assert [e.id for e in everyone] == await stored_after(world, 0)
        assert {e.data["build"] for e in everyone} == {build, other}


async def test_a_reconnect_replays_what_it_missed_without_gaps_or_duplicates(
    world: Api,
) -> None:
    store = world.kopers.store
    p = await project(world)
    q = await project(world, "q")
    async with stream(world, "?project=alice/p") as s:
        build = await new_build(world, p, (CHROOT, C2))
        seen = await s.take(2)  # of the three its creation made
    # While nobody listens: more of p, and of q, which the filter leaves out.
    await store.start_task(build, CHROOT, S.RUNNING)
    await new_build(world, q)
    await store.start_task(build, C2, S.STARTING)
    await store.cancel_build(build)
    missed = await stored_after(world, seen[-1].id, p.id)
    assert len(missed) == 1 + 6
    async with stream(world, "?project=alice/p", last_id=seen[-1].id) as s:
        replayed = await s.take(len(missed))
        assert [e.id for e in replayed] == missed
        # Then live, continuing after the replay.
        await new_build(world, p)
        live = await s.take(2)
        assert [e.id for e in live] == await stored_after(world, missed[-1], p.id)
    # ?since= does the same for a client that keeps its own place.
    async with stream(world, f"?project=alice/p&since={seen[0].id}") as s:
        again = await s.take(1 + len(missed) + len(live))
    assert [e.id for e in again] == [seen[1].id, *missed, *(e.id for e in live)]


async def test_a_long_replay_ends_the_stream_where_a_reconnect_goes_on(world: Api) -> None:
    from kopers.api.eventstream import MAX_REPLAY

    p = await project(world)
    build = await new_build(world, p)
    await world.kopers.store.pool.execute(
        "SELECT kopers_notify($1, 'build.published', $2, $3, 'published', NULL, '{}')"
        " FROM generate_series(1, $4)",
        p.id,
        build,
        CHROOT,
        MAX_REPLAY + 50,
    )
    stored = await stored_after(world, 0)
    got: list[int] = []
    async with stream(world, "?since=0") as s:
        with pytest.raises(EOFError):
            while True:
                got.append((await s.next()).id)
    assert got == stored[:MAX_REPLAY]
    async with stream(world, last_id=got[-1]) as s:
        rest = await s.take(len(stored) - MAX_REPLAY)
    assert [e.id for e in rest] == stored[MAX_REPLAY:]


async def test_a_subscriber_that_does_not_keep_up_is_dropped(world: Api) -> None:
    bus = world.kopers.events
    p = await project(world)
    slow = await bus.subscribe(None, size=3)
    keeping_up = await bus.subscribe(p.id)
    build = await new_build(world, p, (CHROOT, C2))
    await world.kopers.store.cancel_build(build)
    await wait_until(lambda: slow.dropped, "the slow subscriber dropped")
    assert await slow.get() is None
    assert slow not in bus.subscribers and keeping_up in bus.subscribers
    got = [await keeping_up.get() for _ in range(6)]
    assert [n.id for n in got if n is not None] == await stored_after(world, 0)
    keeping_up.close()
    assert keeping_up not in bus.subscribers


async def test_the_stream_outlives_the_servers_idle_timers(dsn: str, tmp_path: Path) -> None:
    cfg = hook_config(dsn, tmp_path / "data")
    cfg = dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, head_timeout_s=1))
    async with serving(cfg) as api:
        api.kopers.supervise("event-bus", api.kopers.events.run)
        p = await project(api)
        port = free_port()
        async with (
            listening(create_app(api.kopers), "127.0.0.1", port, cfg.limits),
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}{PATH}?project=alice/p", headers=ACCEPT) as resp,
        ):
            assert resp.status == 200
            await asyncio.sleep(3 * cfg.limits.head_timeout_s)
            build = await new_build(api, p)
            events = await Stream(resp).take(2)
        assert {e.data["build"] for e in events} == {build}


async def test_the_bus_goes_on_without_a_gap_after_losing_its_connection(world: Api) -> None:
    store = world.kopers.store
    p = await project(world)
    async with stream(world, "?project=alice/p") as s:
        build = await new_build(world, p)
        first = await s.take(2)
        killed = await store.pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN%' AND datname = current_database()"
        )
        assert killed == 1
        await store.start_task(build, CHROOT, S.RUNNING)
        await store.cancel_build(build)
        rest = await s.take(4)
    assert [e.id for e in first + rest] == await stored_after(world, 0, p.id)
