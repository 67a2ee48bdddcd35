"""kopers.toml -> frozen dataclasses, validated once at start-up.

Lookup order: `--config PATH`, then `$KOPERS_CONFIG`, then `./kopers.toml`,
then the built-in defaults. Any setting can then be overridden from the
environment as `KOPERS_<SECTION>_<KEY>` (for example `KOPERS_VM_MEMORY_MIB=2048`);
three short names are fixed for scripts: `KOPERS_DATA_DIR`, `KOPERS_LISTEN`
and `KOPERS_PUBLIC_URL`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kopers.automation import (
    REBUILD_DEFAULTS,
    WEBHOOK_DEFAULTS,
    RebuildConfig,
    WebhookConfig,
    parse_rebuild,
    parse_webhooks,
)
from kopers.errors import ConfigError
from kopers.limits import DEFAULTS as LIMIT_DEFAULTS
from kopers.limits import LimitsConfig, parse_limits
from kopers.logformat import LogFormat
from kopers.loginpolicy import WEB_DEFAULTS, WebConfig, parse_web
from kopers.settings import apply_env, merge, natural, path_setting, positive
from kopers.vmconfig import HostConfig as HostConfig  # re-exported: callers import it here
from kopers.vmconfig import VmConfig, check_hypervisor, parse_vm

_CHROOT_NAME = re.compile(r"^[a-z0-9][a-z0-9.+_]*-[a-z0-9.+_]+-[a-z0-9_]+$")
_DIST = re.compile(r"^\.[A-Za-z0-9_.]+$")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str
    port: int
    public_url: str
    max_upload_mib: int
    token_days: int = 180  # lifetime of a new API token; 0: it never expires
    # Reverse proxies whose X-Forwarded-For/-Proto are believed (kopers.api.proxyheaders).
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    log_format: LogFormat = LogFormat.TEXT  # "json": one JSON object per log line


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    dsn: str  # empty: run the embedded Postgres under <data_dir>/pg


@dataclass(frozen=True, slots=True)
class BuildConfig:
    repo_tag: str
    timeout_s: int
    max_attempts: int
    # A build that prints nothing for this long, or whose log grows past this
    # size, ends failed like one that runs past its timeout.
    silence_timeout_s: int = 3600
    max_log_mib: int = 256
    # What one build may hand back out of its VM (see kopers/worker/results.py).
    max_result_mib: int = 4096
    max_result_files: int = 1000
    # Tasks one owner may run at once (0: no cap beyond the slots).
    owner_max_concurrent: int = 0


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Where builds and the host's fetches on a user's behalf may connect.

    Loopback, link-local, private and the host's own addresses are refused
    unless a network here allow-lists them (see kopers/net/policy.py).
    """

    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Who may read /metrics without credentials: clients in these networks.

    Site admins may read it from anywhere with their API token.
    """

    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )


@dataclass(frozen=True, slots=True)
class ChrootConfig:
    """A build target: distro-version-arch, the VM template that builds it, its dist tag."""

    name: str
    template: str
    dist: str
    enabled: bool
    comment: str

    @property
    def os_version(self) -> str:
        """`fedora-40-x86_64` -> `fedora-40` (what `dnf copr enable` puts in its URL)."""
        return self.name.rsplit("-", 1)[0]

    @property
    def arch(self) -> str:
        return self.name.rsplit("-", 1)[1]


@dataclass(frozen=True, slots=True)
class SourcesConfig:
    """Where build sources come from that a client names only (buildpypi)."""

    pypi_url: str = "https://pypi.org"  # a package index serving PyPI's JSON API


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    server: ServerConfig
    database: DatabaseConfig
    build: BuildConfig
    vm: VmConfig
    chroots: tuple[ChrootConfig, ...]
    source: Path | None  # the file it was read from, if any
    network: NetworkConfig = NetworkConfig()
    limits: LimitsConfig = LimitsConfig()
    sources: SourcesConfig = SourcesConfig()
    webhooks: WebhookConfig = WebhookConfig()
    rebuild: RebuildConfig = RebuildConfig()
    web: WebConfig = WebConfig()
    metrics: MetricsConfig = MetricsConfig()

    @property
    def enabled_chroots(self) -> tuple[ChrootConfig, ...]:
        return tuple(c for c in self.chroots if c.enabled)

    def chroot(self, name: str) -> ChrootConfig | None:
        return next((c for c in self.chroots if c.name == name), None)


DEFAULTS: dict[str, Any] = {
    "data_dir": "",
    "server": {
        "listen": "127.0.0.1:8080",
        "public_url": "",
        "max_upload_mib": 1024,
        "token_days": 180,
        "trusted_proxies": [],
        "log_format": "text",
    },
    "database": {"dsn": ""},
    "build": {
        "repo_tag": "kopers",
        "timeout": 18000,
        "max_attempts": 3,
        "silence_timeout": 3600,
        "max_log_mib": 256,
        "max_result_mib": 4096,
        "max_result_files": 1000,
        "owner_max_concurrent": 0,
    },
    "vm": {
        "uri": "qemu:///system",
        "hypervisor": "auto",
        "cache_dir": "~/.cache/kopers",
        "vcpus": 1,
        "memory_mib": 1024,
        "boot_timeout": 300,
        "max_concurrent": 1,
        "warm": 1,
        "disk_gib": 0,
        "pools": [],
        "hosts": [],
    },
    "network": {"allow": []},
    "metrics": {"allow": ["127.0.0.1/32", "::1/128"]},
    "sources": {"pypi_url": "https://pypi.org"},
    "limits": dict(LIMIT_DEFAULTS),
    "webhooks": dict(WEBHOOK_DEFAULTS),
    "rebuild": dict(REBUILD_DEFAULTS),
    "web": dict(WEB_DEFAULTS),
    "chroots": [
        {"name": "debian-12-x86_64", "template": "debian-12", "dist": ".deb12", "enabled": True},
    ],
}


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read, or None to run on defaults."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return path
    if env.get("KOPERS_CONFIG"):
        path = Path(env["KOPERS_CONFIG"])
        if not path.is_file():
            raise ConfigError(f"KOPERS_CONFIG={path} does not exist")
        return path
    local = Path("kopers.toml")
    return local if local.is_file() else None


def load(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, merge and validate the configuration."""
    env = os.environ if env is None else env
    path = find_config_file(explicit, env)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    merged = merge(DEFAULTS, raw)
    apply_env(merged, env)
    return parse(merged, path)


def parse(data: Mapping[str, Any], source: Path | None = None) -> Config:
    """Validate a merged settings mapping into a Config."""
    base = source.parent if source is not None else Path.cwd()
    server = data["server"]
    host, port = parse_listen(str(server["listen"]))
    public_url = str(server["public_url"]).rstrip("/") or f"http://{host}:{port}"
    if not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"server.public_url must start with http:// or https://: {public_url}")
    # Reported before the build and chroot settings' errors (parse_vm checks it again).
    check_hypervisor(data["vm"]["hypervisor"], "vm.hypervisor")
    build = data["build"]
    if not re.fullmatch(r"[A-Za-z0-9_]+", str(build["repo_tag"])):
        raise ConfigError("build.repo_tag may hold only letters, digits and _")
    chroots = tuple(_parse_chroot(c) for c in data["chroots"])
    names = [c.name for c in chroots]
    if len(set(names)) != len(names):
        raise ConfigError("chroot names must be unique")
    return Config(
        data_dir=path_setting(data["data_dir"] or default_data_dir(), base),
        server=ServerConfig(
            host=host,
            port=port,
            public_url=public_url,
            max_upload_mib=positive(server, "max_upload_mib"),
            token_days=natural(server, "token_days"),
            trusted_proxies=_trusted_proxies(server.get("trusted_proxies")),
            log_format=_log_format(server["log_format"]),
        ),
        database=DatabaseConfig(dsn=str(data["database"]["dsn"])),
        build=BuildConfig(
            repo_tag=str(build["repo_tag"]),
            timeout_s=positive(build, "timeout"),
            max_attempts=positive(build, "max_attempts"),
            silence_timeout_s=positive(build, "silence_timeout"),
            max_log_mib=positive(build, "max_log_mib"),
            max_result_mib=positive(build, "max_result_mib"),
            max_result_files=positive(build, "max_result_files"),
            owner_max_concurrent=natural(build, "owner_max_concurrent"),
        ),
        vm=parse_vm(data["vm"], base),
        chroots=chroots,
        source=source,
        network=_parse_network(data["network"]),
        limits=parse_limits(data["limits"]),
        sources=_parse_sources(data["sources"]),
        webhooks=parse_webhooks(data["webhooks"]),
        rebuild=parse_rebuild(data["rebuild"]),
        web=parse_web(data["web"]),
        metrics=MetricsConfig(_networks(data["metrics"], "metrics.allow")),
    )


def _parse_sources(section: Mapping[str, Any]) -> SourcesConfig:
    url = str(section.get("pypi_url", "")).rstrip("/")
    parts = urlparse(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "\n" in url:
        raise ConfigError(f"sources.pypi_url must be an http(s) URL: {url!r}")
    return SourcesConfig(pypi_url=url)


def _parse_network(section: Mapping[str, Any]) -> NetworkConfig:
    allow = section.get("allow")
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise ConfigError('network.allow must be a list of networks such as "10.1.0.0/16"')
    try:
        return NetworkConfig(tuple(ipaddress.ip_network(a, strict=False) for a in allow))
    except ValueError as exc:
        raise ConfigError(f"network.allow: {exc}") from exc


def _networks(
    section: Mapping[str, Any], key: str
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A list of networks (CIDR) such as ["127.0.0.1/32", "::1/128"]."""
    allow = section.get("allow")
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise ConfigError(f'{key} must be a list of networks such as "127.0.0.1/32"')
    try:
        return tuple(ipaddress.ip_network(a, strict=False) for a in allow)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from exc


def _trusted_proxies(value: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The proxies' networks; one covering every address would let any client pick its own."""
    key = "server.trusted_proxies"
    networks = _networks({"allow": value}, key)
    if any(n.prefixlen == 0 for n in networks):
        raise ConfigError(f"{key} must not trust every address (a /0 network)")
    return networks


def _log_format(value: Any) -> LogFormat:
    try:
        return LogFormat(str(value))
    except ValueError:
        raise ConfigError("server.log_format must be text or json") from None


def default_data_dir() -> str:
    """/var/lib/kopers for root (a service), else the user's XDG data dir.

    Root's home is mode 700: the embedded Postgres (run as its own user) and
    libvirt's qemu user could not reach a data directory below it.
    """
    return "/var/lib/kopers" if os.geteuid() == 0 else "~/.local/share/kopers"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"listen address must be host:port, got {value!r}")
    return host.strip("[]"), int(port)


def _parse_chroot(item: Mapping[str, Any]) -> ChrootConfig:
    try:
        name, template, dist = str(item["name"]), str(item["template"]), str(item["dist"])
    except KeyError as exc:
        raise ConfigError(f"every [[chroots]] entry needs name, template and dist: {exc}") from exc
    if not _CHROOT_NAME.match(name):
        raise ConfigError(f"chroot name {name!r} is not of the form distro-version-arch")
    if not _DIST.match(dist):
        raise ConfigError(f"chroot {name}: dist {dist!r} must look like .fc40")
    return ChrootConfig(
        name=name,
        template=template,
        dist=dist,
        enabled=bool(item.get("enabled", True)),
        comment=str(item.get("comment", "")),
    )
