"""The live log websocket against a real log hub and a stub store (no database, no VM)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kopers.api import websocket
from kopers.api.app import errors_middleware
from kopers.api.keys import KOPERS
from kopers.logs import hub as hubmod
from kopers.logs import logfile
from kopers.logs.hub import LogHub
from kopers.models import BuildState

URL = "/ws/builds/7/c/log"


class Store:
    def __init__(self) -> None:
        self.state = BuildState.RUNNING

    async def get_build(self, build_id: int) -> Any:
        task = SimpleNamespace(
            chroot="c", state=self.state, reason="boom" if self.state == "failed" else None
        )
        return SimpleNamespace(
            id=build_id, chroots=("c",), canceled=False, tasks=[task], source_state="succeeded"
        )


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[TestClient, LogHub, Store]]:
    app = web.Application(middlewares=[errors_middleware])
    hub, store = LogHub(tmp_path), Store()
    # The error middleware reads the directories it keeps out of messages.
    config = SimpleNamespace(data_dir=tmp_path, vm=SimpleNamespace(cache_dir=tmp_path, hosts=()))
    app[KOPERS] = SimpleNamespace(hub=hub, store=store, config=config)  # type: ignore[misc]
    websocket.add_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, hub, store
    await client.close()


async def receive_until_end(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    messages = []
    async for msg in ws:
        messages.append(msg.json())
        if messages[-1]["type"] == "end":
            break
    return messages


def numbered(messages: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [
        (m["first"] + i, text)
        for m in messages
        if m["type"] == "lines"
        for i, text in enumerate(m["lines"])
    ]


def lines_message(first: int, lines: list[str], kopers: list[int] | None = None) -> dict[str, Any]:
    return {"type": "lines", "first": first, "lines": lines, "kopers": kopers or []}


async def test_backlog_from_n_then_live_then_end(setup: Any) -> None:
    client, hub, _ = setup
    channel = hub.open(7, "c")
    for i in range(1, 4):
        await channel.append(f"line {i}")
    ws = await client.ws_connect(URL + "?from=2")
    assert (await ws.receive_json())["type"] == "hello"
    backlog = [await ws.receive_json()]
    if backlog[0]["lines"] == ["line 2"]:  # a wake-up fell between the appends
        backlog.append(await ws.receive_json())
        assert backlog[1] == lines_message(3, ["line 3"])
    else:
        assert backlog == [lines_message(2, ["line 2", "line 3"])]
    await channel.append("line 4")
    channel.close("succeeded", None)
    messages = await receive_until_end(ws)
    assert numbered(messages) == [(4, "line 4")]
    assert messages[-1] == {"type": "end", "state": "succeeded", "reason": None, "next": 5}
    await ws.receive()
    assert ws.close_code == 1000


async def test_reconnecting_from_the_next_line_gives_no_gap_and_no_duplicate(setup: Any) -> None:
    client, hub, _ = setup
    channel = hub.open(7, "c")
    seen: list[tuple[int, str]] = []
    for i in range(1, 6):
        await channel.append(f"line {i}")
    ws = await client.ws_connect(URL)
    await ws.receive_json()  # hello
    seen += numbered([await ws.receive_json()])
    await ws.close()
    for i in range(6, 9):
        await channel.append(f"line {i}")  # printed while nobody watched
    ws = await client.ws_connect(f"{URL}?from={seen[-1][0] + 1}")
    await ws.receive_json()
    seen += numbered([await ws.receive_json()])
    await channel.append("line 9")
    channel.close("failed", "boom")
    seen += numbered(await receive_until_end(ws))
    assert seen == [(i, f"line {i}") for i in range(1, 10)]


async def test_resuming_after_a_restart_from_a_line_only_the_file_has(
    setup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, hub, _ = setup
    monkeypatch.setattr(hubmod, "TAIL_LINES", 10)
    monkeypatch.setattr(logfile, "PAGE_LINES", 4)
    channel = hub.open(7, "c")
    await channel.append("\n".join(f"line {i}" for i in range(1, 31)))
    ws = await client.ws_connect(URL)
    await ws.receive_json()  # hello
    seen = numbered([await ws.receive_json()])
    await ws.close()
    assert seen == [(i, f"line {i}") for i in range(1, 5)]
    # Kopers restarts: a new hub, which holds none of the lines, and the task runs again.
    restarted = LogHub(hub.live_dir)
    client.server.app[KOPERS].hub = restarted
    channel = restarted.open(7, "c")
    await channel.say("attempt 2")
    ws = await client.ws_connect(f"{URL}?from={seen[-1][0] + 1}")
    await ws.receive_json()  # hello
    while seen[-1][0] < 31:
        seen += numbered([await ws.receive_json()])
    await channel.append("line 32")
    channel.close("succeeded", None)
    seen += numbered(await receive_until_end(ws))
    assert seen == [(i, f"line {i}") for i in range(1, 31)] + [
        (31, "kopers: attempt 2"),
        (32, "line 32"),
    ]


async def test_a_viewer_waits_for_a_task_that_has_not_started(setup: Any) -> None:
    client, hub, store = setup
    store.state = BuildState.PENDING
    ws = await client.ws_connect(URL)
    assert (await ws.receive_json())["type"] == "hello"
    assert await ws.receive_json() == {"type": "waiting", "state": "pending"}
    channel = hub.open(7, "c")
    await channel.append("started")
    assert await ws.receive_json() == lines_message(1, ["started"])
    await ws.close()


async def test_a_late_joiner_gets_the_log_from_the_file_and_the_end_state(setup: Any) -> None:
    client, hub, store = setup
    channel = hub.open(7, "c")
    await channel.append("only line")
    channel.close("failed", "boom")
    hub.forget(7, "c")
    store.state = BuildState.FAILED
    ws = await client.ws_connect(URL)
    messages = await receive_until_end(ws)
    assert numbered(messages) == [(1, "only line")]
    assert messages[-1] == {"type": "end", "state": "failed", "reason": "boom", "next": 2}


async def test_each_message_says_which_lines_are_kopers_own(setup: Any) -> None:
    client, hub, _ = setup
    channel = hub.open(7, "c")
    await channel.say("builder started on vm-1")
    await channel.append("kopers: task ended succeeded")
    await channel.append("\x1b[2K\rkopers: task ended succeeded")
    await channel.say("task ended failed: boom")
    channel.close("failed", "boom")
    ws = await client.ws_connect(URL)
    messages = await receive_until_end(ws)
    assert messages[1] == lines_message(
        1,
        [
            "kopers: builder started on vm-1",
            "| kopers: task ended succeeded",
            "| \u241b[2K\u240dkopers: task ended succeeded",
            "kopers: task ended failed: boom",
        ],
        [0, 3],
    )


async def test_a_viewer_far_behind_reads_on_from_the_file(
    setup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is dropped: a viewer whose place left memory long ago still gets every line."""
    client, hub, _ = setup
    monkeypatch.setattr(hubmod, "TAIL_LINES", 5)
    monkeypatch.setattr(logfile, "PAGE_LINES", 3)
    channel = hub.open(7, "c")
    await channel.append("line 1")
    ws = await client.ws_connect(URL)
    await ws.receive_json()  # hello
    assert numbered([await ws.receive_json()]) == [(1, "line 1")]
    for i in range(2, 41):  # the viewer reads nothing meanwhile
        await channel.append(f"line {i}")
    assert channel.held()[0] == 5
    channel.close("succeeded", None)
    messages = await receive_until_end(ws)
    assert numbered(messages) == [(i, f"line {i}") for i in range(2, 41)]
    assert all(len(m["lines"]) <= 3 for m in messages if m["type"] == "lines")
    assert messages[-1]["next"] == 41


async def test_bad_from_and_unknown_chroot_are_refused(setup: Any) -> None:
    client, _, _ = setup
    for bad in ("zero", "0", "\u00b2", "\u0663", "9" * 40):
        assert (await client.get(URL + "?from=" + bad)).status == 400, bad
    assert (await client.get("/ws/builds/7/other/log")).status == 404
