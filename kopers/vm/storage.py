"""The overlay directory as a libvirt storage pool: the pool, its volumes, their files.

Each builder VM's disk is a qcow2 overlay volume in a transient `dir` pool over
the overlay directory, and qemu writes the VM's serial console log next to it.
Going through the storage API (not the file system) lets the same calls create
and delete those files on a remote libvirt host.

Every function here blocks (libvirt-python, file reads): the driver
(kopers.vm.libvirt) runs them in a thread. `lookup` and `ignore_gone` also
serve the driver for domains: libvirt reports a missing domain, volume or pool
alike, as an error to be told apart from real failures.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import libvirt

from kopers.errors import InfrastructureError
from kopers.vm.domain import pool_target_path, render_pool_xml

log = logging.getLogger(__name__)
T = TypeVar("T")

_MISSING = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
}
# OPERATION_INVALID: e.g. destroying a domain that stopped meanwhile.
_GONE = _MISSING | {libvirt.VIR_ERR_OPERATION_INVALID}


def ensure_pool(conn: libvirt.virConnect, name: str, overlay_dir: Path) -> libvirt.virStoragePool:
    """The (transient) dir pool over the overlay directory, started."""
    pool = lookup(conn.storagePoolLookupByName, name)
    if pool is None:
        # libvirt refuses two pools over one directory: reuse one that exists.
        for other in conn.listAllStoragePools(0):
            if pool_target_path(other.XMLDesc(0)) == overlay_dir:
                pool = other
                break
    if pool is None:
        # WITH_BUILD creates the directory, also on a remote host.
        xml = render_pool_xml(name, overlay_dir)
        return conn.storagePoolCreateXML(xml, libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD)
    if not pool.isActive():
        pool.create(0)
    return pool


def release_pool(conn: libvirt.virConnect, name: str) -> None:
    """Stop our transient pool if no volume is left in it."""
    # Transient pools live until libvirtd restarts; without this, every
    # short-lived driver (tests, CLI runs) would leave one behind.
    try:
        pool = lookup(conn.storagePoolLookupByName, name)
        if pool is None or pool.isPersistent() or not pool.isActive():
            return
        pool.refresh(0)
        if pool.numOfVolumes() == 0:
            pool.destroy()
    except libvirt.libvirtError as exc:
        log.info("keeping storage pool %s: %s", name, exc.get_error_message())


def delete_volume(pool: libvirt.virStoragePool, name: str) -> None:
    """Delete a volume of the pool; one that is not there is no error."""
    vol = lookup(pool.storageVolLookupByName, name)
    if vol is not None:
        ignore_gone(vol.delete, 0)


def qcow2_virtual_size(image: Path) -> int:
    """The virtual disk size a qcow2 image's header declares (blocking).

    Read from the local copy of the template; a remote host's copy is the same
    image (the same recipe hash). Bytes 24-31 of the header are its size.
    """
    try:
        with open(image, "rb") as handle:
            header = handle.read(32)
    except OSError as exc:
        raise InfrastructureError(f"cannot read template image {image}: {exc}") from exc
    if len(header) < 32 or header[:4] != b"QFI\xfb":
        raise InfrastructureError(f"template image {image} is not a qcow2 image")
    return int.from_bytes(header[24:32], "big")


def read_tail(path: Path, max_bytes: int) -> str:
    """The last `max_bytes` of a local file, such as a console log ('' if unreadable)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - max_bytes))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def lookup(func: Callable[[str], T], name: str) -> T | None:
    """func(name), or None when libvirt says there is no such domain, volume or pool."""
    try:
        return func(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in _MISSING:
            return None
        raise


def ignore_gone(func: Callable[..., object], *args: object) -> None:
    """Call func, treating "it is already gone / not running" as success."""
    try:
        func(*args)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in _GONE:
            raise
