"""A task's VM going down in the background, and the record of how long that took.

Once the builder has ended and its results are on the host, nothing more is
needed from the VM: it is destroyed in a task of its own while the results
are checked and published, and the task ends without waiting for it (on this
kind of machine a destroy takes over a second). When the VM is gone, its
release time is appended to the task's stored steps, its log file and the
published build.log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil

from kopers.db.store import Store
from kopers.logs.hub import LogChannel
from kopers.paths import DataPaths
from kopers.publish.publisher import Publisher
from kopers.worker.outcome import collect_logs
from kopers.worker.steps import StepClock, step_line

log = logging.getLogger(__name__)
RELEASE = "vm release"


def release_later(
    vm_scope: contextlib.AsyncExitStack, clock: StepClock, label: str
) -> asyncio.Task[None]:
    """Leave the VM's scope (destroying it) in a task of its own, timed as "vm release".

    For when nothing more is needed from the VM: what fails now is logged,
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


class Releases:
    """VMs still going down after their tasks ended; `drain` waits for them at shutdown."""

    def __init__(self, paths: DataPaths, store: Store, publisher: Publisher) -> None:
        self.paths = paths
        self.store = store
        self.publisher = publisher
        self._pending: set[asyncio.Task[None]] = set()

    def noted(
        self,
        build_id: int,
        chroot: str,
        channel: LogChannel,
        releasing: asyncio.Task[None],
        clock: StepClock,
    ) -> None:
        """Record the release's time once the VM is gone (in a task of its own)."""
        note = self._note(build_id, chroot, channel, releasing, clock)
        task = asyncio.create_task(note, name=f"release of {build_id}/{chroot}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def _note(
        self,
        build_id: int,
        chroot: str,
        channel: LogChannel,
        releasing: asyncio.Task[None],
        clock: StepClock,
    ) -> None:
        await asyncio.shield(releasing)
        step = next((s for s in clock.steps if s.name == RELEASE), None)
        if step is None:
            return
        workdir = self.paths.work / f"{build_id:08d}-{chroot}-released"
        try:
            build = await self.store.get_build(build_id)
            stored = next((t.steps for t in build.tasks if t.chroot == chroot), ())
            # Gone before the task ended, it was stored with the other steps.
            if not any(s.name == RELEASE for s in stored):
                await self.store.add_task_steps(build_id, chroot, [step])
            # The channel has ended: the line goes to the file, for whoever opens it next.
            await channel.say(f"{step_line(step)}, after the task ended")
            logs = await collect_logs(channel, workdir)
            await self.publisher.replace_logs(
                build.owner, build.project, chroot, build.id, build.package_name or "unknown", logs
            )
        except Exception:
            # The VM is gone; only the record of how long that took is incomplete.
            log.exception("task %d/%s: recording the VM's release failed", build_id, chroot)
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
