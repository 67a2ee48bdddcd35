"""The scheduler loop: owns the in-memory task graph and the running tasks.

Postgres is the truth. At start-up the graph is rebuilt from the unfinished
task rows; tasks that were starting or running when the process died go back
to pending and run again on a fresh VM. After that, every change goes to the
database first and to the graph second.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from typing import Protocol

from kopers.db.store import Store
from kopers.models import Build, BuildState, SourceType
from kopers.sched import policy
from kopers.sched.graph import SOURCE, Node, TaskGraph, TaskKey

log = logging.getLogger(__name__)


class TaskRunner(Protocol):
    async def run(self, key: TaskKey) -> BuildState:
        """Run one task to its end, record it in the store, and return its final state."""
        ...


def nodes_for_build(build: Build) -> list[Node]:
    """The graph nodes of a freshly submitted build."""
    nodes: list[Node] = []
    deps: frozenset[TaskKey] = frozenset()
    if build.source_state != BuildState.SUCCEEDED:
        source = TaskKey(build.id, SOURCE)
        nodes.append(Node(source, build.owner, BuildState.PENDING))
        deps = frozenset({source})
    for task in build.tasks:
        nodes.append(Node(TaskKey(build.id, task.chroot), build.owner, task.state, deps=deps))
    return nodes


class Scheduler:
    def __init__(self, store: Store, runner: TaskRunner, slots: int) -> None:
        self.store = store
        self.runner = runner
        self.slots = slots
        self.graph = TaskGraph()
        self.running: dict[TaskKey, asyncio.Task[BuildState]] = {}
        self._wake = asyncio.Event()
        self._loaded = asyncio.Event()
        self._settling: set[asyncio.Task[None]] = set()

    # called by the API -----------------------------------------------------

    async def submit(self, build: Build) -> None:
        if not self._loaded.is_set():
            return  # the rows are committed; loading the graph will find them
        self.graph.add_all(nodes_for_build(build))
        self.wake()

    async def cancel(self, build_id: int) -> None:
        """Stop a build's running tasks (their VMs are destroyed) and drop its nodes."""
        for key in self.graph.keys_of_build(build_id):
            task = self.running.get(key)
            if task is not None:
                task.cancel()
            self.graph.remove(key)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def is_running(self, build_id: int) -> bool:
        return any(k.build_id == build_id for k in self.running)

    # the loop ----------------------------------------------------------------

    async def run(self) -> None:
        await self._load()
        try:
            while True:
                self._wake.clear()
                self._dispatch()
                await self._wake.wait()
        finally:
            for task in self.running.values():
                task.cancel()
            if self.running:
                await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def _load(self) -> None:
        """Rebuild the graph from Postgres; interrupted tasks become pending again."""
        self.graph = TaskGraph()
        rows = await self.store.unfinished_graph()
        sources: set[int] = set()
        for row in rows:
            build_id, chroot, state = row["build_id"], row["chroot"], BuildState(row["state"])
            if state in (BuildState.STARTING, BuildState.RUNNING, BuildState.IMPORTING):
                log.info(
                    "task %s/%s was %s when Kopers stopped; it runs again", build_id, chroot, state
                )
                await self.store.set_task_state(build_id, chroot, BuildState.PENDING)
                state = BuildState.PENDING
            deps: frozenset[TaskKey] = frozenset()
            if (
                row["source_state"] != BuildState.SUCCEEDED
                and row["source_type"] != SourceType.UPLOAD
            ):
                sources.add(build_id)
                deps = frozenset({TaskKey(build_id, SOURCE)})
            self.graph.add(Node(TaskKey(build_id, chroot), row["owner"], state, deps=deps))
        owners = {r["build_id"]: r["owner"] for r in rows}
        for build_id in sources:
            self.graph.add(Node(TaskKey(build_id, SOURCE), owners[build_id], BuildState.PENDING))
        self._loaded.set()
        log.info("scheduler loaded %d unfinished tasks", len(self.graph.nodes))

    def _dispatch(self) -> None:
        ready = [n for n in self.graph.ready() if n.key not in self.running]
        # Source steps only download a file on the host: they take no VM slot.
        for node in [n for n in ready if n.key.is_source]:
            self._start(node)
        vm_ready = [n for n in ready if not n.key.is_source]
        busy = [k for k in self.running if not k.is_source]
        free = self.slots - len(busy)
        if free <= 0 or not vm_ready:
            return
        per_owner = Counter(self.graph.nodes[k].owner for k in busy if k in self.graph.nodes)
        for node in policy.pick(vm_ready, free, per_owner):
            self._start(node)

    def _start(self, node: Node) -> None:
        self.graph.set_state(node.key, BuildState.STARTING)
        task = asyncio.create_task(self.runner.run(node.key), name=f"task {node.key}")
        self.running[node.key] = task
        task.add_done_callback(functools.partial(self._finished, node.key))

    def _finished(self, key: TaskKey, task: asyncio.Task[BuildState]) -> None:
        self.running.pop(key, None)
        if task.cancelled():
            state = BuildState.CANCELED
        elif task.exception() is not None:
            log.error("task %s crashed", key, exc_info=task.exception())
            state = BuildState.FAILED
        else:
            state = task.result()
        settle = asyncio.create_task(self._settle(key, state), name=f"settle {key}")
        self._settling.add(settle)  # keep a reference until it is done
        settle.add_done_callback(self._settling.discard)

    async def _settle(self, key: TaskKey, state: BuildState) -> None:
        """Move dependents on after a task ended, database first."""
        if key not in self.graph.nodes:
            self.wake()
            return
        if state == BuildState.SUCCEEDED:
            for dep in self.graph.unblocked_by(key):
                await self.store.set_task_state(dep.build_id, dep.chroot, BuildState.PENDING)
                self.graph.set_state(dep, BuildState.PENDING)
        else:
            for dep in self.graph.doomed_by(key):
                what = "source" if key.is_source else f"chroot {key.chroot}"
                reason = f"dependency build {key.build_id} {state} on {what}"
                await self.store.skip_task(dep.build_id, dep.chroot, reason)
                self.graph.remove(dep)
        self.graph.remove(key)
        self.wake()
