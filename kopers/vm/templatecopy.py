"""A template image's copy on a libvirt host: where it lies there, and whether it is this one.

Kopers builds each template image once, on its own host. Another libvirt host
boots clones from a copy of that image folder in its own cache
(`<cache_dir>/templates/<name>-<recipe hash>/`, see kopers.vm.template): the
overlays' backing file, kernel and initrd are paths on *that* host, while the
SSH key that logs in stays Kopers' own.

Before a host boots any clone, its copy is compared with the image here
through libvirt itself (a transient storage pool over the folder), so the check
needs no more access to the host than booting does: the folder must hold the
image files and its `complete` mark, each the size it is here, and the small
files (`complete`, the public key, the kernel command line) byte for byte.
The public key tells a copy from a second build of the same recipe, whose
guests would not accept Kopers' key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import libvirt

from kopers.vm.domain import pool_name, pool_target_path, render_pool_xml
from kopers.vm.template import COMPLETE, TemplateImage, image_dir

# What a host needs of the folder: compared by size, the small ones by content.
NEEDED = ("complete", "base.qcow2", "vmlinuz", "initrd.img", "id_ed25519.pub")
COMPARED = ("complete", "id_ed25519.pub", "cmdline")
MAX_COMPARED_BYTES = 4096


@dataclass(frozen=True, slots=True)
class FileFacts:
    """One file of an image folder: its size, and for the small compared ones its bytes."""

    size: int
    data: bytes | None = None


def placed(image: TemplateImage, cache_dir: Path) -> TemplateImage:
    """The image as a host with its cache in `cache_dir` sees it (the key stays ours). Pure."""
    folder = image_dir(image.name, image.recipe_hash, cache_dir)
    return dataclasses.replace(
        image,
        dir=folder,
        base_image=folder / image.base_image.name,
        kernel=folder / image.kernel.name,
        initrd=folder / image.initrd.name,
    )


def local_facts(image: TemplateImage) -> dict[str, FileFacts]:
    """What the host's copy must match: the files here (blocking)."""
    names = [*NEEDED, *(["cmdline"] if (image.dir / "cmdline").is_file() else [])]
    facts = {}
    for name in names:
        path = image.dir / name
        data = path.read_bytes() if name in COMPARED else None
        facts[name] = FileFacts(os.stat(path).st_size, data)
    return facts


def mismatch(wanted: dict[str, FileFacts], found: dict[str, FileFacts]) -> str | None:
    """How the host's folder differs from the image here, or None if it is a copy. Pure."""
    missing = [name for name in wanted if name not in found]
    if missing:
        return f"it has no {', '.join(missing)}"
    for name, here in wanted.items():
        there = found[name]
        if there.size != here.size:
            return f"its {name} has {there.size} bytes, {here.size} here"
        if here.data is not None and there.data != here.data:
            if name == COMPLETE:
                return f"its {name} mark differs"
            return f"its {name} differs: it is another build of the recipe, not a copy"
    return None


def inspect(conn: libvirt.virConnect, folder: Path) -> dict[str, FileFacts]:
    """The regular files of a folder on the host, by name (blocking; libvirtError on failure).

    A transient `dir` pool over the folder lists them; one that exists over it
    already is used instead (libvirt allows one pool per folder) and left.
    """
    pool, ours = _pool_over(conn, folder)
    try:
        if not ours:
            pool.refresh(0)
        found = {}
        for vol in pool.listAllVolumes(0):
            # GET_PHYSICAL: the file's own size (a qcow2's capacity is its virtual size).
            size = int(vol.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2])
            small = vol.name() in COMPARED and size <= MAX_COMPARED_BYTES
            found[vol.name()] = FileFacts(size, _download(conn, vol, size) if small else None)
        return found
    finally:
        if ours:
            pool.destroy()


def _pool_over(conn: libvirt.virConnect, folder: Path) -> tuple[libvirt.virStoragePool, bool]:
    for pool in conn.listAllStoragePools(0):
        if pool_target_path(pool.XMLDesc(0)) == folder:
            if not pool.isActive():
                pool.create(0)
            return pool, False
    # No build flag: a folder that is not there is an error, not something to make.
    return conn.storagePoolCreateXML(render_pool_xml(pool_name(folder), folder), 0), True


def _download(conn: libvirt.virConnect, vol: libvirt.virStorageVol, size: int) -> bytes:
    if size == 0:
        return b""
    stream = conn.newStream(0)
    vol.download(stream, 0, size, 0)
    chunks = []
    while True:
        chunk = stream.recv(MAX_COMPARED_BYTES)
        if not isinstance(chunk, bytes) or not chunk:
            break
        chunks.append(chunk)
    stream.finish()
    return b"".join(chunks)
