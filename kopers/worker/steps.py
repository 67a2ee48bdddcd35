"""The step clock: how long each step of a task's run took. Pure.

`StepClock` times the steps Kopers runs on the host (VM claim, upload, the
builder's run, result download, VM release, signing, publishing). Its time is
the authoritative one.

`BuilderPhases` times the builder's own phases (unpack, key import, builddep,
rpmbuild) on the host, between the lines in which the builder announces
each command (`+ dnf builddep ...`). The build runs as root and can print
such lines itself, so these steps are marked as the builder's (and capped in
number): they say how the build's output divides its time, never more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from kopers.models import StepSource, TaskStep

# Where a builder phase begins: the line that announces its first command.
_PHASE_STARTS: Final = (
    ("+ rpm -i ", "unpack"),
    ("+ fetch ", "key import"),
    ("+ rpm --import ", "key import"),
    ("+ dnf builddep ", "builddep"),
    ("+ rpmbuild ", "rpmbuild"),
)
# Lines that end the phase under way without starting another.
_PHASE_ENDS: Final = (
    "+ cat ",
    "kopers-builder: buildroot manifest",
    "kopers-builder: result:",
    "kopers-builder: build succeeded",
)
MAX_BUILDER_STEPS: Final = 16  # a build printing markers over and over adds no more


class StepClock:
    """Times named steps; `now` is a monotonic clock in seconds."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._origin = now()
        self._open: dict[str, float] = {}
        self._done: list[TaskStep] = []

    def offset(self) -> float:
        """Seconds since the clock began."""
        return self._now() - self._origin

    def start(self, name: str) -> None:
        self._open[name] = self.offset()

    def stop(self, name: str) -> TaskStep | None:
        """End a started step and record it; None if it was not under way."""
        began = self._open.pop(name, None)
        if began is None:
            return None
        step = TaskStep(name, max(0.0, self.offset() - began), StepSource.KOPERS, began)
        self._done.append(step)
        return step

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block as step `name` (recorded whether or not it raises)."""
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)

    def add(self, step: TaskStep) -> None:
        """Record a step timed elsewhere (a builder phase)."""
        self._done.append(step)

    @property
    def steps(self) -> tuple[TaskStep, ...]:
        """The finished steps, in the order they began."""
        return tuple(sorted(self._done, key=lambda s: s.offset))


class BuilderPhases:
    """Splits the builder's run into phases by the lines it prints; offsets in seconds."""

    def __init__(self) -> None:
        self._current: tuple[str, float] | None = None
        self._count = 0

    def saw(self, line: str, at: float) -> TaskStep | None:
        """Note a builder line seen at `at`; the phase it ended, if any."""
        if self._count >= MAX_BUILDER_STEPS or not line.startswith(("+ ", "kopers-builder: ")):
            return None
        name = next((n for prefix, n in _PHASE_STARTS if line.startswith(prefix)), None)
        if name is None and not line.startswith(_PHASE_ENDS):
            return None
        if self._current is not None and self._current[0] == name:
            return None  # the next command of the same phase (a second key)
        ended = self.end(at)
        if name is not None:
            self._current = (name, at)
        return ended

    def end(self, at: float) -> TaskStep | None:
        """End the phase under way (the builder's run is over); it, if there was one."""
        if self._current is None or self._count >= MAX_BUILDER_STEPS:
            return None
        name, began = self._current
        self._current = None
        self._count += 1
        return TaskStep(name, max(0.0, at - began), StepSource.BUILDER, began)


def step_line(step: TaskStep) -> str:
    """The log line for a finished step."""
    line = f"step {step.name}: {step.seconds:.2f} s"
    if step.source == StepSource.BUILDER:
        line += " (timed between the builder's own output lines)"
    return line


def summary_line(steps: Sequence[TaskStep]) -> str:
    """One line with every step's time, Kopers' first, then the builder's."""
    ours = [s for s in steps if s.source == StepSource.KOPERS]
    theirs = [s for s in steps if s.source == StepSource.BUILDER]
    text = "step times: " + ", ".join(f"{s.name} {s.seconds:.2f} s" for s in ours)
    if theirs:
        text += "; as the builder's output divides its run: "
        text += ", ".join(f"{s.name} {s.seconds:.2f} s" for s in theirs)
    return text


def steps_json(steps: Sequence[TaskStep]) -> list[dict[str, Any]]:
    """The steps as stored and as the API shows them."""
    return [
        {
            "name": s.name,
            "seconds": round(s.seconds, 3),
            "source": str(s.source),
            "offset": round(s.offset, 3),
        }
        for s in steps
    ]


def steps_from_json(value: object) -> tuple[TaskStep, ...]:
    """Steps back from their stored form; anything malformed is left out."""
    if not isinstance(value, list):
        return ()
    out = []
    for item in value:
        try:
            out.append(
                TaskStep(
                    str(item["name"]),
                    float(item["seconds"]),
                    StepSource(item["source"]),
                    float(item.get("offset", 0.0)),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return tuple(out)
