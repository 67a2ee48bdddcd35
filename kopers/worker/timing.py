"""Steps of a task timed into its log: a timed block, and a VM released in the background.

The clock itself is pure (kopers.worker.steps); this module says each step's
time in the task's log as a line of Kopers' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from kopers.logs.hub import LogChannel
from kopers.worker.steps import StepClock, step_line

log = logging.getLogger(__name__)
RELEASE = "vm release"


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


def release_later(
    vm_scope: contextlib.AsyncExitStack, clock: StepClock, label: str
) -> asyncio.Task[None]:
    """Leave the VM's scope (destroying it) in a task of its own, timed as "vm release".

    For when the results are safe on the host already: what fails now is logged,
    and the build does not fail for it.
    """

    async def release() -> None:
        clock.start(RELEASE)
        try:
            await vm_scope.aclose()
        except Exception:
            log.exception("releasing %s failed", label)
        finally:
            clock.stop(RELEASE)

    return asyncio.create_task(release(), name=f"release {label}")


async def released(
    releasing: asyncio.Task[None] | None, channel: LogChannel, clock: StepClock
) -> None:
    """Wait until a VM released in the background is gone; say how long it took."""
    if releasing is None:
        return
    await asyncio.shield(releasing)
    step = next((s for s in clock.steps if s.name == RELEASE), None)
    if step is not None:
        await channel.say(step_line(step))
