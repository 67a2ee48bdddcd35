"""A build's source step over HTTP: Copr's source-chroot and source-build-config, and its log.

The source step gets the build's SRPM: an upload has it at once, a URL is
imported on the host, a git source is made into an SRPM in a builder VM
(kopers.worker.source). Only the last has a log of its own, the live log of
the `srpm-build` task, served as plain text at `/api/builds/<id>/source-log`
(and live at `/ws/builds/<id>/srpm-build/log`). Kopers keeps the SRPM with
the build and publishes no `srpm-builds` directory, so `result_url` is null;
`srpm` names the file each chroot was built from.
"""

from __future__ import annotations

from aiohttp import web

from kopers.api.keys import KOPERS
from kopers.api.params import path_id
from kopers.errors import NotFound
from kopers.models import Build
from kopers.sched.graph import SOURCE

routes = web.RouteTableDef()


def source_chroot_json(build: Build, log_url: str | None) -> dict[str, object]:
    """Copr's source chroot: the step's state, plus what Kopers has of its results. Pure."""
    return {
        "state": str(build.source_state),
        "result_url": None,
        "srpm": build.srpm_name,
        "log_url": log_url,
    }


def source_build_config_json(build: Build) -> dict[str, object]:
    """Copr's source build config: where the source comes from, and the build's options. Pure."""
    return {
        "source_type": str(build.source_type),
        "source_dict": dict(build.source),
        "timeout": build.timeout,
        "is_background": build.is_background,
    }


@routes.get(r"/api_3/build/source-chroot/{build_id:\d+}")
async def source_chroot(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    build = await kopers.store.get_build(path_id(request, "build_id"))
    log_url = None
    if kopers.hub.path(build.id, SOURCE).is_file():
        log_url = f"{kopers.config.server.public_url}/api/builds/{build.id}/source-log"
    return web.json_response(source_chroot_json(build, log_url))


@routes.get(r"/api_3/build/source-build-config/{build_id:\d+}")
async def source_build_config(request: web.Request) -> web.Response:
    build = await request.app[KOPERS].store.get_build(path_id(request, "build_id"))
    return web.json_response(source_build_config_json(build))


@routes.get(r"/api/builds/{build_id:\d+}/source-log")
async def source_log(request: web.Request) -> web.StreamResponse:
    """The source step's log as plain text; it grows while the step runs (ranges work)."""
    kopers = request.app[KOPERS]
    build = await kopers.store.get_build(path_id(request, "build_id"))
    path = kopers.hub.path(build.id, SOURCE)
    if not path.is_file():
        raise NotFound(f"build {build.id} has no source log: its source needed no build step")
    return web.FileResponse(
        path, headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache"}
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
