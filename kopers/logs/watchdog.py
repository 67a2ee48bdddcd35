"""The limits a running builder must stay within: total time, silence, log size. Pure.

The runner feeds the watchdog each line as it arrives and arms one timer at
`deadline()`, re-armed after every line. When the timer fires, `breach_at()`
says which limit it was; a line that takes the log past its size cap is a
breach at once. The clock is passed in, so all of this is tested without
waiting.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Limit(enum.StrEnum):
    TIMEOUT = "timeout"
    SILENCE = "silence"
    SIZE = "size"


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_s: float  # the whole builder run
    silence_s: float  # longest stretch without a line
    max_bytes: int  # of log text (each line counts its UTF-8 bytes plus a newline)


@dataclass(frozen=True, slots=True)
class Breach:
    limit: Limit
    reason: str  # one sentence for the log and the task's reason


class Watchdog:
    """One builder run against its limits."""

    def __init__(self, limits: Limits, started: float) -> None:
        self.limits = limits
        self.started = started
        self.last_output = started
        self.bytes = 0

    def saw(self, line: str, now: float) -> Breach | None:
        """Count a line; a Breach if it takes the log past its size cap."""
        self.last_output = now
        self.bytes += len(line.encode("utf-8", "replace")) + 1
        if self.bytes > self.limits.max_bytes:
            mib = self.limits.max_bytes / (1 << 20)
            return Breach(Limit.SIZE, f"the build log grew past its limit of {mib:g} MiB")
        return None

    def deadline(self) -> float:
        """When the next limit runs out unless another line arrives."""
        return min(self.started + self.limits.timeout_s, self.last_output + self.limits.silence_s)

    def breach_at(self, now: float) -> Breach | None:
        """The limit that has run out at `now`, if any (the overall timeout first)."""
        if now >= self.started + self.limits.timeout_s:
            return Breach(
                Limit.TIMEOUT,
                f"the build ran longer than its timeout of {self.limits.timeout_s:g} s",
            )
        if now >= self.last_output + self.limits.silence_s:
            return Breach(
                Limit.SILENCE,
                f"the build printed nothing for {self.limits.silence_s:g} s",
            )
        return None
