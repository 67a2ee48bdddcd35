"""A project's chroots under /api_3/project-chroot: get-chroot, edit-chroot, mock-config.

`copr-cli edit-chroot` always sends multipart: an optional `upload_comps` file,
then a `json` part whose list-valued fields arrive as space-separated strings
(python-copr callers may send lists). Only `additional_repos` is kept per
chroot today; other non-empty fields are refused with a clear message rather
than silently dropped.
"""

from __future__ import annotations

from typing import Any

from aiohttp import BodyPartReader, web

from kopers import access
from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.api.params import json_body, need, parse_json
from kopers.errors import BadRequest
from kopers.models import Project
from kopers.worker.repos import plan_repos

routes = web.RouteTableDef()

_UNSUPPORTED = ("additional_packages", "additional_modules", "with_opts", "without_opts")


def as_list(value: Any, key: str) -> list[str]:
    """A list from copr-cli's space-separated string, or from a list. Pure."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise BadRequest(f"{key} must be a list or a space-separated string")


async def _project_chroot(request: web.Request) -> tuple[Project, str]:
    project = await request.app[KOPERS].store.get_project(
        need(request, "ownername"), need(request, "projectname")
    )
    chroot = need(request, "chrootname")
    if chroot not in project.chroots:
        raise BadRequest(f"Chroot {chroot} is not enabled in project {project.full_name}")
    return project, chroot


async def _chroot_json(request: web.Request, project: Project, chroot: str) -> dict[str, Any]:
    repos = await request.app[KOPERS].store.chroot_repos(project.id, chroot)
    return {
        "mock_chroot": chroot,
        "ownername": project.owner,
        "projectname": project.name,
        "comps_name": None,
        "additional_repos": repos,
        "additional_packages": [],
        "additional_modules": [],
        "with_opts": [],
        "without_opts": [],
        "delete_after_days": None,
        "isolation": "default",
    }


@routes.get("/api_3/project-chroot")
async def get_chroot(request: web.Request) -> web.Response:
    project, chroot = await _project_chroot(request)
    return web.json_response(await _chroot_json(request, project, chroot))


@routes.put("/api_3/project-chroot/edit/{ownername}/{projectname}/{chrootname}")
async def edit_chroot(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    project, chroot = await _project_chroot(request)
    await access.authorize(
        kopers.store, user, access.Action.EDIT_PROJECT, access.Target.of(project)
    )
    data: dict[str, Any] = {}
    if request.content_type.startswith("multipart/"):
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "upload_comps":
                raise BadRequest("comps files are not supported by this server")
            if part.name == "json":
                loaded = parse_json(await part.read())
                if isinstance(loaded, dict):
                    data = loaded
    elif request.can_read_body:
        data = await json_body(request)
    for key in _UNSUPPORTED:
        if as_list(data.get(key), key):
            raise BadRequest(f"{key} is not supported by this server yet")
    reset = data.get("reset_fields") or []
    if "additional_repos" in reset:
        repos: list[str] | None = []
    elif data.get("additional_repos") is not None:
        repos = as_list(data["additional_repos"], "additional_repos")
    else:
        repos = None
    if repos is not None:
        await kopers.store.set_chroot_repos(project.id, chroot, repos)
        await kopers.audit(
            user,
            request.remote,
            "project.edit-chroot",
            project.full_name,
            {"chroot": chroot, "additional_repos": repos},
        )
    return web.json_response(await _chroot_json(request, project, chroot))


@routes.get("/api_3/project-chroot/build-config")
async def build_config(request: web.Request) -> web.Response:
    """What `copr-cli mock-config` turns into a mock config for local builds."""
    kopers = request.app[KOPERS]
    project, chroot = await _project_chroot(request)
    extra = await kopers.store.chroot_repos(project.id, chroot)
    # Kopers' own repositories get host "" here, and so the public URL below.
    plans, _ = plan_repos(project, chroot, ("", 0), extra)
    repos = []
    for plan in plans:
        base = (
            kopers.config.server.public_url if not plan.host else f"http://{plan.host}:{plan.port}"
        )
        repos.append(
            {
                "id": plan.id,
                "name": plan.name,
                "baseurl": base + plan.path,
                "priority": None,
                "module_hotfixes": False,
                "repo_gpgcheck": False,
            }
        )
    return web.json_response(
        {
            "chroot": chroot,
            "repos": repos,
            "additional_repos": extra,
            "additional_packages": [],
            "additional_modules": [],
            "with_opts": [],
            "without_opts": [],
            "enable_net": project.enable_net,
            "isolation": "default",
        }
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
