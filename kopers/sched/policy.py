"""Which ready tasks to start when slots are free. Pure.

Slots are shared round-robin between owners, so one owner's long queue
cannot starve another owner's single build: each free slot goes to the next
owner in turn, and within an owner the lowest (priority, build id) runs first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kopers.sched.graph import Node


def pick(
    ready: Sequence[Node],
    free_slots: int,
    running_per_owner: Mapping[str, int],
    owner_cap: int | None = None,
) -> list[Node]:
    """Choose up to `free_slots` nodes from `ready`, fairly across owners."""
    queues: dict[str, list[Node]] = {}
    for node in sorted(ready, key=lambda n: (n.priority, n.key)):
        queues.setdefault(node.owner, []).append(node)
    running = dict(running_per_owner)
    # Owners with fewer running tasks go first; ties by the age of their oldest ready task.
    order = sorted(
        queues, key=lambda o: (running.get(o, 0), queues[o][0].priority, queues[o][0].key)
    )
    chosen: list[Node] = []
    while len(chosen) < free_slots and order:
        still = []
        for owner in order:
            if len(chosen) >= free_slots:
                break
            if owner_cap is not None and running.get(owner, 0) >= owner_cap:
                continue
            chosen.append(queues[owner].pop(0))
            running[owner] = running.get(owner, 0) + 1
            if queues[owner]:
                still.append(owner)
        order = still
    return chosen
