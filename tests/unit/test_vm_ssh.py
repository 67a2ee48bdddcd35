"""SSH to builders through a tunnel host, as for a VM on a remote libvirt host.

Two in-process asyncssh servers stand in for the remote libvirt host (the
tunnel, which must allow direct-tcpip) and for a builder listening on that
host's loopback. No VM and no sshd are needed; the protocol is real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from kopers.errors import InfrastructureError
from kopers.vm import ssh


class TunnelHost(asyncssh.SSHServer):
    requested: list[tuple[str, int]] = []

    def connection_requested(self, dest_host: str, dest_port: int, *args: Any) -> bool:
        TunnelHost.requested.append((dest_host, dest_port))
        return True  # plain port forwarding


async def builder_process(process: asyncssh.SSHServerProcess[str]) -> None:
    process.stdout.write(f"ran: {process.command}\nsecond line\n")
    process.exit(3)


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "id_ed25519"
    client_key.write_private_key(str(key_file))
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    tunnel_host_key = asyncssh.generate_private_key("ssh-ed25519")
    tunnel = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_factory=TunnelHost,
        server_host_keys=[tunnel_host_key],
        authorized_client_keys=authorized,
    )
    builder = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        authorized_client_keys=authorized,
        process_factory=builder_process,
    )
    tunnel_port = tunnel.sockets[0].getsockname()[1]
    known = asyncssh.import_known_hosts(
        f"[127.0.0.1]:{tunnel_port} {tunnel_host_key.export_public_key().decode()}"
    )
    yield {
        "tunnel_port": tunnel_port,
        "builder_port": builder.sockets[0].getsockname()[1],
        "key": key_file,
        "client_key": client_key,
        "known_hosts": known,
    }
    tunnel.close()
    builder.close()


async def test_a_builder_is_reached_through_the_tunnel_host(hosts: dict[str, Any]) -> None:
    TunnelHost.requested.clear()
    conn = await ssh.open_tunnel(
        f"root@127.0.0.1:{hosts['tunnel_port']}",
        known_hosts=hosts["known_hosts"],
        client_keys=[hosts["client_key"]],
    )
    try:
        port, key = hosts["builder_port"], hosts["key"]
        assert await ssh.wait_ready("127.0.0.1", port, key, 10, tunnel=conn) >= 0
        lines: list[str] = []
        async with ssh.connect("127.0.0.1", port, key, tunnel=conn) as session:
            status = await session.run("kopers-builder job.json", lines.append)
        assert status == 3
        assert lines == ["ran: kopers-builder job.json", "second line"]
        assert ("127.0.0.1", port) in TunnelHost.requested
    finally:
        conn.close()


async def test_the_tunnel_host_key_is_checked(hosts: dict[str, Any]) -> None:
    with pytest.raises(InfrastructureError, match="ssh tunnel to"):
        await ssh.open_tunnel(
            f"root@127.0.0.1:{hosts['tunnel_port']}",
            known_hosts=asyncssh.import_known_hosts(""),
            client_keys=[hosts["client_key"]],
        )


@pytest.mark.parametrize(
    "target, parsed",
    [
        ("build2", (None, "build2", 22)),
        ("root@build2", ("root", "build2", 22)),
        ("root@build2:2222", ("root", "build2", 2222)),
    ],
)
def test_parse_target(target: str, parsed: tuple[str | None, str, int]) -> None:
    assert ssh.parse_target(target) == parsed


def test_parse_target_rejects_nonsense() -> None:
    with pytest.raises(InfrastructureError):
        ssh.parse_target("root@build2:ssh")
