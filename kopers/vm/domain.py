"""Pure rendering of libvirt XML and the naming of Kopers' domains.

No I/O here: the driver (kopers.vm.libvirt) feeds these strings to libvirt.

Networking follows ../docs/stack-facts.md: the domain has no `<interface>`;
QEMU user networking is added through `<qemu:commandline>` with `restrict=on`
(the guest cannot open any connection out) and a single `hostfwd` bound to
127.0.0.1 for SSH. libvirt 9.0 cannot express that forward itself (no passt
backend), hence the qemu namespace.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

DOMAIN_PREFIX = "kopers-"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
DEFAULT_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
# PCI slot of the NIC: explicit so it cannot clash with the slot libvirt gives the disk.
NIC_PCI_ADDR = "0x9"
DOMAIN_TYPES = ("kvm", "qemu")
_TAG = re.compile(r"[^a-z0-9]+")

ET.register_namespace("qemu", QEMU_NS)


def sanitize_tag(text: str, max_len: int = 24) -> str:
    """Lower-case alphanumerics only, so tags can be joined with '-' unambiguously."""
    tag = _TAG.sub("", text.lower())[:max_len]
    if not tag:
        raise ValueError(f"tag {text!r} has no letters or digits")
    return tag


def instance_tag(seed: str) -> str:
    """A short stable tag for one Kopers instance, e.g. from its data directory."""
    return hashlib.sha256(seed.encode()).hexdigest()[:8]


def domain_prefix(instance: str) -> str:
    """Prefix of every domain this instance starts: `kopers-<instance>-`."""
    return f"{DOMAIN_PREFIX}{sanitize_tag(instance)}-"


def domain_name(instance: str, task: str, random: str | None = None) -> str:
    """`kopers-<instance>-<task>-<random>`; random defaults to 6 fresh hex digits."""
    suffix = sanitize_tag(random) if random is not None else secrets.token_hex(3)
    return f"{domain_prefix(instance)}{sanitize_tag(task)}-{suffix}"


def is_kopers_domain(name: str, instance: str | None = None) -> bool:
    """True for names Kopers made; with `instance`, only that instance's names."""
    prefix = domain_prefix(instance) if instance is not None else DOMAIN_PREFIX
    return name.startswith(prefix) and len(name.split("-")) >= 4


def pool_name(overlay_dir: Path) -> str:
    """A storage pool name unique to one overlay directory.

    Two Kopers instances with different data directories get different pools,
    so neither ever lists, or deletes, the other's overlays.
    """
    digest = hashlib.sha256(str(overlay_dir).encode()).hexdigest()[:12]
    return f"{DOMAIN_PREFIX}pool-{digest}"


def overlay_volume_name(domain: str) -> str:
    return f"{domain}.qcow2"


def console_log_name(domain: str) -> str:
    return f"{domain}.console.log"


def domain_of_file(filename: str) -> str | None:
    """The domain an overlay or console log belongs to, or None for other files."""
    for suffix in (".qcow2", ".console.log"):
        if filename.startswith(DOMAIN_PREFIX) and filename.endswith(suffix):
            return filename[: -len(suffix)]
    return None


@dataclass(frozen=True, slots=True)
class VmSize:
    """What one builder VM gets: vCPUs, memory, and disk (0 GiB: the image's own size)."""

    vcpus: int
    memory_mib: int
    disk_gib: int = 0

    @property
    def disk_bytes(self) -> int | None:
        return self.disk_gib << 30 if self.disk_gib else None


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """Everything that differs between two builder domains."""

    name: str
    domain_type: str  # "kvm" or "qemu" (TCG)
    vcpus: int
    memory_mib: int
    kernel: Path
    initrd: Path
    disk: Path  # the qcow2 overlay
    console_log: Path
    ssh_port: int
    cmdline: str = DEFAULT_CMDLINE


def netdev_arg(ssh_port: int) -> str:
    """QEMU user networking that lets the guest open no connection out.

    restrict=off would make the guest's 10.0.2.2 the host's loopback, and every
    service bound there reachable from a build; it is never used.
    """
    return f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"


def nic_arg() -> str:
    return f"virtio-net-pci,netdev=n0,bus=pci.0,addr={NIC_PCI_ADDR}"


def render_domain_xml(spec: DomainSpec) -> str:
    """The transient domain for one build VM."""
    if spec.domain_type not in DOMAIN_TYPES:
        raise ValueError(f"domain type must be one of {DOMAIN_TYPES}, got {spec.domain_type!r}")
    if not 0 < spec.ssh_port < 65536:
        raise ValueError(f"invalid ssh port {spec.ssh_port}")
    dom = ET.Element("domain", {"type": spec.domain_type})
    _text(dom, "name", spec.name)
    _text(dom, "memory", str(spec.memory_mib), unit="MiB")
    _text(dom, "vcpu", str(spec.vcpus))
    os_el = ET.SubElement(dom, "os")
    _text(os_el, "type", "hvm", arch="x86_64", machine="pc")
    _text(os_el, "kernel", str(spec.kernel))
    _text(os_el, "initrd", str(spec.initrd))
    _text(os_el, "cmdline", spec.cmdline)
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    # KVM passes the host CPU through; TCG emulates its richest model so that
    # binaries built for x86-64-v2/v3 still run.
    cpu_mode = "host-passthrough" if spec.domain_type == "kvm" else "maximum"
    ET.SubElement(dom, "cpu", {"mode": cpu_mode})
    ET.SubElement(dom, "clock", {"offset": "utc"})
    # A builder is single-use: whatever ends it, the domain must just go away.
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        _text(dom, event, "destroy")
    devices = ET.SubElement(dom, "devices")
    disk = ET.SubElement(devices, "disk", {"type": "file", "device": "disk"})
    # cache=unsafe: the overlay is thrown away after one build, so flushes buy nothing.
    ET.SubElement(disk, "driver", {"name": "qemu", "type": "qcow2", "cache": "unsafe"})
    ET.SubElement(disk, "source", {"file": str(spec.disk)})
    ET.SubElement(disk, "target", {"dev": "vda", "bus": "virtio"})
    serial = ET.SubElement(devices, "serial", {"type": "file"})
    ET.SubElement(serial, "source", {"path": str(spec.console_log), "append": "off"})
    ET.SubElement(serial, "target", {"port": "0"})
    rng = ET.SubElement(devices, "rng", {"model": "virtio"})
    _text(rng, "backend", "/dev/urandom", model="random")
    ET.SubElement(devices, "memballoon", {"model": "none"})
    cmdline = ET.SubElement(dom, f"{{{QEMU_NS}}}commandline")
    for value in ("-netdev", netdev_arg(spec.ssh_port), "-device", nic_arg()):
        ET.SubElement(cmdline, f"{{{QEMU_NS}}}arg", {"value": value})
    return ET.tostring(dom, encoding="unicode")


def render_volume_xml(name: str, backing: Path, capacity_bytes: int | None = None) -> str:
    """A qcow2 overlay volume whose backing store is the template's base image."""
    vol = ET.Element("volume")
    _text(vol, "name", name)
    if capacity_bytes is not None:
        _text(vol, "capacity", str(capacity_bytes), unit="bytes")
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", {"type": "qcow2"})
    backing_el = ET.SubElement(vol, "backingStore")
    _text(backing_el, "path", str(backing))
    ET.SubElement(backing_el, "format", {"type": "qcow2"})
    return ET.tostring(vol, encoding="unicode")


def render_pool_xml(name: str, path: Path) -> str:
    """A `dir` storage pool over the overlay directory."""
    pool = ET.Element("pool", {"type": "dir"})
    _text(pool, "name", name)
    target = ET.SubElement(pool, "target")
    _text(target, "path", str(path))
    return ET.tostring(pool, encoding="unicode")


def pool_target_path(pool_xml: str) -> Path | None:
    """The directory a pool's XML points at, or None (not a directory pool)."""
    path = ET.fromstring(pool_xml).findtext("target/path")
    return Path(path) if path else None


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    el.text = text
    return el
