"""The /dev/kvm permission check that tells why libvirt would re-probe QEMU at every start."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest

from kopers.vm.probe import ProbeResult, cached_probe, kvm_node_warning

USER = "nobody"


@pytest.fixture
def node(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the stand-in node another owner")
    path = tmp_path / "kvm"
    path.touch()
    os.chown(path, 0, 0)
    return path


def test_a_root_only_node_is_reported(node: Path) -> None:
    node.chmod(0o600)
    warning = kvm_node_warning(USER, node)
    assert warning is not None
    assert USER in warning and str(node) in warning


def test_udev_permissions_through_the_users_group_are_enough(node: Path) -> None:
    os.chown(node, 0, pwd.getpwnam(USER).pw_gid)
    node.chmod(0o660)
    assert kvm_node_warning(USER, node) is None
    node.chmod(0o640)  # read-only for the group: libvirt still sees no KVM
    assert kvm_node_warning(USER, node) is not None


def test_world_access_missing_node_and_root_qemu_are_fine(node: Path, tmp_path: Path) -> None:
    node.chmod(0o666)
    assert kvm_node_warning(USER, node) is None
    assert kvm_node_warning(USER, tmp_path / "absent") is None
    node.chmod(0o600)
    assert kvm_node_warning(None, node) is None  # qemu runs as root: nothing to grant


def test_the_group_kvm_name_is_not_special(node: Path) -> None:
    other = next((g for g in grp.getgrall() if USER not in g.gr_mem and g.gr_gid != 0), None)
    if other is None or other.gr_gid == pwd.getpwnam(USER).pw_gid:
        pytest.skip("no unrelated group on this host")
    os.chown(node, 0, other.gr_gid)
    node.chmod(0o660)
    assert kvm_node_warning(USER, node) is not None


class CountingProbe:
    """Stands in for probe_domain_type: same signature, counts its calls."""

    def __init__(self, verdict: str) -> None:
        self.verdict = verdict
        self.calls = 0

    async def __call__(self, kernel: Path) -> ProbeResult:
        self.calls += 1
        return ProbeResult(self.verdict, f"probed {kernel.name}")


async def test_the_verdict_is_probed_once_and_then_read_back(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "kvm-probe.json"
    probe = CountingProbe("qemu")
    first = await cached_probe(tmp_path / "vmlinuz", cache, probe)
    second = await cached_probe(tmp_path / "vmlinuz", cache, probe)
    assert probe.calls == 1
    assert first == ProbeResult("qemu", "probed vmlinuz")
    assert second.domain_type == "qemu" and second.reason == "probed vmlinuz (probed earlier)"


async def test_another_kernel_or_a_broken_cache_probes_again(tmp_path: Path) -> None:
    cache = tmp_path / "kvm-probe.json"
    probe = CountingProbe("kvm")
    await cached_probe(tmp_path / "a", cache, probe)
    await cached_probe(tmp_path / "b", cache, probe)
    assert probe.calls == 2
    for junk in ("not json", "[1, 2]", '{"key": null, "domain_type": "xen", "reason": 1}'):
        cache.write_text(junk)
        assert (await cached_probe(tmp_path / "b", cache, probe)).domain_type == "kvm"
    assert probe.calls == 5


async def test_a_cache_that_cannot_be_written_still_gives_the_verdict(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    probe = CountingProbe("qemu")
    result = await cached_probe(tmp_path / "k", blocker / "sub" / "kvm-probe.json", probe)
    assert result.domain_type == "qemu" and probe.calls == 1
