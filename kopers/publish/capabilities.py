"""What a build's packages provide and what its source package requires.

Read from a chroot's repository index (the primary XML createrepo_c made of
each RPM when it was published), not by guessing from names: the binary
RPMs' `rpm:provides` entries and the file paths primary lists give what a
build provides; the source RPM's `rpm:requires` are its BuildRequires.
Versions are left out: a dependency is a capability name (or path) in both.
The XML was written by createrepo_c from headers it escaped, so it holds no
document type or entities; it is parsed with the standard library.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from kopers.publish import repoindex

_COMMON = "http://linux.duke.edu/metadata/common"
_RPM = "http://linux.duke.edu/metadata/rpm"
_WRAP_HEAD = f'<metadata xmlns="{_COMMON}" xmlns:rpm="{_RPM}">'.encode()
MAX_CAPABILITIES = 10_000  # per build: more are ignored (a build cannot blow up planning)
MAX_NAME = 512  # a longer capability name is ignored


def _plain(name: str) -> bool:
    """A capability the planner may use and a log may show: short, printable, one line.

    The headers were written inside the builder VM, so a name could carry
    control characters meant to forge log lines.
    """
    return 0 < len(name) <= MAX_NAME and name.isprintable()


@dataclass(frozen=True, slots=True)
class Capabilities:
    provides: frozenset[str]
    build_requires: frozenset[str]


def parse_primary(chunk: bytes) -> tuple[bool, set[str], set[str]]:
    """One package's primary element -> (is a source RPM, provides, requires). Pure."""
    root = ET.fromstring(_WRAP_HEAD + chunk + b"</metadata>")
    package = root.find(f"{{{_COMMON}}}package")
    if package is None:
        return False, set(), set()
    is_source = (package.findtext(f"{{{_COMMON}}}arch") or "") == "src"
    fmt = package.find(f"{{{_COMMON}}}format")
    if fmt is None:
        return is_source, set(), set()

    def names(kind: str) -> set[str]:
        return {
            entry.get("name", "")
            for entry in fmt.iterfind(f"{{{_RPM}}}{kind}/{{{_RPM}}}entry")
            if _plain(entry.get("name", ""))
        }

    provides = names("provides") | {
        f.text for f in fmt.iterfind(f"{{{_COMMON}}}file") if f.text and _plain(f.text)
    }
    return is_source, provides, names("requires")


def of_build(chunks: list[bytes]) -> Capabilities:
    """A build's packages -> what the binaries provide, what the source requires. Pure."""
    provides: set[str] = set()
    requires: set[str] = set()
    for chunk in chunks:
        try:
            is_source, provided, required = parse_primary(chunk)
        except ET.ParseError:
            continue  # not ours to judge here; the repodata build reports it
        if is_source:
            requires |= {r for r in required if not r.startswith("rpmlib(")}
        else:
            provides |= provided
    return Capabilities(
        frozenset(sorted(provides)[:MAX_CAPABILITIES]),
        frozenset(sorted(requires)[:MAX_CAPABILITIES]),
    )


def read(chroot_dir: Path, build_dirs: Collection[str]) -> dict[str, Capabilities]:
    """The capabilities of the named build directories of one chroot. Blocking."""
    return {
        name: of_build(chunks)
        for name, chunks in repoindex.primaries(chroot_dir, build_dirs).items()
    }
