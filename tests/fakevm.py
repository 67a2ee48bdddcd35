"""A fake builder VM pool for tests below e2e: the VM protocol, without a VM.

`FakeVmPool.builder()` is used exactly like `VmPool.builder()` and hands out a
`FakeVm` with `BuilderVm`'s protocol: directories and files go in, the builder
command runs with its output streamed line by line, the result directory is
listed and its files fetched one by one, ports are "forwarded". The VM's file
system is a scratch directory on the host. Its builder unpacks the job's SRPM,
drops the spec's Vendor, Packager and dist lines and runs `rpmbuild -ba` with
the job's macros (without checking BuildRequires: nothing installs them
here), in its own process group, standing in for the template's
builder script: it prints the package's own build output, says
`kopers-builder: ...` and ends with the builder's status for the step that
failed (BuilderStatus), and leaves the RPMs in the job's result directory.
Like SshSession.run, its run ends with the builder's exit status, whatever
the build left running with the output still open.

What a real VM adds (booting, SSH, dnf builddep, isolation) is not here: the
runner's limits, retries, cancel, failure reports and publishing are.
`die_after_lines` makes a VM fail mid-build the way a killed qemu does (an
InfrastructureError from the connection), for the runner's retry path, and
`tamper` changes the results the way a hostile build could.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kopers.errors import InfrastructureError
from kopers.vm.ssh import RemoteEntry
from kopers.vm.sshcommand import LineSplitter
from kopers.worker.session import BuilderStatus

BUILDER = "/usr/local/bin/kopers-builder"


@dataclass
class FakeVm:
    name: str
    root: Path
    die_after_lines: int | None = None
    tamper: Callable[[Path], None] | None = None  # changes the results before they go out
    builder: str = BUILDER
    origin: str = "cold"
    waited_s: float = 0.0
    host: str = "fake"
    pid: int | None = None  # the builder's process group while it runs

    def _local(self, remote: str) -> Path:
        return self.root / remote.lstrip("/")

    async def mkdirs(self, *paths: str) -> None:
        for path in paths:
            self._local(path).mkdir(parents=True, exist_ok=True)

    async def put(self, local: Path, remote: str) -> None:
        target = self._local(remote)
        target.parent.mkdir(parents=True, exist_ok=True)
        if local.is_dir():
            shutil.copytree(local, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(local, target)

    async def put_text(self, text: str, remote: str) -> None:
        target = self._local(remote)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    async def list_dir(self, remote: str) -> list[RemoteEntry]:
        """Like sftp-server's readdir: lstat attributes, links not followed."""
        entries = []
        with os.scandir(self._local(remote)) as listing:
            for entry in listing:
                mode = entry.stat(follow_symlinks=False).st_mode
                kind = (
                    "link" if stat.S_ISLNK(mode)
                    else "dir" if stat.S_ISDIR(mode)
                    else "file" if stat.S_ISREG(mode)
                    else "other"
                )  # fmt: skip
                entries.append(
                    RemoteEntry(entry.name, kind, entry.stat(follow_symlinks=False).st_size)
                )
        return entries

    async def fetch(self, remote: str, local: Path, max_bytes: int) -> int:
        """Like SshSession.fetch. The far side opens without following links: on
        this fake the "VM" is the host, where a link must lead nowhere."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        out = os.open(local, flags, 0o600)
        try:
            src = os.open(self._local(remote), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            os.close(out)
            raise InfrastructureError(f"download of {remote} failed: {exc}") from exc
        total = 0
        try:
            while total <= max_bytes:
                chunk = os.read(src, min(1 << 16, max_bytes + 1 - total))
                if not chunk:
                    break
                total += len(chunk)
                os.write(out, chunk)
        finally:
            os.close(src)
            os.close(out)
        return total

    async def forward(self, host: str, port: int) -> int:
        return port  # the fake VM is the host: the address is reachable as it is

    async def run(self, command: str, on_line: Callable[[str], Awaitable[None]]) -> int:
        builder, _, job_path = command.partition(" ")
        if builder != self.builder:
            raise InfrastructureError(f"the fake VM runs only its builder, not {command!r}")
        job = json.loads(self._local(job_path).read_text())
        top = self.root / "rpmbuild"
        defines = [f"--define={macro} {value}" for macro, value in job["macros"].items()]
        # Unpack, drop the lines that would override the forced identity (as the
        # template's builder does), build the binaries with the job's macros.
        # Each step that fails ends the script with the builder's status for it.
        srpm = shlex.quote(str(self._local(job["srpm"])))
        # It announces its commands as the template's builder does (`+ argv`).
        script = f"""
            echo "+ rpm -i --force-debian {srpm}"
            rpm -i --force-debian --define "_topdir {top}" {srpm} \\
                || exit {BuilderStatus.UNPACK_FAILED:d}
            sed -i -E '/^\\s*(vendor|packager)\\s*:/Id; /^\\s*%(define|global)\\s+dist\\s/d' \\
                {top}/SPECS/*.spec || exit {BuilderStatus.FAILED:d}
            mkdir -p {top}/tmp
            echo "+ rpmbuild -ba {top}/SPECS/*.spec"
            rpmbuild -ba --nodeps --define "_topdir {top}" --define "_tmppath {top}/tmp" \\
                {" ".join(map(shlex.quote, defines))} \\
                {top}/SPECS/*.spec || {{
                echo "kopers-builder: rpmbuild -ba failed with exit code $?"
                exit {BuilderStatus.RPMBUILD_FAILED:d}
            }}
            echo "kopers-builder: build succeeded"
        """
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        try:
            proc = subprocess.Popen(
                ["bash", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        self.pid = proc.pid
        # Not reaped until waited for, so the pidfd cannot name another process.
        exited = os.pidfd_open(proc.pid)
        try:
            code = await self._relay(proc, exited, read_fd, on_line)
        finally:
            # Whatever ends the run (the status, a limit, a cancel, a death), the
            # VM's processes end with it, as they do when a real VM is destroyed.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            os.close(exited)
            os.close(read_fd)
        if code != 0:
            return code if code > 0 else 128 - code  # killed by a signal: as ssh.run says it
        out = self._local(job["result_dir"])
        out.mkdir(parents=True, exist_ok=True)
        # The binaries and the rebuilt source package, as the template's builder returns.
        for rpm in sorted([*top.glob("RPMS/*/*.rpm"), *top.glob("SRPMS/*.src.rpm")]):
            shutil.copy2(rpm, out / rpm.name)
        if self.tamper is not None:
            self.tamper(out)
        return 0

    async def _relay(
        self,
        proc: subprocess.Popen[bytes],
        exited: int,
        read_fd: int,
        on_line: Callable[[str], Awaitable[None]],
    ) -> int:
        """Pass the output on until the script exits; then what it left in the pipe."""
        splitter, lines, eof = LineSplitter(), 0, False
        while True:
            done = proc.poll() is not None
            if done:
                # What the script wrote is in the pipe; a writer it left
                # behind (the same group) goes with the group, which is
                # killed before the rest is read.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            try:
                chunk = b"" if eof else os.read(read_fd, 1 << 16)
            except BlockingIOError:
                chunk = None
            if chunk:
                for line in splitter.feed(chunk):
                    await on_line(line)
                    lines += 1
                    if self.die_after_lines is not None and lines >= self.die_after_lines:
                        raise InfrastructureError("connection lost (the fake VM died)")
                continue
            eof = eof or chunk == b""
            if done and (eof or chunk is None):
                for line in splitter.flush():
                    await on_line(line)
                assert proc.returncode is not None
                return proc.returncode
            await _readable(*([exited] if eof else [exited, read_fd]))


async def _readable(*fds: int) -> None:
    """Wait until one of the file descriptors can be read (or a pidfd's process exited)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    for fd in fds:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        for fd in fds:
            loop.remove_reader(fd)


@dataclass
class FakeVmPool:
    """Hands out one fresh FakeVm per task and destroys it when the task is done."""

    base: Path
    dying: list[int | None] = field(default_factory=list)  # per VM in order: die after N lines
    tamper: Callable[[Path], None] | None = None  # given to every VM
    started: list[FakeVm] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    # When given, a VM's destruction waits for it (a slow teardown).
    teardown: asyncio.Event | None = None

    @asynccontextmanager
    async def builder(self, template: str, label: str) -> AsyncIterator[FakeVm]:
        root = Path(tempfile.mkdtemp(prefix=f"{template}-{label}-", dir=self.base))
        die = self.dying[len(self.started)] if len(self.started) < len(self.dying) else None
        vm = FakeVm(f"fake-{template}-{len(self.started) + 1}", root, die, self.tamper)
        self.started.append(vm)
        self.running.add(vm.name)
        try:
            yield vm
        finally:
            if self.teardown is not None:
                await self.teardown.wait()
            self.running.discard(vm.name)
            shutil.rmtree(root, ignore_errors=True)
