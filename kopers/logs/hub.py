"""The log hub: one channel per task, its lines on disk, a bounded tail in memory.

The runner appends the builder's lines (`append`) and Kopers' own (`say`).
Each line goes to the task's `builder-live.log` first (its format, which
says whose each line is: kopers.logs.logfile), then into a tail of at most
TAIL_LINES lines and TAIL_CHARS characters kept in memory. A reader
(`follow`) pages through the file for anything older than the tail, then the
tail, then waits for new lines, so a viewer can join late or resume from any
line N with no gap and no duplicate, however long the log. A task that runs
again (after a restart, or on a fresh VM) continues the same file and
numbering; reopening counts the file's lines in a thread and keeps none.

Memory per channel is bounded whatever the log size or the number of
viewers: the tail, the file's line index, and SHARED_PAGES pages. Readers
hold a place in the log, not lines, so a slow viewer only falls behind (and
reads on from the file); nothing is dropped. While lines flood in, readers
are woken at most every WAKE_S and take the lines there were at that moment:
readers at the same place get the same page object (its message is then
encoded once for all of them), and readers anywhere in the file converge on
the same pages, read once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from kopers.logs import logfile
from kopers.logs.logfile import Position

LIVE_LOG = "builder-live.log"
TAIL_LINES = 16384  # kept in memory per channel (seconds of a flood)...
TAIL_CHARS = 2 << 20  # ...and at most this many characters of them
SMALL_WRITE = 64 << 10  # bytes appended without a thread
SHARED_PAGES = 32  # pages kept for other readers at the same place
WAKE_S = 0.1
RETAIN_S = 600.0


@dataclass(frozen=True, slots=True)
class LogLine:
    number: int
    text: str  # as stored in the file
    kopers: bool = False  # Kopers' own line, not the build's


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class LogPage:
    """Consecutive lines for a reader; readers asking for the same lines share one page."""

    first: int
    lines: tuple[LogLine, ...]


@dataclass(frozen=True, slots=True)
class LogEnd:
    """The last message of a channel: the task's end state."""

    state: str
    reason: str | None


class LogChannel:
    """The log of one task (build, chroot), across all of its attempts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0  # lines in the file, once opened
        self.end: LogEnd | None = None
        self.ended_at: float | None = None
        self._opened = False
        self._size = 0
        self._index = logfile.LineIndex()
        self._tail: deque[LogLine] = deque()
        self._tail_chars = 0
        self._lock = asyncio.Lock()  # one write at a time, in the order of the calls
        self._event = asyncio.Event()  # replaced at each wake-up; readers wait on it
        self._wake: asyncio.TimerHandle | None = None
        self._woken = 0.0
        self._shown = 0  # lines there were at the last wake-up: what readers take
        self._pages: dict[tuple[int, int], LogPage] = {}  # from the tail, this wake-up
        self._file_pages: dict[tuple[int, int], asyncio.Future[tuple[LogPage, Position]]] = {}

    async def append(self, text: str) -> None:
        """Append the build's own output (one line, or several separated by "\\n")."""
        size = logfile.MAX_LINE
        pieces = text.rstrip("\n").split("\n")
        cut = [p[i : i + size] for p in pieces for i in range(0, len(p) or 1, size)]
        await self._write([logfile.stored(p, kopers=False) for p in cut], kopers=False)

    async def say(self, text: str) -> None:
        """Append a line of Kopers' own."""
        await self._write([logfile.stored(text[: logfile.MAX_LINE], kopers=True)], kopers=True)

    def follow(self, from_line: int = 1) -> LogReader:
        """A reader of lines from `from_line` on, until the end."""
        return LogReader(self, self.path, max(from_line, 1))

    def close(self, state: str, reason: str | None) -> None:
        self.end = LogEnd(state, reason)
        self.ended_at = time.monotonic()
        if self._wake is not None:
            self._wake.cancel()
        self._wake_readers()

    def held(self) -> tuple[int, int]:
        """Lines and characters held in memory."""
        return len(self._tail), self._tail_chars

    async def _open(self) -> None:
        async with self._lock:
            if not self._opened:
                self.count, self._size, self._index = await asyncio.to_thread(
                    logfile.scan, self.path
                )
                self._shown = self.count
                self._opened = True

    async def _write(self, texts: list[str], kopers: bool) -> None:
        data = [logfile.encoded(t) for t in texts]
        if not self._opened:
            await self._open()
        if sum(len(raw) for _, raw in data) <= SMALL_WRITE:
            async with self._lock:
                # A line or a few: a write into the page cache, as cheap as a log
                # record, so it is made here (a thread would cost more than the write).
                logfile.append(self.path, b"".join(raw for _, raw in data))
                self._numbered(data, kopers)
        else:
            # Shielded: once the bytes are on their way to the file, the numbering
            # must follow them, even if the caller is canceled meanwhile.
            await asyncio.shield(self._write_in_thread(data, kopers))
        self._schedule_wake()
        await asyncio.sleep(0)  # a flood of lines must not keep the loop to itself

    async def _write_in_thread(self, data: list[tuple[str, bytes]], kopers: bool) -> None:
        async with self._lock:
            await asyncio.to_thread(logfile.append, self.path, b"".join(raw for _, raw in data))
            self._numbered(data, kopers)

    def _numbered(self, data: list[tuple[str, bytes]], kopers: bool) -> None:
        for text, raw in data:
            self.count += 1
            self._index.saw(self.count, self._size)
            self._size += len(raw)
            self._tail.append(LogLine(self.count, text, kopers))
            self._tail_chars += len(text)
        # Older lines stay readable from the file, which has them already.
        while len(self._tail) > TAIL_LINES or self._tail_chars > TAIL_CHARS:
            self._tail_chars -= len(self._tail.popleft().text)

    def _schedule_wake(self) -> None:
        if self._wake is not None:
            return
        loop = asyncio.get_running_loop()
        self._wake = loop.call_at(max(loop.time(), self._woken + WAKE_S), self._wake_readers)

    def _wake_readers(self) -> None:
        self._wake = None
        self._woken = asyncio.get_running_loop().time()
        self._shown = self.count
        self._pages = {}
        self._event.set()
        self._event = asyncio.Event()

    def _tail_first(self) -> int:
        return self.count - len(self._tail) + 1

    def _tail_page(self, first: int, last: int) -> LogPage:
        """Lines first..last from the tail (up to a page); the same range, the same page."""
        if (page := self._pages.get((first, last))) is not None:
            return page
        start, held = first - self._tail_first(), len(self._tail)
        # A deque is walked from one end: readers are mostly near the newest lines.
        if start > held // 2:
            window: Iterable[LogLine] = list(islice(reversed(self._tail), held - start))[::-1]
        else:
            window = islice(self._tail, start, None)
        lines: list[LogLine] = []
        chars = 0
        for line in window:
            full = len(lines) == logfile.PAGE_LINES or chars + len(line.text) > logfile.PAGE_BYTES
            if line.number > last or (lines and full):
                break
            lines.append(line)
            chars += len(line.text)
        page = LogPage(first, tuple(lines))
        if len(self._pages) < SHARED_PAGES:
            self._pages[first, last] = page
        return page

    async def _file_page(self, first: int, at: Position) -> tuple[LogPage, Position]:
        """Lines from `first`, read from the file, and the next line's position.

        Pages end before an indexed line, so that readers from anywhere soon
        ask for the same pages, which are read (and encoded) once for all.
        """
        indexed, following = self._index.around(first)
        if indexed[0] > at[0]:
            at = indexed
        last = self.count if following is None else min(following - 1, self.count)
        key = (first, last)
        reading = self._file_pages.pop(key, None) or asyncio.ensure_future(
            _read_page(self.path, at, first, last)
        )
        self._file_pages[key] = reading  # the most recent last
        if len(self._file_pages) > SHARED_PAGES:
            del self._file_pages[next(iter(self._file_pages))]
        try:
            # Shielded: other readers may be waiting for the same page.
            return await asyncio.shield(reading)
        except Exception:
            self._file_pages.pop(key, None)
            raise


class LogReader:
    """One reader's place in a log: file pages, then the channel's tail, then live lines.

    Without a channel (a task that ended and left the hub), the file is all
    there is, and read() returns None at its end.
    """

    def __init__(self, channel: LogChannel | None, path: Path, first: int) -> None:
        self.channel = channel
        self.path = path
        self.next = first  # the number of the next line to read
        self._at: Position = (1, 0)  # a line known to start at a file offset

    async def read(self) -> LogPage | LogEnd | None:
        """The next lines (at least one), or the end; waits while there is nothing new."""
        channel = self.channel
        if channel is None:
            page, self._at = await _read_page(self.path, self._at, self.next, None)
            self.next += len(page.lines)
            return page if page.lines else None
        if not channel._opened:
            await channel._open()
        while True:
            if self.next < channel._tail_first():
                page, self._at = await channel._file_page(self.next, self._at)
                if not page.lines:
                    raise RuntimeError(f"{self.path} has fewer lines than its channel counted")
                self.next += len(page.lines)
                return page
            # The lines there were at the last wake-up (all of them at the end):
            # one message per reader and wake-up, the same for readers alike.
            last = channel.count if channel.end is not None else channel._shown
            if self.next <= last:
                page = channel._tail_page(self.next, last)
                self.next += len(page.lines)
                return page
            if channel.end is not None:
                return channel.end
            await channel._event.wait()


async def _read_page(
    path: Path, at: Position, first: int, last: int | None
) -> tuple[LogPage, Position]:
    texts, after = await asyncio.to_thread(logfile.read_lines, path, at, first, last)
    lines = (LogLine(n, t, logfile.is_kopers(t)) for n, t in enumerate(texts, first))
    return LogPage(first, tuple(lines)), after


class LogHub:
    """Owns every open channel; the runner opens and closes them."""

    def __init__(self, live_dir: Path) -> None:
        self.live_dir = live_dir
        self.channels: dict[tuple[int, str], LogChannel] = {}

    def path(self, build_id: int, chroot: str) -> Path:
        """The live log file of a task (it outlives the channel)."""
        return self.live_dir / f"{build_id:08d}" / chroot / LIVE_LOG

    def open(self, build_id: int, chroot: str) -> LogChannel:
        """The task's channel; a task that runs again continues its earlier log.

        The file is counted in a thread on the channel's first use, not here.
        """
        self._prune()
        key = (build_id, chroot)
        channel = self.channels.get(key)
        if channel is None or channel.end is not None:
            path = self.path(build_id, chroot)
            path.parent.mkdir(parents=True, exist_ok=True)
            channel = LogChannel(path)
            self.channels[key] = channel
        return channel

    def get(self, build_id: int, chroot: str) -> LogChannel | None:
        return self.channels.get((build_id, chroot))

    def forget(self, build_id: int, chroot: str) -> None:
        self.channels.pop((build_id, chroot), None)

    def replay(self, build_id: int, chroot: str, from_line: int = 1) -> LogReader:
        """A reader of a task's log file from `from_line`, for a task no channel holds."""
        return LogReader(None, self.path(build_id, chroot), max(from_line, 1))

    def _prune(self) -> None:
        """Drop channels that ended long ago: their file still serves late viewers."""
        cutoff = time.monotonic() - RETAIN_S
        for key, channel in list(self.channels.items()):
            if channel.ended_at is not None and channel.ended_at < cutoff:
                del self.channels[key]
