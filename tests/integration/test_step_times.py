"""Every step of a task's run is timed: in its log, in its record, in the API and on its page.

The real Runner, store, log hub and publisher on a FakeVm (tests/fakevm.py),
whose builder announces its commands the way the template's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from kopers.models import BuildState
from kopers.sched.graph import TaskKey
from kopers.worker.runner import Runner
from tests.fakevm import FakeVmPool
from tests.integration.conftest import CHROOT, Api
from tests.integration.test_runner_limits import run_task, submit, task

pytestmark = pytest.mark.integration

HOST_STEPS = [
    "vm claim",
    "repo forwards",
    "upload",
    "builder",
    "result download",
    "vm release",
    "result check",
    "staging",
    "signing",
    "publish",
]


async def test_a_built_task_reports_every_step_with_its_time(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build_id = await submit(api, make_srpm("kopers-timed", "1"))
    assert await run_task(api, FakeVmPool(tmp_path), build_id) == BuildState.SUCCEEDED

    status, body = await api.call("GET", f"/api/builds/{build_id}")
    assert status == 200, body
    [t] = body["tasks"]
    ours = [s for s in t["steps"] if s["source"] == "kopers"]
    theirs = [s for s in t["steps"] if s["source"] == "builder"]
    # The VM goes down while the results are checked and published.
    assert sorted(s["name"] for s in ours) == sorted(HOST_STEPS)
    assert [s["name"] for s in ours][:5] == HOST_STEPS[:5]
    assert [s["name"] for s in theirs] == ["unpack", "rpmbuild"]
    for s in t["steps"]:
        assert s["seconds"] >= 0 and s["offset"] >= 0, s
    by_name = {s["name"]: s for s in t["steps"]}
    assert by_name["builder"]["seconds"] > 0 and by_name["rpmbuild"]["seconds"] > 0
    # The builder's phases lie within its run, as the host timed it.
    run = by_name["builder"]
    for s in theirs:
        assert run["offset"] <= s["offset"]
        assert s["offset"] + s["seconds"] <= run["offset"] + run["seconds"] + 0.01
    offsets = [s["offset"] for s in t["steps"]]
    assert offsets == sorted(offsets)

    # The published build.log has every step, and one line with all of them.
    _, _, log = await task(api, build_id)
    for name in HOST_STEPS:
        assert f"kopers: step {name}: " in log, name
    assert "kopers: step rpmbuild: " in log
    assert "(timed between the builder's own output lines)" in log
    [summary] = [line for line in log.splitlines() if line.startswith("kopers: step times: ")]
    assert "vm claim" in summary and "publish" in summary and "rpmbuild" in summary

    status, page = await api.call("GET", f"/coprs/build/{build_id}/")
    assert status == 200
    assert 'id="steps-debian-12-x86_64"' in page and "<td>signing</td>" in page


async def test_a_failed_task_keeps_the_times_of_the_steps_it_went_through(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build_id = await submit(api, make_srpm("kopers-broken", "1", build="exit 3"))
    assert await run_task(api, FakeVmPool(tmp_path), build_id) == BuildState.FAILED

    [t] = (await api.kopers.store.get_build(build_id)).tasks
    names = [s.name for s in t.steps]
    assert names[:4] == ["vm claim", "repo forwards", "upload", "builder"]
    assert "vm release" in names and "rpmbuild" in names
    assert "signing" not in names and "result download" not in names
    _, _, log = await task(api, build_id)
    assert "kopers: step times: vm claim" in log


async def test_the_task_ends_without_waiting_for_its_vm_to_go_down(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build_id = await submit(api, make_srpm("kopers-quick-end", "1"))
    k = api.kopers
    pool = FakeVmPool(tmp_path, teardown=asyncio.Event())
    runner = Runner(k.config, k.paths, k.store, k.hub, k.publisher, pool)  # type: ignore[arg-type]
    async with asyncio.timeout(120):
        state = await runner.run(TaskKey(build_id, CHROOT))
    # Succeeded and published while its VM is still there.
    assert state == BuildState.SUCCEEDED and pool.running
    [t] = (await k.store.get_build(build_id)).tasks
    assert t.state == BuildState.SUCCEEDED and t.ended_on is not None
    assert "vm release" not in [s.name for s in t.steps]
    _, _, log = await task(api, build_id)
    assert "kopers: step times: " in log and "vm release" not in log

    assert pool.teardown is not None
    pool.teardown.set()
    async with asyncio.timeout(60):
        await runner.pipeline.releases.drain()
    assert not pool.running
    [t] = (await k.store.get_build(build_id)).tasks
    assert [s.name for s in t.steps].count("vm release") == 1
    _, _, log = await task(api, build_id)
    assert "kopers: step vm release: " in log and "after the task ended" in log
