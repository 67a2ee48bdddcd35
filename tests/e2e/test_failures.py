"""Builds that end cleanly whatever happens to their real VM: killed qemu, orphans.

A second Kopers server runs beside the session one, with a cold pool and two
attempts per task, so the failures come quickly. After each case, neither
libvirt nor its overlay directory holds anything of this server. Each case
boots real TCG VMs. The runner's own limits (timeout, silence, log size) need
no real VM and are tested on a fake one in tests/integration/test_runner_limits.py.
The cancel of a running build is tested in test_browser.py, from its page.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kopers import config
from kopers.vm.libvirt import LibvirtDriver
from kopers.vm.template import cached_image, default_templates_root
from tests.e2e.server import Server
from tests.e2e.vmhelp import (
    ensure_project,
    extra_server,
    instance_prefix,
    leftovers,
    live_text,
    qemu_pid,
    submit,
    wait_until,
)

pytestmark = pytest.mark.e2e
USER, PROJECT = "fay", "failures"
STARTED = re.compile(r"kopers: builder started on (\S+)")
TICKS = """
for i in $(seq 1 {n}); do echo "tick $i of {n}"; sleep {pause}; done
"""


@pytest.fixture(scope="module")
def aux(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = extra_server(
        tmp_path_factory.mktemp("kopers-failures"),
        KOPERS_VM_WARM="0",
        KOPERS_BUILD_MAX_ATTEMPTS="2",
    )
    try:
        ensure_project(srv, USER, PROJECT)
        yield srv
    finally:
        srv.stop()
        stop_orphaned_postgres(srv)


def stop_orphaned_postgres(server: Server) -> None:
    """The crash test kills Kopers with SIGKILL, so its embedded Postgres outlives it."""
    pid_file = server.data_dir / "pg" / "postmaster.pid"
    if pid_file.is_file():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)


def assert_clean(server: Server) -> None:
    """Nothing of this server in `virsh list --all` nor in its overlay directory."""
    assert wait_until(lambda: leftovers(server) == ([], []), 30, "VM cleanup", step=1)


def chroot_of(server: Server, build_id: int) -> dict[str, object]:
    items = server.get(f"/api_3/build-chroot/list?build_id={build_id}")["items"]
    return dict(items[0])


def vms_started(server: Server, build_id: int) -> list[str]:
    return STARTED.findall(live_text(server, build_id))


def kill_qemu(domain: str) -> None:
    os.kill(qemu_pid(domain), signal.SIGKILL)


def test_killed_qemu_is_retried_on_a_fresh_vm_and_succeeds(
    aux: Server, make_srpm: Callable[..., Path]
) -> None:
    build_id = submit(
        aux, USER, PROJECT, make_srpm("kopers-phoenix", "1", build=TICKS.format(n=6, pause=2))
    )
    wait_until(lambda: "tick 1 of 6" in live_text(aux, build_id), 300, "the first tick")
    [first_vm] = vms_started(aux, build_id)
    kill_qemu(first_vm)

    build = aux.wait_build(build_id, timeout=600)
    assert build["state"] == "succeeded", build
    log = aux.get(str(chroot_of(aux, build_id)["result_url"]).removeprefix(aux.url) + "build.log")
    assert "kopers: attempt 1 of 2" in log and "kopers: attempt 2 of 2" in log
    assert re.search(r"kopers: attempt 1 failed \(infrastructure\): .*connection lost", log), log
    second_vms = STARTED.findall(log)
    assert len(second_vms) == 2 and second_vms[0] == first_vm != second_vms[1]
    assert log.splitlines().count("tick 6 of 6") == 1  # only the second attempt got there
    assert chroot_of(aux, build_id)["attempts"] == 2
    assert_clean(aux)


def test_when_every_attempt_is_killed_the_task_fails_as_infrastructure(
    aux: Server, make_srpm: Callable[..., Path]
) -> None:
    build_id = submit(
        aux, USER, PROJECT, make_srpm("kopers-doomed", "1", build=TICKS.format(n=60, pause=2))
    )
    for attempt in (1, 2):
        vms = wait_until(
            lambda n=attempt: (v := vms_started(aux, build_id)) and len(v) == n and v,
            300,
            f"attempt {attempt}",
        )
        kill_qemu(vms[-1])
    build = aux.wait_build(build_id, timeout=300)
    assert build["state"] == "failed"
    reason = str(chroot_of(aux, build_id)["reason"])
    assert reason.startswith("infrastructure failure, not the package: 2 attempts failed"), reason
    log = live_text(aux, build_id)
    assert "attempt 2 failed (infrastructure)" in log and f"task ended failed: {reason}" in log
    assert_clean(aux)


def test_orphans_of_a_crashed_process_are_removed_at_start(aux: Server, tmp_path: Path) -> None:
    prefix = instance_prefix(aux)
    overlays = aux.data_dir / "overlays"
    assert aux.proc is not None
    aux.proc.kill()  # a crash: no orderly shutdown
    aux.proc.wait()
    aux.proc = None

    # A domain that survived its process (no autodestroy, as after a libvirtd
    # restart), and an overlay whose domain is gone.
    cfg = config.load(None, env=aux.env)
    image = cached_image("debian-12", default_templates_root(), cfg.vm.cache_dir)
    assert image is not None

    async def orphan_domain() -> str:
        driver = LibvirtDriver("qemu:///system", "qemu", overlays, 1, 512, autodestroy=False)
        handle = await driver.start(image, f"{prefix}orphan-abc123")
        await driver.close()
        return handle.name

    domain = asyncio.run(orphan_domain())
    stray = overlays / f"{prefix}crashed-def456.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            str(image.base_image),
            "-F",
            "qcow2",
            str(stray),
        ],
        check=True,
    )
    domains, files = leftovers(aux)
    assert domain in domains and stray.name in files

    aux.start()
    assert leftovers(aux) == ([], [])
    server_log = aux.log_path.read_text()
    assert re.search(rf"removed \d+ VMs left by an earlier run: .*{domain}", server_log)
    assert f"{prefix}crashed-def456" in server_log
