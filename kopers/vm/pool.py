"""The builder VM pool: hands out a freshly booted clone per build, then destroys it.

A VM serves exactly one task. `builder()` is an async context manager: on
exit, whatever happened inside (success, failure, cancellation), the domain
is destroyed and its overlay deleted. At start-up the pool decides between
KVM and TCG and removes domains and overlays that a crashed process left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopers.config import Config
from kopers.errors import ConfigError, InfrastructureError
from kopers.paths import DataPaths
from kopers.vm import domain as domains
from kopers.vm import ssh
from kopers.vm.ssh import SshSession
from kopers.vm.template import TemplateImage, cached_image, default_templates_root

log = logging.getLogger(__name__)


@dataclass
class BuilderVm:
    """A booted builder with an open SSH connection."""

    name: str
    builder: str
    conn: SshSession

    async def put(self, local: Path, remote: str) -> None:
        await self.conn.put(local, remote)

    async def put_text(self, text: str, remote: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(remote).name
            path.write_text(text)
            await self.conn.put(path, remote)

    async def get(self, remote: str, local_dir: Path) -> None:
        await self.conn.get(remote, local_dir)

    async def run(self, command: str, on_line: Callable[[str], Awaitable[None]]) -> int:
        return await self.conn.run(command, on_line)

    async def forward(self, host: str, port: int) -> int:
        """Make host:port reachable inside the VM; return the port on the VM's 127.0.0.1."""
        return await self.conn.forward_remote(0, host, port)

    async def mkdirs(self, *paths: str) -> None:
        async def ignore(_: str) -> None:
            return None

        status = await self.conn.run("mkdir -p " + " ".join(shlex.quote(p) for p in paths), ignore)
        if status != 0:
            raise InfrastructureError(f"cannot create {', '.join(paths)} in the builder VM")


class VmPool:
    def __init__(self, config: Config, paths: DataPaths, *, enabled: bool = True) -> None:
        self.config = config
        self.paths = paths
        self.enabled = enabled
        self.instance = domains.instance_tag(str(paths.root.resolve()))
        self.domain_type: str | None = None
        self.domain_type_reason = ""
        self.images: dict[str, TemplateImage] = {}
        self.live: dict[str, Any] = {}
        self.booting = 0
        self._driver: Any = None

    async def start(self) -> None:
        """Find the template images, pick the hypervisor, reap orphans."""
        if not self.enabled:
            return
        from kopers.vm.libvirt import LibvirtDriver
        from kopers.vm.probe import probe_domain_type

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
        wanted = self.config.vm.hypervisor
        if wanted == "auto" and self.images:
            first = next(iter(self.images.values()))
            probe = await probe_domain_type(first.kernel)
            self.domain_type, self.domain_type_reason = probe.domain_type, probe.reason
        else:
            self.domain_type = "qemu" if wanted == "auto" else wanted
            self.domain_type_reason = "set in the configuration"
        log.info("builder VMs use domain type %s (%s)", self.domain_type, self.domain_type_reason)
        self._driver = LibvirtDriver(
            self.config.vm.uri,
            self.domain_type or "qemu",
            self.paths.overlays,
            self.config.vm.vcpus,
            self.config.vm.memory_mib,
        )
        reaped = await self._driver.reap(domains.domain_prefix(self.instance), set())
        if reaped:
            log.info("removed %d VMs left by an earlier run: %s", len(reaped), ", ".join(reaped))

    @contextlib.asynccontextmanager
    async def builder(self, template: str, label: str) -> AsyncIterator[BuilderVm]:
        if self._driver is None:
            raise InfrastructureError("the VM pool is not running")
        image = self.images.get(template)
        if image is None:
            raise ConfigError(f"template {template} is not available")
        name = domains.domain_name(self.instance, label)
        handle = None
        try:
            self.booting += 1
            try:
                handle = await self._driver.start(image, name)
                self.live[name] = handle
                await ssh.wait_ready(
                    handle.ssh_host, handle.ssh_port, image.ssh_key, self.config.vm.boot_timeout_s
                )
            finally:
                self.booting -= 1
            async with ssh.connect(handle.ssh_host, handle.ssh_port, image.ssh_key) as conn:
                yield BuilderVm(name=name, builder=image.builder, conn=conn)
        finally:
            if handle is not None:
                # Shielded: a cancelled build must still take its VM down.
                await asyncio.shield(self._destroy(name, handle))

    async def _destroy(self, name: str, handle: Any) -> None:
        try:
            await self._driver.destroy(handle)
        finally:
            self.live.pop(name, None)

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "domain_type": self.domain_type,
            "domain_type_reason": self.domain_type_reason,
            "templates": {name: str(img.dir) for name, img in self.images.items()},
            "busy": sorted(self.live),
            "booting": self.booting,
            "slots": self.config.vm.max_concurrent,
        }

    async def close(self) -> None:
        for name, handle in list(self.live.items()):
            await self._destroy(name, handle)
        if self._driver is not None:
            await self._driver.close()
