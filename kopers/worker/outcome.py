"""What a successful run hands to publishing: the checked RPMs, the manifest, the logs.

The RPMs come from the VM (through the result boundary, kopers.worker.results):
a header the host refuses, or packages that do not carry the forced identity,
fail the build. The logs are copies of the task's live log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import shutil
from pathlib import Path

from kopers.errors import BadRequest, BuildFailed
from kopers.logs.hub import LogChannel
from kopers.models import Nevra
from kopers.rpmfile import read_rpm
from kopers.worker.results import MANIFEST, Identity, check_identity, is_spec, read_manifest


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    files: list[Path]
    built: list[Nevra]
    manifest: list[str]


async def read_outcome(
    out: Path, channel: LogChannel, workdir: Path, identity: Identity
) -> Outcome:
    """The results in `out`, checked, with copies of the log so far."""
    rpms = sorted(out.glob("*.rpm"))
    if not any(not p.name.endswith(".src.rpm") for p in rpms):
        raise BuildFailed("the builder reported success but produced no binary RPM")
    try:
        infos = [await read_rpm(p) for p in rpms]
    except BadRequest as exc:
        # The VM made these files: a header the host refuses is the build's fault.
        reason = f"the builder returned an RPM the host refuses: {exc.message}"
        raise BuildFailed(reason) from exc
    check_identity(infos, identity)
    built = [info.nevra for info in infos]
    manifest = await read_manifest(out / MANIFEST)
    logs = await collect_logs(channel, workdir)
    specs = sorted(p for p in out.glob("*.spec") if is_spec(p.name))  # the boundary took one
    return Outcome(files=rpms + specs + logs, built=built, manifest=manifest)


async def collect_logs(channel: LogChannel, workdir: Path) -> list[Path]:
    """build.log and build.log.gz, copied from the live log."""
    workdir.mkdir(parents=True, exist_ok=True)
    plain = workdir / "build.log"
    packed = workdir / "build.log.gz"

    def _copy() -> None:
        shutil.copyfile(channel.path, plain)
        with plain.open("rb") as src, gzip.open(packed, "wb") as dst:
            shutil.copyfileobj(src, dst)

    await asyncio.to_thread(_copy)
    return [plain, packed]
