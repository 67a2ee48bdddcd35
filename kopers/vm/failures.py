"""What the VM pool remembers of failures: boot back-off, and where a task's VM failed.

Both live in memory only, like the pool's clones: a restart starts afresh.
Kept apart from the pool (kopers.vm.pool) as plain bookkeeping with no I/O.
"""

from __future__ import annotations

MAX_BACKOFF_S = 60.0
MAX_FAILURES_KEPT = 1000


class BootBackoff:
    """Per template: warm clones that keep failing to boot are retried ever later.

    Nobody waits on a warm clone's boot, so without this a broken template or
    host would boot clones in a tight loop. The wait doubles with each failure
    in a row (2, 4, 8 ... s, at most MAX_BACKOFF_S); a good boot resets it.
    """

    def __init__(self) -> None:
        self._until: dict[str, tuple[int, float]] = {}  # template -> (failures, not before)

    def ready(self, template: str, now: float) -> bool:
        """Whether a warm clone of the template may boot at `now` (the loop's clock)."""
        return self._until.get(template, (0, 0.0))[1] <= now

    def times(self) -> list[float]:
        """When templates held back may boot again: the refill loop wakes then."""
        return [t for _, t in self._until.values()]

    def failed(self, template: str, now: float) -> float:
        """A warm clone failed to boot: hold the template back; return for how long."""
        failures = self._until.get(template, (0, 0.0))[0] + 1
        delay = min(MAX_BACKOFF_S, 2.0**failures)
        self._until[template] = (failures, now + delay)
        return delay

    def succeeded(self, template: str) -> None:
        self._until.pop(template, None)


class FailedHosts:
    """Per task: the host its last VM failed on, so its next attempt goes elsewhere."""

    def __init__(self) -> None:
        self._hosts: dict[str, str] = {}  # task label -> host name, oldest first

    def note(self, label: str, host: str) -> None:
        self._hosts.pop(label, None)
        self._hosts[label] = host
        while len(self._hosts) > MAX_FAILURES_KEPT:  # tasks that never came back
            del self._hosts[next(iter(self._hosts))]

    def pop(self, label: str) -> str | None:
        """The host to avoid for this attempt, forgotten after it (None: any host)."""
        return self._hosts.pop(label, None)
