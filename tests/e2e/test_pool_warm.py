"""The warm pool end to end: a clone booted ahead serves a build, then a fresh one refills.

A third Kopers server runs with `warm = 1`: before any build it boots a clone,
the status endpoint shows it warm, the build runs on it (its log says so),
the used clone is destroyed, and the refill loop boots a new one. Stopping
the server leaves nothing behind. Two VM boots plus one for the refill.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import Server, virsh_domain_names
from tests.e2e.vmhelp import CHROOT, ensure_project, extra_server, leftovers, submit, wait_until

pytestmark = pytest.mark.e2e
USER, PROJECT = "wendy", "warm"


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = extra_server(tmp_path_factory.mktemp("kopers-warm"), KOPERS_VM_WARM="1")
    try:
        yield srv
    finally:
        srv.stop()


def warm_status(server: Server) -> dict[str, Any] | None:
    status: dict[str, Any] = server.get("/api/status")["vm"]
    return status if status["warm"] == 1 and status["busy"] == 0 else None


def test_a_warm_clone_serves_the_build_and_the_pool_refills(
    warm: Server, make_srpm: Callable[..., Path]
) -> None:
    ensure_project(warm, USER, PROJECT)
    status = wait_until(lambda: warm_status(warm), 300, "a warm clone")
    [clone] = status["vms"]
    assert clone["state"] == "warm" and clone["task"] is None
    assert status["templates"]["debian-12"]["warm_target"] == 1
    assert status["hosts"][0]["used"] == 1

    build_id = submit(warm, USER, PROJECT, make_srpm("kopers-toasty", "1.0"))
    build = warm.wait_build(build_id, timeout=600)
    assert build["state"] == "succeeded", build
    result_url = warm.get(f"/api_3/build-chroot/list?build_id={build_id}")["items"][0]["result_url"]
    log = warm.get(result_url.removeprefix(warm.url) + "build.log")
    started = re.search(r"kopers: builder started on (\S+) \((\w+) VM, ready ([\d.]+) s", log)
    assert started, log
    assert started.group(1) == clone["name"] and started.group(2) == "warm"
    print(f"warm start: the VM was ready {started.group(3)} s after the task asked for it")

    # The used clone is gone; a fresh one took its place.
    refilled = wait_until(lambda: warm_status(warm), 300, "the refill")
    assert refilled["vms"][0]["name"] != clone["name"]
    assert clone["name"] not in virsh_domain_names()
    assert (warm.data_dir / "results" / USER / PROJECT / CHROOT).is_dir()


def test_stopping_the_server_destroys_its_warm_clones(warm: Server) -> None:
    wait_until(lambda: warm_status(warm), 300, "a warm clone")
    assert leftovers(warm)[0]
    warm.stop()
    assert leftovers(warm) == ([], [])
