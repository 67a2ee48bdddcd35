"""Stopping Kopers' supervised loops ends even a loop that lost its cancel."""

from __future__ import annotations

import asyncio

from kopers.service import _stop


async def test_a_loop_that_swallows_a_cancel_is_cancelled_again_until_it_ends() -> None:
    cancels = 0

    async def stubborn() -> None:
        # What Python 3.11's wait_for does when the cancel meets a completion:
        # the first cancel is lost and the loop goes on.
        nonlocal cancels
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancels += 1
                if cancels > 1:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    # Waited for from outside, not under a timeout of its own: cancelling the
    # stopper would cancel the loop a second time and hide a stopper that waits.
    stopper = asyncio.create_task(_stop(task))
    done, _ = await asyncio.wait({stopper}, timeout=30)
    assert stopper in done, "stopping waits forever for a loop that lost its cancel"
    assert task.cancelled() and cancels == 2


async def test_a_loop_that_ends_at_once_is_stopped_once() -> None:
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await _stop(task)
    assert task.cancelled()
