"""Kopers objects -> the JSON shapes Copr's API v3 clients read. Pure.

Field names and required fields follow ../shared/docs/copr-api-v3.md section 3;
copr-cli reads several of them as attributes and crashes when one is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from kopers.models import Build, BuildTask, Nevra, Project
from kopers.publish.layout import Layout


def ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def project_json(p: Project, layout: Layout) -> dict[str, Any]:
    """A project as Copr shows it; never its webhook secret (this answer is public).

    Options Kopers holds only at their default (devel_mode, bootstrap,
    isolation, appstream, storage) show that default.
    """
    o = p.options
    return {
        "id": p.id,
        "name": p.name,
        "ownername": p.owner,
        "full_name": p.full_name,
        "description": p.description,
        "instructions": p.instructions,
        "homepage": p.homepage,
        "contact": p.contact,
        "devel_mode": False,
        "persistent": o.persistent,
        "unlisted_on_hp": o.unlisted_on_hp,
        "auto_prune": o.auto_prune,
        "enable_net": p.enable_net,
        "bootstrap": "default",
        "isolation": "default",
        "module_hotfixes": o.module_hotfixes,
        "appstream": False,
        "packit_forge_projects_allowed": list(o.packit_forge_projects_allowed),
        "follow_fedora_branching": o.follow_fedora_branching,
        "repo_priority": o.repo_priority,
        "runtime_dependencies": list(o.runtime_dependencies),
        "chroot_repos": {c: layout.chroot_repo_url(p.owner, p.name, c) for c in p.chroots},
        "additional_repos": list(p.additional_repos),
        "storage": "backend",
    }


def build_json(b: Build, layout: Layout) -> dict[str, Any]:
    return {
        "id": b.id,
        "state": str(b.state),
        "ownername": b.owner,
        "projectname": b.project,
        "project_dirname": b.project,
        "repo_url": layout.repo_url(b.owner, b.project),
        "source_package": {
            "name": b.package_name,
            "version": b.package_version,
            "url": b.source.get("url"),
        },
        "submitted_on": ts(b.submitted_on),
        "started_on": ts(b.started_on),
        "ended_on": ts(b.ended_on),
        "submitter": b.submitter,
        "chroots": list(b.chroots),
        "is_background": b.is_background,
    }


def build_chroot_json(b: Build, t: BuildTask, layout: Layout) -> dict[str, Any]:
    has_results = t.result_dir is not None and b.package_name is not None
    return {
        "name": t.chroot,
        "state": str(t.state),
        "started_on": ts(t.started_on),
        "ended_on": ts(t.ended_on),
        "result_url": layout.result_url(b.owner, b.project, t.chroot, b.id, str(b.package_name))
        if has_results
        else None,
        "reason": t.reason,
        "attempts": t.attempts,
    }


def built_packages_json(packages: Mapping[str, Sequence[Nevra]]) -> dict[str, Any]:
    return {
        chroot: {
            "packages": [
                {
                    "name": n.name,
                    "epoch": n.epoch,
                    "version": n.version,
                    "release": n.release,
                    "arch": n.arch,
                }
                for n in nevras
            ]
        }
        for chroot, nevras in packages.items()
    }


def page(
    items: list[dict[str, Any]],
    limit: int | None,
    offset: int,
    order: str = "id",
    order_type: str = "DESC",
) -> dict[str, Any]:
    """A paginated list: copr-cli pages on meta.offset + meta.limit until items is empty."""
    return {
        "items": items,
        "meta": {"limit": limit, "offset": offset, "order": order, "order_type": order_type},
    }
