"""Which ready tasks to start when slots are free. Pure.

Slots are shared round-robin between owners: each free slot goes to the
owner with the fewest running tasks, and among those to the one served
least recently. So an owner with 300 queued builds cannot hold back another
owner's single build for more than one slot turnover. Within an owner, the
lowest (priority, build id) runs first; background builds have a higher
priority number. An optional cap limits each owner's concurrent tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kopers.sched.graph import Node


def pick(
    ready: Sequence[Node],
    free_slots: int,
    running_per_owner: Mapping[str, int],
    last_served: Mapping[str, int] | None = None,
    owner_cap: int | None = None,
) -> list[Node]:
    """Choose up to `free_slots` nodes from `ready`, fairly across owners.

    `last_served[owner]` is a counter value from the owner's latest start
    (higher = more recent; owners never served count as 0).
    """
    served = dict(last_served or {})
    queues: dict[str, list[Node]] = {}
    for node in sorted(ready, key=lambda n: (n.priority, n.key)):
        queues.setdefault(node.owner, []).append(node)
    running = dict(running_per_owner)
    tick = max(served.values(), default=0)
    chosen: list[Node] = []
    while len(chosen) < free_slots:
        candidates = [
            o
            for o, q in queues.items()
            if q and (owner_cap is None or running.get(o, 0) < owner_cap)
        ]
        if not candidates:
            break
        owner = min(
            candidates,
            key=lambda o: (
                queues[o][0].priority,
                running.get(o, 0),
                served.get(o, 0),
                queues[o][0].key,
            ),
        )
        chosen.append(queues[owner].pop(0))
        running[owner] = running.get(owner, 0) + 1
        tick += 1
        served[owner] = tick
    return chosen
