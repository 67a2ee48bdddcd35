"""The libvirt driver: start, list, destroy and reap builder VMs.

Each VM is a transient domain (createXML), so a host crash leaves no domain
definition behind; with `autodestroy` libvirtd even kills the domains when
Kopers' connection goes away. Its disk is a qcow2 overlay created through the
storage-volume API, with the template's base image as backing store, in a
`dir` pool over the overlay directory, so the same calls work against a remote
libvirt URI (kopers.vm.storage). libvirt-python blocks, so every call runs in
a thread.

For a local qemu:///system URI, qemu runs as an unprivileged user that must be
able to reach the images: the driver grants that access (kopers.vm.qemuuser).

The overlay's virtual size caps what a build can write to the host's disk, so
it is always given: the pool's `disk_gib`, or the template's own size when
`disk_gib` is 0 or below it (a smaller disk would cut off the guest's
filesystem). The guest cannot write past its disk's end, so the overlay file
never grows past that size plus qcow2's own tables (well under 1 %).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import libvirt

from kopers.errors import ConfigError, InfrastructureError
from kopers.vm import storage, templatecopy
from kopers.vm.domain import (
    DOMAIN_TYPES,
    DomainSpec,
    VmSize,
    console_log_name,
    domain_of_file,
    overlay_volume_name,
    pool_name,
    render_domain_xml,
    render_volume_xml,
)
from kopers.vm.qemuuser import ensure_access
from kopers.vm.storage import ignore_gone, lookup, qcow2_virtual_size
from kopers.vm.template import TemplateImage

log = logging.getLogger(__name__)
T = TypeVar("T")

PORT_ATTEMPTS = 5

# libvirt's default handler prints every error to stderr, even handled ones.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


@dataclass(frozen=True, slots=True)
class VmHandle:
    """A running builder VM, as the caller needs it."""

    name: str
    ssh_host: str
    ssh_port: int
    overlay: Path
    console_log: Path


class LibvirtDriver:
    """Starts and destroys builder VMs on one libvirt connection."""

    def __init__(
        self,
        uri: str,
        domain_type: str,
        overlay_dir: Path,
        vcpus: int,
        memory_mib: int,
        autodestroy: bool = True,
        templates_dir: Path | None = None,
    ) -> None:
        if domain_type not in DOMAIN_TYPES:
            raise ConfigError(f"domain type must be kvm or qemu, got {domain_type!r}")
        self.uri = uri
        self.domain_type = domain_type
        self.overlay_dir = overlay_dir.expanduser().absolute()
        self.vcpus = vcpus
        self.memory_mib = memory_mib
        self.autodestroy = autodestroy
        # The host's own template cache (kopers.vm.templatecopy); None: the
        # images' paths here are valid on the host too.
        self.templates_dir = templates_dir
        self.pool_name = pool_name(self.overlay_dir)
        self._conn: libvirt.virConnect | None = None
        self._connect_lock = asyncio.Lock()
        # Pool mutations are serialised: libvirt rejects a refresh while a volume
        # job runs, and overlay creation takes milliseconds anyway.
        self._pool_lock = asyncio.Lock()

    @property
    def is_local_system(self) -> bool:
        """qemu:///system on this host: qemu runs as another local user."""
        parsed = urlparse(self.uri)
        return not parsed.hostname and parsed.path.rstrip("/") == "/system"

    async def start(
        self,
        image: TemplateImage,
        name: str,
        *,
        size: VmSize | None = None,
    ) -> VmHandle:
        """Create an overlay of the image and boot a transient domain from it.

        The guest can open no connection at all (a network-enabled build goes
        out through the egress proxy, forwarded over SSH); SSH always comes in
        on 127.0.0.1.
        `size` defaults to the driver's vcpus and memory and the image's disk size.
        """
        size = size or VmSize(self.vcpus, self.memory_mib)
        there = self.placed(image)
        if self.is_local_system:
            self.overlay_dir.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(ensure_access, [there.dir, self.overlay_dir])
        overlay = self.overlay_dir / overlay_volume_name(name)
        console = self.overlay_dir / console_log_name(name)
        # Read from the image here: the host's copy is the same image (checked at connect).
        image_bytes = await asyncio.to_thread(qcow2_virtual_size, image.base_image)
        capacity = max(image_bytes, size.disk_bytes or 0)  # see the module's docstring
        async with self._pool_lock:
            pool = await self._call(self._ensure_pool)
            xml = render_volume_xml(overlay.name, there.base_image, capacity)
            vol = await self._call(pool.createXML, xml, 0)
            overlay = Path(vol.path())
        try:
            port = await self._create_domain(there, name, overlay, console, size)
        except BaseException:
            # Shielded so a cancelled start still cleans up. A createXML that
            # completes in its thread after this is left to autodestroy and reap().
            await asyncio.shield(self.destroy_name(name))
            raise
        return VmHandle(name, "127.0.0.1", port, overlay, console)

    async def destroy(self, handle: VmHandle) -> None:
        """Stop the domain and delete its overlay and console log; idempotent."""
        await self.destroy_name(handle.name)

    async def destroy_name(self, name: str) -> None:
        await self._call(self._destroy_domain, name)
        await self._delete_files(name)

    async def is_alive(self, name: str) -> bool:
        """Whether the domain still runs (qemu may have died or been killed)."""
        conn = await self._connection()
        return await self._call(_domain_active, conn, name)

    async def supports_kvm(self) -> tuple[bool, str]:
        """Ask libvirt whether this host offers KVM domains (for hosts we cannot probe)."""
        conn = await self._connection()
        try:
            await asyncio.to_thread(conn.getDomainCapabilities, None, "x86_64", None, "kvm", 0)
        except libvirt.libvirtError as exc:
            return False, f"libvirt offers no KVM domains: {exc.get_error_message() or exc}"
        return True, "libvirt reports KVM domain capabilities (not boot-tested)"

    def placed(self, image: TemplateImage) -> TemplateImage:
        """The image with the paths it has on this driver's host."""
        if self.templates_dir is None:
            return image
        return templatecopy.placed(image, self.templates_dir)

    async def check_template(self, image: TemplateImage) -> None:
        """Make sure the host's copy of the image is this image (see kopers.vm.templatecopy).

        Raises InfrastructureError naming what is wrong; a host that uses the
        images' own paths here has nothing to check.
        """
        if self.templates_dir is None:
            return
        folder = self.placed(image).dir
        what = f"template {image.name} ({image.recipe_hash})"
        try:
            wanted = await asyncio.to_thread(templatecopy.local_facts, image)
        except OSError as exc:
            raise InfrastructureError(f"{what}: cannot read {image.dir}: {exc}") from exc
        conn = await self._connection()  # one that does not answer lacks nothing yet
        try:
            found = await asyncio.to_thread(templatecopy.inspect, conn, folder)
        except libvirt.libvirtError as exc:
            message = exc.get_error_message() or str(exc)
            raise InfrastructureError(f"{what} is not in {folder}: {message}") from exc
        problem = templatecopy.mismatch(wanted, found)
        if problem is not None:
            raise InfrastructureError(f"{what} in {folder} is not a copy of {image.dir}: {problem}")

    async def lost(self) -> str | None:
        """Why libvirt no longer answers on this connection (None: it does).

        The connection in use is asked, not a new one: a host whose daemon was
        killed would otherwise answer through a fresh one (libvirt starts a
        session daemon on demand) and hide that everything on it is gone.
        """
        async with self._connect_lock:
            conn = self._conn
        if conn is None:
            try:
                await self._connection()
            except InfrastructureError as exc:
                return exc.message
            return None
        try:
            await asyncio.to_thread(conn.getLibVersion)
        except libvirt.libvirtError as exc:
            return f"its libvirt connection broke: {exc.get_error_message() or exc}"
        return None

    async def list_domains(self, prefix: str) -> list[str]:
        """Names of all domains (running or defined) that start with prefix."""
        conn = await self._connection()
        domains = await self._call(conn.listAllDomains, 0)
        return sorted(d.name() for d in domains if d.name().startswith(prefix))

    async def reap(self, prefix: str, keep: set[str]) -> list[str]:
        """Destroy domains and delete overlays with our prefix that nobody owns.

        `keep` must hold every name the caller still uses, including VMs that it
        is starting right now (their overlay exists before their domain does).
        """
        reaped = set()
        for name in await self.list_domains(prefix):
            if name not in keep:
                await self.destroy_name(name)
                reaped.add(name)
        async with self._pool_lock:
            pool = await self._call(self._ensure_pool)
            await self._call(pool.refresh, 0)
            files = await self._call(pool.listVolumes)
        for filename in files:
            owner = domain_of_file(filename)
            if owner and owner.startswith(prefix) and owner not in keep:
                await self._delete_files(owner)
                reaped.add(owner)
        return sorted(reaped)

    async def console_tail(self, handle: VmHandle, max_bytes: int = 4096) -> str:
        """The end of the serial console log (local hosts only; '' if unreadable)."""
        return await asyncio.to_thread(storage.read_tail, handle.console_log, max_bytes)

    async def close(self) -> None:
        """Close the connection; drop our transient pool if no overlay is left in it."""
        async with self._connect_lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                await asyncio.to_thread(storage.release_pool, conn, self.pool_name)
                await asyncio.to_thread(_close_quietly, conn)

    # -- internals -------------------------------------------------------------

    async def _create_domain(
        self,
        image: TemplateImage,
        name: str,
        overlay: Path,
        console: Path,
        size: VmSize,
    ) -> int:
        """Boot the domain on a free loopback port; retry if qemu could not bind it."""
        conn = await self._connection()
        flags = libvirt.VIR_DOMAIN_START_AUTODESTROY if self.autodestroy else 0
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = _free_port()
            spec = DomainSpec(
                name=name,
                domain_type=self.domain_type,
                vcpus=size.vcpus,
                memory_mib=size.memory_mib,
                kernel=image.kernel,
                initrd=image.initrd,
                cmdline=image.cmdline,
                disk=overlay,
                console_log=console,
                ssh_port=port,
            )
            try:
                await asyncio.to_thread(conn.createXML, render_domain_xml(spec), flags)
                return port
            except libvirt.libvirtError as exc:
                message = exc.get_error_message() or str(exc)
                # Another process took the port between our probe and qemu's bind.
                if "host forwarding" in message and attempt < PORT_ATTEMPTS:
                    log.info("port %d was taken, retrying %s", port, name)
                    continue
                raise InfrastructureError(f"cannot start VM {name}: {message}") from exc
        raise AssertionError("unreachable")

    async def _connection(self) -> libvirt.virConnect:
        async with self._connect_lock:
            if self._conn is not None and await asyncio.to_thread(_alive, self._conn):
                return self._conn
            try:
                self._conn = await asyncio.to_thread(libvirt.open, self.uri)
            except libvirt.libvirtError as exc:
                raise InfrastructureError(
                    f"cannot connect to libvirt at {self.uri}: {exc.get_error_message()}"
                ) from exc
            return self._conn

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking libvirt call in a thread, as an InfrastructureError on failure."""
        await self._connection()  # reconnects if libvirtd restarted
        try:
            return await asyncio.to_thread(func, *args)
        except libvirt.libvirtError as exc:
            raise InfrastructureError(f"libvirt: {exc.get_error_message() or exc}") from exc

    def _ensure_pool(self) -> libvirt.virStoragePool:
        """The (transient) dir pool over the overlay directory, started."""
        conn = self._conn
        assert conn is not None
        return storage.ensure_pool(conn, self.pool_name, self.overlay_dir)

    def _destroy_domain(self, name: str) -> None:
        conn = self._conn
        assert conn is not None
        dom = lookup(conn.lookupByName, name)
        if dom is not None:
            ignore_gone(dom.destroy)
            ignore_gone(dom.undefine)  # only if someone made it persistent

    async def _delete_files(self, name: str) -> None:
        remote = bool(urlparse(self.uri).hostname)
        async with self._pool_lock:
            pool = await self._call(self._ensure_pool)
            if remote:
                # The console log is written by qemu behind the pool's back: only
                # a refresh lets the pool see it, and delete it on the host.
                await self._call(pool.refresh, 0)
            for filename in (overlay_volume_name(name), console_log_name(name)):
                await self._call(storage.delete_volume, pool, filename)
                # Here the file can go directly, without the cost of a refresh.
                path = self.overlay_dir / filename
                if not remote and path.exists():
                    path.unlink(missing_ok=True)


def _domain_active(conn: libvirt.virConnect, name: str) -> bool:
    dom = lookup(conn.lookupByName, name)
    return dom is not None and bool(dom.isActive())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(conn: libvirt.virConnect) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


def _close_quietly(conn: libvirt.virConnect) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        conn.close()
