"""The composition root: builds every component and supervises its loops.

`Kopers` holds the components the HTTP handlers use; each background loop
is a named task, restarted with a back-off if it crashes, and `close()`
cancels them in order. Nothing here knows about HTTP: `kopers.server`
puts an application in front of it.

Every change a client makes is recorded in the audit log in the same
transaction as the change itself: handlers wrap the operation and `audit()`
in `atomic()`, and submit builds through `submit()`, which also hands them
to the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kopers.builds import Builds, remove_sources, sweep_orphan_sources
from kopers.config import Config
from kopers.db.database import Database, open_database
from kopers.db.migrations import migrate
from kopers.db.store import Store
from kopers.db.transitions import TransitionRefused
from kopers.eventbus import EventBus
from kopers.fork import Forks
from kopers.hooksender import HookSender
from kopers.logs.hub import LogHub
from kopers.metrics import Metrics
from kopers.models import Build, User
from kopers.net.local import address_policy
from kopers.net.proxy import EgressProxy
from kopers.packages import Packages
from kopers.paths import DataPaths
from kopers.projects import Projects
from kopers.publish.layout import Layout
from kopers.publish.publisher import Publisher
from kopers.publish.repo import RepoUpdater
from kopers.publish.signing import Signer
from kopers.rebuilds import Rebuilds
from kopers.sched.scheduler import Scheduler
from kopers.submission import Submissions
from kopers.vm.pool import VmPool
from kopers.worker.runner import Runner

log = logging.getLogger(__name__)

REAPER_INTERVAL_S = 60

# What a submission returns: one build, or several (URLs, chains).
Submitted = TypeVar("Submitted", Build, list[Build])


@dataclass
class Kopers:
    config: Config
    paths: DataPaths
    db: Database
    store: Store
    layout: Layout
    publisher: Publisher
    hub: LogHub
    vms: VmPool
    scheduler: Scheduler
    runner: Runner
    projects: Projects
    builds: Builds
    submissions: Submissions
    proxy: EgressProxy  # the way out for builds with network access
    forks: Forks  # project/fork, and the copier of forked builds' results
    packages: Packages
    events: EventBus  # new notifications, from Postgres to the live event streams
    hooks: HookSender  # the outbox of outgoing webhook deliveries
    rebuilds: Rebuilds  # automatic rebuilds of what depends on a changed package
    metrics: Metrics  # what /metrics shows, in a registry of this instance's own
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def atomic(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """One transaction for a mutation and its audit event: both commit, or neither.

        Every store call the block makes (in this task) joins it; see `Store.atomic`.
        """
        return self.store.atomic()

    async def audit(
        self,
        user: User | None,
        address: str | None,
        action: str,
        obj: str,
        details: dict[str, Any],
    ) -> None:
        """Record who did what; `address` is the client's, None for Kopers itself.

        Call it inside the `atomic()` block of the mutation it records, so
        that a change is never stored without its event, nor an event without
        its change.
        """
        await self.store.add_event(user.id if user else None, address, action, obj, details)

    async def submit(
        self,
        user: User,
        address: str | None,
        submission: Callable[[], Awaitable[Submitted]],
        details: Callable[[], Mapping[str, Any]] | None = None,
    ) -> Submitted:
        """Accept builds, record them and hand them to the scheduler, as one step.

        `submission` (a `Submissions` method, e.g. `lambda: submissions.from_scm(...)`)
        writes the build rows; they commit in one transaction with their
        `build.submit` events, so a failure leaves no row, no event and no
        stored source. `details`, called once `submission` has run (so it may
        name what the submission recorded), adds keys to each event, e.g.
        what started the builds; it cannot change `build` or `chroots`. The
        scheduler gets the builds only after the commit: its runners read and
        update the rows on other connections. If the hand-off fails, the
        builds are withdrawn: their rows and stored sources are deleted and a
        `build.withdraw` event says so (the log is append-only: it keeps that
        they were submitted).
        """
        builds: list[Build] = []
        async with self.store.atomic():
            result = await submission()
            builds = [result] if isinstance(result, Build) else list(result)
            self.store.on_rollback(lambda: remove_sources(self.paths, [b.id for b in builds]))
            extra = dict(details()) if details is not None else {}
            for build in builds:
                await self.audit(
                    user,
                    address,
                    "build.submit",
                    f"{build.owner}/{build.project}",
                    {**extra, "build": build.id, "chroots": list(build.chroots)},
                )
        try:
            for build in builds:
                await self.scheduler.submit(build)
        except BaseException:
            try:
                await self._withdraw(builds)
            except Exception:
                log.exception("withdrawing builds %s failed", [b.id for b in builds])
            raise
        return result

    async def _withdraw(self, builds: list[Build]) -> None:
        """Take back committed builds the scheduler could not take."""
        log.error("the scheduler did not take builds %s; withdrawing them", [b.id for b in builds])
        for build in builds:
            await self.scheduler.cancel(build.id)  # whatever part of it did get there
        async with self.store.atomic():
            gone = await self.store.delete_builds([b.id for b in builds])
            for build in builds:
                await self.audit(
                    None,
                    None,
                    "build.withdraw",
                    f"{build.owner}/{build.project}",
                    {"build": build.id, "reason": "the scheduler did not take it"},
                )
        await remove_sources(self.paths, gone)

    async def reap_expired_projects(self) -> None:
        """The loop: delete temporary projects whose time is up, once a minute."""
        while True:
            await self.reap_expired_once()
            await asyncio.sleep(REAPER_INTERVAL_S)

    async def reap_expired_once(self) -> list[str]:
        """Delete temporary projects (copr-cli create --delete-after-days) that expired."""
        reaped = []
        for project in await self.store.expired_projects():
            log.info("deleting temporary project %s: it expired", project.full_name)
            async with self.atomic():
                for build in await self.store.list_builds(project.id, None, None, 0):
                    if not build.state.finished:
                        with contextlib.suppress(TransitionRefused):  # it ended meanwhile
                            await self.store.cancel_build(build.id)
                        await self.store.after_commit(
                            functools.partial(self.scheduler.cancel, build.id)
                        )
                await self.projects.expire(project)
                await self.audit(None, None, "project.expire", project.full_name, {})
            reaped.append(project.full_name)
        return reaped

    async def start(self) -> None:
        """Start the background work of a serving process."""
        self.paths.clear_scratch()  # only this process writes there, and it is just starting
        await sweep_orphan_sources(self.store, self.paths)  # before any submission
        await self.vms.start()
        self.supervise("vm-pool-refill", self.vms.refill)
        self.supervise("scheduler", self.scheduler.run)
        self.supervise("project-reaper", self.reap_expired_projects)
        self.supervise("fork-copier", self.forks.run)
        self.supervise("event-bus", self.events.run)
        self.supervise("hook-sender", self.hooks.run)
        self.supervise("rebuild-planner", self.rebuilds.run)

    def supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self.tasks.append(asyncio.create_task(_supervised(name, loop), name=name))

    async def close(self) -> None:
        for task in reversed(self.tasks):
            await _stop(task)
        self.tasks.clear()
        # After the loops: the scheduler's builds are gone, so are their exchanges.
        await self.proxy.close()
        await self.vms.close()
        # The VMs are gone: what tasks that ended before noted of their release.
        await self.runner.pipeline.releases.drain()
        await self.db.close()


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a loop and wait until it has ended.

    Cancelled again each second until it ends: a cancel can be lost (Python
    3.11's wait_for drops one that arrives as what it waits for completes, in
    library code too), and closing must not wait forever for that loop.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    error = None if task.cancelled() else task.exception()
    if error is not None:
        log.error("%s ended with an error while stopping", task.get_name(), exc_info=error)


async def _supervised(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    delay = 1.0
    while True:
        try:
            await loop()
            log.warning("%s returned; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting in %.0f s", name, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 60.0)


async def open_kopers(config: Config, *, with_vms: bool = True) -> Kopers:
    """Connect to the database, migrate it, and wire every component together."""
    paths = DataPaths(config.data_dir)
    paths.ensure()
    db = await open_database(config.database.dsn, config.data_dir)
    await migrate(db.pool)
    store = Store(db.pool)
    layout = Layout(paths.results, config.server.public_url)
    publisher = Publisher(layout, Signer(paths.keys), RepoUpdater())
    hub = LogHub(paths.live_logs)
    vms = VmPool(config, paths, enabled=with_vms)
    proxy = EgressProxy(address_policy(config.network))
    events = EventBus(db.dsn, store)
    runner = Runner(config, paths, store, hub, publisher, vms, proxy)
    scheduler = Scheduler(
        store, runner, vms.capacity, owner_cap=config.build.owner_max_concurrent or None
    )
    builds = Builds(store, scheduler, publisher, paths)
    submissions = Submissions(config, paths, store, publisher)
    packages = Packages(config, store, builds, submissions)
    rebuilds = Rebuilds(config, paths, store, layout)
    # max_builds: a package's builds beyond its newest N go once one of them succeeded;
    # what depends on a package is rebuilt once its results are published, where
    # the project asks for it.
    runner.pipeline.on_succeeded = [packages.prune_after]
    runner.pipeline.on_published = [rebuilds.changed]
    metrics = Metrics()
    metrics.watch(scheduler, vms, runner.pipeline)
    kopers = Kopers(
        config=config,
        paths=paths,
        db=db,
        store=store,
        layout=layout,
        publisher=publisher,
        hub=hub,
        vms=vms,
        scheduler=scheduler,
        runner=runner,
        projects=Projects(config, store, publisher),
        builds=builds,
        submissions=submissions,
        proxy=proxy,
        forks=Forks(store, publisher, paths),
        packages=packages,
        events=events,
        hooks=HookSender(config, store, proxy.policy, bus=events),
        rebuilds=rebuilds,
        metrics=metrics,
    )
    rebuilds.submit = kopers.submit
    rebuilds.audit = functools.partial(kopers.audit, None, None)
    return kopers
