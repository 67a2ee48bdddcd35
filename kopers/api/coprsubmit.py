"""Copr API v3 build submission under /api_3/build: the check, and each source kind."""

from __future__ import annotations

import shutil
from pathlib import Path

from aiohttp import web

from kopers.api import bodies
from kopers.api import copr_json as cj
from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.api.params import (
    json_body,
    require_multipart,
)
from kopers.api.upload import read_upload
from kopers.errors import KopersError, NotSupported

routes = web.RouteTableDef()


@routes.post("/api_3/build/check-before-build")
async def check_before_build(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    body = bodies.build_body(await json_body(request))
    project = await kopers.submissions.check(user, body.owner, body.project, body.request)
    return web.json_response({"message": f"OK to build in {project.full_name}"})


async def _spooled(request: web.Request) -> tuple[Path, bodies.BuildBody]:
    """An upload's file, spooled to disk, and its `json` part; the spool goes if refused."""
    kopers = request.app[KOPERS]
    require_multipart(request)
    upload = await read_upload(request, kopers.paths.incoming, kopers.config)
    try:
        return upload.package, bodies.build_body(upload.options, "the json part")
    except KopersError:  # refused before a build owns the spooled file
        shutil.rmtree(upload.package.parent, ignore_errors=True)
        raise


@routes.post("/api_3/build/create/upload")
async def create_from_upload(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    # Authenticate from the header before reading a possibly large body.
    user = await require_user(request)
    spooled, body = await _spooled(request)
    build = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.from_upload(
            user, body.owner, body.project, body.request, spooled
        ),
    )
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.post("/api_3/build/create/url")
async def create_from_url(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    body = bodies.build_body(data)
    urls = bodies.package_urls(data)
    builds = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.from_urls(user, body.owner, body.project, body.request, urls),
    )
    return web.json_response(
        {"items": [cj.build_json(b, kopers.layout) for b in builds], "meta": {}}
    )


@routes.post("/api_3/build/create/scm")
async def create_from_scm(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    body = bodies.build_body(data)
    scm = bodies.scm_source(data)
    build = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.from_scm(user, body.owner, body.project, body.request, scm),
    )
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.post("/api_3/build/create/rpm-upload")
async def create_from_rpm_upload(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    spooled, body = await _spooled(request)
    build = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.from_rpm_upload(
            user, body.owner, body.project, body.request, spooled
        ),
    )
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.post("/api_3/build/create/custom")
async def create_from_custom(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    body = bodies.build_body(data)
    custom = bodies.custom_source(data)
    build = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.from_custom(
            user, body.owner, body.project, body.request, custom
        ),
    )
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.post("/api_3/build/create/pypi")
async def create_from_pypi(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    body = bodies.build_body(data)
    pypi = bodies.pypi_source(data)
    build = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.from_pypi(user, body.owner, body.project, body.request, pypi),
    )
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.post("/api_3/build/create/rubygems")
async def create_from_rubygems(request: web.Request) -> web.Response:
    await require_user(request)
    raise NotSupported(
        "building from RubyGems is not supported by this Kopers server: it has no RubyGems mirror"
    )


@routes.post("/api_3/build/create/distgit")
async def create_from_distgit(request: web.Request) -> web.Response:
    await require_user(request)
    raise NotSupported(
        "building from dist-git is not supported by this Kopers server: it has no dist-git"
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
