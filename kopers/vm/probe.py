"""Decide between KVM and TCG by booting a kernel, not by trusting /dev/kvm.

/dev/kvm can exist and still fail ("KVM internal error" without nested
virtualisation). The probe runs qemu directly with `-accel kvm` and the
template's kernel but no disk: a working KVM prints the kernel banner, panics
on the missing root file system a moment later, and `-no-reboot` makes qemu
exit. Only a banner without "KVM internal error" counts as working KVM.

On some hosts broken KVM neither fails nor prints: the probe then lasts its
whole timeout. Whether KVM works does not change while the host runs, so the
verdict is kept in a small file keyed by the host's boot id, the /dev/kvm node
and the qemu binary, and every later start (of any Kopers instance sharing the
cache directory) reuses it until one of those changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kopers.hostaccess import may_read_write
from kopers.vm.template import TemplateImage

KVM_NODE = Path("/dev/kvm")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
QEMU = "qemu-system-x86_64"
BANNER = "Linux version"
KVM_FAILURE = "KVM internal error"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    domain_type: str  # "kvm" or "qemu"
    reason: str


async def probe_domain_type(target: TemplateImage | Path, timeout: float = 60.0) -> ProbeResult:
    """Return "kvm" if a kernel boots under KVM here, "qemu" (TCG) otherwise."""
    kernel = target.kernel if isinstance(target, TemplateImage) else target
    if not os.path.exists("/dev/kvm"):
        return ProbeResult("qemu", "/dev/kvm does not exist")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ProbeResult("qemu", "/dev/kvm is not accessible")
    qemu = shutil.which(QEMU)
    if qemu is None:
        return ProbeResult("qemu", f"{QEMU} is not installed; cannot probe KVM")
    try:
        proc = await asyncio.create_subprocess_exec(
            qemu, "-accel", "kvm", "-cpu", "host", "-m", "256", "-nographic",
            "-no-reboot", "-nodefaults", "-serial", "stdio", "-net", "none",
            "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    except OSError as exc:
        return ProbeResult("qemu", f"cannot run {QEMU}: {exc}")
    output = await _collect(proc, timeout)
    return _verdict(output, proc.returncode)


async def cached_probe(
    kernel: Path,
    cache_file: Path,
    probe: Callable[[Path], Awaitable[ProbeResult]] | None = None,
) -> ProbeResult:
    """`probe` (probe_domain_type), answered from `cache_file` when this host already probed."""
    key = _probe_key(kernel)
    try:
        saved = json.loads(cache_file.read_text())
        if saved.get("key") == key and saved.get("domain_type") in ("kvm", "qemu"):
            return ProbeResult(saved["domain_type"], f"{saved['reason']} (probed earlier)")
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # no cache yet, or an unreadable one: probe afresh
    result = await (probe or probe_domain_type)(kernel)
    with contextlib.suppress(OSError):
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, **asdict(result)}))
        tmp.replace(cache_file)
    return result


def _probe_key(kernel: Path) -> str:
    """What the verdict depends on: this boot of the host, its KVM node, qemu, the kernel."""
    parts = [str(kernel)]
    with contextlib.suppress(OSError):
        parts.append(BOOT_ID.read_text().strip())
    for path in (KVM_NODE, Path(shutil.which(QEMU) or QEMU)):
        try:
            st = path.stat()
            parts.append(f"{path}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}")
        except OSError:
            parts.append(f"{path}:absent")
    return "|".join(parts)


async def _collect(proc: asyncio.subprocess.Process, timeout: float) -> str:
    """Read qemu's output until it exits, reports a KVM failure, or time runs out."""
    assert proc.stdout is not None
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            while chunk := await proc.stdout.read(4096):
                chunks.append(chunk)
                # A KVM failure leaves qemu hanging with a paused vCPU: stop early.
                if KVM_FAILURE.encode() in b"".join(chunks[-2:]):
                    break
    except TimeoutError:
        pass
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()
    return b"".join(chunks).decode(errors="replace")


def _verdict(output: str, returncode: int | None) -> ProbeResult:
    if KVM_FAILURE in output:
        return ProbeResult("qemu", "KVM internal error while booting the probe kernel")
    if BANNER not in output:
        last = next((ln for ln in reversed(output.splitlines()) if ln.strip()), "no output")
        return ProbeResult(
            "qemu", f"kernel printed no banner under KVM (exit {returncode}): {last}"
        )
    return ProbeResult("kvm", "a kernel booted under KVM")


def kvm_node_warning(user: str | None, node: Path = KVM_NODE) -> str | None:
    """Why libvirt would re-probe QEMU at every VM start here, or None.

    libvirt caches what QEMU can do, and throws the cache away whenever KVM
    "was enabled when probing but is not available now", judged by whether its
    qemu user may open /dev/kvm. A node that exists but is root-only (no udev,
    as in containers) therefore costs a full re-probe, tens of seconds under
    TCG, on every domain start, even though Kopers does not use KVM there.
    """
    if user is None or may_read_write(node, user) in (True, None):
        return None
    return (
        f"{user} cannot open {node}, so libvirt re-probes QEMU before every VM start "
        f"(tens of seconds each under TCG); give {node} udev's usual permissions "
        "(group kvm, mode 0660, with the qemu user in group kvm)"
    )
