"""The plain-text live log at Copr's URL: `<result_url>builder-live.log`.

A build's result directory only appears when its results are published, but
`builder-live.log` must grow under that URL while the build runs (what
`curl` users and Copr habits expect). So for that one name, a result URL is
mapped to the task's live log file in the hub, which also keeps serving it
after the build has ended. Range requests work (`curl -r N-`), so a client
can fetch only what is new. The file is served as it is: a line in it starts
with "kopers: " if and only if Kopers wrote it (kopers.logs.logfile).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from kopers.api.fields import MAX_INT
from kopers.api.keys import KOPERS
from kopers.errors import NotFound
from kopers.logs.hub import LIVE_LOG
from kopers.publish.layout import parse_build_dir_name


@dataclass(frozen=True, slots=True)
class TaskDir:
    """A result-directory URL taken apart: <owner>/<dirname>/<chroot>/<build dir>."""

    owner: str
    project: str
    chroot: str
    build_id: int
    package: str


def parse_task_dir(parts: list[str]) -> TaskDir | None:
    """["owner", "project", "chroot", "00000007-pkg"] -> TaskDir; None otherwise. Pure."""
    if len(parts) != 4:
        return None
    owner, dirname, chroot, build_dir = parts
    parsed = parse_build_dir_name(build_dir)
    if parsed is None or parsed[0] > MAX_INT:  # no build has an id past bigint
        return None
    # Copr's <dirname> is <project> or <project>:<suffix>.
    return TaskDir(owner, dirname.split(":", 1)[0], chroot, parsed[0], parsed[1])


async def live_log_file(request: web.Request, tail: str) -> Path | None:
    """The live log a `/results/...` tail names, if it is `.../builder-live.log` of a task."""
    parts = tail.split("/")
    if parts[-1] != LIVE_LOG:
        return None
    return await _task_log(request, parts[:-1])


async def live_dir_entries(request: web.Request, tail: str) -> list[tuple[str, bool, int]] | None:
    """A listing for a result directory not published yet, whose task has a live log."""
    path = await _task_log(request, tail.rstrip("/").split("/"))
    if path is None:
        return None
    return [(LIVE_LOG, False, path.stat().st_size)]


def live_response(path: Path) -> web.FileResponse:
    return web.FileResponse(
        path,
        headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache"},
    )


async def _task_log(request: web.Request, parts: list[str]) -> Path | None:
    task = parse_task_dir(parts)
    if task is None:
        return None
    k = request.app[KOPERS]
    try:
        build = await k.store.get_build(task.build_id)
    except NotFound:
        return None
    # The URL must be the build's own: no reading build 7's log as someone else's.
    if (build.owner, build.project, build.package_name) != (task.owner, task.project, task.package):
        return None
    if task.chroot not in build.chroots:
        return None
    path = k.hub.path(task.build_id, task.chroot)
    return path if path.is_file() else None
