"""The .repo file that `dnf copr enable` downloads.

It asks for /coprs/<owner>/<project>/repo/<os-version>/dnf.repo?arch=<arch>
(groups also as /coprs/g/<group>/...). An unknown chroot answers 404 with a
Copr-Error-Data header listing the available ones, which the plugin prints.

The project's module_hotfixes and repo_priority go into its section, and its
runtime dependencies follow, transitively as in Copr: a `copr://` dependency's
own dependencies come along, each project once.
"""

from __future__ import annotations

import base64
import json
import urllib.parse

from aiohttp import web

from kopers.api import fields
from kopers.api.keys import KOPERS
from kopers.api.params import path_name, query_name, request_host
from kopers.db.store import Store
from kopers.errors import NotFound
from kopers.models import Project
from kopers.publish.layout import Layout
from kopers.publish.repofile import (
    CoprDep,
    RepoOptions,
    copr_repo,
    expand_chroot,
    render_repo_file,
)

routes = web.RouteTableDef()
# How many projects a chain of copr:// dependencies may reach: a bound on the lookups.
MAX_COPR_DEPENDENCIES = 50


def pick_chroot(chroots: tuple[str, ...], os_version: str, arch: str | None) -> str | None:
    """Upstream's rule: the first chroot whose name starts with `<os-version>-<arch>`. Pure."""
    prefix = f"{os_version}-{arch}" if arch else f"{os_version}-"
    return next((c for c in sorted(chroots) if c.startswith(prefix)), None)


def repo_options(project: Project) -> RepoOptions:
    return RepoOptions(project.options.module_hotfixes, project.options.repo_priority)


async def runtime_dependencies(
    store: Store, layout: Layout, project: Project, chroot: str
) -> tuple[list[CoprDep], list[str]]:
    """The project's runtime dependencies for `chroot`, with those of its copr:// ones.

    Returns the Kopers projects (a missing one without a baseurl) and the
    external URLs, `$chroot` filled in, each once, in the order met.
    """
    coprs: list[CoprDep] = []
    external: list[str] = []
    seen = {(project.owner, project.name)}
    queue = [project]
    while queue:
        current = queue.pop(0)
        for url in current.options.runtime_dependencies:
            named = copr_repo(url)
            if named is None:
                expanded = expand_chroot(url, chroot)
                if expanded not in external:
                    external.append(expanded)
                continue
            if named in seen or len(seen) > MAX_COPR_DEPENDENCIES:
                continue
            seen.add(named)
            try:
                dep = await store.get_project(*named)
            except NotFound:
                coprs.append(CoprDep(url, *named))
                continue
            coprs.append(
                CoprDep(
                    url,
                    dep.owner,
                    dep.name,
                    layout.chroot_repo_url(dep.owner, dep.name, chroot),
                    layout.pubkey_url(dep.owner, dep.name),
                    repo_options(dep),
                )
            )
            queue.append(dep)
    return coprs, external


async def _repo_file(request: web.Request, owner: str) -> web.Response:
    kopers = request.app[KOPERS]
    project_name = path_name(request, "project")
    os_version, arch = path_name(request, "osver"), query_name(request, "arch")
    try:
        project = await kopers.store.get_project(owner, project_name)
    except NotFound:
        return web.Response(status=404, text=f"Project {owner}/{project_name} does not exist.\n")
    chroot = pick_chroot(project.chroots, os_version, arch)
    if chroot is None:
        data = base64.b64encode(json.dumps({"available chroots": list(project.chroots)}).encode())
        return web.Response(
            status=404,
            text="Chroot not found in this project\n",
            headers={"Copr-Error-Data": data.decode()},
        )
    layout = kopers.layout
    coprs, external = await runtime_dependencies(kopers.store, layout, project, chroot)
    # The plugin derives the repo id it looks up from the hub it was given,
    # so the section name must use the host the client asked, not our config.
    text = render_repo_file(
        f"http://{request_host(request)}",
        project.owner,
        project.name,
        layout.chroot_repo_url(project.owner, project.name, chroot),
        layout.pubkey_url(project.owner, project.name),
        repo_options(project),
        coprs,
        external,
    )
    return web.Response(text=text, content_type="text/plain")


@routes.get("/coprs/g/{group}/{project}/repo/{osver}/dnf.repo")
async def group_repo_file(request: web.Request) -> web.Response:
    return await _repo_file(request, "@" + path_name(request, "group"))


@routes.get("/coprs/{owner}/{project}/repo/{osver}/dnf.repo")
async def repo_file(request: web.Request) -> web.Response:
    owner = fields.name(urllib.parse.unquote(request.match_info["owner"]), "owner")
    return await _repo_file(request, owner)


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
