"""Counting the builder VMs a test run boots, from libvirt's own per-domain logs.

libvirtd writes "starting up libvirt version ..." to
/var/log/libvirt/qemu/<domain>.log each time it starts a domain, whichever
process asked for it (a test, a `kopers serve` under test, a benchmark). A
snapshot of those files' sizes before the run and the lines added after it
give the number of boots, without instrumenting Kopers.
"""

from __future__ import annotations

from pathlib import Path

from kopers.vm.domain import DOMAIN_PREFIX

QEMU_LOGS = Path("/var/log/libvirt/qemu")
START_LINE = b"starting up libvirt version"


def snapshot(logs: Path = QEMU_LOGS) -> dict[str, int]:
    """The size of each Kopers domain log now."""
    return {path.name: path.stat().st_size for path in _domain_logs(logs)}


def boots_since(before: dict[str, int], logs: Path = QEMU_LOGS) -> int:
    """How many Kopers domains libvirt started since `before` was taken."""
    count = 0
    for path in _domain_logs(logs):
        with open(path, "rb") as handle:
            handle.seek(before.get(path.name, 0))
            count += handle.read().count(START_LINE)
    return count


def _domain_logs(logs: Path) -> list[Path]:
    try:
        names = [p for p in logs.iterdir() if p.name.startswith(DOMAIN_PREFIX)]
        return [p for p in names if p.suffix == ".log"]
    except OSError:
        return []
