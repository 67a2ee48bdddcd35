"""The scheduler benchmark's simulation: the real scheduler over a small skewed queue."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.scheduler import (
    CHROOT,
    Job,
    MemoryStore,
    SimulatedLoop,
    fifo_starts,
    shares,
    simulate,
    single_waits,
    workload,
)
from kopers.models import BuildState as S
from kopers.sched.graph import TaskKey


def test_the_simulated_clock_jumps_to_the_next_timer() -> None:
    async def nap() -> float:
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    began = time.monotonic()
    with asyncio.Runner(loop_factory=SimulatedLoop) as runner:
        assert runner.run(nap()) == pytest.approx(3600)
    assert time.monotonic() - began < 5


def test_shares_sum_to_the_total_and_give_everyone_one() -> None:
    counts = shares(1000, [1 / r for r in range(1, 41)])
    assert sum(counts) == 1000
    assert min(counts) >= 1
    assert counts == sorted(counts, reverse=True)
    with pytest.raises(ValueError):
        shares(3, [1.0] * 4)


def test_fifo_runs_in_submit_order_through_the_slots() -> None:
    jobs = [Job(1, "a", 0, 100), Job(2, "a", 0, 50), Job(3, "b", 10, 5), Job(4, "c", 500, 1)]
    assert fifo_starts(jobs, 1) == {1: 0, 2: 100, 3: 150, 4: 500}
    assert fifo_starts(jobs, 2) == {1: 0, 2: 0, 3: 50, 4: 500}


async def test_the_memory_store_follows_the_transition_table() -> None:
    store = MemoryStore()
    store.add(Job(7, "a", 0, 60))
    assert await store.set_task_state(7, CHROOT, S.WAITING)
    assert await store.set_task_state(7, CHROOT, S.PENDING)
    await store.start_task(7, CHROOT, S.RUNNING)
    assert not await store.skip_task(7, CHROOT, "too late: it runs")
    assert await store.finish_task(7, CHROOT, S.SUCCEEDED)
    assert not await store.set_task_state(7, CHROOT, S.PENDING)
    assert await store.unfinished_graph() == []


def test_a_small_run_starts_every_task_once_within_the_slots() -> None:
    work = workload(tasks=2000, owners=50, slots=20, tick=10)
    singles = [j for j in work.jobs if j.owner in work.one_build_owners]
    assert len(work.jobs) == 2000
    assert len({j.owner for j in work.jobs}) == 50
    assert len(singles) == 25 and all(j.submit > 0 for j in singles)

    out = simulate(work, slots=20, hosts=4)

    assert out.starts == {TaskKey(j.build_id, CHROOT): 1 for j in work.jobs}
    assert out.overused == 0
    assert out.peak_busy == 20  # every slot was used, none twice
    assert out.queued_at_load == 2000 - 25
    assert out.dispatch_s and out.promote_s and out.graph_bytes > 0
    # Work-conserving either way: the drain times are close, FIFO's a bound of the work.
    assert out.drain_s >= sum(j.duration for j in work.jobs) / 20
    fair, fifo = single_waits(work, out.waits), single_waits(work, out.fifo_waits)
    assert len(fair) == len(fifo) == 25
    assert min(fair) >= 0 and min(fifo) >= 0
    # A lone build starts at the next slot turnover, not behind the big owners' backlog.
    assert max(fair) <= max(j.duration for j in work.jobs)
    assert max(fair) < max(fifo)
