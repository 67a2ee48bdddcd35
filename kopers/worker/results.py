"""The result boundary: the one way files come out of a builder VM.

The spec runs as root in the VM, so the VM's result directory holds whatever
the build chose to put there: links to host-looking paths, directories named
like RPMs, devices, thousands of files, sparse files of any apparent size.
Nothing in it is trusted. This module:

- lists the directory once (lstat, never following links) and accepts only
  regular files whose names are RPM-shaped, `manifest.txt`, or one spec
  (`<name>.spec`, at most MAX_SPEC_BYTES), at most `max_files` of them and
  `max_bytes` in all, as the listing states them;
- copies each file on its own into a new local directory, creating every
  file exclusively and without following links, and stops reading a file at
  the byte budget that is left (a file may grow after it was listed);
- does all of it within a deadline;
- reads the manifest with a byte cap, in a thread;
- checks that every RPM carries the identity Kopers forced (`check_identity`).

Anything else ends the task failed, with a reason that names the entry.
The VM side speaks `list_dir` and `fetch` (kopers.vm.builder.BuilderVm).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kopers.errors import BuildFailed
from kopers.rpmfile import RpmInfo, shown
from kopers.vm.ssh import RemoteEntry

MANIFEST = "manifest.txt"
# An RPM's file name: the characters rpmfile accepts in its fields, ".rpm" at the end.
_RPM_NAME = re.compile(r"[A-Za-z0-9_+~^][A-Za-z0-9._+~^-]{0,250}\.rpm\Z")
# The package's spec, kept with the results (copr-cli download-build --spec).
_SPEC_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]{0,200}\.spec\Z")
MAX_SPEC_BYTES = 1 << 20
MAX_MANIFEST_BYTES = 4 << 20
MAX_MANIFEST_ENTRY = 512


@dataclass(frozen=True, slots=True)
class ResultLimits:
    max_files: int
    max_bytes: int
    deadline_s: float


@dataclass(frozen=True, slots=True)
class Identity:
    """What every RPM of a build must say about itself."""

    dist: str  # the forced %dist, which every Release ends with
    vendor: str
    package: str  # the source package's name


class ResultSource(Protocol):
    """What the boundary needs of a VM."""

    async def list_dir(self, remote: str) -> list[RemoteEntry]: ...

    async def fetch(self, remote: str, local: Path, max_bytes: int) -> int: ...


def check_listing(entries: list[RemoteEntry], limits: ResultLimits) -> list[RemoteEntry]:
    """The entries to copy, in name order; BuildFailed for anything else. Pure."""
    if len(entries) > limits.max_files:
        raise BuildFailed(
            f"the build left {len(entries)} entries in its result directory; "
            f"at most {limits.max_files} are taken"
        )
    for entry in entries:
        name = shown(entry.name, 80)
        if entry.kind != "file":
            raise BuildFailed(f"the build's result {name} is a {entry.kind}, not a regular file")
        if _SPEC_NAME.match(entry.name):
            if entry.size > MAX_SPEC_BYTES:
                raise BuildFailed(f"the build's spec {name} is larger than {MAX_SPEC_BYTES} bytes")
            continue
        if entry.name != MANIFEST and not _RPM_NAME.match(entry.name):
            raise BuildFailed(
                f"the build's result {name} is neither an RPM nor {MANIFEST} nor a spec"
            )
    specs = [e.name for e in entries if _SPEC_NAME.match(e.name)]
    if len(specs) > 1:
        raise BuildFailed(f"the build left {len(specs)} spec files in its results; one is taken")
    total = sum(max(e.size, 0) for e in entries)
    if total > limits.max_bytes:
        raise BuildFailed(
            f"the build's results are {total} bytes; at most {limits.max_bytes} are taken"
        )
    return sorted(entries, key=lambda e: e.name)


async def take_results(
    vm: ResultSource, remote_dir: str, local_dir: Path, limits: ResultLimits
) -> list[Path]:
    """Copy the VM's result directory into `local_dir` (which must not exist yet)."""
    local_dir.mkdir(mode=0o700)
    copied = []
    try:
        async with asyncio.timeout(limits.deadline_s):
            entries = check_listing(await vm.list_dir(remote_dir), limits)
            budget = limits.max_bytes
            for entry in entries:
                local = local_dir / entry.name
                cap = min(budget, MAX_SPEC_BYTES) if is_spec(entry.name) else budget
                got = await vm.fetch(f"{remote_dir.rstrip('/')}/{entry.name}", local, cap)
                if got > cap:
                    raise BuildFailed(
                        f"the build's result {shown(entry.name, 80)} grew past the "
                        f"{cap} bytes it may take"
                    )
                budget -= got
                copied.append(local)
    except TimeoutError:
        raise BuildFailed(
            f"the build's results took longer than {limits.deadline_s:.0f} s to copy"
        ) from None
    return copied


def is_spec(name: str) -> bool:
    """Whether a result file's name is the package's spec's. Pure."""
    return bool(_SPEC_NAME.match(name))


def check_identity(infos: list[RpmInfo], identity: Identity) -> None:
    """BuildFailed unless every RPM carries the forced dist and Vendor. Pure."""
    for info in infos:
        nevra = info.nevra
        if not nevra.release.endswith(identity.dist):
            raise BuildFailed(
                f"{nevra.filename}: its Release {nevra.release!r} does not end in {identity.dist}"
            )
        if info.vendor != identity.vendor:
            raise BuildFailed(
                f"{nevra.filename}: its Vendor is {info.vendor!r}, not {identity.vendor!r}"
            )
        if info.is_source and nevra.name != identity.package:
            raise BuildFailed(
                f"{nevra.filename}: the build returned a source package other than "
                f"{identity.package}"
            )


async def read_manifest(path: Path) -> list[str]:
    """The buildroot manifest's entries (package NEVRAs), read with a byte cap."""
    if not path.is_file() or path.is_symlink():
        return []
    data = await asyncio.to_thread(_read_capped, path, MAX_MANIFEST_BYTES)
    if len(data) > MAX_MANIFEST_BYTES:
        raise BuildFailed(f"the build's {MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
    entries = data.decode(errors="replace").split()
    if any(len(e) > MAX_MANIFEST_ENTRY or not e.isprintable() for e in entries):
        raise BuildFailed(f"the build's {MANIFEST} holds an entry that is no package name")
    return entries


def _read_capped(path: Path, cap: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(cap + 1)
