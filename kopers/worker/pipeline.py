"""The per-chroot pipeline: one chroot of one build, in one fresh VM.

Written as a straight script of steps. Retry, cancel and failure travel as
exceptions: an InfrastructureError (VM, SSH, host) is retried on a fresh VM,
BuildFailed (the package's own fault) is final, and cancellation arrives as
asyncio.CancelledError. The VM is destroyed on every path, and every path
ends the task: in Postgres, in its log channel, and for its viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from kopers.config import ChrootConfig, Config
from kopers.db.store import Store
from kopers.db.transitions import TransitionRefused
from kopers.errors import BuildFailed, InfrastructureError
from kopers.logs.hub import LogChannel, LogHub
from kopers.models import Build, BuildState, TaskStep
from kopers.net.connect import resolve_checked
from kopers.net.local import address_policy
from kopers.net.proxy import EgressProxy
from kopers.paths import DataPaths
from kopers.publish.publisher import Publisher
from kopers.redact import host_roots, scrub
from kopers.vm.builder import BuilderVm
from kopers.vm.pool import VmPool
from kopers.worker import job as jobs
from kopers.worker.outcome import Outcome, collect_logs, read_outcome
from kopers.worker.rebuildlog import rebuild_lines
from kopers.worker.release import RELEASE, Releases, release_later
from kopers.worker.repos import forward_repos, plan_repos
from kopers.worker.results import Identity, take_results
from kopers.worker.session import cause, failure_reason, result_limits, run_builder
from kopers.worker.steps import StepClock, step_line, summary_line
from kopers.worker.timing import timed

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 3

Hook = Callable[[int, str], Awaitable[object]]  # (build id, chroot)


async def _run_hooks(hooks: list[Hook], build_id: int, chroot: str) -> None:
    """Run hooks one by one; a failing hook is logged and changes nothing for the task."""
    for hook in hooks:
        try:
            await hook(build_id, chroot)
        except Exception:
            log.exception("task %d/%s: hook %r failed", build_id, chroot, hook)


class ChrootPipeline:
    def __init__(
        self,
        config: Config,
        paths: DataPaths,
        store: Store,
        hub: LogHub,
        publisher: Publisher,
        vms: VmPool,
        proxy: EgressProxy | None = None,
    ) -> None:
        self.config = config
        self.paths = paths
        self.store = store
        self.hub = hub
        self.publisher = publisher
        self.vms = vms
        # The way out for builds with network access; without it they cannot run.
        self.proxy = proxy
        self.policy = proxy.policy if proxy is not None else address_policy(config.network)
        # Called with the build's id and the chroot once a task of it succeeded
        # (packages' max_builds), and once its results are published, before its
        # VM is gone and the task ends (automatic rebuilds of dependents).
        self.on_succeeded: list[Hook] = []
        self.on_published: list[Hook] = []
        # Told (at once, cheaply, without awaiting) of every task this run ended,
        # with its state, reason and step times: metrics.
        self.on_ended: list[Callable[[BuildState, str | None, Sequence[TaskStep]], None]] = []
        self.releases = Releases(paths, store, publisher)

    async def run(self, build_id: int, chroot_name: str) -> BuildState:
        build = await self.store.get_build(build_id)
        chroot = self.config.chroot(chroot_name)
        channel = self.hub.open(build_id, chroot_name)
        workdir = self.paths.work / f"{build_id:08d}-{chroot_name}"
        clock = StepClock()
        releases: list[asyncio.Task[None]] = []  # VMs going down in the background
        try:
            rebuild = await self.store.get_rebuild(build_id)
            generation = rebuild.generation if rebuild is not None else 0
            for line in rebuild_lines(rebuild, chroot_name):
                await channel.say(line)
            if chroot is None or not chroot.enabled:
                return await self._finish(
                    build,
                    chroot_name,
                    channel,
                    BuildState.FAILED,
                    f"chroot {chroot_name} is not configured on this server",
                )
            outcome = await self._attempts(
                build, chroot, channel, workdir, clock, generation, releases
            )
            try:
                # Published, and the task ended, while the VM goes down.
                await self._publish(build, chroot_name, channel, outcome, clock)
                await _run_hooks(self.on_published, build_id, chroot_name)
                await self._republish_log(build, chroot_name, channel, workdir, clock)
            except Exception as exc:
                log.exception("task %d/%s: publishing failed", build_id, chroot_name)
                raise BuildFailed(f"the results could not be published ({cause(exc)})") from exc
            state = await self._finish(
                build, chroot_name, channel, BuildState.SUCCEEDED, None, outcome, clock.steps
            )
            await self._after_success(build_id, chroot_name, state)
            return state
        except BuildFailed as exc:
            try:
                if clock.steps:
                    await channel.say(summary_line(clock.steps))
                files = await collect_logs(channel, workdir)
                await self.publisher.publish_logs(
                    build.owner, build.project, chroot_name, build.id, self._package(build), files
                )
            except Exception:
                # The task still ends; its log stays readable from the live log.
                log.exception("task %d/%s: publishing the logs failed", build_id, chroot_name)
            return await self._finish(
                build, chroot_name, channel, BuildState.FAILED, exc.message, None, clock.steps
            )
        except TransitionRefused:
            # The stored task moved on without this run (a cancel won the race):
            # Postgres keeps its state; the viewers are told that one.
            state = await self._stored_state(build_id, chroot_name)
            await channel.say(f"the task is {state} already; this run stops")
            channel.close(state, None)
            return state
        except asyncio.CancelledError:
            # Either the user canceled (the store already says so) or Kopers is
            # stopping: then the task runs again at the next start, continuing this log.
            if await self._canceled(build_id):
                await channel.say("build canceled by the user; its VM is destroyed")
                channel.close(BuildState.CANCELED, "canceled by the user")
            else:
                await channel.say("Kopers is stopping; this task runs again at start")
            raise
        except Exception as exc:
            # Anything else (a bug, the store, the disk): the task must still end,
            # failed in Postgres with its viewers told, not stay running forever.
            log.exception("task %d/%s crashed", build_id, chroot_name)
            reason = f"Kopers failed while running this task ({cause(exc)})"
            return await self._finish(
                build, chroot_name, channel, BuildState.FAILED, reason, None, clock.steps
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            for releasing in releases:
                self.releases.noted(build_id, chroot_name, channel, releasing, clock)

    async def _attempts(
        self,
        build: Build,
        chroot: ChrootConfig,
        channel: LogChannel,
        workdir: Path,
        clock: StepClock,
        generation: int,
        releases: list[asyncio.Task[None]],
    ) -> Outcome:
        """Run the build on fresh VMs until it ends on its own merits."""
        limit = self.config.build.max_attempts
        for attempt in range(1, limit + 1):
            await self.store.start_task(build.id, chroot.name, BuildState.STARTING)
            await channel.say(f"attempt {attempt} of {limit} on a fresh {chroot.template} VM")
            try:
                return await self._attempt(
                    build, chroot, channel, workdir, clock, generation, releases
                )
            except InfrastructureError as exc:
                log.warning(
                    "task %d/%s attempt %d: %s", build.id, chroot.name, attempt, exc.message
                )
                # The log and the reason are public: host paths stay in the server's log.
                last = scrub(exc.message, host_roots(self.config))
                await channel.say(f"attempt {attempt} failed (infrastructure): {last}")
                if attempt < limit:
                    # A short pause lets a passing host problem pass before the next VM.
                    await asyncio.sleep(RETRY_PAUSE_S * attempt)
        raise BuildFailed(
            f"infrastructure failure, not the package: {limit} attempts failed; last: {last}"
        )

    async def _attempt(
        self,
        build: Build,
        chroot: ChrootConfig,
        channel: LogChannel,
        workdir: Path,
        clock: StepClock,
        generation: int,
        releases: list[asyncio.Task[None]],
    ) -> Outcome:
        """One attempt on a fresh VM. Once the results are here, the VM goes down
        in the background (added to `releases`) while they are checked and published."""
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        srpm = self.paths.source_dir(build.id) / str(build.srpm_name)
        project = await self.store.project_by_id(build.project_id)
        extra = await self.store.chroot_repos(project.id, chroot.name)
        plans, notes = plan_repos(project, chroot.name, self._repo_server(), extra)
        for note in notes:
            await channel.say(f"repository {note.url} left out: {note.reason}")
        if project.enable_net and self.proxy is None:
            raise BuildFailed(
                "the project allows network access, but this server runs no egress "
                "proxy for builds to reach it through"
            )
        # The build's proxy session (its port and every tunnel it carries) is
        # entered after the VM, so it closes on every way out, before the VM goes.
        releasing: asyncio.Task[None] | None = None
        try:
            async with contextlib.AsyncExitStack() as scope:
                async with timed(channel, clock, "vm claim"):
                    vm = await scope.enter_async_context(
                        self.vms.builder(chroot.template, f"{build.id}-{chroot.name}")
                    )
                # Leaving the scope destroys the VM: "vm release" from then on.
                scope.callback(clock.start, "vm release")
                if not await self.store.set_task_state(build.id, chroot.name, BuildState.RUNNING):
                    raise TransitionRefused(f"task {build.id}/{chroot.name} may not run now")
                # Measured: uploading while the repositories are forwarded costs more
                # (a session more for the job file, in a one-CPU guest) than it saves.
                async with timed(channel, clock, "repo forwards"):
                    repos, refused = await forward_repos(plans, vm.forward, self._resolve_repo)
                for note in refused:
                    await channel.say(f"repository {note.url} left out: {note.reason}")
                proxy_url = None
                if project.enable_net:
                    assert self.proxy is not None
                    label = f"build {build.id}/{chroot.name}"
                    session = await scope.enter_async_context(self.proxy.session(label))
                    proxy_url = await self._forward_proxy(vm, channel, session.address)
                job = jobs.render_job(
                    build,
                    chroot,
                    repo_tag=self.config.build.repo_tag,
                    public_url=self.config.server.public_url,
                    srpm_name=srpm.name,
                    repos=repos,
                    enable_net=project.enable_net,
                    proxy=proxy_url,
                    generation=generation,
                )
                async with timed(channel, clock, "upload"):
                    await vm.mkdirs(jobs.IN_DIR, jobs.OUT_DIR)
                    await vm.put_text(json.dumps(job, indent=2), jobs.JOB_PATH)
                    await vm.put(srpm, f"{jobs.IN_DIR}/{srpm.name}")
                status = await run_builder(vm, channel, build.timeout, self.config.build, clock)
                out = workdir / "out"
                if status == 0:
                    async with timed(channel, clock, "result download"):
                        limits = result_limits(self.config.build)
                        await take_results(vm, jobs.OUT_DIR, out, limits)
                # Nothing more is needed from the VM: it goes down while the results
                # are checked and published (or the failure is recorded), and the
                # task ends without waiting for it.
                releasing = release_later(scope.pop_all(), clock, vm.name)
                releases.append(releasing)
        finally:
            step = clock.stop(RELEASE) if releasing is None else None
        if step is not None:
            await channel.say(step_line(step))
        if status != 0:
            raise BuildFailed(failure_reason(status))
        identity = Identity(
            jobs.forced_dist(chroot, self.config.build.repo_tag, generation),
            jobs.vendor(build.owner, build.project),
            self._package(build),
        )
        async with timed(channel, clock, "result check"):
            return await read_outcome(out, channel, workdir, identity)

    async def _resolve_repo(self, host: str, port: int) -> str:
        """A user repository's host, resolved once and checked: the address to forward to."""
        return str((await resolve_checked(host, port, self.policy))[0])

    async def _forward_proxy(
        self, vm: BuilderVm, channel: LogChannel, address: tuple[str, int]
    ) -> str:
        """Forward the build's egress proxy session into the VM; its URL as the VM sees it."""
        port = await vm.forward(*address)
        await channel.say(
            "network access goes through Kopers' egress proxy, which refuses "
            "local, private and this host's own addresses"
        )
        return f"http://127.0.0.1:{port}"

    def _repo_server(self) -> tuple[str, int]:
        """Where this Kopers serves /results/, as seen from this host."""
        host = self.config.server.host
        return ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host, self.config.server.port)

    async def _publish(
        self, build: Build, chroot: str, channel: LogChannel, outcome: Outcome, clock: StepClock
    ) -> None:
        await self.publisher.publish(
            build.owner,
            build.project,
            chroot,
            build.id,
            self._package(build),
            outcome.files,
            timed=clock.step,
        )
        await self.store.notify_published(build.id, chroot)  # to webhooks and event streams
        for name in ("staging", "signing", "publish"):
            for step in clock.steps:
                if step.name == name:
                    await channel.say(step_line(step))
        project = await self.store.project_by_id(build.project_id)
        if project.keep_builds is not None:
            # Retention: older builds of this package leave the repository, then the disk.
            async with timed(channel, clock, "prune"):
                await self.publisher.prune(build.owner, build.project, chroot, project.keep_builds)

    async def _republish_log(
        self, build: Build, chroot: str, channel: LogChannel, workdir: Path, clock: StepClock
    ) -> None:
        """build.log again, now with the time of every step in it."""
        await channel.say(summary_line(clock.steps))
        try:
            logs = await collect_logs(channel, workdir)
            await self.publisher.replace_logs(
                build.owner, build.project, chroot, build.id, self._package(build), logs
            )
        except Exception:
            # The results are online; the published build.log only lacks the last steps.
            log.exception("task %d/%s: replacing build.log failed", build.id, chroot)

    async def _finish(
        self,
        build: Build,
        chroot: str,
        channel: LogChannel,
        state: BuildState,
        reason: str | None,
        outcome: Outcome | None = None,
        steps: Sequence[TaskStep] = (),
    ) -> BuildState:
        result_dir = self.publisher.layout.build_dir(
            build.owner, build.project, chroot, build.id, self._package(build)
        )
        finished = await self.store.finish_task(
            build.id,
            chroot,
            state,
            reason,
            str(result_dir),
            outcome.built if outcome else (),
            outcome.manifest if outcome else (),
            steps,
        )
        if not finished:
            # A cancel got there first and stands; what this run published goes again.
            stored = await self._stored_state(build.id, chroot)
            if state == BuildState.SUCCEEDED:
                await self.publisher.remove_build(
                    build.owner, build.project, build.id, chroot, self._package(build)
                )
            await channel.say(f"task ended {stored}; this run's {state} came too late")
            channel.close(stored, None)
            return stored
        await channel.say(f"task ended {state}" + (f": {reason}" if reason else ""))
        channel.close(state, reason)
        for observe in self.on_ended:
            observe(state, reason, steps)
        return state

    async def _after_success(self, build_id: int, chroot: str, state: BuildState) -> None:
        """Run the success hooks; the task has ended whatever they do."""
        if state == BuildState.SUCCEEDED:
            await _run_hooks(self.on_succeeded, build_id, chroot)

    async def _stored_state(self, build_id: int, chroot: str) -> BuildState:
        build = await self.store.get_build(build_id)
        return next((t.state for t in build.tasks if t.chroot == chroot), BuildState.CANCELED)

    async def _canceled(self, build_id: int) -> bool:
        try:
            return (await self.store.get_build(build_id)).canceled
        except Exception:  # the build was deleted, or the database is going away
            return True

    @staticmethod
    def _package(build: Build) -> str:
        return build.package_name or "unknown"
