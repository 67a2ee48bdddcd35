"""Publishing an uploaded binary RPM into a build's chroots, without building it.

The RPM's header passed the one gate (kopers.rpmfile.read_binary_rpm) when it
was uploaded and passes it again here, before anything is published. Each
chroot task then goes the usual way of a task (pending, running, ended) with
the RPM, signed with the project's key, and a build.log saying what happened,
published by the normal publisher.
"""

from __future__ import annotations

import shutil

from kopers.db.store import Store
from kopers.errors import BuildFailed
from kopers.logs.hub import LogHub
from kopers.models import Build, BuildState
from kopers.paths import DataPaths
from kopers.publish.publisher import Publisher
from kopers.rpmfile import RpmInfo, read_binary_rpm
from kopers.worker.outcome import collect_logs


async def publish_rpm_upload(
    build: Build, paths: DataPaths, store: Store, hub: LogHub, publisher: Publisher
) -> RpmInfo:
    """Publish the build's uploaded RPM into each of its chroots; its header info."""
    rpm = paths.source_dir(build.id) / str(build.source.get("filename", ""))
    if not rpm.is_file() or rpm.is_symlink():
        raise BuildFailed("the uploaded RPM is no longer stored")
    info = await read_binary_rpm(rpm)
    if info.nevra.filename != rpm.name:
        raise BuildFailed("the stored RPM does not match its header")
    package = info.nevra.name
    for task in build.tasks:
        chroot = task.chroot
        if not await store.set_task_state(build.id, chroot, BuildState.PENDING):
            continue  # canceled meanwhile
        await store.start_task(build.id, chroot, BuildState.RUNNING)
        channel = hub.open(build.id, chroot)
        workdir = paths.work / f"{build.id:08d}-{chroot}"
        shutil.rmtree(workdir, ignore_errors=True)
        try:
            await channel.say(
                f"{rpm.name} was uploaded built: it is signed and published without a build"
            )
            logs = await collect_logs(channel, workdir)
            result_dir = await publisher.publish(
                build.owner, build.project, chroot, build.id, package, [rpm, *logs]
            )
            finished = await store.finish_task(
                build.id,
                chroot,
                BuildState.SUCCEEDED,
                None,
                str(result_dir),
                [info.nevra],
            )
            state = BuildState.SUCCEEDED if finished else BuildState.CANCELED
            await channel.say(f"task ended {state}")
            channel.close(state, None)
        except Exception as exc:
            reason = getattr(exc, "message", None) or f"publishing failed ({type(exc).__name__})"
            await store.finish_task(build.id, chroot, BuildState.FAILED, reason, None)
            await channel.say(f"task ended failed: {reason}")
            channel.close(BuildState.FAILED, reason)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return info
