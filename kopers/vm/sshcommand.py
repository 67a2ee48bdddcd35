"""One remote command over SSH: its output as bounded lines, and how it ended.

A command's output is the build's, so it is held to bounds here: it comes in
lines of at most LINE_MAX bytes, and at most PENDING_MAX bytes wait for the
caller before the channel stops reading. A command ends with its exit status,
not with the end of its output, which anything it left running can hold open.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
from collections import deque
from collections.abc import Awaitable, Callable

import asyncssh

LineCallback = Callable[[str], Awaitable[None] | None]
LINE_MAX = 64 * 1024  # bytes; a longer line is passed on in pieces of this size
PENDING_MAX = 1 << 20  # bytes received and not yet taken by the caller
# sshd sends the exit status when the command exits and may send output it
# still holds just after; a process left behind can hold the output open for
# ever, so the output is awaited this long after the status, no longer.
EXIT_GRACE_S = 2.0


class LineSplitter:
    """Bytes in, text lines out, none longer than `limit` bytes.

    A build can print a gigabyte without a newline: a longer line is cut into
    pieces of `limit` bytes, so what is held here stays bounded whatever comes
    in. Bytes that are not UTF-8 (or a character cut in two) become U+FFFD.
    """

    def __init__(self, limit: int = LINE_MAX) -> None:
        self._limit = limit
        self._part = bytearray()

    def feed(self, data: bytes) -> list[str]:
        """The lines that `data` completes."""
        part, limit = self._part, self._limit
        part += data
        lines, start = [], 0
        while True:
            end = part.find(b"\n", start, start + limit + 1)
            if end >= 0:
                lines.append(_line(part[start:end]))
                start = end + 1
            elif len(part) - start > limit:  # more than a line's worth, no newline in it
                lines.append(_line(part[start : start + limit]))
                start += limit
            else:
                break
        del part[:start]
        return lines

    def flush(self) -> list[str]:
        """The last line, when the output did not end with a newline."""
        part, self._part = self._part, bytearray()
        return [_line(part)] if part else []


def _line(raw: bytearray) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


class Command(asyncssh.SSHClientSession[bytes]):
    """One remote command: its output as lines, waiting for the caller, and how it ended."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque()
        self.status: int | None = None
        self.error: Exception | None = None
        self._pending = 0  # characters in self.lines, about their bytes
        self._paused = False
        self._eof = False
        self._closed = False
        self._changed = asyncio.Event()
        self._split: dict[int | None, LineSplitter] = {}
        self._chan: asyncssh.SSHClientChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self._chan = chan

    def data_received(self, data: bytes, datatype: int | None) -> None:
        # stdout and stderr each keep their own partial line, never glued together.
        self._add(self._split.setdefault(datatype, LineSplitter()).feed(data))
        if self._pending > PENDING_MAX and not self._paused and self._chan is not None:
            self._paused = True
            self._chan.pause_reading()  # the window closes: the far side waits

    def eof_received(self) -> bool:
        self._eof = True
        self._flush()
        return True  # stay open: the exit status may still be on its way

    def exit_status_received(self, status: int) -> None:
        self.status = status
        self._changed.set()

    def exit_signal_received(self, signal_name: str, core: bool, msg: str, lang: str) -> None:
        self.status = 128 + int(getattr(signal, f"SIG{signal_name}", signal.SIGKILL))
        self._changed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed, self.error = True, exc
        self._flush()

    async def deliver(self, on_line: LineCallback) -> None:
        """Pass lines on until the command has ended, as far as the caller is concerned.

        After the exit status, the output is awaited for EXIT_GRACE_S at most;
        time spent in on_line does not count, so a slow caller loses nothing
        that the command itself printed.
        """
        loop = asyncio.get_running_loop()
        waited = 0.0
        while True:
            if self.lines:
                await self._pass(on_line, self.lines.popleft())
                continue
            if self._closed or (self.status is not None and (self._eof or waited >= EXIT_GRACE_S)):
                return
            self._changed.clear()
            timeout = None if self.status is None else EXIT_GRACE_S - waited
            started = loop.time()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            if timeout is not None:
                waited += loop.time() - started

    async def _pass(self, on_line: LineCallback, line: str) -> None:
        self._pending -= len(line) + 1
        if self._paused and self._pending <= PENDING_MAX // 2 and self._chan is not None:
            self._paused = False
            self._chan.resume_reading()
        result = on_line(line)
        if inspect.isawaitable(result):
            await result

    def _flush(self) -> None:
        for splitter in self._split.values():
            self._add(splitter.flush())
        self._changed.set()

    def _add(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        self._pending += sum(len(line) + 1 for line in lines)
        self._changed.set()
