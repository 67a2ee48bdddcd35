"""The builder VM pool: clones booted ahead of demand, one per task, destroyed after.

Each template has a pool (`[vm]` defaults or a `[[vm.pools]]` entry): at most
`max_concurrent` clones, `warm` of them booted ahead so a task starts at once.
Every clone holds a slot of its host from the start of its boot until it is
destroyed. `builder()` hands a task a warm clone when there is one, else one
still booting, else boots one; on exit, whatever happened inside (success,
failure, cancellation), the clone is destroyed and its overlay deleted, and
the `refill` loop boots a fresh one to take its place.

The decisions (which host, what to boot ahead, what to evict) are pure
functions in `kopers.vm.capacity`; this module does the I/O and owns the state
(clones: `kopers.vm.clone`, failures: `kopers.vm.failures`, status: `kopers.vm.poolstatus`).
At start-up each host picks KVM or TCG, shows it has the template images, and
removes the domains and overlays a crashed process left (`kopers.vm.hosts`).
When a task or a boot fails on a host that then no longer answers, the host
goes offline, so the task's next attempt boots elsewhere; the health check
brings it back once it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from kopers.config import Config
from kopers.errors import ConfigError, InfrastructureError
from kopers.paths import DataPaths
from kopers.vm import capacity, readiness, ssh
from kopers.vm import domain as domains
from kopers.vm.builder import BuilderVm
from kopers.vm.capacity import HostView, PoolView, VmState, VmView
from kopers.vm.clone import PoolVm
from kopers.vm.domain import VmSize
from kopers.vm.failures import BootBackoff, FailedHosts
from kopers.vm.hosts import Host, probe_kernel
from kopers.vm.libvirt import VmHandle
from kopers.vm.poolstatus import pool_status
from kopers.vm.template import TemplateImage, cached_image, default_templates_root

__all__ = ["BuilderVm", "VmPool"]
log = logging.getLogger(__name__)

# How often a booting VM is checked for having died (so a killed qemu does not
# cost the whole boot timeout), and how often idle warm clones are checked.
LIVENESS_INTERVAL_S = 2.0
HEALTH_INTERVAL_S = 30.0


class VmPool:
    def __init__(self, config: Config, paths: DataPaths, *, enabled: bool = True) -> None:
        self.config = config
        self.paths = paths
        self.enabled = enabled
        self.instance = domains.instance_tag(str(paths.root.resolve()))
        self.prefix = domains.domain_prefix(self.instance)
        self.images: dict[str, TemplateImage] = {}
        self.hosts: list[Host] = []
        self.vms: dict[str, PoolVm] = {}
        self.waiting: Counter[str] = Counter()
        self._changed_event = asyncio.Event()
        self._refill_wake = asyncio.Event()
        self._backoff = BootBackoff()
        self._failed_on = FailedHosts()
        self._started = False
        # Told of each clone that booted: (template, seconds from start to SSH ready).
        self.boot_observers: list[Callable[[str, float], None]] = []

    @property
    def capacity(self) -> int:
        """Builder VMs that may exist at once: the scheduler runs no more tasks than this."""
        return self.config.vm.slots

    async def start(self) -> None:
        """Find the template images, then connect every host (probe, reap orphans)."""
        if not self.enabled:
            return
        for chroot in self.config.enabled_chroots:
            image = cached_image(
                chroot.template, default_templates_root(), self.config.vm.cache_dir
            )
            if image is None:
                raise ConfigError(
                    f"template {chroot.template} (chroot {chroot.name}) is not built; "
                    f"run: kopers template build {chroot.template}"
                )
            self.images[chroot.template] = image
        self.hosts = [Host(h, self.config.vm, self.paths.overlays) for h in self.config.vm.hosts]
        for host in self.hosts:
            await self._connect(host)
        self._started = True
        self._changed()

    async def refill(self) -> None:
        """The warm-pool loop: keep each template's warm clones booted; check their health."""
        if not self.enabled:
            await asyncio.Event().wait()  # nothing to refill, ever
        loop = asyncio.get_running_loop()
        next_health = loop.time() + HEALTH_INTERVAL_S
        while True:
            self._refill_wake.clear()
            if self._started:
                for template, host in self._refill_plan(loop.time()):
                    self._boot(template, self._host(host), claimed=False)
            if loop.time() >= next_health:
                await self._check_health()
                next_health = loop.time() + HEALTH_INTERVAL_S
            wake_at = min([next_health, *self._backoff.times()])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, wake_at - loop.time())):
                    await self._refill_wake.wait()

    @contextlib.asynccontextmanager
    async def builder(self, template: str, label: str) -> AsyncIterator[BuilderVm]:
        """A booted clone for one task, destroyed on exit whatever happens inside.

        Every clone has networking cut off, so any task can take a warm one; a
        network-enabled build gets the egress proxy forwarded over SSH instead.
        """
        if not self._started:
            raise InfrastructureError("the VM pool is not running")
        image = self.images.get(template)
        if image is None:
            raise ConfigError(f"template {template} is not available")
        asked = asyncio.get_running_loop().time()
        vm, origin = await self._acquire(template, label)
        try:
            assert vm.handle is not None
            session, vm.session = vm.session, None
            if session is None or session.closed:
                tunnel = await vm.host.tunnel()
                session = await ssh.wait_session(
                    vm.handle.ssh_host, vm.handle.ssh_port, image.ssh_key, 30.0, tunnel=tunnel
                )
            try:
                waited = asyncio.get_running_loop().time() - asked
                yield BuilderVm(vm.name, image.builder, session, origin, waited, vm.host.name)
            finally:
                await session.close()
        except InfrastructureError:
            # Before the task tries again: its next VM goes elsewhere if it can,
            # and nowhere on this host if the host itself went away.
            self._failed_on.note(label, vm.host.name)
            await asyncio.shield(self._check_host(vm.host))
            raise
        finally:
            # Shielded: a cancelled build must still take its VM down.
            await asyncio.shield(self._retire(vm))

    def status(self) -> dict[str, Any]:
        vms = list(self.vms.values())
        return pool_status(self.enabled, self.hosts, vms, self.images, self.config.vm, self.waiting)

    async def close(self) -> None:
        self._started = False
        retiring = [self._retire(vm) for vm in list(self.vms.values())]
        await asyncio.gather(*retiring, return_exceptions=True)
        for host in self.hosts:
            await host.close()

    # -- handing out clones ----------------------------------------------------

    async def _acquire(self, template: str, label: str) -> tuple[PoolVm, str]:
        """Claim a clone (warm, else booting, else a new one) and wait until it is up.

        A task whose last VM failed on a host gets one on another host if it can.
        """
        pool = self._pool_view(template)
        avoid = self._failed_on.pop(label)
        self.waiting[template] += 1
        try:
            while True:
                host = capacity.boot_host(pool, self._host_views(), self._views(), avoid)
                vm = self._take_spare(template, avoid, host not in (None, avoid))
                if vm is not None:
                    origin = "warm" if vm.state == VmState.WARM else "booting"
                    if origin == "booting" or await self._alive(vm):
                        break
                    continue
                if host is not None:
                    vm, origin = self._boot(template, self._host(host), True), "cold"
                    break
                victim = capacity.eviction(
                    template, self._pool_views(), self._host_views(), self._views()
                )
                if victim is not None:
                    log.info("destroying warm clone %s to make room for %s", victim, template)
                    self._retire(self.vms[victim])
                changed = self._changed_event
                await changed.wait()
        finally:
            self.waiting[template] -= 1
        vm.task = label
        assert vm.boot is not None
        try:
            await asyncio.shield(vm.boot)
        except asyncio.CancelledError:
            await asyncio.shield(self._retire(vm))
            raise
        except InfrastructureError:
            self._failed_on.note(label, vm.host.name)
            raise
        vm.state = VmState.BUSY
        self._changed()
        return vm, origin

    def _take_spare(self, template: str, avoid: str | None, room_elsewhere: bool) -> PoolVm | None:
        spares = capacity.spares(self._views(), template, avoid)
        if room_elsewhere:
            # Booting on another host beats a spare on the host that just failed.
            spares = [spare for spare in spares if spare.host != avoid]
        if not spares:
            return None
        vm = self.vms[spares[0].name]
        vm.claimed = True
        return vm

    async def _alive(self, vm: PoolVm) -> bool:
        """A warm clone just claimed: check qemu did not die while it idled."""
        try:
            if await vm.host.driver.is_alive(vm.name):
                return True
        except InfrastructureError as exc:
            log.warning("cannot check %s: %s", vm.name, exc.message)
        except BaseException:
            await asyncio.shield(self._retire(vm))  # claimed: nobody else would
            raise
        log.warning("warm clone %s is no longer running; destroying it", vm.name)
        await asyncio.shield(self._retire(vm))
        return False

    # -- booting and destroying ------------------------------------------------

    def _boot(self, template: str, host: Host, claimed: bool) -> PoolVm:
        vm = PoolVm(domains.domain_name(self.instance, template), template, host, claimed=claimed)
        self.vms[vm.name] = vm
        vm.boot = asyncio.create_task(self._boot_vm(vm), name=f"boot {vm.name}")
        vm.boot.add_done_callback(lambda task: self._boot_done(vm, task))
        self._changed()
        return vm

    async def _boot_vm(self, vm: PoolVm) -> VmHandle:
        image = self.images[vm.template]
        pool = self.config.vm.pool(vm.template)
        size = VmSize(pool.vcpus, pool.memory_mib, pool.disk_gib)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            vm.handle = await vm.host.driver.start(image, vm.name, size=size)
            await self._wait_ready(vm, vm.handle, image)
        except InfrastructureError as exc:
            await asyncio.shield(self._check_host(vm.host))
            tail = await vm.host.console_tail(vm.name)
            await asyncio.shield(self._retire(vm, cancel_boot=False))
            console = f"; serial console ends: {tail}" if tail else ""
            raise InfrastructureError(f"{exc.message}{console}") from exc
        except BaseException:
            await asyncio.shield(self._retire(vm, cancel_boot=False))
            raise
        vm.state = VmState.WARM
        for observe in self.boot_observers:
            observe(vm.template, loop.time() - started)
        log.info(
            "%s booted on %s in %.1f s (%s)",
            vm.name,
            vm.host.name,
            loop.time() - started,
            "claimed" if vm.claimed else "warm",
        )
        self._changed()
        return vm.handle

    async def _wait_ready(self, vm: PoolVm, handle: VmHandle, image: TemplateImage) -> None:
        """Wait for sshd (keeping that login for the clone's task), but give up at
        once if the domain stops (qemu died)."""
        tunnel = await vm.host.tunnel()
        vm.session = await readiness.ready_session(
            handle,
            image,
            self.config.vm.boot_timeout_s,
            tunnel,
            alive=lambda: vm.host.driver.is_alive(vm.name),
            every=LIVENESS_INTERVAL_S,
        )

    def _boot_done(self, vm: PoolVm, task: asyncio.Task[VmHandle]) -> None:
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved
        loop = asyncio.get_running_loop()
        if exc is None:
            self._backoff.succeeded(vm.template)
            return
        if not vm.claimed:
            # Nobody waits on a warm clone's boot: log it, and back off so a
            # broken template or host does not boot clones in a tight loop.
            delay = self._backoff.failed(vm.template, loop.time())
            log.warning("warm clone %s failed to boot (retry in %.0f s): %s", vm.name, delay, exc)

    def _retire(self, vm: PoolVm, cancel_boot: bool = True) -> asyncio.Task[None]:
        """Destroy a clone (once; later calls get the same task). Await it shielded."""
        if vm.retire is None:
            if cancel_boot and vm.boot is not None and not vm.boot.done():
                vm.boot.cancel()
            vm.retire = asyncio.create_task(self._destroy(vm), name=f"destroy {vm.name}")
            self._changed()
        return vm.retire

    async def _destroy(self, vm: PoolVm) -> None:
        session, vm.session = vm.session, None
        if session is not None:
            await session.close()
        try:
            await vm.host.driver.destroy_name(vm.name)
        except InfrastructureError as exc:
            log.error("cannot destroy %s (the next start removes it): %s", vm.name, exc.message)
        finally:
            self.vms.pop(vm.name, None)
            self._changed()

    # -- the refill loop's helpers ----------------------------------------------

    def _refill_plan(self, now: float) -> list[tuple[str, str]]:
        ready = [p for p in self._pool_views() if self._backoff.ready(p.template, now)]
        return capacity.refill_plan(ready, self._host_views(), self._views(), self.waiting)

    async def _check_health(self) -> None:
        for vm in list(self.vms.values()):
            if vm.state == VmState.WARM and not vm.claimed and vm.retire is None:
                try:
                    alive = await vm.host.driver.is_alive(vm.name)
                except InfrastructureError:
                    continue  # the host is unreachable; the boot of a new clone will say so
                if not alive and not vm.claimed:
                    log.warning("warm clone %s stopped while idle; replacing it", vm.name)
                    await asyncio.shield(self._retire(vm))
        for host in self.hosts:
            if not host.online:
                await self._connect(host)
                if host.online:
                    self._changed()

    async def _check_host(self, host: Host) -> None:
        """Something failed on `host`: take it out of use if it no longer answers.

        The health check connects it again later (`_connect`), checking it anew.
        """
        if not host.online:
            return
        reason = await host.lost()
        if reason is not None and host.online:
            host.go_offline(reason)
            self._changed()

    async def _connect(self, host: Host) -> None:
        keep = {vm.name for vm in self.vms.values() if vm.host is host}
        images = self.images.values()
        reaped = await host.connect(probe_kernel(self.images), self.prefix, keep, images)
        if reaped:
            log.info(
                "host %s: removed %d VMs left by an earlier run: %s",
                host.name,
                len(reaped),
                ", ".join(reaped),
            )

    # -- snapshots for kopers.vm.capacity ---------------------------------------

    def _changed(self) -> None:
        """Something about the clones changed: wake waiting tasks and the refill loop."""
        self._changed_event.set()
        self._changed_event = asyncio.Event()
        self._refill_wake.set()

    def _views(self) -> list[VmView]:
        return [vm.view() for vm in self.vms.values()]

    def _host_views(self) -> list[HostView]:
        return [HostView(h.name, h.config.slots, h.online) for h in self.hosts]

    def _pool_view(self, template: str) -> PoolView:
        pool = self.config.vm.pool(template)
        return PoolView(template, pool.max_concurrent, pool.warm)

    def _pool_views(self) -> list[PoolView]:
        return [self._pool_view(t) for t in self.images]

    def _host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)
