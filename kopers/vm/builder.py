"""A booted builder VM as a task sees it: run the builder, copy files, forward ports.

Handed out by `VmPool.builder()` for one task; the pool destroys the VM when
the task leaves that context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from kopers.vm.ssh import RemoteEntry, SshSession


@dataclass
class BuilderVm:
    """A booted builder with an open SSH connection, serving one task."""

    name: str
    builder: str
    conn: SshSession
    origin: str = "cold"  # "warm": booted ahead; "booting": claimed mid-boot; "cold": on demand
    waited_s: float = 0.0  # from asking the pool until the VM answered SSH
    host: str = "local"

    async def put(self, local: Path, remote: str) -> None:
        await self.conn.put(local, remote)

    async def put_text(self, text: str, remote: str) -> None:
        await self.conn.put_bytes(text.encode(), remote)

    async def list_dir(self, remote: str) -> list[RemoteEntry]:
        return await self.conn.list_dir(remote)

    async def fetch(self, remote: str, local: Path, max_bytes: int) -> int:
        return await self.conn.fetch(remote, local, max_bytes)

    async def run(self, command: str, on_line: Callable[[str], Awaitable[None]]) -> int:
        return await self.conn.run(command, on_line)

    async def forward(self, host: str, port: int) -> int:
        """Make host:port reachable inside the VM; return the port on the VM's 127.0.0.1."""
        return await self.conn.forward_remote(0, host, port)

    async def mkdirs(self, *paths: str) -> None:
        await self.conn.makedirs(*paths)
