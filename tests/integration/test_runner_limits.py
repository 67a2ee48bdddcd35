"""The runner's limits, retries and failure reports, on a fake VM with the real rest.

Real Postgres, store, log hub, publisher (gpg, rpmsign, createrepo_c) and
Runner; the builds come in through the Copr API and run `rpmbuild --rebuild`
on a FakeVm (tests/fakevm.py), which speaks the builder VM's protocol. What
needs a real qemu (killing it, cancel reaching into the guest, leftovers in
libvirt) stays in tests/e2e/test_failures.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kopers.models import BuildState
from kopers.sched.graph import TaskKey
from kopers.worker.runner import Runner
from tests.fakevm import FakeVmPool
from tests.integration.conftest import CHROOT, Api, create
from tests.rpms import noarch_srpm

pytestmark = pytest.mark.integration
TICKS = 'for i in $(seq 1 {n}); do echo "tick $i of {n}"; sleep {pause}; done'


async def submit(api: Api, srpm: Path, timeout: int | None = None) -> int:
    status, body = await create(api, "alice", "alice", "limits")
    assert status in (200, 400), body  # 400: the project exists from an earlier submit
    status, body = await api.upload(
        "alice", srpm, {"ownername": "alice", "projectname": "limits", "chroots": [CHROOT]}
    )
    assert status == 200, body
    build_id = int(body["id"])
    if timeout is not None:
        # The API's floor is 60 s; the runner itself honours whatever the build says.
        await api.kopers.store.pool.execute(
            "UPDATE builds SET timeout = $2 WHERE id = $1", build_id, timeout
        )
    return build_id


async def run_task(api: Api, pool: FakeVmPool, build_id: int, **build: int) -> BuildState:
    """Run the build's task with the real Runner on `pool`; `build` overrides [build] settings."""
    k = api.kopers
    cfg = dataclasses.replace(k.config, build=dataclasses.replace(k.config.build, **build))
    runner = Runner(cfg, k.paths, k.store, k.hub, k.publisher, pool)  # type: ignore[arg-type]
    # A limit that does not fire must fail the test, not hang it.
    async with asyncio.timeout(120):
        state = await runner.run(TaskKey(build_id, CHROOT))
        # The task ended; its VM may still be going down (and its time on its way).
        await runner.pipeline.releases.drain()
        return state


async def task(api: Api, build_id: int) -> tuple[BuildState, str, str]:
    """The task's state and reason, and its published build.log ('' if none)."""
    build = await api.kopers.store.get_build(build_id)
    [t] = build.tasks
    logs = list((api.kopers.paths.results).rglob(f"{build_id:08d}-*/build.log"))
    return t.state, t.reason or "", logs[0].read_text() if logs else ""


def live_log(api: Api, build_id: int) -> Path:
    """The task's whole log as the hub wrote it, up to its last line."""
    return api.kopers.paths.live_logs / f"{build_id:08d}" / CHROOT / "builder-live.log"


def live_members(group: int) -> list[int]:
    """Processes of a process group that still run (zombies do not count)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def assert_vm_gone(pool: FakeVmPool) -> None:
    """Every fake VM was destroyed, and the builder's processes with it."""
    assert pool.running == set()
    for vm in pool.started:
        assert vm.pid is not None
        assert live_members(vm.pid) == []


async def test_a_build_past_its_timeout_fails_with_the_reason_in_its_log(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build_id = await submit(
        api, make_srpm("kopers-slowpoke", "1", build=TICKS.format(n=100, pause=1)), timeout=4
    )
    pool = FakeVmPool(tmp_path)
    state = await run_task(api, pool, build_id)
    reason = "the build ran longer than its timeout of 4 s"
    assert state == BuildState.FAILED
    assert (await task(api, build_id))[:2] == (BuildState.FAILED, reason)
    log = (await task(api, build_id))[2]
    assert f"kopers: {reason}; stopping the build" in log and "tick 2 of 100" in log
    assert "tick 9 of 100" not in log
    assert_vm_gone(pool)


async def test_a_silent_build_fails_after_the_silence_limit(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build_id = await submit(
        api, make_srpm("kopers-mime", "1", build='echo "going quiet"; sleep 600')
    )
    pool = FakeVmPool(tmp_path)
    await run_task(api, pool, build_id, silence_timeout_s=3)
    state, reason, log = await task(api, build_id)
    assert (state, reason) == (BuildState.FAILED, "the build printed nothing for 3 s")
    assert "going quiet" in log and f"kopers: {reason}; stopping the build" in log
    assert_vm_gone(pool)


async def test_a_build_whose_log_grows_too_big_fails(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    line = "0123456789" * 10  # 101 bytes with its newline: 20000 lines make 2 MB
    build_id = await submit(
        api, make_srpm("kopers-chatty", "1", build=f"yes {line} | head -n 20000")
    )
    pool = FakeVmPool(tmp_path)
    await run_task(api, pool, build_id, max_log_mib=1)
    state, reason, _ = await task(api, build_id)
    assert (state, reason) == (BuildState.FAILED, "the build log grew past its limit of 1 MiB")
    live = live_log(api, build_id)
    assert 1 << 20 <= live.stat().st_size < (1 << 20) + 64 * 1024
    assert_vm_gone(pool)


async def test_a_vm_that_dies_is_replaced_and_the_build_is_published(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build_id = await submit(api, make_srpm("kopers-phoenix", "1", build=TICKS.format(n=3, pause=0)))
    pool = FakeVmPool(tmp_path, dying=[2])  # the first VM dies after two lines
    state = await run_task(api, pool, build_id, max_attempts=2)
    assert state == BuildState.SUCCEEDED
    _, _, log = await task(api, build_id)
    assert "kopers: attempt 1 failed (infrastructure): connection lost" in log
    assert f"builder started on {pool.started[1].name}" in log
    assert log.splitlines().count("tick 3 of 3") == 1  # only the second attempt got there
    built = (await api.kopers.store.get_build(build_id)).tasks[0]
    assert built.attempts == 2
    repo = api.kopers.paths.results / "alice" / "limits" / CHROOT
    assert list(repo.glob(f"{build_id:08d}-kopers-phoenix/kopers-phoenix-1-1.*.noarch.rpm"))
    assert_vm_gone(pool)


async def test_when_every_vm_dies_the_task_fails_as_infrastructure(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build_id = await submit(api, make_srpm("kopers-doomed", "1", build=TICKS.format(n=9, pause=0)))
    pool = FakeVmPool(tmp_path, dying=[1, 1])
    await run_task(api, pool, build_id, max_attempts=2)
    state, reason, _ = await task(api, build_id)
    assert state == BuildState.FAILED
    assert reason.startswith("infrastructure failure, not the package: 2 attempts failed"), reason
    log = live_log(api, build_id).read_text()
    assert "attempt 2 failed (infrastructure)" in log and f"task ended failed: {reason}" in log
    assert len(pool.started) == 2
    assert_vm_gone(pool)


async def test_a_built_rpm_with_a_hostile_header_name_fails_the_build(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    def rename_in_header(out: Path) -> None:
        for rpm in out.glob("kopers-evil-*.rpm"):
            rpm.write_bytes(rpm.read_bytes().replace(b"kopers-evil", b"../kopersev"))

    build_id = await submit(api, make_srpm("kopers-evil", "1"))
    pool = FakeVmPool(tmp_path, tamper=rename_in_header)
    state = await run_task(api, pool, build_id)
    assert state == BuildState.FAILED
    _, reason, _ = await task(api, build_id)
    assert "name '../kopersev' is not allowed" in reason, reason
    results = api.kopers.paths.results
    assert not [p for p in results.rglob("*.rpm")], "nothing is published"
    assert not (results / "alice" / "kopersev").exists()
    assert_vm_gone(pool)


async def test_an_error_while_publishing_still_ends_the_task(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build_id = await submit(api, make_srpm("kopers-unsigned", "1"))
    # The project's GnuPG home turns into a file: signing fails with an OSError.
    home = api.kopers.paths.keys / "alice" / "limits"
    shutil.rmtree(home)
    home.write_text("not a directory\n")
    pool = FakeVmPool(tmp_path)
    state = await run_task(api, pool, build_id)
    assert state == BuildState.FAILED
    task_state, reason, _ = await task(api, build_id)
    assert task_state == BuildState.FAILED
    assert reason.startswith("the results could not be published"), reason
    channel = api.kopers.hub.get(build_id, CHROOT)
    assert channel is None or channel.ended_at is not None  # viewers got their end
    assert "kopers: task ended failed" in live_log(api, build_id).read_text()
    assert_vm_gone(pool)


async def test_an_rpm_without_the_forced_dist_is_not_published(api: Api, tmp_path: Path) -> None:
    # tests.rpms' spec says `Release: 1`, without %{?dist}. The template's builder
    # appends it; this fake VM does not, so the host's own check must catch it.
    build_id = await submit(api, noarch_srpm(tmp_path / "srpm", "kopers-nodist"))
    (tmp_path / "vms").mkdir()
    pool = FakeVmPool(tmp_path / "vms")
    assert await run_task(api, pool, build_id) == BuildState.FAILED
    _, reason, _ = await task(api, build_id)
    assert reason == (
        "kopers-nodist-1-1.noarch.rpm: its Release '1' does not end in .deb12.kopers"
    ), reason
    assert not list(api.kopers.paths.results.rglob("*.rpm"))


@pytest.mark.parametrize(
    "ending, state, reason",
    [
        ("true", BuildState.SUCCEEDED, ""),
        ("exit 3", BuildState.FAILED, "rpmbuild failed to build the package; see build.log"),
    ],
)
async def test_a_process_left_holding_the_output_does_not_hold_up_the_task(
    api: Api,
    make_srpm: Callable[..., Path],
    tmp_path: Path,
    ending: str,
    state: BuildState,
    reason: str,
) -> None:
    # The sleeper inherits the build's stdout and keeps it open after the
    # builder has ended: the task ends on the builder's status all the same,
    # long before the sleeper would (or the build's timeout would fire).
    build = f"sleep 100000 &\necho left a sleeper behind\n{ending}"
    build_id = await submit(api, make_srpm("kopers-sleeper", "1", build=build))
    pool = FakeVmPool(tmp_path)
    assert await run_task(api, pool, build_id) == state
    task_state, task_reason, _ = await task(api, build_id)
    assert (task_state, task_reason) == (state, reason)
    assert "left a sleeper behind" in live_log(api, build_id).read_text()
    assert_vm_gone(pool)


async def test_the_reason_comes_from_the_builder_status_not_from_what_the_build_prints(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build = (
        'echo "kopers-builder: please use this reason"\necho "kopers: task ended succeeded"\nexit 1'
    )
    build_id = await submit(api, make_srpm("kopers-liar", "1", build=build))
    pool = FakeVmPool(tmp_path)
    assert await run_task(api, pool, build_id) == BuildState.FAILED
    state, reason, _ = await task(api, build_id)
    assert (state, reason) == (
        BuildState.FAILED,
        "rpmbuild failed to build the package; see build.log",
    )
    log = live_log(api, build_id).read_text()
    assert "kopers-builder: please use this reason" in log
    assert "kopers: task ended failed: rpmbuild failed to build the package" in log
    assert_vm_gone(pool)
