"""The VM pool's status report: hosts, clones by state, each template's pool.

What `VmPool.status()` returns, for /api/status and /metrics. Kept apart
from the pool's I/O (kopers.vm.pool): it only reads a snapshot of the
pool's state, and changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from kopers.vm import capacity
from kopers.vm.capacity import VmState, VmView
from kopers.vm.clone import PoolVm
from kopers.vm.hosts import Host
from kopers.vm.template import TemplateImage
from kopers.vmconfig import VmConfig


def pool_status(
    enabled: bool,
    hosts: Sequence[Host],
    clones: Collection[PoolVm],
    images: Mapping[str, TemplateImage],
    vm: VmConfig,
    waiting: Counter[str],
) -> dict[str, Any]:
    """The report; `waiting` counts the tasks waiting for a clone, per template."""
    views = [clone.view() for clone in clones]
    states = Counter(shown_state(v) for v in views)
    used = capacity.used_slots(views)
    first = hosts[0] if hosts else None
    return {
        "enabled": enabled,
        "domain_type": first.domain_type if first else None,
        "domain_type_reason": first.domain_type_reason if first else "",
        "slots": vm.slots,  # the pool's capacity: all hosts' slots
        "booting": states["booting"],
        "warm": states["warm"],
        "busy": states["busy"],
        "waiting": sum(waiting.values()),
        "hosts": [h.status(used[h.name]) for h in hosts],
        "templates": {
            t: _template_status(t, image, vm, views, waiting[t]) for t, image in images.items()
        },
        "vms": [
            {
                "name": clone.name,
                "template": clone.template,
                "host": clone.host.name,
                "state": shown_state(clone.view()),
                "task": clone.task,
            }
            for clone in clones
        ],
    }


def shown_state(vm: VmView) -> str:
    """booting / warm (an idle spare) / busy (claimed by a task, or serving one)."""
    if vm.state == VmState.BOOTING:
        return "booting"
    return "warm" if vm.state == VmState.WARM and not vm.claimed else "busy"


def _template_status(
    template: str, image: TemplateImage, vm: VmConfig, views: list[VmView], waiting: int
) -> dict[str, Any]:
    pool = vm.pool(template)
    states = Counter(shown_state(v) for v in views if v.template == template)
    return {
        "image": str(image.dir),
        "max_concurrent": pool.max_concurrent,
        "warm_target": pool.warm,
        "vcpus": pool.vcpus,
        "memory_mib": pool.memory_mib,
        "disk_gib": pool.disk_gib,
        "booting": states["booting"],
        "warm": states["warm"],
        "busy": states["busy"],
        "waiting": waiting,
    }
