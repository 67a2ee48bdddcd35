"""The log hub: one channel per task, fanned out to files and viewers.

The runner appends lines as the builder prints them. Each channel keeps the
lines in memory (numbered from 1) and appends them to `builder-live.log`, so a
viewer can join late or resume from line N with no gap and no duplicate.
A task that runs again (after a restart, or on a fresh VM) continues the same
file and numbering, so resuming works across attempts too.

Viewers read from bounded queues: a viewer that cannot keep up is dropped
rather than allowed to slow the build or the other viewers. An ended channel
stays in memory for `RETAIN_S`, then only its file remains (`read_lines`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles

log = logging.getLogger(__name__)

VIEWER_QUEUE = 1000
RETAIN_S = 600.0
LIVE_LOG = "builder-live.log"


@dataclass(frozen=True, slots=True)
class LogLine:
    number: int
    text: str


@dataclass(frozen=True, slots=True)
class LogEnd:
    """The last message of a channel: the task's end state."""

    state: str
    reason: str | None


class SlowViewer(Exception):
    """Raised to a viewer whose queue overflowed."""


@dataclass(eq=False)
class Viewer:
    queue: asyncio.Queue[LogLine | LogEnd | SlowViewer] = field(
        default_factory=lambda: asyncio.Queue(VIEWER_QUEUE)
    )

    async def next(self) -> LogLine | LogEnd:
        item = await self.queue.get()
        if isinstance(item, SlowViewer):
            raise item
        return item

    def pending(self) -> list[LogLine | LogEnd]:
        """What is queued right now, without waiting (to batch it into one message)."""
        items: list[LogLine | LogEnd] = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, SlowViewer):
                raise item
            items.append(item)
        return items


class LogChannel:
    """The log of one task (build, chroot), across all of its attempts."""

    def __init__(self, path: Path, lines: list[str] | None = None) -> None:
        self.path = path
        self.lines: list[str] = lines if lines is not None else []
        self.viewers: set[Viewer] = set()
        self.end: LogEnd | None = None
        self.ended_at: float | None = None
        self._lock = asyncio.Lock()

    async def append(self, text: str) -> None:
        text = text.rstrip("\n")
        async with self._lock:
            self.lines.append(text)
            number = len(self.lines)
            async with aiofiles.open(self.path, "a", encoding="utf-8", errors="replace") as fh:
                await fh.write(text + "\n")
        self._fan_out(LogLine(number, text))

    async def say(self, text: str) -> None:
        """Append a line of Kopers' own (not the build's)."""
        await self.append(f"kopers: {text}")

    def subscribe(self, from_line: int = 1) -> tuple[list[LogLine], Viewer | None]:
        """Backlog from `from_line`, plus a viewer for what comes next (None if ended).

        Taking the backlog and registering happen with no await between them,
        so no line can fall between the two.
        """
        start = max(from_line, 1)
        backlog = [LogLine(i, t) for i, t in enumerate(self.lines[start - 1 :], start)]
        if self.end is not None:
            return backlog, None
        viewer = Viewer()
        self.viewers.add(viewer)
        return backlog, viewer

    def unsubscribe(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)

    def close(self, state: str, reason: str | None) -> None:
        self.end = LogEnd(state, reason)
        self.ended_at = time.monotonic()
        self._fan_out(self.end)
        self.viewers.clear()

    def _fan_out(self, item: LogLine | LogEnd) -> None:
        for viewer in list(self.viewers):
            try:
                viewer.queue.put_nowait(item)
            except asyncio.QueueFull:
                # Drop the slow viewer: empty its queue so the error is the next thing it reads.
                self.viewers.discard(viewer)
                while not viewer.queue.empty():
                    viewer.queue.get_nowait()
                viewer.queue.put_nowait(SlowViewer("viewer too slow; reconnect to resume"))


class LogHub:
    """Owns every open channel; the runner opens and closes them."""

    def __init__(self, live_dir: Path) -> None:
        self.live_dir = live_dir
        self.channels: dict[tuple[int, str], LogChannel] = {}

    def path(self, build_id: int, chroot: str) -> Path:
        """The live log file of a task (it outlives the channel)."""
        return self.live_dir / f"{build_id:08d}" / chroot / LIVE_LOG

    def open(self, build_id: int, chroot: str) -> LogChannel:
        """The task's channel; a task that runs again continues its earlier log."""
        self._prune()
        key = (build_id, chroot)
        channel = self.channels.get(key)
        if channel is None or channel.end is not None:
            path = self.path(build_id, chroot)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Small, and only after a restart: read in the loop so that open()
            # stays synchronous (the runner calls it before anything else).
            lines = _read(path)
            channel = LogChannel(path, lines)
            self.channels[key] = channel
        return channel

    def get(self, build_id: int, chroot: str) -> LogChannel | None:
        return self.channels.get((build_id, chroot))

    def forget(self, build_id: int, chroot: str) -> None:
        self.channels.pop((build_id, chroot), None)

    async def read_lines(self, build_id: int, chroot: str, from_line: int = 1) -> list[LogLine]:
        """Lines of a task's log file from `from_line`, for a task no channel holds."""
        path = self.path(build_id, chroot)

        start = max(from_line, 1)
        lines = await asyncio.to_thread(_read, path)
        return [LogLine(i, t) for i, t in enumerate(lines[start - 1 :], start)]

    def _prune(self) -> None:
        """Drop channels that ended long ago: their file still serves late viewers."""
        cutoff = time.monotonic() - RETAIN_S
        for key, channel in list(self.channels.items()):
            if channel.ended_at is not None and channel.ended_at < cutoff:
                del self.channels[key]


def _read(path: Path) -> list[str]:
    """Lines as append() wrote them: only "\n" separates (a "\r" is part of a line)."""
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as fh:
            lines = fh.read().split("\n")
    except FileNotFoundError:
        return []
    return lines[:-1] if lines and lines[-1] == "" else lines
