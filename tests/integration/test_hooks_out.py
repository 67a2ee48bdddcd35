"""Outgoing webhooks: every state change reaches a project's receivers, signed, in order, once.

A receiver here is an aiohttp server on 127.0.0.1, which the tests' address
policy allows (`[network] allow = ["127.0.0.1/32"]`: one of this host's own
addresses is allowed only when named alone); retries wait 1 s. State
changes are made through the store methods the pipeline and the API use, or
by a whole build on a FakeVm; the sender and the event bus run as the
supervised loops `kopers serve` runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kopers import config as config_mod
from kopers.config import Config
from kopers.db.store import NewBuild
from kopers.models import BuildState, Project, SourceType, derive_build_state
from kopers.service import Kopers
from tests.integration.conftest import CHROOT, Api, serving
from tests.integration.liveserver import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
S = BuildState
C2 = "fedora-40-x86_64"
WAIT_S = 30


# -- the world: Kopers with a permissive address policy, users, projects -------


def hook_config(dsn: str, data_dir: Path, allow: str = "127.0.0.1/32", **env: str) -> Config:
    """kopers.toml with receivers on loopback allowed and retries after 1 s."""
    return config_mod.load(
        str(REPO / "kopers.toml"),
        env={
            "KOPERS_DATA_DIR": str(data_dir),
            "KOPERS_DATABASE_DSN": dsn,
            "KOPERS_NETWORK_ALLOW": allow,
            "KOPERS_WEBHOOKS_RETRY_INITIAL": "1",
            "KOPERS_WEBHOOKS_RETRY_MAX": "1",
            "KOPERS_WEBHOOKS_TIMEOUT": "5",
            **env,
        },
    )


def run_loops(kopers: Kopers) -> None:
    """The loops `kopers serve` runs for events: the bus and the hook sender."""
    kopers.supervise("event-bus", kopers.events.run)
    kopers.supervise("hook-sender", kopers.hooks.run)


@pytest.fixture
async def world(dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(hook_config(dsn, tmp_path / "data")) as api:
        yield api


async def project(api: Api, name: str = "p", owner: str = "alice") -> Project:
    store = api.kopers.store
    alice = await store.get_user("alice")
    return await store.create_project(
        owner,
        name,
        description="",
        instructions="",
        homepage=None,
        contact=None,
        chroots=[CHROOT, C2],
        additional_repos=[],
        enable_net=False,
        created_by=alice.id,
    )


async def new_build(api: Api, p: Project, chroots: tuple[str, ...] = (CHROOT,)) -> int:
    """An uploaded build whose tasks are pending: what the runner starts."""
    alice = await api.kopers.store.get_user("alice")
    build = await api.kopers.store.create_build(
        NewBuild(
            project_id=p.id,
            submitter_id=alice.id,
            source_type=SourceType.UPLOAD,
            source={"pkg": "hello-1.0-1.src.rpm"},
            package_name="hello",
            package_version="1.0-1",
            srpm_name="hello-1.0-1.src.rpm",
            source_state=S.SUCCEEDED,
            timeout=3600,
            chroots=chroots,
            task_state=S.PENDING,
        )
    )
    return build.id


async def add_hook(api: Api, p: Project, url: str, user: str = "alice") -> dict[str, Any]:
    status, body = await api.call(
        "POST", f"/api/projects/{p.owner}/{p.name}/hooks", user, json={"url": url}
    )
    assert status == 200, body
    return dict(body)


async def deliveries(api: Api, p: Project, hook: int, limit: int = 100) -> list[dict[str, Any]]:
    status, body = await api.call(
        "GET", f"/api/projects/{p.owner}/{p.name}/hooks/{hook}/deliveries?limit={limit}", "alice"
    )
    assert status == 200, body
    return list(body["items"])


async def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> None:
    """Poll `check` (sync or async) until it is true; fail naming `what`."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(what)  # pragma: no cover - the timeout raises first


# -- the receiver ---------------------------------------------------------------


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1; answers `answers` in turn, then 200 "ok".

    It takes `delay` seconds to answer, and none while `hold` is clear. It counts
    the requests in flight, in all and by the first segment of their path.
    """

    port: int = field(default_factory=free_port)
    answers: list[int] = field(default_factory=list)
    got: list[Delivery] = field(default_factory=list)
    tried: int = 0  # requests answered, whatever the answer
    paths: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None
    delay: float = 0.0
    hold: asyncio.Event | None = None
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: Counter[str] = field(default_factory=Counter)  # "" is the total

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        keys = ("", request.path.split("/")[1])
        for key in keys:
            self.in_flight[key] += 1
            self.most_in_flight[key] = max(self.most_in_flight[key], self.in_flight[key])
        try:
            await asyncio.sleep(self.delay)
            if self.hold is not None:
                await self.hold.wait()
        finally:
            self.in_flight.subtract(keys)
        self.tried += 1
        self.paths.append(request.path)
        if request.path == "/moved":
            raise web.HTTPFound("/elsewhere")
        status = self.answers.pop(0) if self.answers else 200
        if 200 <= status < 300:
            self.got.append(Delivery(dict(request.headers), body))
        return web.Response(status=status, text="ok" if status == 200 else "x" * 2000)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def wait(self, count: int) -> list[dict[str, Any]]:
        await wait_until(lambda: len(self.got) >= count, f"{count} deliveries, got {self.got}")
        return [d.event for d in self.got]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def signed(secret: str, d: Delivery) -> bool:
    want = "sha256=" + hmac.new(secret.encode(), d.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(d.headers["X-Kopers-Signature-256"], want)


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str | None, str, str | None]]:
    return [(e["kind"], e["chroot"], e["state"], e["previous"]) for e in events]


# -- hostile input first --------------------------------------------------------

BAD_URLS: list[Any] = [
    "ftp://example.com/hook",
    "https://user:secret@example.com/hook",
    "https://user@example.com/hook",
    "https://example.com/" + "a" * 5000,
    "not a url",
    "",
    "https://",
    "http:///only/a/path",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "https://exa mple.com/",
    "https://example.com:0/",
    "https://example.com:99999/",
    "https://example.com:port/",
    "https://ex\x00ample.com/",
    "https://example.com/\nX-Injected: 1",
    "https://-bad-.example.com/",
    "https://a..b/",
    "https://" + "a" * 64 + ".com/",
    "https://[not-an-address]/",
    # Spellings of an address that no connection takes: refused when the hook is made.
    "http://2130706433/",
    "http://127.1/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.0.0.1./",
    "http://[fe80::1%25eth0]/",
    12345,
    None,
    ["https://example.com/"],
    {"url": "https://example.com/"},
]
BAD_SECRETS: list[Any] = [123, "short", "x" * 1000, "with\ncontrol", "", ["s" * 20], True]


async def test_hook_urls_and_secrets_that_are_not_fit_are_refused_with_400(world: Api) -> None:
    p = await project(world)
    path = f"/api/projects/{p.owner}/{p.name}/hooks"
    events = await world.count("events")
    failures = []
    bodies: list[Any] = [{"url": url} for url in BAD_URLS]
    bodies += [{"url": "https://example.com/h", "secret": s} for s in BAD_SECRETS]
    bodies += [{}, [], "https://example.com/h", {"secret": "s" * 20}]
    for body in bodies:
        status, answer = await world.call("POST", path, "alice", json=body)
        if status != 400 or "error" not in answer or "\n" in answer["error"]:
            failures.append((body if len(str(body)) < 100 else str(body)[:100], status, answer))
    for raw in (b"{", b"\xff\xfe", b"[1, 2"):
        headers = {"Authorization": world.auth["alice"], "Content-Type": "application/json"}
        async with world.client.post(path, data=raw, headers=headers) as resp:
            if resp.status != 400:
                failures.append((raw, resp.status, await resp.text()))
    assert not failures, failures
    assert await world.count("hooks") == 0
    assert await world.count("events") == events


async def test_hooks_are_only_for_the_projects_editors(world: Api) -> None:
    p = await project(world)
    q = await project(world, "q")
    hook = await add_hook(world, p, "https://example.com/hook")
    base = f"/api/projects/{p.owner}/{p.name}/hooks"
    calls = [
        ("GET", base, None),
        ("POST", base, {"url": "https://example.com/other"}),
        ("DELETE", f"{base}/{hook['id']}", None),
        ("GET", f"{base}/{hook['id']}/deliveries", None),
    ]
    for method, path, body in calls:
        kw = {"json": body} if body is not None else {}
        assert (await world.call(method, path, None, **kw))[0] == 401, path
        assert (await world.call(method, path, "wrong", **kw))[0] == 401, path
        status, answer = await world.call(method, path, "bob", **kw)
        assert status == 403 and "bob" in answer["error"], (path, status, answer)
    # A hook is reached only through its own project; unknown ones are 404s.
    other = f"/api/projects/{q.owner}/{q.name}/hooks/{hook['id']}"
    assert (await world.call("DELETE", other, "alice"))[0] == 404
    assert (await world.call("GET", f"{other}/deliveries", "alice"))[0] == 404
    assert (await world.call("GET", "/api/projects/alice/nope/hooks", "alice"))[0] == 404
    assert (await world.call("DELETE", f"{base}/999999", "alice"))[0] == 404
    for bad in ("0", "-1", "abc", str(2**63), "1" * 5000):
        assert (await world.call("DELETE", f"{base}/{bad}", "alice"))[0] in (400, 404), bad
    for limit in ("0", "-1", "abc", "1001", "1" * 5000):
        path = f"{base}/{hook['id']}/deliveries?limit={limit}"
        assert (await world.call("GET", path, "alice"))[0] == 400, limit
    assert await world.count("hooks") == 1
    # The site admin may, as with every project.
    assert (await world.call("GET", base, "root"))[0] == 200


async def test_the_secret_is_shown_once_and_hooks_are_capped(world: Api) -> None:
    p = await project(world)
    base = f"/api/projects/{p.owner}/{p.name}/hooks"
    status, made = await world.call(
        "POST", base, "alice", json={"url": "https://example.com/a", "secret": "s" * 20}
    )
    assert status == 200 and made["secret"] == "s" * 20, made
    generated = await add_hook(world, p, "https://example.com/b")
    assert len(generated["secret"]) >= 32 and generated["secret"] != made["secret"]
    status, listed = await world.call("GET", base, "alice")
    assert status == 200
    assert [h["url"] for h in listed["items"]] == ["https://example.com/a", "https://example.com/b"]
    assert all("secret" not in h for h in listed["items"])
    assert "s" * 20 not in json.dumps(listed)
    # The audit log names the hook and its host, never its URL (which may hold a token).
    status, log = await world.call("GET", f"/api/events?project={p.full_name}", "alice")
    assert [e["action"] for e in log["items"]] == ["hook.create", "hook.create"]
    assert log["items"][0]["details"] == {"hook": generated["id"], "host": "example.com"}
    for i in range(18):
        await add_hook(world, p, f"https://example.com/{i}")
    status, answer = await world.call("POST", base, "alice", json={"url": "https://e.com/x"})
    assert status == 409 and "20" in answer["error"], answer
    assert await world.count("hooks") == 20
    status, gone = await world.call("DELETE", f"{base}/{made['id']}", "alice")
    assert status == 200 and gone == {"id": made["id"], "deleted": True}
    assert await world.count("hooks") == 19


async def test_a_receiver_at_a_refused_address_is_never_contacted(
    dsn: str, tmp_path: Path, receiver: Receiver
) -> None:
    # The strict policy of a default configuration: nothing is allow-listed.
    async with serving(hook_config(dsn, tmp_path / "data", allow="")) as api:
        p = await project(api)
        urls = [
            receiver.url,
            f"http://localhost:{receiver.port}/hook",
            f"http://[::ffff:127.0.0.1]:{receiver.port}/hook",
            "http://10.0.0.1:9/hook",
        ]
        hooks = [await add_hook(api, p, url) for url in urls]
        await new_build(api, p)
        run_loops(api.kopers)

        async def all_refused() -> bool:
            for hook in hooks:
                items = await deliveries(api, p, hook["id"])
                if not items or not items[-1]["last_error"]:
                    return False
            return True

        await wait_until(all_refused, "every hook's first delivery refused")
        for hook in hooks:
            head = (await deliveries(api, p, hook["id"]))[-1]
            assert "address policy" in head["last_error"], head
            assert head["state"] == "pending" and head["last_status"] is None
        assert receiver.tried == 0


# -- delivery -------------------------------------------------------------------


async def test_a_receiver_gets_every_state_change_in_order_and_signed(
    world: Api, receiver: Receiver
) -> None:
    api = world
    p = await project(api)
    hook = await add_hook(api, p, receiver.url)
    store = api.kopers.store
    run_loops(api.kopers)
    build_id = await new_build(api, p)
    await store.start_task(build_id, CHROOT, S.STARTING)
    assert await store.set_task_state(build_id, CHROOT, S.RUNNING)
    assert await store.finish_task(build_id, CHROOT, S.SUCCEEDED, None, "/results/x")
    events = await receiver.wait(8)
    assert summary(events) == [
        ("task.state", CHROOT, "pending", None),
        ("build.state", None, "pending", None),
        ("task.state", CHROOT, "starting", "pending"),
        ("build.state", None, "starting", "pending"),
        ("task.state", CHROOT, "running", "starting"),
        ("build.state", None, "running", "starting"),
        ("task.state", CHROOT, "succeeded", "running"),
        ("build.state", None, "succeeded", "running"),
    ]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    public = api.kopers.config.server.public_url
    for d, e in zip(receiver.got, events, strict=True):
        assert signed(hook["secret"], d), d.headers
        assert d.headers["Content-Type"] == "application/json"
        assert d.headers["User-Agent"] == "Kopers-Hookshot"
        assert d.headers["X-Kopers-Event"] == e["kind"]
        assert d.headers["X-Kopers-Delivery"] == str(e["delivery"])
        assert set(e) == {
            "id", "delivery", "kind", "at", "project", "project_id", "build", "chroot",
            "state", "previous", "url",
        }  # fmt: skip
        assert e["project"] == "alice/p" and e["project_id"] == p.id and e["build"] == build_id
        assert e["url"] == f"{public}/api_3/build/{build_id}"
        assert datetime.fromisoformat(e["at"]).tzinfo is not None
    # A forged body does not pass the signature of the real one.
    forged = Delivery(receiver.got[0].headers, receiver.got[0].body.replace(b"pending", b"failed"))
    assert not signed(hook["secret"], forged)
    items = await deliveries(api, p, hook["id"], limit=3)
    assert [i["notification"] for i in items] == ids[::-1][:3]
    for item in items:
        assert item["state"] == "delivered" and item["attempts"] == 1
        assert item["last_status"] == 200 and item["last_answer"] == "ok"
        assert item["delivered_at"] is not None and item["last_error"] is None
    assert {d.headers["X-Kopers-Delivery"] for d in receiver.got} == {
        str(i["id"]) for i in await deliveries(api, p, hook["id"])
    }


async def test_a_whole_build_announces_its_publish_between_running_and_success(
    world: Api, receiver: Receiver, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    from tests.fakevm import FakeVmPool
    from tests.integration.test_runner_limits import run_task, submit

    api = world
    run_loops(api.kopers)
    build_id = await submit(api, make_srpm("kopers-hooked", "1"))
    p = await api.kopers.store.get_project("alice", "limits")
    await add_hook(api, p, receiver.url)
    assert await run_task(api, FakeVmPool(tmp_path), build_id) == S.SUCCEEDED
    events = await receiver.wait(7)
    assert summary(events) == [
        ("task.state", CHROOT, "starting", "pending"),
        ("build.state", None, "starting", "pending"),
        ("task.state", CHROOT, "running", "starting"),
        ("build.state", None, "running", "starting"),
        ("build.published", CHROOT, "published", None),
        ("task.state", CHROOT, "succeeded", "running"),
        ("build.state", None, "succeeded", "running"),
    ]
    assert {e["build"] for e in events} == {build_id}


async def test_every_event_arrives_in_order_once_a_down_receiver_is_back(
    world: Api,
) -> None:
    api = world
    p = await project(api)
    down = Receiver(answers=[500, 503])
    hook = await add_hook(api, p, down.url)  # nothing listens there yet
    store = api.kopers.store
    build_id = await new_build(api, p, (CHROOT, C2))
    await store.start_task(build_id, CHROOT, S.RUNNING)
    await store.start_task(build_id, C2, S.STARTING)
    await store.cancel_build(build_id)
    run_loops(api.kopers)

    async def refused_once() -> bool:
        items = await deliveries(api, p, hook["id"])
        return any(i["last_error"] and "refused" in i["last_error"] for i in items)

    await wait_until(refused_once, "a delivery that found the receiver down")
    items = await deliveries(api, p, hook["id"])
    # Only the oldest was tried: the later ones wait behind it.
    assert sum(1 for i in items if i["attempts"]) == 1
    count = len(items)
    assert count == 9
    await down.start()
    try:
        events = await down.wait(count)
    finally:
        await down.stop()
    assert len(events) == count
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == count
    got = summary(events)
    assert got[:6] == [
        ("task.state", CHROOT, "pending", None),
        ("task.state", C2, "pending", None),
        ("build.state", None, "pending", None),
        ("task.state", CHROOT, "running", "pending"),
        ("build.state", None, "running", "pending"),
        ("task.state", C2, "starting", "pending"),
    ]
    assert sorted(got[6:8]) == [
        ("task.state", CHROOT, "canceled", "running"),
        ("task.state", C2, "canceled", "starting"),
    ]
    assert got[8:] == [("build.state", None, "canceled", "running")]
    head = (await deliveries(api, p, hook["id"]))[-1]
    # Refused, then 500, then 503, then delivered.
    assert head["state"] == "delivered" and head["attempts"] >= 4, head
    assert down.tried == count + 2


async def test_a_redirect_is_not_followed(world: Api, receiver: Receiver) -> None:
    p = await project(world)
    hook = await add_hook(world, p, f"http://127.0.0.1:{receiver.port}/moved")
    run_loops(world.kopers)
    await new_build(world, p)

    async def answered() -> bool:
        items = await deliveries(world, p, hook["id"])
        return bool(items) and items[-1]["last_status"] == 302

    await wait_until(answered, "the 302 recorded")
    assert "/elsewhere" not in receiver.paths and receiver.got == []
    assert (await deliveries(world, p, hook["id"]))[-1]["state"] == "pending"


async def test_pending_deliveries_survive_a_restart(
    dsn: str, tmp_path: Path, receiver: Receiver
) -> None:
    cfg = hook_config(dsn, tmp_path / "data")
    async with serving(cfg) as api:
        p = await project(api)
        hook = await add_hook(api, p, receiver.url)
        build_id = await new_build(api, p)
        await api.kopers.store.start_task(build_id, CHROOT, S.RUNNING)
        # Closed without its loops ever running: nothing was sent.
    assert receiver.tried == 0
    async with serving(cfg, users=False) as api:
        run_loops(api.kopers)
        events = await receiver.wait(4)
        assert summary(events) == [
            ("task.state", CHROOT, "pending", None),
            ("build.state", None, "pending", None),
            ("task.state", CHROOT, "running", "pending"),
            ("build.state", None, "running", "pending"),
        ]
        assert all(signed(hook["secret"], d) for d in receiver.got)


async def test_a_rolled_back_change_leaves_no_notification_and_no_delivery(
    world: Api, receiver: Receiver
) -> None:
    p = await project(world)
    await add_hook(world, p, receiver.url)
    store = world.kopers.store
    build_id = await new_build(world, p)
    before = (await world.count("notifications"), await world.count("hook_deliveries"))
    assert before[0] > 0 and before[1] == before[0]

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with store.atomic():
            await store.start_task(build_id, CHROOT, S.RUNNING)
            await store.add_notification(build_id, "build.published", CHROOT, "published")
            raise Undo
    after = (await world.count("notifications"), await world.count("hook_deliveries"))
    assert after == before
    assert (await store.get_build(build_id)).tasks[0].state == S.PENDING


async def test_a_delivery_past_the_give_up_age_fails_for_good(
    world: Api, receiver: Receiver
) -> None:
    from kopers.hooksender import HookSender

    p = await project(world)
    receiver.answers = [500] * 10
    hook = await add_hook(world, p, receiver.url)
    await new_build(world, p)
    k = world.kopers
    later = datetime.now(UTC) + timedelta(hours=k.config.webhooks.give_up_hours, minutes=1)
    sender = HookSender(k.config, k.store, k.proxy.policy, clock=lambda: later)
    await sender.deliver_due()
    items = await deliveries(world, p, hook["id"])
    assert [i["state"] for i in items] == ["failed", "failed"]
    # The head was tried and answered 500; the one behind it was dropped untried.
    assert [i["attempts"] for i in items] == [0, 1]
    assert items[1]["last_status"] == 500 and len(items[1]["last_answer"]) == 500
    assert "gave up" in items[0]["last_error"]
    assert receiver.tried == 1


async def test_a_deleted_hook_is_sent_nothing_more(world: Api, receiver: Receiver) -> None:
    p = await project(world)
    hook = await add_hook(world, p, receiver.url)
    await new_build(world, p)
    status, _ = await world.call(
        "DELETE", f"/api/projects/{p.owner}/{p.name}/hooks/{hook['id']}", "alice"
    )
    assert status == 200
    assert await world.count("hook_deliveries") == 0
    await world.kopers.hooks.deliver_due()
    assert receiver.tried == 0


# -- many hooks at once ----------------------------------------------------------


async def test_a_slow_receiver_does_not_hold_back_other_projects(
    world: Api, receiver: Receiver
) -> None:
    api = world
    store = api.kopers.store
    evil = await project(api, "evil")
    good = await project(api, "good")
    slow = Receiver(delay=1.0)  # answers 200, well within the 5 s timeout
    await slow.start()
    try:
        await add_hook(api, evil, slow.url)
        await add_hook(api, good, receiver.url)
        for _ in range(10):  # 10 builds x 2 events: 20 slow deliveries queued
            await new_build(api, evil)
        run_loops(api.kopers)
        await wait_until(lambda: slow.in_flight[""] > 0, "the slow hook being sent to")
        build = await new_build(api, good)
        await store.start_task(build, CHROOT, S.STARTING)
        events = await receiver.wait(4)
        assert {e["project"] for e in events} == {"alice/good"}
        # Not a time limit (the machine may be loaded): the good project's events
        # came while most of the 20 slow deliveries, a second each, still waited.
        assert slow.tried < 10, f"the good project's events waited for {slow.tried} slow ones"
    finally:
        await slow.stop()


async def test_hooks_share_the_senders_slots_fairly_between_projects(world: Api) -> None:
    from kopers.hooksender import HookSender

    k = world.kopers
    slow = Receiver(delay=0.3)
    await slow.start()
    try:
        projects = [await project(world, f"p{i}") for i in range(3)]
        for p in projects:
            for i in range(3):
                await add_hook(world, p, f"http://127.0.0.1:{slow.port}/{p.name}/{i}")
            await new_build(world, p)  # two events for each of its three hooks
        sender = HookSender(k.config, k.store, k.proxy.policy, concurrency=4, per_project=2)
        assert await sender.deliver_due() == 18
        assert len(slow.got) == 18 and await sender.deliver_due() == 0
        # At most 4 receivers at once, at most 2 of one project's hooks; and not one by one.
        assert slow.most_in_flight[""] == 4, slow.most_in_flight
        assert max(slow.most_in_flight[p.name] for p in projects) == 2, slow.most_in_flight
    finally:
        await slow.stop()
    # Each hook still got its events in order.
    by_hook: dict[str, list[int]] = {}
    for path, d in zip(slow.paths, slow.got, strict=True):
        by_hook.setdefault(path, []).append(d.event["id"])
    assert len(by_hook) == 9
    assert all(ids == sorted(ids) and len(ids) == 2 for ids in by_hook.values()), by_hook


async def test_a_hook_with_much_to_send_makes_way_for_the_others(world: Api) -> None:
    from kopers.hooksender import HookSender

    k = world.kopers
    slow = Receiver(delay=0.2)
    await slow.start()
    try:
        for name in ("a", "b"):
            p = await project(world, name)
            await add_hook(world, p, f"http://127.0.0.1:{slow.port}/{name}/0")
            for _ in range(3):
                await new_build(world, p)  # 6 deliveries, all older than the next project's
        # One hook at a time, each for about half a second (3 deliveries) before the other.
        sender = HookSender(k.config, k.store, k.proxy.policy, concurrency=1, budget_s=0.5)
        assert await sender.deliver_due() == 12
    finally:
        await slow.stop()
    order = [path.split("/")[1] for path in slow.paths]
    switches = sum(1 for x, y in itertools.pairwise(order) if x != y)
    assert sorted(order) == ["a"] * 6 + ["b"] * 6 and switches >= 3, order


async def test_stopping_the_sender_stops_its_drains_and_loses_no_delivery(world: Api) -> None:
    from kopers.hooksender import HookSender

    k = world.kopers
    held = Receiver(hold=asyncio.Event())
    await held.start()
    try:
        p = await project(world)
        hook = await add_hook(world, p, held.url)
        await new_build(world, p)
        sender = HookSender(k.config, k.store, k.proxy.policy)
        task = asyncio.create_task(sender.run())
        await wait_until(lambda: held.in_flight[""] == 1, "a delivery in flight")
        drains = [t for t in asyncio.all_tasks() if t.get_name().startswith("hook-drain-")]
        assert len(drains) == 1
        task.cancel()
        async with asyncio.timeout(5):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert all(t.done() for t in drains)
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("hook-drain-")]
        # The cut try was not recorded: the delivery is owed still, and is sent again.
        items = await deliveries(world, p, hook["id"])
        assert [(i["state"], i["attempts"]) for i in items] == [("pending", 0)] * 2
        assert held.hold is not None
        held.hold.set()
        assert await sender.deliver_due() == 2
        items = await deliveries(world, p, hook["id"])
        assert [i["state"] for i in items] == ["delivered"] * 2
        sent = [d.headers["X-Kopers-Delivery"] for d in held.got]
        assert sent[-2:] == [str(i["id"]) for i in reversed(items)], sent
    finally:
        assert held.hold is not None
        held.hold.set()
        await held.stop()


class LosingStore:
    """The store, but reading a hook's head fails while `lost` is set: the database went."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.lost = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def head_delivery(self, hook_id: int) -> Any:
        if self.lost:
            raise ConnectionError("the connection to Postgres was lost")
        return await self._store.head_delivery(hook_id)


async def test_a_drain_that_fails_fails_the_loop_and_stops_the_other_drains(
    world: Api, receiver: Receiver
) -> None:
    from kopers.hooksender import HookSender

    k = world.kopers
    held = Receiver(hold=asyncio.Event())
    await held.start()
    try:
        p, q = await project(world), await project(world, "q")
        await add_hook(world, p, held.url)
        await new_build(world, p)
        store: Any = LosingStore(k.store)
        store.lost = False
        k.supervise("event-bus", k.events.run)
        sender = HookSender(k.config, store, k.proxy.policy, bus=k.events)
        task = asyncio.create_task(sender.run())
        await wait_until(lambda: held.in_flight[""] == 1, "a delivery in flight")
        store.lost = True
        await add_hook(world, q, receiver.url)
        await new_build(world, q)  # the bus wakes the sender; this drain fails at once
        async with asyncio.timeout(WAIT_S):
            with pytest.raises(ConnectionError):
                await task
        # The supervisor restarts a failed loop; nothing of this one is left running.
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("hook-drain-")]
        assert receiver.tried == 0
        store.lost = False
        assert held.hold is not None
        held.hold.set()
        assert await sender.deliver_due() == 4
        assert len(receiver.got) == 2
    finally:
        assert held.hold is not None
        held.hold.set()
        await held.stop()


# -- what makes an event --------------------------------------------------------


async def test_sql_and_python_derive_the_same_build_state(world: Api) -> None:
    states = [str(s) for s in BuildState]
    cases = []
    for canceled, source in itertools.product((False, True), states):
        for n in range(3):
            for tasks in itertools.combinations_with_replacement(states, n):
                cases.append((canceled, source, list(tasks)))
    rows = await world.kopers.store.pool.fetch(
        "SELECT i, kopers_build_state(c, s, string_to_array(t, ',')) AS state"
        " FROM unnest($1::bool[], $2::text[], $3::text[]) WITH ORDINALITY AS x(c, s, t, i)",
        [c[0] for c in cases],
        [c[1] for c in cases],
        [",".join(c[2]) for c in cases],
    )
    assert len(rows) == len(cases) > 1500
    for row in rows:
        canceled, source, tasks = cases[row["i"] - 1]
        want = derive_build_state(canceled, S(source), [S(t) for t in tasks])
        assert row["state"] == str(want), (canceled, source, tasks)


async def test_two_tasks_ending_at_once_announce_the_build_once(world: Api) -> None:
    p = await project(world)
    store = world.kopers.store
    for _ in range(5):
        build_id = await new_build(world, p, (CHROOT, C2))
        await store.start_task(build_id, CHROOT, S.RUNNING)
        await store.start_task(build_id, C2, S.RUNNING)
        await asyncio.gather(
            store.finish_task(build_id, CHROOT, S.SUCCEEDED, None, None),
            store.finish_task(build_id, C2, S.SUCCEEDED, None, None),
        )
        rows = await store.pool.fetch(
            "SELECT state, previous FROM notifications WHERE build_id = $1"
            " AND kind = 'build.state' ORDER BY id",
            build_id,
        )
        assert [(r["state"], r["previous"]) for r in rows] == [
            ("pending", None),
            ("running", "pending"),
            ("succeeded", "running"),
        ]


async def test_fork_copies_and_source_steps(world: Api) -> None:
    p = await project(world)
    store = world.kopers.store
    alice = await store.get_user("alice")
    forked = await store.create_build(
        NewBuild(
            project_id=p.id,
            submitter_id=alice.id,
            source_type=SourceType.UPLOAD,
            source={},
            package_name="hello",
            package_version="1.0-1",
            srpm_name=None,
            source_state=S.FORKED,
            timeout=3600,
            chroots=(CHROOT,),
            task_state=S.FORKED,
        )
    )
    await store.fail_fork_copy(forked.id, CHROOT, "gone")
    assert (await store.get_build(forked.id)).tasks[0].state == S.FAILED
    count = "SELECT count(*) FROM notifications WHERE build_id = $1"
    assert await store.pool.fetchval(count, forked.id) == 0
    # A URL build: its source step's changes are events of their own.
    scm = await store.create_build(
        NewBuild(
            project_id=p.id,
            submitter_id=alice.id,
            source_type=SourceType.URL,
            source={"url": "https://example.com/x.src.rpm"},
            package_name=None,
            package_version=None,
            srpm_name=None,
            source_state=S.PENDING,
            timeout=3600,
            chroots=(CHROOT,),
            task_state=S.PENDING,
        )
    )
    assert await store.set_source_state(scm.id, S.IMPORTING)
    assert await store.set_source(scm.id, "x", "1-1", "x-1-1.src.rpm", S.SUCCEEDED)
    rows = await store.pool.fetch(
        "SELECT kind, state, previous FROM notifications WHERE build_id = $1 ORDER BY id", scm.id
    )
    assert [(r["kind"], r["state"], r["previous"]) for r in rows] == [
        ("task.state", "pending", None),
        ("build.state", "pending", None),
        ("source.state", "importing", "pending"),
        ("build.state", "importing", "pending"),
        ("source.state", "succeeded", "importing"),
        ("build.state", "pending", "importing"),
    ]


async def test_a_new_event_wakes_the_sender_at_once(world: Api, receiver: Receiver) -> None:
    from kopers.hooksender import POLL_S

    p = await project(world)
    await add_hook(world, p, receiver.url)
    run_loops(world.kopers)
    build_id = await new_build(world, p)
    await receiver.wait(2)
    await asyncio.sleep(0.5)  # the sender is asleep again, nothing being due
    started = asyncio.get_running_loop().time()
    await world.kopers.store.start_task(build_id, CHROOT, S.RUNNING)
    await receiver.wait(4)
    assert asyncio.get_running_loop().time() - started < POLL_S / 2


async def test_old_notifications_nothing_waits_for_are_pruned(
    world: Api, receiver: Receiver
) -> None:
    p = await project(world)
    store = world.kopers.store
    ended = await new_build(world, p)
    await store.cancel_build(ended)
    running = await new_build(world, p)
    await store.start_task(running, CHROOT, S.RUNNING)
    await add_hook(world, p, receiver.url)
    owed = await new_build(world, p)
    await store.cancel_build(owed)  # its events wait for the hook
    count = "SELECT count(*) FROM notifications WHERE build_id = $1"
    before = {b: await store.pool.fetchval(count, b) for b in (ended, running, owed)}
    assert await store.prune_notifications(datetime.now(UTC) - timedelta(days=1)) == 0
    assert await store.prune_notifications(datetime.now(UTC) + timedelta(days=1)) == before[ended]
    after = {b: await store.pool.fetchval(count, b) for b in (ended, running, owed)}
    assert after == {**before, ended: 0}
    # A running build keeps what its next change is compared with.
    assert await store.finish_task(running, CHROOT, S.SUCCEEDED, None, None)
    rows = await store.pool.fetch(
        "SELECT state, previous FROM notifications WHERE build_id = $1 AND kind = 'build.state'"
        " ORDER BY id DESC LIMIT 1",
        running,
    )
    assert [(r["state"], r["previous"]) for r in rows] == [("succeeded", "running")]
