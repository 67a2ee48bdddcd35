"""How fast a builder VM boots, and how fast a submitted build starts.

Part 1, boot to SSH: the builder template as it stood at an earlier commit
(`--old-rev`, by default the last one whose image booted a full systemd
through Debian's initramfs) is built from git into a cache of its own, and
then that image and the current one are booted alternately, `--boots` times
each, through Kopers' own libvirt driver, each timed from the start call to
an accepted SSH login. Last line of the part:
`boot old_s=<median> new_s=<median> ratio=<old/new>`.

Part 2, dispatch (skipped with `--runs 0`): a warm VM pool against a cold one.
Starts a real Kopers (embedded Postgres, real VMs) with `vm.warm = 1`, submits
builds one after another through python-copr (what copr-cli uses), and
measures for each the time from the submit call returning (the build is
committed) to the builder starting in its VM: the moment the
"kopers: builder started" line reaches a websocket viewer of the live log.
Before each warm run the pool is given time to have its clone booted again.
Then the same with a second server with `vm.warm = 0`, where every build
boots its VM on demand. Copr's dispatcher, for comparison, polls every 30 s
before it even asks for a builder.

    .venv/bin/python bench/dispatch.py [--boots N] [--old-rev REV] [--runs N]

Last line: `dispatch warm_s=<median> cold_s=<median> ratio=<cold/warm>`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from copr.v3 import Client  # noqa: E402

from kopers.vm import ssh  # noqa: E402
from kopers.vm.domain import domain_name  # noqa: E402
from kopers.vm.libvirt import LibvirtDriver  # noqa: E402
from kopers.vm.template import TemplateImage, build_template, default_templates_root  # noqa: E402
from tests.e2e.server import Server  # noqa: E402
from tests.e2e.vmhelp import CHROOT, LiveLog, ensure_project, extra_server  # noqa: E402
from tests.rpms import noarch_srpm  # noqa: E402

USER, PROJECT = "bench", "dispatch"
STARTED = "kopers: builder started on "
TEMPLATE = "debian-12"
# The last commit whose builder image booted systemd through Debian's initramfs.
OLD_REV = "4e9fb63"
CACHE = Path("~/.cache/kopers").expanduser()


async def old_and_new_images(rev: str, work: Path) -> tuple[TemplateImage, TemplateImage]:
    """The template's image at `rev` (built into a cache of its own) and the current one."""

    def say(line: str) -> None:
        if line.startswith(("==", "building", "template")):
            print(f"  {line}", flush=True)

    old_root = work / "old-templates"
    old_root.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, f"vm_templates/{TEMPLATE}"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(old_root)], input=archive, check=True)
    # A separate cache: building one version removes the other versions of a cache.
    old = await build_template(TEMPLATE, old_root / "vm_templates", CACHE / "bench-old", say)
    new = await build_template(TEMPLATE, default_templates_root(), CACHE, say)
    return old, new


async def boot_to_ssh(driver: LibvirtDriver, image: TemplateImage) -> float:
    started = time.monotonic()
    handle = await driver.start(image, domain_name("bench", "boot"))
    try:
        await ssh.wait_ready(handle.ssh_host, handle.ssh_port, image.ssh_key, timeout=900)
        return time.monotonic() - started
    finally:
        await driver.destroy(handle)


async def compare_boots(rev: str, boots: int, work: Path) -> tuple[float, float]:
    old, new = await old_and_new_images(rev, work)
    driver = LibvirtDriver("qemu:///system", "qemu", work / "overlays", vcpus=1, memory_mib=1024)
    times: dict[str, list[float]] = {"old": [], "new": []}
    try:
        for i in range(1, boots + 1):
            for label, image in (("old", old), ("new", new)):
                seconds = await boot_to_ssh(driver, image)
                times[label].append(seconds)
                print(f"boot {i} {label} ({image.recipe_hash}): {seconds:.1f} s", flush=True)
    finally:
        await driver.close()
    return statistics.median(times["old"]), statistics.median(times["new"])


def wait_for_pool(server: Server, warm: int, timeout: float = 300) -> None:
    """Until the pool is idle with `warm` clones booted (and nothing else)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vm = server.get("/api/status")["vm"]
        if vm["warm"] == warm and vm["booting"] == 0 and vm["busy"] == 0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the pool did not settle with {warm} warm clones")


async def one_run(server: Server, client: Client, srpm: Path) -> tuple[float, str, bool]:
    """Seconds from submit to builder start, the line that says so, and whether it was live."""
    build = await asyncio.to_thread(
        client.build_proxy.create_from_file, USER, PROJECT, str(srpm), {"chroots": [CHROOT]}
    )
    submitted = time.monotonic()
    log = LiveLog(server.url, build.id)
    found: list[float] = []

    def stop(_number: int, text: str) -> bool:
        if text.startswith(STARTED):
            found.append(time.monotonic())
            return True
        return False

    connected = time.monotonic()
    lines, _ = await log.follow(stop=stop, timeout=600)
    if not found:
        raise RuntimeError(f"build {build.id} never started its builder")
    # A line already in the backlog when we connected would be timed late.
    live = found[0] - connected > 0.05
    await asyncio.to_thread(server.wait_build, build.id)
    return found[0] - submitted, lines[-1][1], live


def measure(base: Path, warm: int, runs: int, srpms: list[Path]) -> list[float]:
    server = extra_server(base, KOPERS_VM_WARM=str(warm))
    try:
        ensure_project(server, USER, PROJECT)
        client = Client.create_from_config_file(str(server.configs[USER]))
        times = []
        for i, srpm in enumerate(srpms[:runs], 1):
            wait_for_pool(server, warm)
            seconds, line, live = asyncio.run(one_run(server, client, srpm))
            note = "" if live else " (line was already in the backlog: an upper bound)"
            print(f"{'warm' if warm else 'cold'} run {i}: {seconds:.2f} s  [{line}]{note}")
            times.append(seconds)
        return times
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=3, help="boots per template (default 3)")
    parser.add_argument("--old-rev", default=OLD_REV, help=f"the old template (default {OLD_REV})")
    parser.add_argument("--runs", type=int, default=3, help="builds per pool (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kopers-dispatch-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        if args.boots > 0:
            old_s, new_s = asyncio.run(compare_boots(args.old_rev, args.boots, work))
            print(f"boot old_s={old_s:.1f} new_s={new_s:.1f} ratio={old_s / new_s:.1f}", flush=True)
        if args.runs <= 0:
            return
        srpms = [noarch_srpm(work / "srpms", f"dispatch-{i}") for i in range(args.runs)]
        warm = measure(work / "warm", 1, args.runs, srpms)
        cold = measure(work / "cold", 0, args.runs, srpms)
    warm_s, cold_s = statistics.median(warm), statistics.median(cold)
    print(f"dispatch warm_s={warm_s:.2f} cold_s={cold_s:.2f} ratio={cold_s / warm_s:.1f}")


if __name__ == "__main__":
    main()
