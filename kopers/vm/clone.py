"""One builder VM clone of the pool, from the start of its boot until it is destroyed.

The pool (kopers.vm.pool) owns these and changes them; its decisions see
them only as `VmView` snapshots (kopers.vm.capacity), and its status report
(kopers.vm.poolstatus) reads them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from kopers.vm import ssh
from kopers.vm.capacity import VmState, VmView
from kopers.vm.hosts import Host
from kopers.vm.libvirt import VmHandle


@dataclass(eq=False)
class PoolVm:
    """One clone, from the start of its boot until it is destroyed."""

    name: str
    template: str
    host: Host
    state: VmState = VmState.BOOTING
    claimed: bool = False
    task: str | None = None  # the label of the task it serves
    boot: asyncio.Task[VmHandle] | None = None
    retire: asyncio.Task[None] | None = None
    handle: VmHandle | None = None
    session: ssh.SshSession | None = None  # the login that found it ready, for its task

    def view(self) -> VmView:
        # A clone being destroyed still holds its slot, but nobody may take it.
        claimed = self.claimed or self.retire is not None
        return VmView(self.name, self.template, self.host.name, self.state, claimed)
