"""The rebuild planner: who depends on a change, in which order, and cycles."""

from __future__ import annotations

import itertools

import pytest

from kopers.rebuildplan import Because, Latest, PlanTooLarge, plan


def latest(package: str, build: int, provides: list[str], requires: list[str]) -> Latest:
    return Latest(package, build, frozenset(provides), frozenset(requires))


LIBS = [
    latest("a", 10, ["liba.so.2()(64bit)", "a-devel"], ["gcc"]),
    latest("b", 5, ["libb.so.1()(64bit)", "b-devel"], ["a-devel"]),
    latest("c", 6, ["c"], ["b-devel", "/usr/bin/make"]),
    latest("d", 7, ["d"], ["zlib-devel"]),
]


def test_dependents_follow_in_order_with_their_reasons() -> None:
    result = plan({"x": ["a"]}, {"x": LIBS})
    assert [s.package for s in result.steps] == ["b", "c"]
    b, c = result.steps
    assert (b.source_build, b.chroots, b.after) == (5, ("x",), ())
    assert b.because == (Because("a", "x", ("a-devel",)),)
    assert (c.source_build, c.after) == (6, ("b",))
    assert c.because == (Because("b", "x", ("b-devel",)),)
    assert result.broken == ()


def test_a_change_nothing_needs_plans_nothing() -> None:
    assert plan({"x": ["d"]}, {"x": LIBS}).empty
    assert plan({}, {"x": LIBS}).empty
    assert plan({"y": ["a"]}, {"x": LIBS}).empty  # changed where nothing is built


def test_a_file_dependency_counts_and_the_changed_package_is_not_rebuilt() -> None:
    tools = [
        latest("make", 1, ["/usr/bin/make", "make"], []),
        latest("c", 2, ["c"], ["/usr/bin/make"]),
        latest("self", 3, ["self-devel"], ["self-devel", "make"]),  # needs itself: no loop
    ]
    result = plan({"x": ["make", "self"]}, {"x": tools})
    assert [s.package for s in result.steps] == ["c"]
    assert result.steps[0].because == (Because("make", "x", ("/usr/bin/make",)),)


def test_each_chroot_counts_on_its_own() -> None:
    other = [latest("a", 11, ["a-devel"], []), latest("b", 8, ["b-devel"], [])]  # b needs nothing
    result = plan({"x": ["a"], "y": ["a"]}, {"x": LIBS, "y": other})
    assert [(s.package, s.chroots) for s in result.steps] == [("b", ("x",)), ("c", ("x",))]
    both = plan({"x": ["a"], "y": ["a"]}, {"x": LIBS, "y": [*LIBS[:2], latest("b", 9, [], [])]})
    # b is rebuilt where it depends on a (x only); its newest build is the source.
    assert next((s.package, s.chroots, s.source_build) for s in both.steps) == ("b", ("x",), 5)


def test_cycles_are_broken_the_same_way_whatever_the_input_order() -> None:
    ring = [
        latest("a", 1, ["a"], []),
        latest("p", 2, ["p"], ["a", "r"]),
        latest("q", 3, ["q"], ["p"]),
        latest("r", 4, ["r"], ["q"]),
    ]
    results = {plan({"x": ["a"]}, {"x": list(order)}) for order in itertools.permutations(ring)}
    assert len(results) == 1
    (result,) = results
    assert [s.package for s in result.steps] == ["p", "q", "r"]
    # Inside the cycle, the dependency pointing back to an earlier name is dropped.
    assert result.broken == (("r", "p"),)
    assert result.steps[0].after == ()  # p no longer waits for r
    assert all(b.package != "r" for b in result.steps[0].because)


def test_a_diamond_waits_for_both_sides() -> None:
    diamond = [
        latest("a", 1, ["a"], []),
        latest("l", 2, ["l"], ["a"]),
        latest("m", 3, ["m"], ["a"]),
        latest("top", 4, ["top"], ["l", "m"]),
    ]
    result = plan({"x": ["a"]}, {"x": diamond})
    assert [s.package for s in result.steps] == ["l", "m", "top"]
    assert result.steps[-1].after == ("l", "m")


@pytest.mark.parametrize("size", [50, 400])
def test_a_long_chain_is_planned_without_recursion(size: int) -> None:
    chain = [latest("p0000", 1, ["cap0"], [])] + [
        latest(f"p{i:04d}", i + 1, [f"cap{i}"], [f"cap{i - 1}"]) for i in range(1, size)
    ]
    result = plan({"x": ["p0000"]}, {"x": chain})
    assert [s.package for s in result.steps] == [f"p{i:04d}" for i in range(1, size)]


def test_packages_that_all_provide_and_need_everything_stop_the_plan() -> None:
    """80 packages sharing 10,000 capabilities: refused early, not planned for seconds."""
    names = frozenset(f"cap-{i:05d}" for i in range(10_000))
    crowd = [Latest(f"p{i:03d}", i + 1, names, names) for i in range(80)]
    with pytest.raises(PlanTooLarge, match="more than 2000000 capabilities"):
        plan({"x": ["p000"]}, {"x": crowd})
    # Below the budget the same shape plans, and each reason stays short.
    few = [Latest(f"p{i:03d}", i + 1, names, names) for i in range(3)]
    result = plan({"x": ["p000"]}, {"x": few})
    assert [s.package for s in result.steps] == ["p001", "p002"]
    assert all(len(b.provides) == 8 for s in result.steps for b in s.because)
    assert result.steps[0].because[0].provides[0] == "cap-00000"


def test_the_newest_source_is_rebuilt_whatever_the_build_ids() -> None:
    """A rebuild of an older version (a higher id) does not win over a newer version."""
    old_rebuild = Latest("b", 11, frozenset({"b"}), frozenset({"a"}), (5, 1, 11))
    new_version = Latest("b", 10, frozenset({"b"}), frozenset({"a"}), (10, 0, 10))
    a = Latest("a", 12, frozenset({"a"}), frozenset())
    result = plan({"x": ["a"], "y": ["a"]}, {"x": [a, old_rebuild], "y": [a, new_version]})
    assert [(s.package, s.source_build, s.chroots) for s in result.steps] == [("b", 10, ("x", "y"))]
