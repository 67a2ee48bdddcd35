"""Builds on two libvirt hosts: this machine's qemu:///system and a second daemon over SSH.

The second host (tests/e2e/secondhost.py) is another user's `qemu:///session`
reached as `qemu+ssh://…` through an sshd of its own, with its own template
cache and overlay directory: every remote-host path of Kopers runs for real
(the template copy check, libvirt over SSH, builder SSH through the tunnel).
The remote host is listed first, so a lone build lands there.

Four VMs boot in this module: two builds side by side (one per host), then a
build whose host dies under it (its libvirt daemon and qemu killed) and that
ends on the local host.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kopers import config
from kopers.config import HostConfig
from kopers.vm.hosts import Host
from kopers.vm.template import TemplateImage, cached_image, default_templates_root, image_dir
from tests.conftest import service_dir
from tests.e2e.secondhost import HOST_ADDRESS, SecondHost, second_host
from tests.e2e.server import REPO, Server, keep_log
from tests.e2e.vmhelp import CHROOT, ensure_project, leftovers, live_text, submit, wait_until

pytestmark = pytest.mark.e2e
USER, PROJECT, ADMIN = "hana", "two-hosts", "ops"
REMOTE, LOCAL = "b2", "local"
STARTED = re.compile(r"kopers: builder started on (\S+) \(.*?\) on host (\S+);")
TICKS = """
for i in $(seq 1 {n}); do echo "tick $i of {n}"; sleep {pause}; done
"""


@pytest.fixture(scope="module")
def image() -> TemplateImage:
    cfg = config.load(str(REPO / "kopers.toml"), env={})
    found = cached_image("debian-12", default_templates_root(), cfg.vm.cache_dir)
    if found is None:
        pytest.fail("the debian-12 template is not built; run scripts/test.sh")
    return found


@pytest.fixture(scope="module")
def host2(image: TemplateImage) -> Iterator[SecondHost]:
    with second_host(image) as host:
        yield host
        print(f"\nVMs the second host booted: {host.boots()}", file=sys.stderr)


@pytest.fixture(scope="module")
def kopers(host2: SecondHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with two hosts of one slot each: the second host first, then this one."""
    with service_dir("kopers-two-hosts-") as base:
        toml = base / "kopers.toml"
        toml.write_text(
            (REPO / "kopers.toml").read_text()
            + "\n"
            + host2.host_table(REMOTE, 1)
            + f'\n[[vm.hosts]]\nname = "{LOCAL}"\nuri = "qemu:///system"\nslots = 1\n'
        )
        srv = Server.create(
            base,
            KOPERS_CONFIG=str(toml),
            KOPERS_VM_MAX_CONCURRENT="2",  # the template's cap: one clone per host
            KOPERS_BUILD_MAX_ATTEMPTS="2",
        )
        srv.start()
        try:
            ensure_project(srv, USER, PROJECT)
            srv.user(ADMIN, admin=True)
            yield srv
        finally:
            srv.stop()
            keep_log(srv.log_path, tmp_path_factory, "two-hosts")


def hosts(server: Server) -> dict[str, dict[str, Any]]:
    """/api/status's hosts by name, as an admin sees them (errors included)."""
    return {h["name"]: h for h in server.get_as(ADMIN, "/api/status")["vm"]["hosts"]}


def build_log(server: Server, build_id: int) -> str:
    [task] = server.get(f"/api_3/build-chroot/list?build_id={build_id}")["items"]
    return str(server.get(str(task["result_url"]).removeprefix(server.url) + "build.log"))


def published_rpms(server: Server, build_id: int) -> list[Path]:
    folder = server.data_dir / "results" / USER / PROJECT / CHROOT
    return sorted(folder.glob(f"{build_id:08d}-*/*.noarch.rpm"))


def remote_leftovers(host: SecondHost) -> tuple[list[str], list[str]]:
    """Kopers' domains on the second host, and the files in its overlay directory."""
    domains = [d for d in host.virsh("list", "--all", "--name").split() if d.startswith("kopers-")]
    files = sorted(p.name for p in host.overlay_dir.iterdir()) if host.overlay_dir.is_dir() else []
    return domains, files


def assert_clean(server: Server, host: SecondHost) -> None:
    assert wait_until(lambda: leftovers(server) == ([], []), 60, "local cleanup", step=1)
    assert wait_until(lambda: remote_leftovers(host) == ([], []), 60, "remote cleanup", step=1)


def test_both_hosts_are_up_with_their_slots(kopers: Server, host2: SecondHost) -> None:
    shown = hosts(kopers)
    assert set(shown) == {REMOTE, LOCAL}
    for name in (REMOTE, LOCAL):
        assert (shown[name]["slots"], shown[name]["used"]) == (1, 0)
        assert shown[name]["online"] is True and shown[name]["error"] is None, shown[name]
        assert shown[name]["domain_type"] in ("kvm", "qemu")
    assert shown[REMOTE]["uri"] == host2.uri
    # Only admins see how a host is reached.
    public = {h["name"]: h for h in kopers.get("/api/status")["vm"]["hosts"]}
    assert "uri" not in public[REMOTE] and public[REMOTE]["online"] is True
    assert kopers.get("/api/status")["vm"]["slots"] == 2


def test_a_host_without_a_copy_of_the_template_stays_offline(
    host2: SecondHost, image: TemplateImage, tmp_path: Path
) -> None:
    """Checked through the second host's own libvirt; no VM boots."""
    empty = host2.run_dir / "empty-cache"
    broken = host2.run_dir / "broken-cache"
    folder = image_dir(image.name, image.recipe_hash, broken)
    for cache in (empty, folder):
        cache.mkdir(parents=True)
    for name in ("complete", "vmlinuz", "initrd.img", "id_ed25519.pub", "cmdline"):
        shutil.copyfile(image.dir / name, folder / name)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(folder / "base.qcow2"), "1G"])
    subprocess.run(["chown", "-R", f"{host2.user}:", str(empty), str(broken)], check=True)

    async def connect(cache: Path) -> Host:
        cfg = config.load(None, env={"KOPERS_DATA_DIR": str(tmp_path)})
        setting = HostConfig(
            name="b2",
            uri=host2.uri,
            slots=1,
            hypervisor="qemu",
            tunnel=f"{host2.user}@{HOST_ADDRESS}:{host2.port}",
            overlay_dir=host2.overlay_dir,
            cache_dir=cache,
            ssh_key=host2.client_key,
            known_hosts=host2.known_hosts,
        )
        host = Host(setting, cfg.vm, tmp_path)
        await host.connect(None, "kopers-nothing-", set(), [image])
        await host.close()
        return host

    missing = asyncio.run(connect(empty))
    assert not missing.online
    assert re.search(
        rf"template debian-12 \({image.recipe_hash}\) is not in {empty}/", missing.error
    )
    short = asyncio.run(connect(broken))
    assert not short.online
    assert "is not a copy" in short.error and "its base.qcow2 has" in short.error, short.error


def test_kopers_doctor_compares_each_hosts_copy_of_the_template(
    kopers: Server, host2: SecondHost, image: TemplateImage, tmp_path: Path
) -> None:
    """Through the second host's own libvirt, as the pool does; no VM boots."""
    r = kopers.kopers("doctor", check=False)
    folder = image_dir(image.name, image.recipe_hash, host2.cache_dir)
    copy = f"host {REMOTE}'s copy of template debian-12: "
    assert f"ok    {copy}{folder} holds a copy of {image.dir}\n" in r.stdout, r.stdout
    # The local host boots the images here: it has no copy to compare.
    assert f"host {LOCAL}'s copy" not in r.stdout

    # A host whose cache has no copy: a FAIL naming the folder and the fix.
    empty = host2.run_dir / "doctor-empty-cache"
    empty.mkdir()
    subprocess.run(["chown", f"{host2.user}:", str(empty)], check=True)
    toml = tmp_path / "kopers.toml"
    table = host2.host_table(REMOTE, 1).replace(str(host2.cache_dir), str(empty))
    toml.write_text((REPO / "kopers.toml").read_text() + "\n" + table)
    r = kopers.kopers("--config", str(toml), "doctor", check=False)
    missing = image_dir(image.name, image.recipe_hash, empty)
    assert r.returncode == 1, r.stdout
    line = next((ln for ln in r.stdout.splitlines() if copy in ln), "")
    assert line.startswith(f"FAIL  {copy}{missing}: not there ("), r.stdout
    assert f"copy the folder {image.dir} to {missing} on that host" in line


def test_two_builds_at_once_run_one_on_each_host(
    kopers: Server, host2: SecondHost, make_srpm: Callable[..., Path]
) -> None:
    booted = host2.boots()
    ids = [
        submit(
            kopers,
            USER,
            PROJECT,
            make_srpm(f"kopers-{name}", "1", build=TICKS.format(n=3, pause=2)),
        )
        for name in ("north", "south")
    ]
    # While both run, the status shows each host's slot taken, by which task.
    busy = wait_until(
        lambda: (s := hosts(kopers)) and all(s[n]["used"] == 1 for n in (REMOTE, LOCAL)) and s,
        120,
        "a VM on each host",
    )
    assert all(busy[n]["online"] for n in (REMOTE, LOCAL))
    vms = kopers.get("/api/status")["vm"]["vms"]
    assert sorted(vm["host"] for vm in vms) == [REMOTE, LOCAL]

    builds = [kopers.wait_build(build_id, timeout=1500) for build_id in ids]
    assert [b["state"] for b in builds] == ["succeeded", "succeeded"], builds
    ran_on = {}
    for build_id in ids:
        [(_vm, host)] = STARTED.findall(build_log(kopers, build_id))
        ran_on[build_id] = host
        assert published_rpms(kopers, build_id), f"build {build_id} published nothing"
    assert sorted(ran_on.values()) == [REMOTE, LOCAL]
    assert host2.boots() == booted + 1  # the second host's own libvirt ran one of them
    assert_clean(kopers, host2)
    assert {n: h["used"] for n, h in hosts(kopers).items()} == {REMOTE: 0, LOCAL: 0}


def test_a_build_whose_host_dies_is_retried_on_the_other_and_succeeds(
    kopers: Server, host2: SecondHost, make_srpm: Callable[..., Path]
) -> None:
    booted = host2.boots()
    srpm = make_srpm("kopers-survivor", "1", build=TICKS.format(n=8, pause=3))
    build_id = submit(kopers, USER, PROJECT, srpm)
    wait_until(lambda: "tick 1 of 8" in live_text(kopers, build_id), 900, "the first tick")
    [(first_vm, first_host)] = STARTED.findall(live_text(kopers, build_id))
    assert first_host == REMOTE  # listed first: a lone build goes there

    killed = host2.kill()
    assert "libvirtd" in killed and any(name.startswith("qemu") for name in killed), killed

    build = kopers.wait_build(build_id, timeout=1500)
    assert build["state"] == "succeeded", build
    log = build_log(kopers, build_id)
    starts = STARTED.findall(log)
    assert [host for _, host in starts] == [REMOTE, LOCAL], starts
    assert starts[0][0] == first_vm
    assert re.search(r"kopers: attempt 1 failed \(infrastructure\): ", log), log
    assert log.splitlines().count("tick 8 of 8") == 1  # only the second attempt got there
    assert published_rpms(kopers, build_id), "the retried build published nothing"
    built = kopers.get(f"/api_3/build/built-packages/{build_id}")
    assert built[CHROOT]["packages"][0]["name"] == "kopers-survivor", built

    server_log = kopers.log_path.read_text()
    assert re.search(rf"host {REMOTE} \(.*\) is offline, nothing boots there", server_log)
    # The health check finds the host answering again (a new session daemon).
    wait_until(lambda: hosts(kopers)[REMOTE]["online"], 180, f"host {REMOTE} back online", step=2)
    assert hosts(kopers)[REMOTE]["error"] is None
    assert host2.boots() == booted + 1
    assert_clean(kopers, host2)
