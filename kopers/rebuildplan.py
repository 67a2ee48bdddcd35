"""Which packages to rebuild after others changed, and in which order. Pure.

Input, per chroot: every package's newest build there, with what its binary
RPMs provide and what its source package requires (its BuildRequires), both
read from the chroot's repository index. Package Y depends on X in a chroot
when one of Y's BuildRequires is among X's provides there. Everything that
depends, directly or through others, on a changed package is rebuilt, in
the chroots where that holds; the changed packages themselves are not (they
were just built). Each step waits for the steps it depends on, so it builds
against their new results.

Cycles (X needs Y and Y needs X) have no order: the planner breaks each one
by dropping, inside every strongly connected group, the dependencies that
point from a later name to an earlier one. The same input always gives the
same plan, and the dropped edges are reported so the chain can log them.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MAX_REASONS = 8  # provides named per dependency in a step's reason
# Capabilities looked at in one plan (provides indexed, requires matched to
# providers): a project whose packages all provide and require the same
# thousands of names would otherwise cost time and memory with their square.
MAX_WORK = 2_000_000


class PlanTooLarge(Exception):
    """The packages' dependencies are too many to plan; nothing is rebuilt."""


@dataclass(frozen=True, slots=True)
class Latest:
    """A package's newest build in one chroot, as its repository shows it."""

    package: str
    build_id: int
    provides: frozenset[str]  # capability names and file paths its binary RPMs provide
    build_requires: frozenset[str]  # capability names its source package requires
    recency: tuple[int, ...] = ()  # larger: newer source (a rebuild step builds the newest)


@dataclass(frozen=True, slots=True)
class Because:
    """One reason a step is in the chain: `package` provides what it builds with."""

    package: str
    chroot: str
    provides: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Step:
    package: str
    source_build: int  # the build whose source package is built again
    chroots: tuple[str, ...]
    after: tuple[str, ...]  # packages of this plan the step waits for
    because: tuple[Because, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]
    broken: tuple[tuple[str, str], ...]  # (needed, needing) dependencies dropped for cycles

    @property
    def empty(self) -> bool:
        return not self.steps


Edges = dict[str, dict[str, dict[str, tuple[str, ...]]]]  # needed -> needing -> chroot -> provides


def plan(changed: Mapping[str, Iterable[str]], chroots: Mapping[str, Sequence[Latest]]) -> Plan:
    """The rebuilds that follow from the packages `changed` per chroot, in dependency order."""
    edges: Edges = defaultdict(lambda: defaultdict(dict))
    members: dict[str, set[str]] = defaultdict(set)  # package -> chroots it is rebuilt in
    origins: dict[str, set[str]] = defaultdict(set)  # chroot -> packages that changed there
    sources: dict[str, Latest] = {}
    work = [MAX_WORK]  # what the plan may still look at, shared by every chroot
    for chroot, latest in sorted(chroots.items()):
        triggers = frozenset(changed.get(chroot, ()))
        if not triggers:
            continue
        origins[chroot] = set(triggers)
        by_name = {item.package: item for item in latest}
        chroot_edges = _edges(by_name.values(), work)
        for package in _reachable(triggers, chroot_edges) - triggers:
            members[package].add(chroot)
            candidate = by_name[package]
            known = sources.get(package)
            if known is None or _newer(candidate, known):
                sources[package] = candidate
        for needed, needing in chroot_edges.items():
            for name, provides in needing.items():
                edges[needed][name][chroot] = provides
    order, broken = _order(set(members), edges)
    steps = []
    for package in order:
        after = sorted(
            needed
            for needed in members
            if package in edges[needed] and (needed, package) not in broken
        )
        because = tuple(
            Because(needed, chroot, provides)
            for needed in sorted(edges)
            if (needed, package) not in broken
            for chroot, provides in sorted(edges[needed].get(package, {}).items())
            if chroot in members[package]
            and (needed in origins[chroot] or chroot in members.get(needed, ()))
        )
        steps.append(
            Step(
                package,
                sources[package].build_id,
                tuple(sorted(members[package])),
                tuple(after),
                because,
            )
        )
    return Plan(tuple(steps), tuple(sorted(broken)))


def _newer(a: Latest, b: Latest) -> bool:
    return (a.recency, a.build_id) > (b.recency, b.build_id)


def _edges(latest: Iterable[Latest], work: list[int]) -> dict[str, dict[str, tuple[str, ...]]]:
    """needed -> needing -> the capabilities that make the dependency, in one chroot.

    `work[0]` is the budget left; PlanTooLarge when it runs out. Requirements
    are matched in name order, so the (at most MAX_REASONS) reasons kept for
    a dependency are the same whatever the order of the input.
    """
    items = list(latest)
    providers: dict[str, list[str]] = defaultdict(list)
    for item in items:
        _spend(work, len(item.provides))
        for capability in item.provides:
            providers[capability].append(item.package)
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        _spend(work, len(item.build_requires))
        for capability in sorted(item.build_requires):
            found = providers.get(capability, ())
            _spend(work, len(found))
            for provider in found:
                reasons = out[provider][item.package]
                if provider != item.package and len(reasons) < MAX_REASONS:
                    reasons.append(capability)
    return {
        needed: {name: tuple(caps) for name, caps in needing.items() if caps}
        for needed, needing in out.items()
    }


def _spend(work: list[int], amount: int) -> None:
    work[0] -= amount
    if work[0] < 0:
        raise PlanTooLarge(
            f"the packages provide and require more than {MAX_WORK} capabilities in all"
        )


def _reachable(start: frozenset[str], edges: Mapping[str, Mapping[str, object]]) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for nxt in edges.get(todo.pop(), {}):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _order(nodes: set[str], edges: Edges) -> tuple[list[str], set[tuple[str, str]]]:
    """A topological order of `nodes`, breaking cycles; and the edges dropped for it."""
    succ = {n: sorted(m for m in edges.get(n, {}) if m in nodes and m != n) for n in nodes}
    broken: set[tuple[str, str]] = set()
    for group in _components(sorted(nodes), succ):
        if len(group) > 1:
            for u in group:
                broken.update((u, v) for v in succ[u] if v in group and v < u)
    indegree = dict.fromkeys(nodes, 0)
    for u in nodes:
        for v in succ[u]:
            if (u, v) not in broken:
                indegree[v] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        u = heapq.heappop(ready)
        order.append(u)
        for v in succ[u]:
            if (u, v) not in broken:
                indegree[v] -= 1
                if indegree[v] == 0:
                    heapq.heappush(ready, v)
    return order, broken


def _components(nodes: list[str], succ: Mapping[str, list[str]]) -> list[set[str]]:
    """Strongly connected components (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            children = succ[node]
            if i < len(children):
                work.append((node, i + 1))
                child = children[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups
