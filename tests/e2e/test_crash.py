"""Crash and stop recovery: SIGTERM, then `kill -9`, of the server in the middle of builds.

One project holds a running build, a build waiting on it and a pending one,
through a clean stop and then a kill -9 (five VM boots in all: the running
task's three attempts and one each for the others). A clean stop (SIGTERM) is
not a cancel: it gives up no task of the chain, and the interrupted task runs
again after the start. After the kill -9, with no cleanup of any kind, every
build reaches a final state: the running task runs again on a fresh VM, the
waiting one follows its dependency, the pending one starts. Nothing is lost,
published twice, or duplicated in the repository.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import createrepo_c as cr
import pytest

from tests.e2e.server import CHROOT, Server

pytestmark = pytest.mark.e2e


def created(output: str) -> int:
    return int(output.rsplit("Created builds:", 1)[1].split()[0])


def slow_then_after(
    server: Server, make_srpm: Callable[..., Path], project: str, prefix: str
) -> tuple[int, int]:
    """dave's 20-second build in `project`, and a build to run after it: their ids."""
    slow = make_srpm(
        f"{prefix}-slow", "1", build="for i in $(seq 1 20); do echo tick $i; sleep 1; done"
    )
    first = created(server.copr("dave", "build", project, str(slow), "--nowait").stdout)
    after = make_srpm(f"{prefix}-after", "1")
    second = created(
        server.copr(
            "dave", "build", project, str(after), "--nowait", "--after-build-id", str(first)
        ).stdout
    )
    return first, second


def task_of(server: Server, build_id: int) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = server.get(f"/api_3/build-chroot/list?build_id={build_id}")[
        "items"
    ]
    return tasks[0]


def inside_attempt(server: Server, build_id: int, attempt: int) -> None:
    """Wait until the build's task runs its `attempt`, then a little more: well inside %build."""
    deadline = time.monotonic() + 600
    while True:
        task = task_of(server, build_id)
        if task["state"] == "running" and task["attempts"] == attempt:
            break
        assert time.monotonic() < deadline, f"build {build_id} never ran attempt {attempt}: {task}"
        time.sleep(1)
    time.sleep(8)


def primary_nevras(repo_dir: Path) -> list[str]:
    repomd = cr.Repomd(str(repo_dir / "repodata" / "repomd.xml"))
    primary = next(r for r in repomd.records if r.type == "primary")
    found: list[str] = []

    def on_pkg(pkg: cr.Package) -> bool:
        found.append(pkg.nevra())
        return True

    cr.xml_parse_primary(str(repo_dir / primary.location_href), pkgcb=on_pkg, do_files=False)
    return found


def test_sigterm_then_kill_9_with_pending_running_and_waiting_tasks(
    server: Server, make_srpm: Callable[..., Path]
) -> None:
    server.user("dave")
    assert server.copr("dave", "create", "crash", "--chroot", CHROOT).returncode == 0
    running, waiting = slow_then_after(server, make_srpm, "crash", "kopers-crash")
    pending = created(
        server.copr(
            "dave", "build", "crash", str(make_srpm("kopers-crash-other", "1")), "--nowait"
        ).stdout
    )

    # SIGTERM, a clean shutdown: stopping is not canceling.
    inside_attempt(server, running, 1)
    assert task_of(server, waiting)["state"] == "waiting"
    server.stop()
    server.start()
    assert server.get(f"/api_3/build/{waiting}")["state"] == "pending"  # its chroot is waiting
    assert server.get(f"/api_3/build/{pending}")["state"] == "pending"
    # The interrupted task runs again: the one VM slot goes to it, not to the others.
    inside_attempt(server, running, 2)
    assert task_of(server, waiting)["state"] == "waiting"
    assert task_of(server, pending)["state"] == "pending"

    # SIGKILL: no cleanup of any kind.
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.proc = None
    server.start()

    states = {b: server.wait_build(b)["state"] for b in (running, waiting, pending)}
    assert states == {running: "succeeded", waiting: "succeeded", pending: "succeeded"}
    # The attempt the stop interrupted, the one the kill did, and the one after it.
    assert task_of(server, running)["attempts"] == 3
    assert task_of(server, waiting)["attempts"] == 1
    assert task_of(server, pending)["attempts"] == 1
    assert task_of(server, waiting)["started_on"] >= task_of(server, running)["ended_on"]

    # Each package is in the repository exactly once.
    repo = server.data_dir / "results" / "dave" / "crash" / CHROOT
    nevras = primary_nevras(repo)
    assert len(nevras) == len(set(nevras)), nevras
    assert sorted(n.rsplit("-", 2)[0] for n in nevras if not n.endswith(".src")) == [
        "kopers-crash-after",
        "kopers-crash-other",
        "kopers-crash-slow",
    ]
    assert server.wait_no_vms()
