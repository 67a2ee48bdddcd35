"""The job description a builder VM receives, rendered from a build. Pure.

The builder script in the template reads it (vm_templates/*/builder.py). Its
fields are a contract between Kopers and every template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kopers.config import ChrootConfig
from kopers.models import Build

IN_DIR = "/build/in"
OUT_DIR = "/build/out"
SRC_DIR = "/build/src"  # a git checkout, for source builds
JOB_PATH = "/build/job.json"


@dataclass(frozen=True, slots=True)
class RepoRef:
    id: str
    name: str
    baseurl: str
    gpgcheck: bool = False
    gpgkey: str | None = None


def repo_json(repo: RepoRef) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": repo.id,
        "name": repo.name,
        "baseurl": repo.baseurl,
        "gpgcheck": repo.gpgcheck,
    }
    if repo.gpgkey:
        out["gpgkey"] = repo.gpgkey
    return out


def forced_dist(chroot: ChrootConfig, repo_tag: str, generation: int = 0) -> str:
    """The %dist every package of this chroot gets, e.g. `.fc40.kopers`.

    An automatic rebuild of generation N gets `.N` after it (`.fc40.kopers.1`):
    the same source then makes packages newer than the ones it replaces.
    """
    return f"{chroot.dist}.{repo_tag}" + (f".{generation}" if generation else "")


def vendor(owner: str, project: str) -> str:
    return f"Kopers {owner}/{project}"


def packager(submitter: str, public_url: str) -> str:
    return f"{submitter} via Kopers <{public_url}>"


def render_job(
    build: Build,
    chroot: ChrootConfig,
    *,
    repo_tag: str,
    public_url: str,
    srpm_name: str,
    repos: tuple[RepoRef, ...] = (),
    enable_net: bool = False,
    proxy: str | None = None,
    generation: int = 0,
) -> dict[str, Any]:
    return {
        "build_id": build.id,
        "chroot": chroot.name,
        "srpm": f"{IN_DIR}/{srpm_name}",
        "result_dir": OUT_DIR,
        "macros": {
            "dist": forced_dist(chroot, repo_tag, generation),
            "vendor": vendor(build.owner, build.project),
            "packager": packager(build.submitter, public_url),
        },
        "repos": [repo_json(r) for r in repos],
        "enable_net": enable_net,
        # The egress proxy as the VM sees it; the VM has no other way out.
        "proxy": proxy if enable_net else None,
    }
