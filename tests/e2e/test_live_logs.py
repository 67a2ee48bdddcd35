"""Live logs end to end: a real browser, a websocket client and curl-style reads.

One slow build (its %build prints a tick every few seconds) runs on the
session server (a cold pool). While it runs, headless Chromium shows a tick
on the build page before the build ends, a websocket client resumes from
line N with no gap and no duplicate, builder-live.log grows under the result
URL, and the status endpoint shows the busy VM. After it ends the page shows
the end state and the buildroot manifest. One VM boot.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.server import Server
from tests.e2e.vmhelp import CHROOT, Browser, LiveLog, ensure_project, submit

pytestmark = pytest.mark.e2e
USER, PROJECT = "lara", "live"
TICKS = 8
BUILD = f"""
for i in $(seq 1 {TICKS}); do echo "tick $i of {TICKS}"; sleep 3; done
"""
LOG = f"document.getElementById('log-{CHROOT}').textContent"
END = f"document.querySelector('#section-{CHROOT} .log-status').dataset.state"


async def state_of(server: Server, build_id: int) -> str:
    build = await asyncio.to_thread(server.get, f"/api_3/build/{build_id}")
    return str(build["state"])


async def check_status(server: Server) -> None:
    """The pool's state on the status endpoint, and the hypervisor choice in the log."""
    status = (await asyncio.to_thread(server.get, "/api/status"))["vm"]
    assert status["busy"] == 1 and status["domain_type"] in ("kvm", "qemu")
    [host] = status["hosts"]
    assert host["used"] == 1 and host["slots"] == 1 and host["domain_type_reason"]
    template = status["templates"]["debian-12"]
    assert template["busy"] == 1 and template["warm_target"] == 0
    [vm] = status["vms"]
    assert vm["state"] == "busy" and vm["task"].endswith(CHROOT)
    assert re.search(r"builder VMs use domain type (kvm|qemu)", server.log_path.read_text())


async def test_build_page_websocket_and_text_log_follow_a_running_build(
    server: Server, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    await asyncio.to_thread(ensure_project, server, USER, PROJECT)
    srpm = make_srpm("kopers-ticker", "1.0", build=BUILD)
    build_id = await asyncio.to_thread(submit, server, USER, PROJECT, srpm)
    page = f"{server.url}/coprs/build/{build_id}"
    live_url = f"/results/{USER}/{PROJECT}/{CHROOT}/{build_id:08d}-kopers-ticker/builder-live.log"

    async with Browser(tmp_path / "chromium") as browser:
        await browser.goto(page)
        # 1. The page shows a line the build printed, before the build ends.
        await browser.wait_for(f"{LOG}.includes('tick 1 of {TICKS}')", 600, "the first tick")
        assert await state_of(server, build_id) == "running"
        assert f"tick {TICKS} of {TICKS}" not in await browser.eval(LOG)

        # builder-live.log at Copr's URL, and a listing of the unpublished result dir.
        early = await asyncio.to_thread(server.get, live_url)
        assert "tick 1 of" in early
        listing = await asyncio.to_thread(server.get, live_url.removesuffix("builder-live.log"))
        assert "builder-live.log" in listing
        await check_status(server)

        # 2. A websocket client reads up to some line N, leaves, and resumes from N+1.
        log = LiveLog(server.url, build_id)
        first, _ = await log.follow(stop=lambda _n, text: text == f"tick 2 of {TICKS}")
        assert await state_of(server, build_id) == "running"
        resumed, end = await log.follow(first=first[-1][0] + 1)
        numbers = [n for n, _ in first + resumed]
        assert numbers == list(range(1, len(numbers) + 1)), "a gap or a duplicate"
        ticks = [t for _, t in first + resumed if t.startswith("tick ")]
        assert ticks == [f"tick {i} of {TICKS}" for i in range(1, TICKS + 1)]
        assert end is not None and end["state"] == "succeeded" and end["next"] == numbers[-1] + 1
        later = await asyncio.to_thread(server.get, live_url)
        assert later.startswith(early) and len(later) > len(early)  # it grew

        # 3. The page shows the end state without a reload.
        assert await browser.wait_for(END, 120, "the end state") == "succeeded"
        shown = await browser.eval(LOG)
        assert f"tick {TICKS} of {TICKS}" in shown and "kopers: task ended succeeded" in shown
        await browser.wait_for(
            "document.getElementById('build-state').textContent == 'succeeded'", 30, "state"
        )

        # 4. After a reload: the whole log again, and the buildroot manifest.
        await browser.goto(page)
        await browser.wait_for(f"{END} == 'succeeded'", 60, "the end state after a reload")
        assert (await browser.eval(LOG)).split("\n").count(f"tick {TICKS} of {TICKS}") == 1
        manifest = await browser.eval(f"document.getElementById('buildroot-{CHROOT}').textContent")
    assert "kopers-system-provides" in manifest

    # The published build.log is the text the websocket sent, line for line (the
    # runner copies it just before its final line); builder-live.log has it all.
    texts = [t for _, t in first + resumed]
    assert texts[-1] == "kopers: task ended succeeded"
    build_log = await asyncio.to_thread(
        server.get, live_url.replace("builder-live.log", "build.log")
    )
    assert build_log.splitlines() == texts[:-1]
    assert (await asyncio.to_thread(server.get, live_url)).splitlines() == texts
    packages = await asyncio.to_thread(server.get, f"/api/builds/{build_id}/buildroot")
    nevras = packages["chroots"][CHROOT]
    assert any(n.startswith("kopers-system-provides-") for n in nevras)
    # The page lists exactly the recorded buildroot.
    assert f"{len(nevras)} packages" in manifest and all(n in manifest for n in nevras)
