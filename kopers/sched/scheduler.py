"""The scheduler loop: owns the in-memory task graph and the running tasks.

Postgres is the truth. At start-up the graph is rebuilt from the unfinished
task rows and their dependency edges; tasks that were starting or running
when the process died go back to pending and run again on a fresh VM. After
that, every change goes to the database first and to the graph second.

The moment a task ends, its dependents are moved on (pending, or skipped
when it failed) and the loop wakes: the next step of a chain starts as soon
as the previous step's packages are published, with no polling.
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

_DEAD = (BuildState.FAILED, BuildState.CANCELED, BuildState.SKIPPED)


class TaskRunner(Protocol):
    async def run(self, key: TaskKey) -> BuildState:
        """Run one task to its end, record it in the store, and return its final state."""
        ...


def source_node(build_id: int, owner: str, source_type: str, priority: int) -> Node:
    """The source step of a build: fetching (URL) or building (SCM) its SRPM."""
    return Node(
        TaskKey(build_id, SOURCE),
        owner,
        BuildState.PENDING,
        priority,
        vm=SourceType(source_type).in_vm,
    )


class Scheduler:
    def __init__(
        self, store: Store, runner: TaskRunner, slots: int, owner_cap: int | None = None
    ) -> None:
        self.store = store
        self.runner = runner
        self.slots = slots
        self.owner_cap = owner_cap
        self.graph = TaskGraph()
        self.running: dict[TaskKey, asyncio.Task[BuildState]] = {}
        self.last_served: dict[str, int] = {}
        self._served = 0
        self._wake = asyncio.Event()
        self._promoting = asyncio.Lock()
        self._loaded = asyncio.Event()
        self._settling: set[asyncio.Task[None]] = set()
        self._stopping = False

    # called by the API -----------------------------------------------------

    async def submit(self, build: Build) -> None:
        """Add a committed build's unfinished tasks to the graph."""
        if not self._loaded.is_set():
            return  # the rows are committed; loading the graph will find them
        deps: dict[str, set[TaskKey]] = {}
        for row in await self.store.deps_of_build(build.id):
            if row["dep_state"] not in (None, BuildState.SUCCEEDED):
                deps.setdefault(row["chroot"], set()).add(
                    TaskKey(row["dep_build_id"], row["dep_chroot"])
                )
        priority = build.priority
        source: frozenset[TaskKey] = frozenset()
        if build.source_state != BuildState.SUCCEEDED:
            node = source_node(build.id, build.owner, build.source_type, priority)
            self.graph.add(node)
            source = frozenset({node.key})
        for task in build.tasks:
            if task.state.finished:
                continue
            key = TaskKey(build.id, task.chroot)
            self.graph.add(
                Node(
                    key,
                    build.owner,
                    task.state,
                    priority,
                    frozenset(deps.get(task.chroot, ())) | source,
                )
            )
        # Every task skipped at submission (a dependency had failed): no source.
        await self._drop_orphan_source(build.id)
        self.wake()

    async def cancel(self, build_id: int) -> None:
        """Stop a build's running tasks (their VMs are destroyed) and drop its nodes."""
        for key in self.graph.keys_of_build(build_id):
            task = self.running.get(key)
            if task is not None:
                task.cancel()
            else:
                await self._doom_dependents(key, BuildState.CANCELED)
                self.graph.remove(key)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    # the loop ----------------------------------------------------------------

    async def run(self) -> None:
        self._stopping = False
        await self._load()
        try:
            while True:
                self._wake.clear()
                await self._promote()
                self._dispatch()
                await self._wake.wait()
        finally:
            # Stopping is not canceling: the interrupted tasks and their
            # dependents stay as Postgres has them and resume at the next start.
            self._stopping = True
            self._loaded.clear()
            for task in self.running.values():
                task.cancel()
            if self.running:
                await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def _load(self) -> None:
        """Rebuild the graph from Postgres; interrupted tasks become pending again."""
        self.graph = TaskGraph()
        rows = await self.store.unfinished_graph()
        deps: dict[TaskKey, set[TaskKey]] = {}
        dead: dict[TaskKey, str] = {}
        for d in await self.store.unfinished_deps():
            key = TaskKey(d["build_id"], d["chroot"])
            if d["dep_state"] in _DEAD:
                dep = TaskKey(d["dep_build_id"], d["dep_chroot"])
                dead[key] = (
                    f"dependency build {dep.build_id} {d['dep_state']} on chroot {dep.chroot}"
                )
            elif d["dep_state"] not in (None, BuildState.SUCCEEDED):
                deps.setdefault(key, set()).add(TaskKey(d["dep_build_id"], d["dep_chroot"]))
        sources: dict[int, Node] = {}
        for row in rows:
            key = TaskKey(row["build_id"], row["chroot"])
            state = BuildState(row["state"])
            if key in dead and await self.store.skip_task(key.build_id, key.chroot, dead[key]):
                continue
            if state in (BuildState.STARTING, BuildState.RUNNING, BuildState.IMPORTING):
                log.info("task %s was %s when Kopers stopped; it runs again", key, state)
                if not await self.store.set_task_state(
                    key.build_id, key.chroot, BuildState.PENDING
                ):
                    continue  # it ended meanwhile (a cancel): nothing to resume
                state = BuildState.PENDING
            node_deps = set(deps.get(key, ()))
            if (
                row["source_state"] != BuildState.SUCCEEDED
                and row["source_type"] != SourceType.UPLOAD
            ):
                source = sources.setdefault(
                    key.build_id,
                    source_node(key.build_id, row["owner"], row["source_type"], row["priority"]),
                )
                node_deps.add(source.key)
            self.graph.add(Node(key, row["owner"], state, row["priority"], frozenset(node_deps)))
        self.graph.add_all(sources.values())
        # Builds whose tasks have all ended (some just now, behind a dead
        # dependency) while their source step never began: it never will.
        for build_id in await self.store.skip_orphan_sources():
            log.info("build %d: nothing is left to build; its source step is skipped", build_id)
        self._loaded.set()
        log.info("scheduler loaded %d unfinished tasks", len(self.graph.nodes))

    async def _promote(self) -> None:
        """Waiting tasks whose dependencies have all succeeded become pending.

        One promotion at a time: the loop and every task that settles promote,
        and a second pass over the same waiting task would find it pending in
        the database already and take that for a cancel, dropping the node, so
        that what waits on it would start too early.
        """
        async with self._promoting:
            for key in self.graph.promotable():
                if await self.store.set_task_state(key.build_id, key.chroot, BuildState.PENDING):
                    self.graph.set_state(key, BuildState.PENDING)
                else:
                    # Canceled while it waited: the stored state wins; forget the node.
                    self.graph.remove(key)

    def _dispatch(self) -> None:
        ready = [n for n in self.graph.ready() if n.key not in self.running]
        # Steps that need no VM (downloading an SRPM) take no slot.
        for node in [n for n in ready if not n.vm]:
            self._start(node)
        vm_ready = [n for n in ready if n.vm]
        busy = [k for k in self.running if k in self.graph.nodes and self.graph.nodes[k].vm]
        free = self.slots - len(busy)
        if free <= 0 or not vm_ready:
            return
        per_owner = Counter(self.graph.nodes[k].owner for k in busy)
        for node in policy.pick(vm_ready, free, per_owner, self.last_served, self.owner_cap):
            self._start(node)

    def _start(self, node: Node) -> None:
        self.graph.set_state(node.key, BuildState.STARTING)
        self._served += 1
        self.last_served[node.owner] = self._served
        task = asyncio.create_task(self.runner.run(node.key), name=f"task {node.key}")
        self.running[node.key] = task
        task.add_done_callback(functools.partial(self._finished, node.key))

    def _finished(self, key: TaskKey, task: asyncio.Task[BuildState]) -> None:
        self.running.pop(key, None)
        if task.cancelled() and self._stopping:
            return
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
        if key in self.graph.nodes:
            if state == BuildState.SUCCEEDED:
                # Drop the node first: dependents see a finished dependency as done.
                self.graph.remove(key)
                await self._promote()
            else:
                await self._doom_dependents(key, state)
                self.graph.remove(key)
        self.wake()

    async def _doom_dependents(self, key: TaskKey, state: BuildState) -> None:
        doomed = self.graph.doomed_by(key)
        for dep in doomed:
            what = "source" if key.is_source else f"chroot {key.chroot}"
            reason = f"dependency build {key.build_id} {state} on {what}"
            await self.store.skip_task(dep.build_id, dep.chroot, reason)
            self.graph.remove(dep)
        for build_id in sorted({dep.build_id for dep in doomed} - {key.build_id}):
            await self._drop_orphan_source(build_id)

    async def _drop_orphan_source(self, build_id: int) -> None:
        """A source step no task waits for any more is skipped, not run: it would
        take a VM for nothing, and the build would show its state until it did."""
        key = self.graph.orphan_source(build_id)
        if key is not None and key not in self.running:
            await self.store.set_source_state(build_id, BuildState.SKIPPED)
            self.graph.remove(key)
