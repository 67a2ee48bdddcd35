"""SSH to builder VMs (asyncssh): wait for sshd, run with live output, copy files.

Authentication is by the template's ed25519 key only. Host keys are not
checked (`known_hosts=None`): every VM is a fresh clone whose host key cannot
be known in advance, and the only way to reach it is a QEMU port forward bound
to 127.0.0.1 on the libvirt host, so reaching the port already identifies the
VM. Never point this module at anything that listens on a public address.

A builder on a remote libvirt host is reached the same way, through a
`tunnel`: an SSH connection to that host (`open_tunnel`), whose host key *is*
checked against the usual known_hosts, carrying a direct TCP/IP channel to the
builder's 127.0.0.1 port there.

A command's output is the build's, and is held to bounds (kopers.vm.sshcommand).
A session keeps its first login (the one that found the VM ready) and one SFTP
client for every copy: under emulation each costs the guest a large part of a
second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from kopers.errors import InfrastructureError
from kopers.vm.sshcommand import Command, LineCallback

Tunnel = asyncssh.SSHClientConnection
# Detects a VM that died or hung mid-build within about a minute and a half.
KEEPALIVE_INTERVAL_S = 30
KEEPALIVE_COUNT_MAX = 3
CLOSE_WAIT_S = 5.0
FETCH_CHUNK = 1 << 16


def _options(key: Path, user: str, timeout: float, tunnel: Tunnel | None) -> dict[str, object]:
    options: dict[str, object] = {"tunnel": tunnel} if tunnel is not None else {}
    return options | {
        "username": user,
        "client_keys": [str(key)],
        "known_hosts": None,  # see the module docstring
        "config": None,  # ignore ~/.ssh/config: nothing in it applies to builders
        "agent_path": None,
        "connect_timeout": timeout,
        "keepalive_interval": KEEPALIVE_INTERVAL_S,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
    }


async def wait_ready(
    host: str,
    port: int,
    key: Path,
    timeout: float,
    user: str = "root",
    tunnel: Tunnel | None = None,
) -> float:
    """Retry until sshd accepts our key; return the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    session = await wait_session(host, port, key, timeout, user, tunnel)
    await session.close()
    return loop.time() - started


async def wait_session(
    host: str,
    port: int,
    key: Path,
    timeout: float,
    user: str = "root",
    tunnel: Tunnel | None = None,
) -> SshSession:
    """Retry until sshd accepts our key; the session of that first login, open.

    QEMU accepts on the forwarded port long before the guest listens, so a
    connection that is reset or stalls counts as "not yet" until the deadline.
    The session is kept for the task that takes the VM: a login costs the
    guest a key exchange, most of a second under emulation.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: BaseException | None = None
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise InfrastructureError(
                f"ssh {user}@{host}:{port} not ready after {timeout:.0f}s: {last or 'timeout'}"
            )
        try:
            async with asyncio.timeout(min(10.0, remaining)):
                conn = await asyncssh.connect(host, port, **_options(key, user, remaining, tunnel))
            return SshSession(conn, f"{user}@{host}:{port}")
        except asyncssh.PermissionDenied as exc:
            # sshd is up but refuses the key: waiting longer will not help.
            raise InfrastructureError(f"ssh {user}@{host}:{port} refused the key {key}") from exc
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            last = exc
        await asyncio.sleep(0.5)


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """One directory entry on the far side, as its lstat described it (untrusted)."""

    name: str
    kind: str  # "file", "dir", "link" or "other"
    size: int


def _text(name: bytes | str) -> str:
    return name if isinstance(name, str) else name.decode(errors="replace")


def _kind(mode: int | None) -> str:
    if mode is None:
        return "other"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "link" if stat.S_ISLNK(mode) else "other"


class SshSession:
    """One SSH connection to a builder VM."""

    def __init__(self, conn: asyncssh.SSHClientConnection, target: str) -> None:
        self._conn = conn
        self.target = target
        # One SFTP session for every copy in either direction: starting one
        # costs the guest a process, about a tenth of a second under emulation.
        self._sftp: asyncssh.SFTPClient | None = None
        self._sftp_lock = asyncio.Lock()

    @property
    def closed(self) -> bool:
        """Whether the connection is gone (the VM died, or it was closed)."""
        return self._conn.is_closed()

    async def sftp(self) -> asyncssh.SFTPClient:
        """The session's SFTP client, started on first use."""
        async with self._sftp_lock:
            if self._sftp is None:
                self._sftp = await self._conn.start_sftp_client()
            return self._sftp

    async def run(self, cmd: str, on_line: LineCallback) -> int:
        """Run a shell command; pass each line of stdout+stderr to on_line as it comes.

        Returns the exit status (128 + N when killed by signal N) as soon as
        it and the output have come: a process left behind that holds the
        output open is not waited for. Raises InfrastructureError when the
        connection drops first. The channel is then closed without waiting for
        the far side's answer, as it is when the caller stops early
        (cancellation, a timeout, an exception from on_line): a VM that hangs
        would never give one. Destroying the VM ends whatever still runs.
        """
        command = Command()
        try:
            channel, _ = await self._conn.create_session(lambda: command, cmd, encoding=None)
        except (OSError, asyncssh.Error) as exc:
            raise InfrastructureError(f"ssh {self.target}: cannot run {cmd!r}: {exc}") from exc
        try:
            await command.deliver(on_line)
        finally:
            channel.close()
        if command.status is not None:
            return command.status
        reason = f": {command.error}" if command.error else ""
        raise InfrastructureError(f"ssh {self.target}: connection lost during {cmd!r}{reason}")

    async def put(self, local: Path, remote: str) -> None:
        """Upload a file (or a directory, recursively) to a remote path."""
        try:
            sftp = await self.sftp()
            await sftp.put(str(local), remote, recurse=local.is_dir())
        except (OSError, asyncssh.Error) as exc:
            raise InfrastructureError(
                f"ssh {self.target}: upload of {local} failed: {exc}"
            ) from exc

    async def put_bytes(self, data: bytes, remote: str) -> None:
        """Write a small remote file from memory."""
        try:
            sftp = await self.sftp()
            async with sftp.open(remote, "wb") as dst:
                await dst.write(data)
        except (OSError, asyncssh.Error) as exc:
            raise InfrastructureError(f"ssh {self.target}: writing {remote} failed: {exc}") from exc

    async def makedirs(self, *remotes: str) -> None:
        """Create remote directories and their parents; existing ones are fine."""
        try:
            sftp = await self.sftp()
            for remote in remotes:
                await sftp.makedirs(remote, exist_ok=True)
        except (OSError, asyncssh.Error) as exc:
            raise InfrastructureError(
                f"ssh {self.target}: cannot create {', '.join(remotes)}: {exc}"
            ) from exc

    async def list_dir(self, remote: str) -> list[RemoteEntry]:
        """The entries of a remote directory, as lstat sees them (links are not followed)."""
        try:
            sftp = await self.sftp()
            names = await sftp.readdir(remote)
        except (OSError, asyncssh.Error) as exc:
            raise InfrastructureError(f"ssh {self.target}: listing {remote} failed: {exc}") from exc
        return [
            RemoteEntry(_text(n.filename), _kind(n.attrs.permissions), n.attrs.size or 0)
            for n in names
            if n.filename not in (".", "..")
        ]

    async def fetch(self, remote: str, local: Path, max_bytes: int) -> int:
        """Copy one remote file to `local`, a new file, reading at most max_bytes + 1 bytes.

        Returns the bytes read: more than max_bytes means the copy was cut short.
        `local` is created exclusively and without following links, so nothing
        the remote side does can make this write anywhere else.
        """
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        total = 0
        try:
            sftp = await self.sftp()
            async with sftp.open(remote, "rb") as src:
                while total <= max_bytes:
                    chunk = await src.read(min(FETCH_CHUNK, max_bytes + 1 - total))
                    if not chunk:
                        break
                    assert isinstance(chunk, bytes)  # "rb": asyncssh's AnyStr is bytes here
                    total += len(chunk)
                    await asyncio.to_thread(os.write, fd, chunk)
        except (OSError, asyncssh.Error) as exc:
            raise InfrastructureError(
                f"ssh {self.target}: download of {remote} failed: {exc}"
            ) from exc
        finally:
            os.close(fd)
        return total

    async def forward_remote(self, remote_port: int, local_host: str, local_port: int) -> int:
        """Make VM's 127.0.0.1:remote_port (0 = any) reach local_host:local_port.

        This is how a build without network reaches the repositories it needs.
        Returns the port listening inside the VM.
        """
        try:
            listener = await self._conn.forward_remote_port(
                "127.0.0.1", remote_port, local_host, local_port
            )
        except (OSError, asyncssh.Error) as exc:
            raise InfrastructureError(f"ssh {self.target}: remote forward failed: {exc}") from exc
        return int(listener.get_port())

    async def close(self) -> None:
        """Close the connection; a VM that stopped answering gets CLOSE_WAIT_S, no more."""
        if self._sftp is not None:
            self._sftp.exit()
        self._conn.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self._conn.wait_closed()


@asynccontextmanager
async def connect(
    host: str,
    port: int,
    key: Path,
    user: str = "root",
    timeout: float = 30.0,
    tunnel: Tunnel | None = None,
) -> AsyncIterator[SshSession]:
    """`async with connect(...) as session:` an SshSession, closed on exit."""
    target = f"{user}@{host}:{port}"
    try:
        conn = await asyncssh.connect(host, port, **_options(key, user, timeout, tunnel))
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise InfrastructureError(f"ssh {target}: cannot connect: {exc}") from exc
    session = SshSession(conn, target)
    try:
        yield session
    finally:
        await session.close()


def parse_target(target: str) -> tuple[str | None, str, int]:
    """`[user@]host[:port]` -> (user or None, host, port). Pure."""
    user, _, rest = target.rpartition("@")
    host, sep, port = rest.rpartition(":") if rest.count(":") == 1 else ("", "", "")
    if not sep:
        host, port = rest, "22"
    if not host or not port.isdigit():
        raise InfrastructureError(f"invalid SSH target {target!r}; expected [user@]host[:port]")
    return user or None, host, int(port)


async def open_tunnel(target: str, timeout: float = 30.0, **options: object) -> Tunnel:
    """An SSH connection to a libvirt host, to tunnel builder connections through.

    Unlike builders, the host is a long-lived machine: its key is checked
    against known_hosts, and the client keys and ~/.ssh/config are the usual
    ones (`options` can override them, as asyncssh.connect arguments).
    """
    user, host, port = parse_target(target)
    try:
        return await asyncssh.connect(
            host,
            port,
            username=user,
            connect_timeout=timeout,
            keepalive_interval=KEEPALIVE_INTERVAL_S,
            keepalive_count_max=KEEPALIVE_COUNT_MAX,
            **options,
        )
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise InfrastructureError(f"ssh tunnel to {target}: cannot connect: {exc}") from exc
