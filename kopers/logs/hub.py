"""The log hub: one channel per running task, fanned out to files and viewers.

The runner appends lines as the builder prints them. Each channel keeps the
lines in memory (numbered from 1) and appends them to `builder-live.log`, so a
viewer can join late or resume from line N with no gap and no duplicate.
Viewers read from bounded queues: a viewer that cannot keep up is dropped
rather than allowed to slow the build or the other viewers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles

log = logging.getLogger(__name__)

VIEWER_QUEUE = 1000


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


class LogChannel:
    """The log of one task (build, chroot), across all of its attempts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self.viewers: set[Viewer] = set()
        self.end: LogEnd | None = None
        self._lock = asyncio.Lock()

    async def append(self, text: str) -> None:
        text = text.rstrip("\n")
        async with self._lock:
            self.lines.append(text)
            number = len(self.lines)
            async with aiofiles.open(self.path, "a", encoding="utf-8", errors="replace") as fh:
                await fh.write(text + "\n")
        self._fan_out(LogLine(number, text))

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

    def open(self, build_id: int, chroot: str) -> LogChannel:
        key = (build_id, chroot)
        channel = self.channels.get(key)
        if channel is None or channel.end is not None:
            path = self.live_dir / f"{build_id:08d}" / chroot / "builder-live.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
            channel = LogChannel(path)
            self.channels[key] = channel
        return channel

    def get(self, build_id: int, chroot: str) -> LogChannel | None:
        return self.channels.get((build_id, chroot))

    def forget(self, build_id: int, chroot: str) -> None:
        self.channels.pop((build_id, chroot), None)
