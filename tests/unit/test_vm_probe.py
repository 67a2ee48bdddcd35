"""The /dev/kvm permission check that tells why libvirt would re-probe QEMU at every start."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest

from kopers.vm.probe import kvm_node_warning

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
