"""Steps of a task timed into its log: a timed block.

The clock itself is pure (kopers.worker.steps); this module says each step's
time in the task's log as a line of Kopers' own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from kopers.logs.hub import LogChannel
from kopers.worker.steps import StepClock, step_line


@contextlib.asynccontextmanager
async def timed(channel: LogChannel, clock: StepClock, name: str) -> AsyncIterator[None]:
    """Time the block as step `name`; its time goes in the log when the block ends well."""
    clock.start(name)
    try:
        yield
    finally:
        step = clock.stop(name)
    if step is not None:
        await channel.say(step_line(step))
