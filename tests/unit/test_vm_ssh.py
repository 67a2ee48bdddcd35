"""SSH to builders: running a command with live output, and reaching a builder through a tunnel.

In-process asyncssh servers stand in for the remote libvirt host (the
tunnel, which must allow direct-tcpip), for a builder listening on that
host's loopback, and for a builder's sshd running real shell commands. No VM
and no sshd are needed; the protocol is real.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asyncssh.packet import UInt32

from kopers.errors import InfrastructureError
from kopers.vm import ssh, sshcommand


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


# -- running commands the way a builder's sshd runs them --


async def like_sshd(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """Run the command with bash and relay its output, as OpenSSH's sshd does.

    sshd sends the exit status as soon as the shell exits, but closes the
    channel only when the output ends, which a background process that kept
    the shell's stdout can put off for ever. asyncssh's server has no public
    call for "exit status, channel stays open", hence the raw request.
    """
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    shell = subprocess.Popen(
        ["bash", "-c", process.command or ""],
        stdin=subprocess.DEVNULL,
        stdout=write_fd,
        stderr=subprocess.STDOUT,
    )
    os.close(write_fd)
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0)
    )

    async def relay() -> None:
        while chunk := await reader.read(1 << 16):
            if not process.channel.is_closing():
                process.stdout.write(chunk)

    relaying = asyncio.create_task(relay())
    status = await asyncio.to_thread(shell.wait)
    process.channel._send_request(b"exit-status", UInt32(status & 0xFF))
    try:
        await relaying
    finally:
        transport.close()
        process.close()


@pytest.fixture
async def builder_sshd(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """(port, client key) of an sshd-like server that runs real commands."""
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "id_builder"
    client_key.write_private_key(str(key_file))
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        authorized_client_keys=asyncssh.import_authorized_keys(
            client_key.export_public_key().decode()
        ),
        process_factory=like_sshd,
        encoding=None,
    )
    yield server.sockets[0].getsockname()[1], key_file
    server.close()


def running(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def test_run_returns_the_exit_status_while_a_background_process_holds_the_output(
    builder_sshd: tuple[int, Path],
) -> None:
    port, key = builder_sshd
    lines: list[str] = []
    async with ssh.connect("127.0.0.1", port, key) as session:
        script = "sleep 3600 & echo $!; echo left one behind; exit 4"
        status = await session.run(script, lines.append)
        sleeper = int(lines[0])
        try:
            # The status is the shell's, and it came while the sleeper still
            # held the output: run did not wait for the channel to close.
            assert status == 4
            assert lines[1:] == ["left one behind"]
            assert running(sleeper)
            # The connection still serves the steps that follow a build.
            assert await session.run("echo next", lines.append) == 0
            assert lines[-1] == "next"
        finally:
            os.kill(sleeper, signal.SIGKILL)


async def test_run_passes_the_last_lines_that_follow_the_exit_status(
    builder_sshd: tuple[int, Path],
) -> None:
    port, key = builder_sshd
    lines: list[str] = []
    script = "for i in $(seq 1 2000); do echo line $i; done; printf 'no newline'; exit 3"
    async with ssh.connect("127.0.0.1", port, key) as session:
        assert await session.run(script, lines.append) == 3
    assert lines == [f"line {i}" for i in range(1, 2001)] + ["no newline"]


async def test_a_line_without_end_comes_in_pieces_of_bounded_length(
    builder_sshd: tuple[int, Path],
) -> None:
    port, key = builder_sshd
    lines: list[str] = []
    script = "head -c 200000 /dev/zero | tr '\\0' x; echo; printf 'a\\r\\n\\nb\\n'"
    async with ssh.connect("127.0.0.1", port, key) as session:
        assert await session.run(script, lines.append) == 0
    assert [len(line) for line in lines[:4]] == [sshcommand.LINE_MAX] * 3 + [
        200000 - 3 * sshcommand.LINE_MAX
    ]
    assert set("".join(lines[:4])) == {"x"}
    assert lines[4:] == ["a", "", "b"]


def test_line_splitter_is_indifferent_to_how_the_bytes_are_cut() -> None:
    data = b"one\r\n" + b"y" * 10 + b"\n" + b"z" * 25 + b"\n\nlast"
    whole = sshcommand.LineSplitter(limit=10)
    expected = [*whole.feed(data), *whole.flush()]
    assert expected == ["one", "y" * 10, "z" * 10, "z" * 10, "z" * 5, "", "last"]
    bytewise = sshcommand.LineSplitter(limit=10)
    pieces = [line for i in range(len(data)) for line in bytewise.feed(data[i : i + 1])]
    assert [*pieces, *bytewise.flush()] == expected


def test_line_splitter_keeps_broken_text_readable() -> None:
    splitter = sshcommand.LineSplitter()
    assert splitter.feed(b"caf\xc3\xa9 \xff\n") == ["caf\u00e9 \ufffd"]
    assert splitter.flush() == []
