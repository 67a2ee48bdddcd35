"""The task graph and the scheduling policy (pure)."""

import pytest

from kopers.models import BuildState as S
from kopers.sched import policy
from kopers.sched.graph import SOURCE, IllegalTransition, Node, TaskGraph, TaskKey


def node(
    build: int,
    chroot: str = "c1",
    owner: str = "alice",
    state: S = S.PENDING,
    deps=(),
    priority: int = 0,
) -> Node:
    return Node(TaskKey(build, chroot), owner, state, priority, frozenset(deps))


def test_ready_needs_pending_and_succeeded_deps() -> None:
    g = TaskGraph()
    src = TaskKey(1, SOURCE)
    g.add(Node(src, "alice", S.PENDING))
    g.add(node(1, "c1", state=S.WAITING, deps=[src]))
    g.add(node(2, "c1"))
    assert g.promotable() == []
    assert {n.key for n in g.ready()} == {src, TaskKey(2, "c1")}
    g.set_state(src, S.STARTING)
    g.set_state(src, S.RUNNING)
    g.set_state(src, S.SUCCEEDED)
    assert g.promotable() == [TaskKey(1, "c1")]
    g.remove(src)  # a finished dependency leaves the graph and still counts as done
    assert g.promotable() == [TaskKey(1, "c1")]
    g.set_state(TaskKey(1, "c1"), S.PENDING)
    assert TaskKey(1, "c1") in {n.key for n in g.ready()}


def test_illegal_transition_is_refused() -> None:
    g = TaskGraph()
    g.add(node(1, state=S.WAITING))
    with pytest.raises(IllegalTransition):
        g.set_state(TaskKey(1, "c1"), S.SUCCEEDED)


def test_failure_dooms_transitive_dependents_only() -> None:
    g = TaskGraph()
    a, b, c, other = TaskKey(1, "x"), TaskKey(2, "x"), TaskKey(3, "x"), TaskKey(4, "x")
    g.add(node(1, "x"))
    g.add(node(2, "x", state=S.WAITING, deps=[a]))
    g.add(node(3, "x", state=S.WAITING, deps=[b]))
    g.add(node(4, "x"))
    assert g.doomed_by(a) == [b, c]
    assert other not in g.doomed_by(a)


def test_removed_dependency_counts_as_done() -> None:
    g = TaskGraph()
    a = TaskKey(1, "x")
    g.add(node(1, "x"))
    g.add(node(2, "x", deps=[a]))
    assert [n.key for n in g.ready()] == [a]
    g.remove(a)
    assert [n.key for n in g.ready()] == [TaskKey(2, "x")]


def test_policy_round_robin_between_owners() -> None:
    ready = [node(i, owner="x") for i in range(1, 301)] + [node(400, owner="y")]
    chosen = policy.pick(ready, free_slots=2, running_per_owner={})
    assert {n.owner for n in chosen} == {"x", "y"}
    # With one slot and x already busy, y's single build goes next.
    chosen = policy.pick(ready, free_slots=1, running_per_owner={"x": 1})
    assert [n.key.build_id for n in chosen] == [400]
    # A slot just freed by x (nobody running): y, served less recently, still goes first.
    chosen = policy.pick(ready, free_slots=1, running_per_owner={}, last_served={"x": 5})
    assert [n.key.build_id for n in chosen] == [400]


def test_policy_priority_and_cap() -> None:
    ready = [node(1, priority=5), node(2, priority=0), node(3, owner="bob")]
    chosen = policy.pick(ready, free_slots=3, running_per_owner={}, owner_cap=1)
    assert [n.key.build_id for n in chosen] == [2, 3]
    background = [node(1, owner="x", priority=1), node(2, owner="y")]
    assert [n.key.build_id for n in policy.pick(background, 1, {})] == [2]
