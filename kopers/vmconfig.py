"""The `[vm]` settings: defaults, `[[vm.pools]]` per template, `[[vm.hosts]]`.

Parsed by `kopers.config` as part of kopers.toml; kept apart because the VM
pool and its hosts are a concept of their own, with their own rules: a pool
entry inherits every key it leaves out from `[vm]`, and no `[[vm.hosts]]`
means one local host on `vm.uri`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from kopers.errors import ConfigError
from kopers.settings import natural, path_setting, positive, required_str, tables

HYPERVISORS = ("auto", "kvm", "qemu")
_POOL_KEYS = {"template", "max_concurrent", "warm", "vcpus", "memory_mib", "disk_gib"}
_HOST_KEYS = {
    "name",
    "uri",
    "slots",
    "hypervisor",
    "tunnel",
    "overlay_dir",
    "cache_dir",
    "ssh_key",
    "known_hosts",
}


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """The VM pool of one template: how many clones, how many booted ahead, how big."""

    template: str
    max_concurrent: int
    warm: int  # clones booted ahead of demand
    vcpus: int
    memory_mib: int
    disk_gib: int  # 0: the template image's own size


@dataclass(frozen=True, slots=True)
class HostConfig:
    """A libvirt host that runs builder VMs."""

    name: str
    uri: str
    slots: int  # builder VMs (booting, warm or busy) at once on this host
    hypervisor: str  # "auto", "kvm" or "qemu"
    # For a remote URI: [user@]host[:port] that builder SSH is tunnelled through,
    # since each VM's SSH port is bound to 127.0.0.1 on *that* host.
    tunnel: str
    overlay_dir: Path | None  # None: <data_dir>/overlays (the same path on the host)
    # Where the host keeps its copy of the template cache (its templates/ folder
    # below it). None: vm.cache_dir, the same path as here. A remote host's copy
    # is checked at connect (kopers.vm.hosts), a local one's only when set.
    cache_dir: Path | None = None
    # The tunnel's client key (None: the URI's keyfile=, else ~/.ssh's keys) and
    # the known_hosts file its host key is checked against (None: the URI's
    # known_hosts=, else ~/.ssh/known_hosts).
    ssh_key: Path | None = None
    known_hosts: Path | None = None


@dataclass(frozen=True, slots=True)
class VmConfig:
    uri: str
    hypervisor: str  # "auto", "kvm" or "qemu"
    cache_dir: Path
    vcpus: int
    memory_mib: int
    boot_timeout_s: int
    max_concurrent: int
    warm: int = 1
    disk_gib: int = 0
    pools: tuple[PoolConfig, ...] = ()
    hosts: tuple[HostConfig, ...] = ()

    def host_cache(self, host: HostConfig) -> Path | None:
        """Where `host` keeps its copy of the template cache (kopers.vm.templatecopy);
        None when the images' paths here are valid there (a local host by default)."""
        return host.cache_dir or (self.cache_dir if urlparse(host.uri).hostname else None)

    def pool(self, template: str) -> PoolConfig:
        """The pool settings of a template: its [[vm.pools]] entry, else the [vm] defaults."""
        for pool in self.pools:
            if pool.template == template:
                return pool
        return PoolConfig(
            template, self.max_concurrent, self.warm, self.vcpus, self.memory_mib, self.disk_gib
        )

    @property
    def slots(self) -> int:
        """Builder VMs that may exist at once over all hosts."""
        return sum(h.slots for h in self.hosts)


def check_hypervisor(value: Any, what: str) -> str:
    """One of auto, kvm, qemu; `what` names the setting in the error."""
    if value not in HYPERVISORS:
        raise ConfigError(f"{what} must be one of auto, kvm, qemu")
    return str(value)


def parse_vm(vm: Mapping[str, Any], base: Path) -> VmConfig:
    """The merged [vm] table; relative paths are relative to `base` (the file's folder)."""
    return VmConfig(
        uri=str(vm["uri"]),
        hypervisor=check_hypervisor(vm["hypervisor"], "vm.hypervisor"),
        cache_dir=path_setting(vm["cache_dir"], base),
        vcpus=positive(vm, "vcpus"),
        memory_mib=positive(vm, "memory_mib"),
        boot_timeout_s=positive(vm, "boot_timeout"),
        max_concurrent=positive(vm, "max_concurrent"),
        warm=natural(vm, "warm"),
        disk_gib=natural(vm, "disk_gib"),
        pools=_parse_pools(vm),
        hosts=_parse_hosts(vm, base),
    )


def _parse_pools(vm: Mapping[str, Any]) -> tuple[PoolConfig, ...]:
    """[[vm.pools]]: per-template overrides; unset keys take the [vm] value."""
    pools = []
    for item in tables(vm, "pools", _POOL_KEYS):
        merged = {k: item.get(k, vm[k]) for k in ("vcpus", "memory_mib", "disk_gib", "warm")}
        merged["max_concurrent"] = item.get("max_concurrent", vm["max_concurrent"])
        pools.append(
            PoolConfig(
                template=required_str(item, "template", "[[vm.pools]]"),
                max_concurrent=positive(merged, "max_concurrent"),
                warm=natural(merged, "warm"),
                vcpus=positive(merged, "vcpus"),
                memory_mib=positive(merged, "memory_mib"),
                disk_gib=natural(merged, "disk_gib"),
            )
        )
    if len({p.template for p in pools}) != len(pools):
        raise ConfigError("each template may have only one [[vm.pools]] entry")
    return tuple(pools)


def _parse_hosts(vm: Mapping[str, Any], base: Path) -> tuple[HostConfig, ...]:
    """[[vm.hosts]]; none given means one local host: vm.uri with vm.max_concurrent slots."""
    items = tables(vm, "hosts", _HOST_KEYS) or [
        {"name": "local", "uri": vm["uri"], "slots": vm["max_concurrent"]}
    ]
    hosts = []
    for item in items:
        name = required_str(item, "name", "[[vm.hosts]]")
        hypervisor = check_hypervisor(
            str(item.get("hypervisor", vm["hypervisor"])), f"host {name}: hypervisor"
        )
        uri = required_str(item, "uri", f"host {name}")
        overlay_dir = item.get("overlay_dir")
        params = parse_qs(urlparse(uri).query)
        hosts.append(
            HostConfig(
                name=name,
                uri=uri,
                slots=positive(item, "slots"),
                hypervisor=hypervisor,
                tunnel=str(item.get("tunnel", "")) or _default_tunnel(uri),
                overlay_dir=path_setting(overlay_dir, base) if overlay_dir else None,
                cache_dir=_host_cache_dir(item, name),
                ssh_key=_host_path(item, "ssh_key", name, base, params.get("keyfile")),
                known_hosts=_host_path(item, "known_hosts", name, base, params.get("known_hosts")),
            )
        )
    if len({h.name for h in hosts}) != len(hosts):
        raise ConfigError("vm.hosts names must be unique")
    return tuple(hosts)


def _host_cache_dir(item: Mapping[str, Any], host: str) -> Path | None:
    """A path on that host: absolute, as neither ~ nor this file's folder means anything there."""
    value = item.get("cache_dir")
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(f"host {host}: cache_dir must be an absolute path on that host")
    return Path(value)


def _host_path(
    item: Mapping[str, Any], key: str, host: str, base: Path, fallback: list[str] | None = None
) -> Path | None:
    """An optional path of a [[vm.hosts]] entry, else the URI parameter's (its last) value."""
    value = item.get(key)
    if value is None and fallback:
        value = fallback[-1]
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"host {host}: {key} must be a non-empty path")
    return path_setting(value, base)


def _default_tunnel(uri: str) -> str:
    """qemu+ssh://root@build2/system -> root@build2: tunnel through the host libvirt uses."""
    parsed = urlparse(uri)
    if not parsed.hostname:
        return ""
    user = f"{parsed.username}@" if parsed.username else ""
    port = f":{parsed.port}" if parsed.port else ""
    return f"{user}{parsed.hostname}{port}"
