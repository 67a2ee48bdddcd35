"""Crash and stop recovery: `kill -9` or SIGTERM of the server in the middle of builds.

After the restart every build reaches a final state: the running task runs
again on a fresh VM, the waiting one follows its dependency, the pending one
starts. Nothing is lost, published twice, or duplicated in the repository.
A clean stop (SIGTERM) is not a cancel: it gives up no task of a chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

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


def inside_build(server: Server, build_id: int) -> None:
    """Wait until the build runs, then a little more: well inside its %build."""
    deadline = time.monotonic() + 600
    while server.get(f"/api_3/build/{build_id}")["state"] != "running":
        assert time.monotonic() < deadline, f"build {build_id} never started"
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


def test_kill_9_with_pending_running_and_waiting_tasks(
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
    inside_build(server, running)
    assert server.get(f"/api_3/build/{waiting}")["state"] == "pending"  # its chroot is waiting

    assert server.proc is not None
    server.proc.kill()  # SIGKILL: no cleanup of any kind
    server.proc.wait()
    server.proc = None
    server.start()

    states = {b: server.wait_build(b)["state"] for b in (running, waiting, pending)}
    assert states == {running: "succeeded", waiting: "succeeded", pending: "succeeded"}
    tasks = server.get(f"/api_3/build-chroot/list?build_id={running}")["items"]
    assert tasks[0]["attempts"] == 2  # the interrupted attempt and the one after the restart

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


def test_sigterm_during_a_chain_resumes_the_whole_chain(
    server: Server, make_srpm: Callable[..., Path]
) -> None:
    """Stopping is not canceling: the interrupted task and its dependents run after the start."""
    server.user("dave")
    r = server.copr("dave", "create", "stopping", "--chroot", CHROOT)
    assert r.returncode == 0 or "already" in r.stderr, r.stderr
    first, second = slow_then_after(server, make_srpm, "stopping", "kopers-stop")
    inside_build(server, first)

    server.stop()  # SIGTERM: a clean shutdown
    server.start()
    assert server.get(f"/api_3/build/{second}")["state"] == "pending"

    assert server.wait_build(first)["state"] == "succeeded"
    assert server.wait_build(second)["state"] == "succeeded"
    tasks = server.get(f"/api_3/build-chroot/list?build_id={first}")["items"]
    assert tasks[0]["attempts"] == 2  # the interrupted attempt and the one after the start
    assert server.wait_no_vms()
