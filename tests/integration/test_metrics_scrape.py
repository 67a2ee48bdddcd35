"""/metrics on a real app: the text format, what moves it, bounded labels, who may read it.

Tasks run with the real Runner, store, log hub and publisher on a FakeVm
(tests/fakevm.py); `kopers doctor` runs once as a command against the test's
own database and server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import string
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kopers import config as config_mod
from kopers.api.metrics import LIVE_LOG_ROUTE
from kopers.models import BuildState
from kopers.sched.graph import TaskKey
from kopers.worker.runner import Runner
from tests.fakevm import FakeVmPool
from tests.integration.conftest import CHROOT, REPO, Api, create, serving, waiting_build

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(api: Api, user: str | None = None) -> Samples:
    status, text = await api.call("GET", "/metrics", user)
    assert status == 200, text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def pick(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples if n == name]


async def test_the_answer_is_prometheus_text_and_requests_count_by_route_pattern(
    api: Api,
) -> None:
    async with api.client.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    before = await scrape(api)
    for build_id in (7, 8, 9):
        status, body = await api.call("GET", f"/api_3/build/{build_id}")
        assert status == 404, body
    assert (await api.call("GET", "/api_3/"))[0] == 200
    after = await scrape(api)
    route = "/api_3/build/{build_id}"
    labels = {"route": route, "method": "GET", "status": "404"}
    assert pick(after, "kopers_http_requests_total", **labels) == (
        pick(before, "kopers_http_requests_total", **labels) + 3
    )
    assert pick(after, "kopers_http_request_seconds_count", route=route, method="GET") >= 3
    ok = {"route": "/api_3/", "method": "GET", "status": "200"}
    assert pick(after, "kopers_http_requests_total", **ok) >= 1
    # The one place errors become HTTP counts them by kind.
    assert pick(after, "kopers_errors_total", kind="NotFound") == (
        pick(before, "kopers_errors_total", kind="NotFound") + 3
    )
    # The scheduler's and the pool's state, read at the scrape.
    assert ("kopers_tasks", frozenset({("state", "pending")})) in after
    assert ("kopers_vm_slots", frozenset()) in after
    assert pick(after, "kopers_live_log_viewers") == 0


async def test_a_thousand_random_paths_and_methods_make_a_bounded_number_of_series(
    api: Api,
) -> None:
    rng = random.Random(5)

    made: set[str] = set()  # every name and number a client made up

    def word() -> str:
        made.add(w := "".join(rng.choices(string.ascii_lowercase + string.digits, k=12)))
        return w

    def number() -> str:
        made.add(n := str(rng.randrange(10**8, 10**9)))
        return n

    seen_paths = set()
    for i in range(1000):
        path = rng.choice(
            [
                f"/{word()}",
                f"/api_3/build/{number()}",
                f"/api_3/{word()}/{word()}",
                f"/api/{word()}",
                f"/coprs/{word()}/{word()}/",
            ]
        )
        seen_paths.add(path)
        # Methods the HTTP parser knows, but no route of Kopers does.
        method = rng.choice(["GET", "POST", *ODD_METHODS]) if i % 10 == 0 else "GET"
        async with api.client.request(method, path) as resp:
            await resp.read()
    assert len(seen_paths) > 900
    got = await scrape(api)
    requests = series(got, "kopers_http_requests_total")
    assert 0 < len(requests) <= 60, requests
    assert len(series(got, "kopers_http_request_seconds_count")) <= 30
    routes = {s["route"] for s in requests}
    methods = {s["method"] for s in requests}
    assert "(unmatched)" in routes and "/api_3/build/{build_id}" in routes
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
    # No label value holds anything a client made up.
    assert not [r for r in routes if any(m in r for m in made)], routes


ODD_METHODS = ["PROPFIND", "MKCOL", "LOCK", "PURGE", "REPORT", "SEARCH", "LINK", "BIND"]


@pytest.fixture
async def closed(dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    """Kopers where no address may read /metrics without an admin's token."""
    cfg = config_mod.load(
        str(REPO / "kopers.toml"),
        env={
            "KOPERS_DATA_DIR": str(tmp_path / "data"),
            "KOPERS_DATABASE_DSN": dsn,
            "KOPERS_METRICS_ALLOW": "10.0.0.0/8",
        },
    )
    async with serving(cfg) as api:
        yield api


async def test_metrics_are_refused_outside_the_allowed_networks_except_to_admins(
    closed: Api,
) -> None:
    status, body = await closed.call("GET", "/metrics")
    assert status == 403 and "[metrics] allow" in body["error"]
    status, body = await closed.call("GET", "/metrics", "bob")
    assert status == 403, body
    status, body = await closed.call("GET", "/metrics", "wrong")
    assert status == 401, body
    got = await scrape(closed, "root")
    labels = {"route": "/metrics", "method": "GET", "status": "403"}
    assert pick(got, "kopers_http_requests_total", **labels) == 2
    assert pick(got, "kopers_errors_total", kind="Forbidden") == 2


async def test_loopback_reads_them_by_default(api: Api) -> None:
    assert api.kopers.config.metrics.allow  # loopback, as kopers.toml ships it
    status, _ = await api.call("GET", "/metrics")
    assert status == 200  # the test client comes from 127.0.0.1, with no credentials


async def test_task_runs_move_the_task_metrics(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    k = api.kopers
    # One attempt each: the infrastructure failure needs no pauses between attempts.
    cfg = dataclasses.replace(k.config, build=dataclasses.replace(k.config.build, max_attempts=1))
    # What open_kopers wires for the runner it makes; this runner gets the same hook.
    assert k.runner.pipeline.on_ended == [k.metrics.task_ended]
    before = await scrape(api)

    assert (await create(api, "alice", "alice", "metered"))[0] == 200

    async def run(srpm: Path, pool: FakeVmPool) -> BuildState:
        options = {"ownername": "alice", "projectname": "metered", "chroots": [CHROOT]}
        status, body = await api.upload("alice", srpm, options)
        assert status == 200, body
        build_id = int(body["id"])
        runner = Runner(cfg, k.paths, k.store, k.hub, k.publisher, pool)  # type: ignore[arg-type]
        runner.pipeline.on_ended.append(k.metrics.task_ended)
        async with asyncio.timeout(120):
            state = await runner.run(TaskKey(build_id, CHROOT))
            await runner.pipeline.releases.drain()
        return state

    ok = await run(make_srpm("kopers-metered", "1"), FakeVmPool(tmp_path))
    broken = await run(
        make_srpm("kopers-metered-broken", "1", build="exit 3"), FakeVmPool(tmp_path)
    )
    # Every VM dies at its first line: an infrastructure failure on each attempt.
    attempts = cfg.build.max_attempts
    dying = await run(
        make_srpm("kopers-metered-vm", "1"), FakeVmPool(tmp_path, dying=[1] * attempts)
    )
    assert (ok, broken, dying) == (BuildState.SUCCEEDED, BuildState.FAILED, BuildState.FAILED)

    after = await scrape(api)

    def moved(name: str, **labels: str) -> float:
        return pick(after, name, **labels) - pick(before, name, **labels)

    assert moved("kopers_tasks_ended_total", state="succeeded") == 1
    assert moved("kopers_tasks_ended_total", state="failed") == 2
    assert moved("kopers_task_failures_total", cause="build") == 1
    assert moved("kopers_task_failures_total", cause="infrastructure") == 1
    assert moved("kopers_task_seconds_count", state="succeeded") == 1
    assert moved("kopers_task_seconds_sum", state="succeeded") > 0
    # The builder ran once in each of the first two, and in every attempt of the
    # third until its VM died; only the good one published.
    assert moved("kopers_task_step_seconds_count", step="builder") == 2 + attempts
    assert moved("kopers_task_step_seconds_count", step="publish") == 1
    assert moved("kopers_task_step_seconds_sum", step="builder") > 0


async def test_live_log_viewers_are_counted_while_connected(api: Api) -> None:
    app = api.client.app
    assert app is not None
    assert LIVE_LOG_ROUTE in {r.resource.canonical for r in app.router.routes() if r.resource}
    assert (await create(api, "alice", "alice", "watched"))[0] == 200
    project = await api.kopers.store.get_project("alice", "watched")
    alice = await api.kopers.store.get_user("alice")
    build_id = await waiting_build(api.kopers.store, project.id, alice.id, finished=False)
    sockets = [await api.client.ws_connect(f"/ws/builds/{build_id}/{CHROOT}/log") for _ in range(2)]
    for ws in sockets:
        assert (await ws.receive_json())["type"] == "hello"
    assert pick(await scrape(api), "kopers_live_log_viewers") == 2
    for ws in sockets:
        await ws.close()
    async with asyncio.timeout(10):
        while pick(await scrape(api), "kopers_live_log_viewers") != 0:
            await asyncio.sleep(0.05)


LINE = re.compile(r"^(ok  |warn|FAIL)  ([^:]+): (.+)$")


async def test_kopers_doctor_checks_this_config_without_vms(api: Api) -> None:
    cfg = api.kopers.config
    env = {
        "KOPERS_DATA_DIR": str(cfg.data_dir),
        "KOPERS_DATABASE_DSN": cfg.database.dsn,
        "KOPERS_PUBLIC_URL": str(api.client.make_url("")).rstrip("/"),
        "PATH": "/usr/bin:/bin",
        "HOME": str(Path.home()),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kopers",
        "--config",
        str(REPO / "kopers.toml"),
        "doctor",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    lines = out.decode().splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert lines and all(parsed), (lines, err.decode())
    verdicts = {m.group(2): m.group(1).strip() for m in parsed if m}
    # The test's own Postgres, migrated, and its running server: all answer.
    assert verdicts["postgres"] == "ok" and verdicts["migrations"] == "ok", lines
    assert verdicts["public URL"] == "ok", lines
    assert {"/dev/kvm", "libvirt on host local", "free space in the data directory"} <= set(
        verdicts
    )
    assert "template debian-12 (chroot debian-12-x86_64)" in verdicts
    assert proc.returncode == (1 if "FAIL" in verdicts.values() else 0), lines
