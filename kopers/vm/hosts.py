"""One libvirt host that runs builder VMs: its driver, its hypervisor, its SSH tunnel.

The local host (a URI without a hostname) is probed by booting a kernel under
KVM (`kopers.vm.probe`). A remote host cannot be probed that way from here, so
"auto" asks its libvirt whether it offers KVM domains. A remote host's
builders listen on 127.0.0.1 *there*, so each SSH connection to them goes
through one shared tunnel connection to the host.

Before it boots anything, a host that keeps its own template cache (a remote
host always does, at vm.cache_dir unless its `cache_dir` says where) must hold
a copy of each template image, checked through libvirt
(`kopers.vm.templatecopy`), and its tunnel must open.

A host that cannot be reached, or lacks a template, is marked offline instead
of stopping Kopers; so is one that stops answering after a failure on it
(`lost()`: its libvirt connection broke or its tunnel closed). The pool boots
nothing there and asks it to `connect()` again later, which checks it all anew.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

from kopers.errors import InfrastructureError
from kopers.vm import ssh
from kopers.vm.domain import console_log_name
from kopers.vm.libvirt import LibvirtDriver
from kopers.vm.probe import cached_probe, kvm_node_warning
from kopers.vm.qemuuser import QEMU_CONF, qemu_user
from kopers.vm.template import TemplateImage
from kopers.vmconfig import HostConfig, VmConfig

log = logging.getLogger(__name__)


class Host:
    def __init__(self, config: HostConfig, vm: VmConfig, default_overlays: Path) -> None:
        self.config = config
        self.name = config.name
        self.overlay_dir = config.overlay_dir or default_overlays
        self.driver = LibvirtDriver(
            config.uri,
            "qemu",
            self.overlay_dir,
            vm.vcpus,
            vm.memory_mib,
            templates_dir=vm.host_cache(config),
        )
        self.probe_cache = vm.cache_dir / "kvm-probe.json"
        self.domain_type: str | None = None
        self.domain_type_reason = ""
        self.online = False
        self.error = ""
        self._tunnel: ssh.Tunnel | None = None
        self._tunnel_lock = asyncio.Lock()

    @property
    def is_remote(self) -> bool:
        return bool(urlparse(self.config.uri).hostname)

    async def connect(
        self,
        probe_kernel: Path | None,
        prefix: str,
        keep: set[str] | None = None,
        images: Iterable[TemplateImage] = (),
    ) -> list[str]:
        """Pick the domain type, check the host's copy of each image and its tunnel,
        then reap our leftovers (all but `keep`); return their names.

        On failure the host stays offline with the reason in `error`.
        """
        try:
            await self._choose_domain_type(probe_kernel)
            for image in images:
                await self.driver.check_template(image)
            await self.tunnel()
            reaped = await self.driver.reap(prefix, keep or set())
        except InfrastructureError as exc:
            self.online, self.error = False, exc.message
            log.error("host %s (%s) is offline: %s", self.name, self.config.uri, exc.message)
            return []
        if self.error:
            log.info("host %s (%s) is online again", self.name, self.config.uri)
        self.online, self.error = True, ""
        return reaped

    async def lost(self) -> str | None:
        """After a failure on this host: why it is gone (None: it still answers)."""
        reason = await self.driver.lost()
        if reason is None and self._tunnel is not None and self._tunnel.is_closed():
            reason = "its SSH tunnel closed"
        return reason

    def go_offline(self, reason: str) -> None:
        self.online, self.error = False, reason
        log.error(
            "host %s (%s) is offline, nothing boots there until it answers again: %s",
            self.name,
            self.config.uri,
            reason,
        )

    async def tunnel(self) -> ssh.Tunnel | None:
        """The SSH connection builder connections go through (None for the local host)."""
        if not self.config.tunnel:
            return None
        async with self._tunnel_lock:
            if self._tunnel is None or self._tunnel.is_closed():
                self._tunnel = await ssh.open_tunnel(
                    self.config.tunnel, 30.0, **self._tunnel_options()
                )
            return self._tunnel

    def _tunnel_options(self) -> dict[str, object]:
        options: dict[str, object] = {}
        if self.config.ssh_key is not None:
            options |= {"client_keys": [str(self.config.ssh_key)], "agent_path": None}
        if self.config.known_hosts is not None:
            options["known_hosts"] = str(self.config.known_hosts)
        return options

    async def console_tail(self, name: str, lines: int = 3) -> str:
        """The last lines of a VM's serial console, to explain a failed boot ('' if remote)."""
        if self.is_remote:
            return ""
        path = self.driver.overlay_dir / console_log_name(name)
        text = await asyncio.to_thread(_tail, path)
        kept = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
        return " | ".join(kept)

    async def close(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None
        await self.driver.close()

    def status(self, used: int) -> dict[str, object]:
        return {
            "name": self.name,
            "uri": self.config.uri,
            "slots": self.config.slots,
            "used": used,
            "online": self.online,
            "error": self.error or None,
            "domain_type": self.domain_type,
            "domain_type_reason": self.domain_type_reason,
            "tunnel": self.config.tunnel or None,
        }

    async def _choose_domain_type(self, probe_kernel: Path | None) -> None:
        wanted = self.config.hypervisor
        if wanted != "auto":
            kind, reason = wanted, "set in the configuration"
        elif self.is_remote:
            ok, reason = await self.driver.supports_kvm()
            kind = "kvm" if ok else "qemu"
        elif probe_kernel is not None:
            probe = await cached_probe(probe_kernel, self.probe_cache)
            kind, reason = probe.domain_type, probe.reason
            warning = kvm_node_warning(qemu_user(QEMU_CONF))
            if warning:
                log.warning("host %s: %s", self.name, warning)
        else:
            kind, reason = "qemu", "no template image to probe KVM with"
        self.domain_type, self.domain_type_reason = kind, reason
        self.driver.domain_type = kind
        log.info(
            "host %s (%s): builder VMs use domain type %s (%s)",
            self.name,
            self.config.uri,
            kind,
            reason,
        )


def probe_kernel(images: dict[str, TemplateImage]) -> Path | None:
    first = next(iter(images.values()), None)
    return first.kernel if first is not None else None


def _tail(path: Path, max_bytes: int = 2048) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - max_bytes))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""
