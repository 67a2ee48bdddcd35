"""Pure accounting of the builder VM pool: where the next clone goes, what to boot ahead.

No I/O: `kopers.vm.pool` takes a snapshot of its VMs as `VmView`s and asks
these functions what to do. Every VM, whatever its state, holds one slot of
its host from the moment its boot starts until it is destroyed, and counts
against its template's `max_concurrent`.

- A *spare* is a VM no task has claimed yet: booting ahead of demand, or warm.
- Tasks waiting for a VM come before warmth: `refill_plan` never spends a slot
  that a waiting task could use, and `eviction` frees a slot held by another
  template's idle spare when a task has nowhere else to go.
- A task whose last VM failed on a host (`avoid`) gets its next one elsewhere
  when another host has a spare or a free slot, and there only otherwise.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


class VmState(enum.StrEnum):
    BOOTING = "booting"  # started, SSH not answering yet
    WARM = "warm"  # booted, waiting for a task
    BUSY = "busy"  # serving its one task


@dataclass(frozen=True, slots=True)
class VmView:
    name: str
    template: str
    host: str
    state: VmState
    claimed: bool  # a task owns it (always true once busy)

    @property
    def spare(self) -> bool:
        return not self.claimed and self.state != VmState.BUSY


@dataclass(frozen=True, slots=True)
class HostView:
    name: str
    slots: int
    online: bool = True


@dataclass(frozen=True, slots=True)
class PoolView:
    template: str
    max_concurrent: int
    warm: int


def used_slots(vms: Iterable[VmView]) -> Counter[str]:
    return Counter(vm.host for vm in vms)


def free_slots(hosts: Sequence[HostView], vms: Iterable[VmView]) -> dict[str, int]:
    """Free slots of each online host (never negative)."""
    used = used_slots(vms)
    return {h.name: max(0, h.slots - used[h.name]) for h in hosts if h.online}


def pick_host(
    hosts: Sequence[HostView], vms: Iterable[VmView], avoid: str | None = None
) -> str | None:
    """The online host with the most free slots; the first listed wins a tie.

    The host to `avoid` is picked only when no other has a free slot.
    """
    free = {name: n for name, n in free_slots(hosts, vms).items() if n > 0}
    choice = {name: n for name, n in free.items() if name != avoid} or free
    # max() keeps the first of equal items, and dicts keep the configured order.
    best = max(choice.items(), key=lambda item: item[1], default=None)
    return best[0] if best is not None else None


def count(vms: Iterable[VmView], template: str) -> int:
    return sum(1 for vm in vms if vm.template == template)


def spares(vms: Iterable[VmView], template: str, avoid: str | None = None) -> list[VmView]:
    """Unclaimed VMs of a template, the ones a task should take first: warm, then
    booting; those on the host to `avoid` after all others."""
    mine = [vm for vm in vms if vm.template == template and vm.spare]
    return sorted(mine, key=lambda vm: (vm.host == avoid, vm.state != VmState.WARM))


def boot_host(
    pool: PoolView, hosts: Sequence[HostView], vms: Sequence[VmView], avoid: str | None = None
) -> str | None:
    """Where a clone of the pool's template may boot now, or None if a cap is reached."""
    if count(vms, pool.template) >= pool.max_concurrent:
        return None
    return pick_host(hosts, vms, avoid)


def refill_plan(
    pools: Sequence[PoolView],
    hosts: Sequence[HostView],
    vms: Sequence[VmView],
    waiting: Mapping[str, int] | None = None,
) -> list[tuple[str, str]]:
    """(template, host) of each clone to boot now so every pool has its warm spares.

    Templates take turns, one clone each, so one pool cannot take every slot.
    Slots that tasks are waiting for are left to them.
    """
    planned = list(vms)
    reserve = sum((waiting or {}).values())
    plan: list[tuple[str, str]] = []
    progress = True
    while progress:
        progress = False
        for pool in pools:
            if len(spares(planned, pool.template)) >= pool.warm:
                continue
            if sum(free_slots(hosts, planned).values()) <= reserve:
                return plan
            host = boot_host(pool, hosts, planned)
            if host is None:
                continue
            name = f"planned-{len(plan)}"
            planned.append(VmView(name, pool.template, host, VmState.BOOTING, claimed=False))
            plan.append((pool.template, host))
            progress = True
    return plan


def eviction(
    template: str, pools: Sequence[PoolView], hosts: Sequence[HostView], vms: Sequence[VmView]
) -> str | None:
    """A warm spare of another template to destroy so a task of `template` can boot.

    Only when that would help: the template is below its own cap and no host
    has a free slot. Among candidates, the pool with the most spares gives one up.
    """
    by_template = {p.template: p for p in pools}
    pool = by_template.get(template)
    if pool is None or count(vms, template) >= pool.max_concurrent:
        return None
    if pick_host(hosts, vms) is not None:
        return None
    online = {h.name for h in hosts if h.online}
    candidates = [
        vm
        for vm in vms
        if vm.template != template and vm.spare and vm.state == VmState.WARM and vm.host in online
    ]
    if not candidates:
        return None
    spare_count = Counter(vm.template for vm in vms if vm.spare)
    return max(candidates, key=lambda vm: spare_count[vm.template]).name
