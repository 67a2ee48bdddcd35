"""Read an RPM file's identity (NEVRA, source or binary) without installing it.

Uploads are checked with this before any row is written, and built packages
are recorded with it. It runs `rpm -qp` as a subprocess: rpm is the reference
parser, and a malformed file makes it fail rather than mislead.

rpm reports whatever a header says, and header fields become file names and
URLs (`<name>-<version>-<release>.<arch>.rpm`, `<build>-<name>/`), so this is
also the one validator of those fields: every RPM Kopers reads, uploaded,
fetched, made from git or built, passes `parse_query_line`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from kopers.errors import BadRequest
from kopers.models import Nevra

_LEAD_MAGIC = b"\xed\xab\xee\xdb"
# The characters rpmbuild accepts in a name, version and release, less the
# macro characters (%, {, }) that no built package keeps; an arch is a word.
# No leading "." or "-": a field must never read as a path part or an option.
_FIELD = re.compile(r"[A-Za-z0-9_+~^][A-Za-z0-9._+~^-]*\Z")
_ARCH = re.compile(r"[A-Za-z0-9_]+\Z")
MAX_FIELD = 128
MAX_FILENAME = 255  # NAME_MAX of common file systems
_QF = "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\t%{VENDOR}\\n"


@dataclass(frozen=True, slots=True)
class RpmInfo:
    nevra: Nevra
    is_source: bool
    vendor: str


def looks_like_rpm(head: bytes) -> bool:
    """True when the first bytes are an RPM lead (cheap check before running rpm)."""
    return head[:4] == _LEAD_MAGIC


def parse_query_line(line: str) -> RpmInfo:
    """Parse one line of `_QF` output (pure; split out for unit tests)."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) != 7:
        raise BadRequest(f"unexpected rpm query output: {shown(line)}")
    name, epoch, version, release, arch, sourcerpm, vendor = fields
    is_source = sourcerpm == "(none)"
    for label, value in (("name", name), ("version", version), ("release", release)):
        _check(label, value, _FIELD)
    _check("arch", arch, _ARCH)
    if not epoch.isascii() or not epoch.isdigit() or len(epoch) > 10:
        raise BadRequest(f"the RPM header's epoch {shown(epoch)} is not a number")
    nevra = Nevra(name, int(epoch), version, release, "src" if is_source else arch)
    if len(nevra.filename) > MAX_FILENAME:
        raise BadRequest("the RPM header's name, version and release are too long together")
    return RpmInfo(nevra=nevra, is_source=is_source, vendor="" if vendor == "(none)" else vendor)


def _check(label: str, value: str, pattern: re.Pattern[str]) -> None:
    if len(value) > MAX_FIELD or not pattern.match(value):
        raise BadRequest(
            f"the RPM header's {label} {shown(value)} is not allowed: at most {MAX_FIELD} "
            "letters, digits and ._+~^- (not first: . or -)"
        )


def shown(value: str, limit: int = 64) -> str:
    """Untrusted text (a header field, a name a VM chose) fit for a one-line message."""
    text = value.encode("unicode_escape").decode("ascii")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


async def read_rpm(path: Path) -> RpmInfo:
    """Identify an RPM file; BadRequest when it is not one."""
    with path.open("rb") as fh:
        if not looks_like_rpm(fh.read(4)):
            raise BadRequest(f"{path.name} is not an RPM file")
    proc = await asyncio.create_subprocess_exec(
        "rpm",
        "-qp",
        "--nosignature",
        "--nodigest",
        "--qf",
        _QF,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0 or not out:
        detail = err.decode(errors="replace").strip().splitlines()
        # rpm names the file by its full path, which is the server's business.
        reason = detail[-1].replace(str(path), path.name) if detail else "rpm failed"
        raise BadRequest(f"{path.name} is not a readable RPM: {shown(reason, 200)}")
    return parse_query_line(out.decode(errors="replace").splitlines()[0])


async def read_srpm(path: Path) -> RpmInfo:
    """Like read_rpm, but insist on a source package."""
    info = await read_rpm(path)
    if not info.is_source:
        raise BadRequest(f"{path.name} is a binary RPM, not a source RPM (.src.rpm)")
    return info


async def read_binary_rpm(path: Path) -> RpmInfo:
    """Like read_rpm, but insist on a built (binary) package."""
    info = await read_rpm(path)
    if info.is_source:
        raise BadRequest(f"{path.name} is a source RPM; uploadrpm publishes built (binary) RPMs")
    return info
