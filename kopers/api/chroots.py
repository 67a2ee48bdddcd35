"""A project's chroots under /api_3/project-chroot: get-chroot, edit-chroot, mock-config.

`copr-cli edit-chroot` always sends multipart: an optional `upload_comps` file,
then a `json` part whose list-valued fields arrive as space-separated strings
(python-copr callers may send lists). Only `additional_repos` is kept per
chroot today; other non-empty fields, and mock's bootstrap and isolation
other than their defaults, are refused with a clear message rather than
silently dropped. `reset_fields` may name get-chroot's fields only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from kopers import access
from kopers.api.auth import require_user
from kopers.api.bodies import chroot_edit
from kopers.api.bodycaps import BodyCaps
from kopers.api.buildconfig import chroot_repos
from kopers.api.keys import KOPERS
from kopers.api.params import json_body, need_name, parse_json
from kopers.api.upload import capped_multipart
from kopers.errors import BadRequest
from kopers.models import Project

routes = web.RouteTableDef()


async def _project_chroot(request: web.Request) -> tuple[Project, str]:
    project = await request.app[KOPERS].store.get_project(
        need_name(request, "ownername"), need_name(request, "projectname")
    )
    chroot = need_name(request, "chrootname")
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
    data: Any = {}
    if request.content_type == "multipart/form-data":
        data = await _json_part(request)
    elif request.can_read_body:
        data = await json_body(request)
    repos = chroot_edit(data).additional_repos
    if repos is not None:
        async with kopers.atomic():
            await kopers.store.set_chroot_repos(project.id, chroot, repos)
            await kopers.audit(
                user,
                request.remote,
                "project.edit-chroot",
                project.full_name,
                {"chroot": chroot, "additional_repos": repos},
            )
    return web.json_response(await _chroot_json(request, project, chroot))


async def _json_part(request: web.Request) -> Any:
    """edit-chroot's multipart body: its `json` part ({} without one)."""
    data: Any = {}
    caps = BodyCaps.of(request.app[KOPERS].config)
    # Every byte counts, skipped parts too: nothing in this body may be large.
    try:
        reader = capped_multipart(request, caps.json, caps.too_large_body)
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "upload_comps":
                raise BadRequest("comps files are not supported by this server")
            if part.name == "json":
                data = parse_json(await part.read())
    except (ValueError, HttpProcessingError) as exc:  # the multipart framing is broken
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise BadRequest(f"the request body is not a valid multipart body: {reason}") from None
    return data


@routes.get("/api_3/project-chroot/build-config")
async def build_config(request: web.Request) -> web.Response:
    """What `copr-cli mock-config` turns into a mock config for local builds."""
    kopers = request.app[KOPERS]
    project, chroot = await _project_chroot(request)
    extra = await kopers.store.chroot_repos(project.id, chroot)
    repos = chroot_repos(project, chroot, extra, kopers.config.server.public_url)
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
