"""How far one scheduler goes: the real Scheduler and TaskGraph on a large queue.

Drives `kopers.sched.scheduler.Scheduler` (and through it the task graph and
the fair-share policy) with an in-memory store that answers the calls the
scheduler makes the way the real store does (the same transition table), and
a runner whose tasks each "run" for a simulated duration and end succeeded.
Time is simulated: the event loop's clock jumps to the next timer instead of
waiting, so only the scheduler's own work costs wall time. Durations and
arrivals fall on a grid of `--tick` seconds (completions that share an
instant are handled by one dispatch pass, as when they end close together).

The queue: `--tasks` tasks (one chroot per build) from `--owners` owners, a
skewed mix. Half of the owners have one build each; the others share the
rest by a Zipf law, so a few have thousands. Everything but the one-build
owners' builds is queued when the scheduler starts (it loads them the way it
does after a restart); each one-build owner submits later, at a random
moment while the backlog drains. `--slots` VM slots sit on `--hosts` hosts.

It prints the cost of scheduling (the wall time of each dispatch pass, median
and p99, and per task started; of each promotion pass run when a task
settles), the graph's memory (tracemalloc of the load, and peak RSS), the
simulated time to drain the queue, and fairness: the longest wait (submit to
start) of a one-build owner, beside the wait the same task would have had
under plain FIFO, computed from the same tasks through the same slots.

    .venv/bin/python bench/scheduler.py [--tasks N] [--owners N] [--slots N] [--small]

At the defaults the run takes about 15 minutes of one core, nearly all of it
the scheduler's own passes; `--small` takes seconds.

Last line: `scheduler tasks=… pass_median_ms=… pass_p99_ms=… start_us=… graph_mib=…
drain_h=… one_build_wait_s=… fifo_wait_s=… ratio=<fifo/fair>`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import math
import random
import resource
import selectors
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kopers.db.transitions import TASK_FROM  # noqa: E402
from kopers.models import Build, BuildState, BuildTask, SourceType  # noqa: E402
from kopers.sched.graph import TaskKey  # noqa: E402
from kopers.sched.scheduler import Scheduler  # noqa: E402

CHROOT = "fedora-40-x86_64"
S = BuildState


# -- the simulated clock --------------------------------------------------------


class _JumpSelector(selectors.DefaultSelector):
    """Waits by moving the loop's clock: a timeout passes at once, and no I/O arrives."""

    def __init__(self, loop: SimulatedLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            # No timer left and nothing ready: the simulation would wait forever.
            raise RuntimeError("the simulation stalled: nothing is scheduled")
        if timeout > 0:
            self._loop.now += timeout
        return []


class SimulatedLoop(asyncio.SelectorEventLoop):
    """An event loop on simulated time: `asyncio.sleep(600)` costs no wall time."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpSelector(self))

    def time(self) -> float:
        return self.now


# -- the workload ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    build_id: int
    owner: str
    submit: float  # simulated seconds
    duration: float


@dataclass(frozen=True, slots=True)
class Workload:
    jobs: tuple[Job, ...]
    one_build_owners: frozenset[str]


def shares(total: int, weights: Sequence[float]) -> list[int]:
    """`total` split by `weights`, at least 1 each, by largest remainder."""
    if total < len(weights):
        raise ValueError("fewer tasks than owners")
    spare = total - len(weights)
    scale = spare / sum(weights)
    exact = [w * scale for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: spare - sum(counts)]:
        counts[i] += 1
    return [c + 1 for c in counts]


def workload(tasks: int, owners: int, slots: int, tick: float, seed: int = 1) -> Workload:
    """The skewed queue described in the module docstring, reproducible from `seed`."""
    if owners < 2 or tasks < owners:
        raise ValueError("need at least two owners and one task per owner")
    rng = random.Random(seed)
    single = [f"one{i}" for i in range(owners // 2)]
    heavy = [f"big{i}" for i in range(owners - len(single))]
    counts = shares(tasks - len(single), [1 / (rank**1.1) for rank in range(1, len(heavy) + 1)])

    def duration() -> float:
        # Build times: a median of 5 minutes, a long tail, within 1 minute to 1 hour.
        seconds = min(3600.0, max(60.0, rng.lognormvariate(math.log(300), 0.8)))
        return math.ceil(seconds / tick) * tick

    queued = [owner for owner, n in zip(heavy, counts, strict=True) for _ in range(n)]
    rng.shuffle(queued)  # the big owners' submissions interleave
    jobs = [Job(i, owner, 0.0, duration()) for i, owner in enumerate(queued, 1)]
    # The late single builds arrive while about the first 80% of the backlog drains.
    horizon = 0.8 * sum(j.duration for j in jobs) / slots
    arrivals = sorted(math.ceil(rng.uniform(tick, horizon) / tick) * tick for _ in single)
    for at, owner in zip(arrivals, rng.sample(single, len(single)), strict=True):
        jobs.append(Job(len(jobs) + 1, owner, at, duration()))
    return Workload(tuple(jobs), frozenset(single))


def fifo_starts(jobs: Sequence[Job], slots: int) -> dict[int, float]:
    """When each job would start under plain FIFO (submit order) through `slots` slots."""
    free = [0.0] * slots  # a heap of the moments each slot is free again
    starts: dict[int, float] = {}
    for job in sorted(jobs, key=lambda j: (j.submit, j.build_id)):
        start = max(heapq.heappop(free), job.submit)
        starts[job.build_id] = start
        heapq.heappush(free, start + job.duration)
    return starts


# -- the store and runner the scheduler is driven with ----------------------------------


class MemoryStore:
    """The store calls the scheduler makes, in memory, under the real transition table."""

    def __init__(self) -> None:
        self.tasks: dict[TaskKey, BuildState] = {}
        self.owners: dict[int, str] = {}

    def add(self, job: Job) -> Build:
        self.tasks[TaskKey(job.build_id, CHROOT)] = S.PENDING
        self.owners[job.build_id] = job.owner
        return self.build(job.build_id)

    def build(self, build_id: int) -> Build:
        key = TaskKey(build_id, CHROOT)
        return Build(
            id=build_id,
            project_id=1,
            owner=self.owners[build_id],
            project="p",
            submitter=self.owners[build_id],
            source_type=SourceType.UPLOAD,
            source={},
            package_name="pkg",
            package_version="1-1",
            srpm_name="pkg-1-1.src.rpm",
            source_state=S.SUCCEEDED,
            canceled=False,
            timeout=18000,
            submitted_on=datetime.now(UTC),
            started_on=None,
            ended_on=None,
            tasks=(BuildTask(build_id, CHROOT, self.tasks[key]),),
        )

    def _move(self, build_id: int, chroot: str, state: BuildState) -> bool:
        key = TaskKey(build_id, chroot)
        if self.tasks.get(key) not in TASK_FROM.get(state, frozenset()):
            return False
        self.tasks[key] = state
        return True

    # what the scheduler calls
    async def unfinished_graph(self) -> list[dict[str, object]]:
        return [
            {
                "build_id": key.build_id,
                "chroot": key.chroot,
                "state": state,
                "owner": self.owners[key.build_id],
                "source_state": S.SUCCEEDED,
                "source_type": SourceType.UPLOAD,
                "priority": 0,
            }
            for key, state in self.tasks.items()
            if not state.finished
        ]

    async def unfinished_deps(self) -> list[dict[str, object]]:
        return []  # independent builds: no chains in this queue

    async def deps_of_build(self, build_id: int) -> list[dict[str, object]]:
        return []

    async def set_task_state(self, build_id: int, chroot: str, state: BuildState) -> bool:
        return self._move(build_id, chroot, state)

    async def skip_task(self, build_id: int, chroot: str, reason: str) -> bool:
        return self._move(build_id, chroot, S.SKIPPED)

    async def skip_orphan_sources(self) -> list[int]:
        return []  # every build's source is uploaded: no source steps in this queue

    # what the runner calls
    async def start_task(self, build_id: int, chroot: str, state: BuildState) -> None:
        if not self._move(build_id, chroot, state):
            raise RuntimeError(f"task {build_id}/{chroot} may not start")

    async def finish_task(self, build_id: int, chroot: str, state: BuildState) -> bool:
        return self._move(build_id, chroot, state)


@dataclass
class SimulatedRunner:
    """Each task takes a VM slot on a host, 'runs' for its duration, and succeeds."""

    store: MemoryStore
    durations: Mapping[int, float]
    hosts: int
    host_slots: int
    total: int
    done: asyncio.Event = field(default_factory=asyncio.Event)
    starts: Counter[TaskKey] = field(default_factory=Counter)
    started_at: dict[int, float] = field(default_factory=dict)
    free: list[int] = field(default_factory=list)
    busy: int = 0
    peak_busy: int = 0
    overused: int = 0  # starts that found no free slot on any host
    finished: int = 0
    last_end: float = 0.0

    def __post_init__(self) -> None:
        self.free = [self.host_slots] * self.hosts

    async def run(self, key: TaskKey) -> BuildState:
        now = asyncio.get_running_loop().time()
        self.starts[key] += 1
        self.started_at[key.build_id] = now
        # The pool's placement: the host with the most free slots.
        host = max(range(self.hosts), key=self.free.__getitem__)
        if self.free[host] <= 0:
            self.overused += 1
        self.free[host] -= 1
        self.busy += 1
        self.peak_busy = max(self.peak_busy, self.busy)
        try:
            await self.store.start_task(key.build_id, key.chroot, S.RUNNING)
            await asyncio.sleep(self.durations[key.build_id])
            await self.store.finish_task(key.build_id, key.chroot, S.SUCCEEDED)
        finally:
            self.free[host] += 1
            self.busy -= 1
        self.finished += 1
        self.last_end = asyncio.get_running_loop().time()
        if self.finished == self.total:
            self.done.set()
        return S.SUCCEEDED


class TimedScheduler(Scheduler):
    """The real scheduler, with its passes timed in wall time and its graph's load traced."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dispatch_s: list[float] = []
        self.dispatch_queued: list[int] = []  # the graph's size at each dispatch pass
        self.promote_s: list[float] = []
        self.graph_bytes = 0
        self.graph_peak_bytes = 0

    async def _load(self) -> None:
        tracemalloc.start()
        try:
            await super()._load()
            self.graph_bytes, self.graph_peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    async def _promote(self) -> None:
        began = time.perf_counter()
        await super()._promote()
        self.promote_s.append(time.perf_counter() - began)

    def _dispatch(self) -> None:
        queued = len(self.graph.nodes)
        began = time.perf_counter()
        super()._dispatch()
        self.dispatch_s.append(time.perf_counter() - began)
        self.dispatch_queued.append(queued)


# -- one run -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    starts: Mapping[TaskKey, int]
    waits: Mapping[int, float]  # build id -> seconds from submit to start
    fifo_waits: Mapping[int, float]
    drain_s: float
    fifo_drain_s: float
    peak_busy: int
    overused: int
    dispatch_s: tuple[float, ...]
    dispatch_queued: tuple[int, ...]
    promote_s: tuple[float, ...]
    graph_bytes: int
    graph_peak_bytes: int
    queued_at_load: int
    wall_s: float


async def _drive(work: Workload, slots: int, hosts: int) -> Outcome:
    loop = asyncio.get_running_loop()
    store = MemoryStore()
    late = [j for j in work.jobs if j.submit > 0]
    for job in work.jobs:
        if job.submit == 0:
            store.add(job)
    runner = SimulatedRunner(
        store,
        {j.build_id: j.duration for j in work.jobs},
        hosts,
        math.ceil(slots / hosts),
        len(work.jobs),
    )
    sched = TimedScheduler(store, runner, slots)
    began = time.perf_counter()
    loop_task = asyncio.create_task(sched.run(), name="scheduler")
    for job in late:
        await asyncio.sleep(job.submit - loop.time())
        await sched.submit(store.add(job))
    await runner.done.wait()
    await asyncio.sleep(1)  # let the last settles run
    wall = time.perf_counter() - began
    loop_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop_task
    if sched.graph.nodes:
        raise RuntimeError(f"{len(sched.graph.nodes)} tasks left in the graph")
    submit = {j.build_id: j.submit for j in work.jobs}
    fifo = fifo_starts(work.jobs, slots)
    return Outcome(
        starts=dict(runner.starts),
        waits={b: at - submit[b] for b, at in runner.started_at.items()},
        fifo_waits={b: at - submit[b] for b, at in fifo.items()},
        drain_s=runner.last_end,
        fifo_drain_s=max(fifo[j.build_id] + j.duration for j in work.jobs),
        peak_busy=runner.peak_busy,
        overused=runner.overused,
        dispatch_s=tuple(sched.dispatch_s),
        dispatch_queued=tuple(sched.dispatch_queued),
        promote_s=tuple(sched.promote_s),
        graph_bytes=sched.graph_bytes,
        graph_peak_bytes=sched.graph_peak_bytes,
        queued_at_load=len(work.jobs) - len(late),
        wall_s=wall,
    )


def simulate(work: Workload, slots: int, hosts: int) -> Outcome:
    """Run the real scheduler over `work` on a simulated clock."""
    with asyncio.Runner(loop_factory=SimulatedLoop) as runner:
        return runner.run(_drive(work, slots, hosts))


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile by nearest rank."""
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]


def single_waits(work: Workload, waits: Mapping[int, float]) -> list[float]:
    """The waits of the one-build owners' builds."""
    return [waits[j.build_id] for j in work.jobs if j.owner in work.one_build_owners]


# -- the report ------------------------------------------------------------------------


def by_queue(out: Outcome, total: int) -> str:
    """Median dispatch pass in each quarter of the queue's size: how the cost grows with it."""
    parts = []
    for low, high in ((0.75, 1.01), (0.5, 0.75), (0.25, 0.5), (0.0, 0.25)):
        ms = [
            s * 1000
            for s, n in zip(out.dispatch_s, out.dispatch_queued, strict=True)
            if low * total <= n < high * total
        ]
        if ms:
            parts.append(
                f"{low * total:.0f}-{min(high, 1.0) * total:.0f}: "
                f"{statistics.median(ms):.2f} ms ({len(ms)})"
            )
    return "; ".join(parts)


def report(work: Workload, out: Outcome, slots: int, hosts: int, tick: float) -> str:
    owners = Counter(j.owner for j in work.jobs)
    top = owners.most_common(3)
    started = sum(out.starts.values())
    fair = single_waits(work, out.waits)
    fifo = single_waits(work, out.fifo_waits)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ms = [s * 1000 for s in out.dispatch_s]
    promote_ms = [s * 1000 for s in out.promote_s]
    print(
        f"queue: {len(work.jobs)} tasks from {len(owners)} owners "
        f"({len(work.one_build_owners)} with one build; largest "
        + ", ".join(f"{n}" for _, n in top)
        + f"); {out.queued_at_load} queued at start; {slots} slots on {hosts} hosts; "
        f"simulated clock, {tick:g} s grid"
    )
    print(
        f"dispatch passes: {len(ms)}, median {statistics.median(ms):.2f} ms, "
        f"p99 {pct(ms, 99):.2f} ms, max {max(ms):.2f} ms; "
        f"{sum(out.dispatch_s) / started * 1e6:.0f} us per task started ({started} starts)"
    )
    print("dispatch pass by tasks in the graph: " + by_queue(out, len(work.jobs)))
    print(
        f"promotion passes (one per settled task and per loop wake): {len(promote_ms)}, "
        f"median {statistics.median(promote_ms):.2f} ms, p99 {pct(promote_ms, 99):.2f} ms"
    )
    # In real time builds end at scattered moments, each followed by its own
    # promotion and dispatch pass (the grid above lets some share one).
    ends_per_s = len(work.jobs) / out.drain_s
    per_end = statistics.median(ms) + statistics.median(promote_ms)
    print(
        f"in real time, {ends_per_s:.2f} task ends/s with one pass each: "
        f"{ends_per_s * per_end / 10:.1f}% of one core at the median pass"
    )
    print(
        f"graph memory at load: {out.graph_bytes / 2**20:.1f} MiB for {out.queued_at_load} "
        f"tasks ({out.graph_bytes / max(1, out.queued_at_load):.0f} B each; "
        f"peak while loading {out.graph_peak_bytes / 2**20:.1f} MiB); "
        f"process peak RSS {rss_mib:.0f} MiB"
    )
    print(
        f"drain: {out.drain_s / 3600:.2f} h simulated (FIFO {out.fifo_drain_s / 3600:.2f} h); "
        f"peak busy slots {out.peak_busy}/{slots}, over-used {out.overused}; "
        f"wall {out.wall_s:.1f} s"
    )
    print(
        f"one-build owners' wait, fair share vs FIFO: longest {max(fair):.0f} s vs "
        f"{max(fifo):.0f} s, median {statistics.median(fair):.0f} s vs "
        f"{statistics.median(fifo):.0f} s"
    )
    ratio = max(fifo) / max(fair) if max(fair) > 0 else math.inf
    return (
        f"scheduler tasks={len(work.jobs)} owners={len(owners)} slots={slots} "
        f"pass_median_ms={statistics.median(ms):.2f} pass_p99_ms={pct(ms, 99):.2f} "
        f"start_us={sum(out.dispatch_s) / started * 1e6:.0f} "
        f"graph_mib={out.graph_bytes / 2**20:.1f} drain_h={out.drain_s / 3600:.2f} "
        f"one_build_wait_s={max(fair):.0f} fifo_wait_s={max(fifo):.0f} ratio={ratio:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=1_000)
    parser.add_argument("--slots", type=int, default=1_000)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--tick", type=float, default=10.0, help="clock grid in seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--small", action="store_true", help="a quick run: 5,000 tasks, 100 owners, 50 slots"
    )
    args = parser.parse_args()
    if args.small:
        args.tasks, args.owners, args.slots, args.hosts = 5_000, 100, 50, 5
    work = workload(args.tasks, args.owners, args.slots, args.tick, args.seed)
    out = simulate(work, args.slots, args.hosts)
    print(report(work, out, args.slots, args.hosts, args.tick))


if __name__ == "__main__":
    main()
