"""One run of the builder in a VM, held to its limits: time, silence, log size.

Shared by the source step and the per-chroot pipeline. The builder's lines go
to the task's log channel as the build's own; Kopers' notes about the run go
in as Kopers' lines. A breached limit raises BuildFailed: the caller leaves the
VM's context, which destroys the VM and the builder with it.

A failed run's reason comes from the builder's exit status alone (BuilderStatus,
the contract with every template's builder script), never from its output.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType
from typing import Final

from kopers.config import BuildConfig
from kopers.errors import BuildFailed, KopersError
from kopers.logs.hub import LogChannel
from kopers.logs.watchdog import Limits, Watchdog
from kopers.models import StepSource, TaskStep
from kopers.vm.pool import BuilderVm
from kopers.worker import job as jobs
from kopers.worker.results import ResultLimits
from kopers.worker.steps import BuilderPhases, StepClock, step_line


async def run_builder(
    vm: BuilderVm,
    channel: LogChannel,
    timeout: int,
    cfg: BuildConfig,
    clock: StepClock | None = None,
) -> int:
    """The builder's exit status; BuildFailed when it breaches a limit.

    With a `clock`, the run is timed as step "builder", and the phases its
    output announces (see steps.BuilderPhases) as the builder's steps.
    """
    loop = asyncio.get_running_loop()
    phases = BuilderPhases()

    async def note_phase(step: TaskStep | None) -> None:
        if step is not None and clock is not None:
            clock.add(step)
            await channel.say(step_line(step))

    limits = Limits(timeout, cfg.silence_timeout_s, cfg.max_log_mib << 20)
    watch = Watchdog(limits, loop.time())
    await channel.say(
        f"builder started on {vm.name} ({vm.origin} VM, ready {vm.waited_s:.1f} s "
        f"after it was asked for) on host {vm.host}; timeout {timeout} s, silence limit "
        f"{cfg.silence_timeout_s} s, log limit {cfg.max_log_mib} MiB"
    )
    try:
        async with asyncio.timeout_at(watch.deadline()) as scope:

            async def on_line(line: str) -> None:
                breach = watch.saw(line, loop.time())
                if breach is not None:
                    await channel.say(f"{breach.reason}; stopping the build")
                    raise BuildFailed(breach.reason)
                if clock is not None:
                    await note_phase(phases.saw(line, clock.offset()))
                await channel.append(line)
                scope.reschedule(watch.deadline())

            if clock is None:
                return await vm.run(f"{vm.builder} {jobs.JOB_PATH}", on_line)
            clock.start("builder")
            try:
                status = await vm.run(f"{vm.builder} {jobs.JOB_PATH}", on_line)
            finally:
                # Recorded whatever ends the run; said only when it ends on its own.
                ended = [s for s in (phases.end(clock.offset()), clock.stop("builder")) if s]
                for step in ended:
                    if step.source == StepSource.BUILDER:
                        clock.add(step)
            for step in ended:
                await channel.say(step_line(step))
            return status
    except TimeoutError:
        # The timer fired at the deadline (give or take the clock's resolution).
        breach = watch.breach_at(max(loop.time(), watch.deadline()))
        reason = breach.reason if breach else f"the build ran past its limits ({timeout} s)"
        await channel.say(f"{reason}; stopping the build")
        raise BuildFailed(reason) from None


def result_limits(cfg: BuildConfig) -> ResultLimits:
    """What one run may hand back, from the [build] settings."""
    # Copying runs at disk or loopback speed; a deadline of a second per
    # 8 MiB (and at least ten minutes) stops only a stuck or endless copy.
    deadline = max(600.0, cfg.max_result_mib / 8)
    return ResultLimits(cfg.max_result_files, cfg.max_result_mib << 20, deadline)


class BuilderStatus(IntEnum):
    """The builder script's exit statuses: vm_templates/*/builder.py document the same."""

    BUILT = 0
    FAILED = 1  # the package failed at a step without a status of its own
    INVALID_JOB = 2  # the job file is unusable
    UNPACK_FAILED = 3  # rpm -i could not unpack the source package
    KEY_FAILED = 4  # an additional repository's key could not be fetched or imported
    BUILDDEP_FAILED = 5  # dnf builddep could not install the build dependencies
    RPMBUILD_FAILED = 6  # rpmbuild (or mock) failed to build the package
    SRPM_FAILED = 7  # rpmbuild -bs could not make the source package (builds from git)


_REASONS: Final[Mapping[int, str]] = MappingProxyType(
    {
        BuilderStatus.FAILED: "the package failed to build; see build.log",
        BuilderStatus.INVALID_JOB: "the builder refused its job file (a Kopers or template bug)",
        BuilderStatus.UNPACK_FAILED: (
            "the source package could not be unpacked (rpm -i); see build.log"
        ),
        BuilderStatus.KEY_FAILED: (
            "an additional repository's key could not be fetched; see build.log"
        ),
        BuilderStatus.BUILDDEP_FAILED: (
            "the build dependencies could not be installed (dnf builddep); see build.log"
        ),
        BuilderStatus.RPMBUILD_FAILED: "rpmbuild failed to build the package; see build.log",
        BuilderStatus.SRPM_FAILED: (
            "making the source package failed (rpmbuild -bs); see build.log"
        ),
        127: "the builder script was not found (a template bug)",
    }
)


def cause(exc: BaseException) -> str:
    """A one-line cause fit for a public reason: Kopers' own message, or only the
    exception's type (an OSError's text would show host paths)."""
    if isinstance(exc, KopersError):
        return exc.message
    return f"{type(exc).__name__}; see the server log"


def failure_reason(status: int) -> str:
    """The reason of a failed run, from the builder's exit status alone.

    The build runs as root and can print anything, so nothing it prints
    becomes the reason.
    """
    if status in _REASONS:
        return _REASONS[status]
    if 128 < status < 128 + signal.NSIG:
        # The shell's (and ssh.run's) way of saying that a signal ended it.
        number = status - 128
        names = {int(known): known.name for known in signal.Signals}
        return f"the builder was killed by signal {number} ({names.get(number, 'real-time')})"
    return f"the builder exited with status {status}"
