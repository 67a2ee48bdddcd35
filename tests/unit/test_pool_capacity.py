"""The pool's pure accounting: host choice, warm refill plans, caps, eviction."""

from kopers.vm import capacity
from kopers.vm.capacity import HostView, PoolView, VmState, VmView

BOOTING, WARM, BUSY = VmState.BOOTING, VmState.WARM, VmState.BUSY


def vm(
    name: str, template: str = "t", host: str = "a", state: VmState = WARM, claimed: bool = False
) -> VmView:
    return VmView(name, template, host, state, claimed or state == BUSY)


def test_pick_host_takes_the_freest_online_host_first_listed_on_a_tie() -> None:
    hosts = [HostView("a", 2), HostView("b", 2), HostView("c", 9, online=False)]
    assert capacity.pick_host(hosts, []) == "a"
    assert capacity.pick_host(hosts, [vm("1", host="a")]) == "b"
    assert capacity.pick_host(hosts, [vm(str(i), host=h) for i, h in enumerate("aabb")]) is None


def test_a_host_to_avoid_is_picked_only_when_no_other_has_room() -> None:
    hosts = [HostView("a", 1), HostView("b", 1)]
    assert capacity.pick_host(hosts, [], avoid="a") == "b"
    assert capacity.pick_host(hosts, [vm("1", host="b")], avoid="a") == "a"
    assert capacity.pick_host(hosts, [vm("1", host="a")], avoid="a") == "b"
    spares = [vm("on-a"), vm("on-b", host="b", state=BOOTING)]
    assert [v.name for v in capacity.spares(spares, "t", avoid="a")] == ["on-b", "on-a"]


def test_spares_prefer_warm_over_booting_and_skip_claimed() -> None:
    vms = [
        vm("boot", state=BOOTING),
        vm("warm"),
        vm("mine", state=BOOTING, claimed=True),
        vm("busy", state=BUSY),
        vm("other", template="u"),
    ]
    assert [v.name for v in capacity.spares(vms, "t")] == ["warm", "boot"]


def test_refill_boots_up_to_the_warm_target() -> None:
    pools = [PoolView("t", max_concurrent=4, warm=2)]
    hosts = [HostView("a", 4)]
    assert capacity.refill_plan(pools, hosts, []) == [("t", "a"), ("t", "a")]
    # A busy VM is not a spare: the pool still wants two.
    assert len(capacity.refill_plan(pools, hosts, [vm("x", state=BUSY)])) == 2
    # Booting spares count towards the target.
    assert capacity.refill_plan(pools, hosts, [vm("x", state=BOOTING), vm("y")]) == []


def test_refill_respects_template_cap_and_host_slots() -> None:
    hosts = [HostView("a", 1), HostView("b", 1)]
    busy = [vm("x", state=BUSY)]
    assert capacity.refill_plan([PoolView("t", 1, 1)], hosts, busy) == []  # template cap
    assert capacity.refill_plan([PoolView("t", 5, 3)], hosts, busy) == [("t", "b")]  # slots


def test_refill_takes_turns_between_templates() -> None:
    pools = [PoolView("t", 5, 3), PoolView("u", 5, 3)]
    plan = capacity.refill_plan(pools, [HostView("a", 3)], [])
    assert plan == [("t", "a"), ("u", "a"), ("t", "a")]


def test_refill_leaves_slots_to_waiting_tasks() -> None:
    pools = [PoolView("t", 5, 2)]
    hosts = [HostView("a", 3)]
    assert len(capacity.refill_plan(pools, hosts, [], waiting={"u": 2})) == 1
    assert capacity.refill_plan(pools, hosts, [], waiting={"u": 3}) == []


def test_warm_zero_boots_nothing() -> None:
    assert capacity.refill_plan([PoolView("t", 5, 0)], [HostView("a", 5)], []) == []


def test_boot_host_needs_a_free_slot_and_room_under_the_cap() -> None:
    pool = PoolView("t", max_concurrent=2, warm=0)
    hosts = [HostView("a", 3)]
    assert capacity.boot_host(pool, hosts, [vm("1", state=BUSY)]) == "a"
    assert capacity.boot_host(pool, hosts, [vm("1", state=BUSY), vm("2", state=BOOTING)]) is None
    assert capacity.boot_host(pool, [HostView("a", 1)], [vm("o", template="u")]) is None


def test_eviction_frees_a_slot_held_by_another_templates_warm_spare() -> None:
    pools = [PoolView("t", 2, 1), PoolView("u", 2, 2)]
    hosts = [HostView("a", 2)]
    vms = [vm("u1", template="u"), vm("u2", template="u", state=BOOTING)]
    assert capacity.eviction("t", pools, hosts, vms) == "u1"  # never a booting one
    # Not needed while a slot is free, nor possible when t is at its own cap.
    assert capacity.eviction("t", pools, [HostView("a", 3)], vms) is None
    full = [*vms, vm("t1", state=BUSY), vm("t2", state=BUSY)]
    assert capacity.eviction("t", pools, [HostView("a", 4)], full) is None
    # Busy or claimed VMs are never taken away.
    taken = [vm("u1", template="u", state=BUSY), vm("u2", template="u", claimed=True)]
    assert capacity.eviction("t", pools, hosts, taken) is None
