"""What a build in one chroot is given, as Copr's build-config objects show it. Pure.

Two calls answer with it: `project-chroot/build-config` (copr-cli mock-config:
what a build in the chroot gets) and `build-chroot/build-config` (what one
build's chroot got). The repositories are the runner's own plan
(`kopers.worker.repos.plan_repos`), with Kopers' repositories at the public
URL instead of the port forward a builder VM sees. Like Copr, Kopers keeps
no copy of each build's job: the repositories are the project's as they are
set now, while the timeout, the background flag and the forced macros are
the build's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kopers.config import ChrootConfig
from kopers.models import Build, Project
from kopers.worker import job as jobs
from kopers.worker.repos import RepoPlan, plan_repos


def repo_entries(
    plans: Sequence[RepoPlan], public_url: str, project: Project | None = None
) -> list[dict[str, Any]]:
    """Copr's `repos` list: Kopers' own repositories (host "") at `public_url`.

    The first plan is the project's own repository: `project`'s priority and
    module_hotfixes apply to it, as they do in its .repo file.
    """
    entries = []
    for index, plan in enumerate(plans):
        own = project is not None and index == 0
        entries.append(
            {
                "id": plan.id,
                "name": plan.name,
                "baseurl": (public_url if not plan.host else f"http://{plan.host}:{plan.port}")
                + plan.path,
                "priority": project.options.repo_priority if own and project else None,
                "module_hotfixes": bool(own and project and project.options.module_hotfixes),
                "repo_gpgcheck": False,
            }
        )
    return entries


def chroot_repos(
    project: Project, chroot: str, extra: Sequence[str], public_url: str
) -> list[dict[str, Any]]:
    """The repositories a build of `project` in `chroot` is offered, with public URLs."""
    plans, _ = plan_repos(project, chroot, ("", 0), extra)
    return repo_entries(plans, public_url, project)


def macros(
    build: Build, chroot: ChrootConfig | None, repo_tag: str, public_url: str
) -> dict[str, str]:
    """The macros every package of `build` was forced to carry (dist: while the chroot is known)."""
    out = {}
    if chroot is not None:
        out["dist"] = jobs.forced_dist(chroot, repo_tag)
    out["vendor"] = jobs.vendor(build.owner, build.project)
    out["packager"] = jobs.packager(build.submitter, public_url)
    return out


def build_chroot_config(
    build: Build,
    project: Project,
    chroot: str,
    extra: Sequence[str],
    chroot_config: ChrootConfig | None,
    repo_tag: str,
    public_url: str,
) -> dict[str, Any]:
    """`build-chroot/build-config`: the build's chroot, its repositories, options and macros."""
    return {
        "chroot": chroot,
        "repos": chroot_repos(project, chroot, extra, public_url),
        "additional_repos": list(extra),
        "additional_packages": [],
        "additional_modules": [],
        "with_opts": [],
        "without_opts": [],
        "enable_net": project.enable_net,
        "is_background": build.is_background,
        "timeout": build.timeout,
        "macros": macros(build, chroot_config, repo_tag, public_url),
    }
