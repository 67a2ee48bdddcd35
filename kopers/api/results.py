"""The results tree at /results/: files, and HTML directory listings.

A running build's `builder-live.log` is served from the log hub under its
result URL before that directory exists (see `kopers.api.livelog`).

`copr-cli download-build` mirrors a result directory with `wget -r`, which
follows the relative links of an HTML listing; dnf reads the repodata files.
A production deployment may put a web server in front of the same directory.
"""

from __future__ import annotations

import html
import urllib.parse
from pathlib import Path

from aiohttp import web

from kopers.api import fields, livelog
from kopers.api.keys import KOPERS
from kopers.errors import BadRequest

routes = web.RouteTableDef()
# Far below PATH_MAX with the results directory in front: the deepest real
# file is <owner>/<project>/<chroot>/<build dir>/<file>, each a short name.
MAX_TAIL_BYTES = 2048


def listing(url_path: str, entries: list[tuple[str, bool, int]]) -> str:
    """An HTML index of (name, is_dir, size) entries with relative links. Pure."""
    title = html.escape(url_path)
    rows = (
        ['<tr><td><a href="../">../</a></td><td></td></tr>']
        if url_path.rstrip("/") != "/results"
        else []
    )
    for name, is_dir, size in sorted(entries, key=lambda e: (not e[1], e[0])):
        shown = name + ("/" if is_dir else "")
        href = urllib.parse.quote(name) + ("/" if is_dir else "")
        rows.append(
            f'<tr><td><a href="{href}">{html.escape(shown)}</a></td>'
            f"<td>{'' if is_dir else size}</td></tr>"
        )
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Index of {title}</title>"
        f"<link rel='stylesheet' href='/static/kopers.css'></head>\n"
        f"<body><h1>Index of {title}</h1>\n<table>\n"
        + "\n".join(rows)
        + "\n</table></body></html>\n"
    )


def checked_tail(tail: str) -> str:
    """A /results/ path whose every name could be a file name. Pure.

    A NUL, a control character or a name over 255 bytes names no file, and
    the OS would raise on it rather than answer "no such file".
    """
    if len(tail) > MAX_TAIL_BYTES or len(tail.encode("utf-8", "replace")) > MAX_TAIL_BYTES:
        raise BadRequest(f"path is longer than {MAX_TAIL_BYTES} bytes")
    for part in tail.split("/"):
        if part:
            fields.name(part, "path component")
    return tail


def resolve(root: Path, tail: str) -> Path:
    """The file below `root` that `tail` names; 404 for anything else.

    Only what the publisher put there as plain names is served: a hidden
    name (its index, a publish in progress, "..") or a symbolic link on the
    way is no part of the published tree, wherever the link points.
    """
    # Empty parts are skipped, so "/results//abs/path" cannot make the tail
    # absolute and name a file outside `root`.
    target = root
    for part in filter(None, tail.split("/")):
        target = target / part
        if part.startswith(".") or target.is_symlink():
            raise web.HTTPNotFound()
    return target


@routes.get("/results")
async def results_root_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/results/")


@routes.get("/results/{tail:.*}")
async def results(request: web.Request) -> web.StreamResponse:
    root = request.app[KOPERS].paths.results.resolve()
    tail = checked_tail(request.match_info["tail"])
    live = await livelog.live_log_file(request, tail)
    if live is not None:
        return livelog.live_response(live)  # grows while the build runs
    target = resolve(root, tail)
    if target.is_dir():
        if tail and not tail.endswith("/"):
            raise web.HTTPMovedPermanently(f"/results/{tail}/")
        entries = []
        for child in target.iterdir():
            if child.name.startswith(".") or child.is_symlink():
                continue  # the publisher's own files, publishes in progress; see resolve
            st = child.stat()
            entries.append((child.name, child.is_dir(), st.st_size))
        return web.Response(text=listing(request.path, entries), content_type="text/html")
    if target.is_file():
        return web.FileResponse(target)
    if tail.endswith("/"):
        # A running build's result directory: not published yet, but its live log is.
        live_entries = await livelog.live_dir_entries(request, tail)
        if live_entries is not None:
            return web.Response(text=listing(request.path, live_entries), content_type="text/html")
    raise web.HTTPNotFound()


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
