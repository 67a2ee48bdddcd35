"""The task graph: which tasks exist, what they wait for, and which are ready.

Pure and synchronous. A node is one unit of work: a chroot task of a build,
or the build's source step (fetching an SRPM from a URL) that its chroot
tasks wait for. A node is ready when it is pending and everything it depends
on has succeeded. When a node fails or is canceled, the nodes that depend on
it can never run; the graph says which, so the caller can mark them skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from kopers.models import BuildState

SOURCE = "srpm-build"  # the chroot name of a build's source step, as in Copr's URLs

S = BuildState
# Legal transitions. A started task may go back to pending: that is a retry
# on a fresh VM after an infrastructure failure, or a restart after a crash.
TRANSITIONS: dict[BuildState, frozenset[BuildState]] = {
    S.WAITING: frozenset({S.PENDING, S.SKIPPED, S.CANCELED}),
    S.PENDING: frozenset({S.STARTING, S.SKIPPED, S.CANCELED, S.FAILED}),
    S.STARTING: frozenset({S.RUNNING, S.PENDING, S.FAILED, S.CANCELED}),
    S.RUNNING: frozenset({S.IMPORTING, S.SUCCEEDED, S.FAILED, S.CANCELED, S.PENDING}),
    S.IMPORTING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELED, S.PENDING}),
}


class IllegalTransition(ValueError):
    pass


@dataclass(frozen=True, slots=True, order=True)
class TaskKey:
    build_id: int
    chroot: str

    @property
    def is_source(self) -> bool:
        return self.chroot == SOURCE

    def __str__(self) -> str:
        return f"{self.build_id}/{self.chroot}"


@dataclass(frozen=True, slots=True)
class Node:
    key: TaskKey
    owner: str
    state: BuildState
    priority: int = 0  # lower runs first; background builds get a higher number
    deps: frozenset[TaskKey] = frozenset()
    vm: bool = True  # needs a builder VM slot (a URL download does not)


def check_transition(old: BuildState, new: BuildState) -> None:
    if new not in TRANSITIONS.get(old, frozenset()):
        raise IllegalTransition(f"task cannot go from {old} to {new}")


class TaskGraph:
    """Nodes by key, plus the reverse edges needed to find dependents."""

    def __init__(self) -> None:
        self.nodes: dict[TaskKey, Node] = {}
        self._dependents: dict[TaskKey, set[TaskKey]] = {}

    def add(self, node: Node) -> None:
        self.nodes[node.key] = node
        for dep in node.deps:
            self._dependents.setdefault(dep, set()).add(node.key)

    def add_all(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            self.add(node)

    def get(self, key: TaskKey) -> Node | None:
        return self.nodes.get(key)

    def set_state(self, key: TaskKey, state: BuildState) -> Node:
        node = self.nodes[key]
        if node.state != state:
            check_transition(node.state, state)
        node = replace(node, state=state)
        self.nodes[key] = node
        return node

    def ready(self) -> list[Node]:
        """Pending nodes whose dependencies have all succeeded (or left the graph done)."""
        return [
            n
            for n in self.nodes.values()
            if n.state == BuildState.PENDING and all(self._dep_done(d) for d in n.deps)
        ]

    def _dep_done(self, dep: TaskKey) -> bool:
        node = self.nodes.get(dep)
        # A dependency that is no longer in the graph has finished successfully:
        # finished nodes are dropped, and failed ones take their dependents with them.
        return node is None or node.state == BuildState.SUCCEEDED

    def promotable(self) -> list[TaskKey]:
        """Waiting nodes whose dependencies have all succeeded: they should be pending."""
        return sorted(
            n.key
            for n in self.nodes.values()
            if n.state == BuildState.WAITING and all(self._dep_done(d) for d in n.deps)
        )

    def doomed_by(self, key: TaskKey) -> list[TaskKey]:
        """Every unfinished node that (transitively) depends on `key`."""
        seen: set[TaskKey] = set()
        stack = list(self._dependents.get(key, ()))
        while stack:
            k = stack.pop()
            node = self.nodes.get(k)
            if k in seen or node is None or node.state.finished:
                continue
            seen.add(k)
            stack.extend(self._dependents.get(k, ()))
        return sorted(seen)

    def remove(self, key: TaskKey) -> None:
        node = self.nodes.pop(key, None)
        if node is None:
            return
        for dep in node.deps:
            deps = self._dependents.get(dep)
            if deps is not None:
                deps.discard(key)
                if not deps:
                    del self._dependents[dep]

    def orphan_source(self, build_id: int) -> TaskKey | None:
        """The build's source step if it has not begun and no task waits for it any more."""
        key = TaskKey(build_id, SOURCE)
        node = self.nodes.get(key)
        if node is None or node.state != BuildState.PENDING or self._dependents.get(key):
            return None
        return key

    def keys_of_build(self, build_id: int) -> list[TaskKey]:
        return sorted(k for k in self.nodes if k.build_id == build_id)
