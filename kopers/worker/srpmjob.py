"""The job a builder VM gets to make a build's SRPM, one per source kind. Pure.

The builder script (vm_templates/*/builder.py) reads it. Every kind leaves
one SRPM in the job's result directory:

- `srpm` (git, and an uploaded spec): `rpmbuild -bs` on a spec in the
  uploaded directory, or `make -f .copr/Makefile srpm` for the make_srpm
  method; with `fetch`, the spec's remote Source/Patch URLs are downloaded
  first (in the VM, through the proxy);
- `custom`: the uploaded script runs as root; the spec and sources it leaves
  in its result directory become the SRPM;
- `pypi`: pyp2spec generates the spec from the package index at `index_url`
  (the server's `[sources] pypi_url`), and the release's sdist is fetched.
"""

from __future__ import annotations

from typing import Any

from kopers.models import Build, SourceType
from kopers.worker import job as jobs

SCRIPT_NAME = "script"


def srpm_job(
    build: Build, chroot: str, spec: str | None, proxy: str | None, index_url: str = ""
) -> dict[str, Any]:
    """The job for `build`'s source; `spec` is the spec's path under SRC_DIR (git, spec)."""
    src = build.source
    job: dict[str, Any] = {
        "build_id": build.id,
        "chroot": chroot,
        "sources": jobs.SRC_DIR,
        "result_dir": jobs.OUT_DIR,
        "proxy": proxy,
    }
    if build.source_type == SourceType.CUSTOM:
        job.update(
            mode="custom",
            script=f"{jobs.SRC_DIR}/{SCRIPT_NAME}",
            builddeps=_strings(src.get("builddeps")),
            resultdir=str(src.get("resultdir") or ""),
            repos=_strings(src.get("repos")),
        )
        return job
    if build.source_type == SourceType.PYPI:
        job.update(
            mode="pypi",
            package=str(src.get("pypi_package_name") or ""),
            version=str(src.get("pypi_package_version") or ""),
            index_url=index_url,
        )
        return job
    method = str(src.get("source_build_method") or "rpkg")
    job.update(
        mode="srpm",
        spec=f"{jobs.SRC_DIR}/{spec}",
        method="make_srpm" if method == "make_srpm" else "rpmbuild",
        # An uploaded spec comes alone: its sources are at its URLs.
        fetch=build.source_type == SourceType.SPEC,
    )
    return job


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
