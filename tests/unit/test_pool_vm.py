"""The VM pool's behaviour with a fake libvirt host and fake SSH: no VMs booted.

Covers warm hand-out and refill, cold boots, the slot cap, cancellation while
a clone boots, boot failures, and clones that die while booting or idling.
"""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kopers import config
from kopers.errors import InfrastructureError
from kopers.paths import DataPaths
from kopers.vm import pool as poolmod
from kopers.vm.domain import VmSize, overlay_volume_name
from kopers.vm.libvirt import LibvirtDriver, VmHandle
from kopers.vm.pool import VmPool
from kopers.vm.template import TemplateImage

TEMPLATE = "debian-12"


class FakeDriver:
    def __init__(self) -> None:
        self.running: set[str] = set()
        self.started: list[str] = []
        self.destroyed: list[str] = []
        self.sizes: dict[str, VmSize | None] = {}
        self.fail = False

    async def start(self, image: TemplateImage, name: str, *, size: Any = None) -> VmHandle:
        await asyncio.sleep(0)
        if self.fail:
            raise InfrastructureError("cannot start VM: no luck")
        self.running.add(name)
        self.started.append(name)
        self.sizes[name] = size
        return VmHandle(name, "127.0.0.1", 2222, Path("/x.qcow2"), Path("/x.log"))

    async def destroy_name(self, name: str) -> None:
        await asyncio.sleep(0)
        self.running.discard(name)
        self.destroyed.append(name)

    async def is_alive(self, name: str) -> bool:
        return name in self.running


class FakeHost:
    def __init__(self, name: str, slots: int) -> None:
        self.name = name
        self.config = SimpleNamespace(slots=slots)
        self.online = True
        self.driver = FakeDriver()
        self.domain_type = "qemu"
        self.domain_type_reason = "fake"
        self.gone: str | None = None  # what lost() answers: why the host went away

    async def tunnel(self) -> None:
        return None

    async def lost(self) -> str | None:
        return self.gone

    def go_offline(self, reason: str) -> None:
        self.online, self.error = False, reason

    async def console_tail(self, name: str) -> str:
        return "Kernel panic"

    def status(self, used: int) -> dict[str, Any]:
        return {"name": self.name, "slots": self.config.slots, "used": used}

    async def close(self) -> None:
        pass


class FakeSession:
    """An open login to a clone: records the commands run and whether it was closed."""

    def __init__(self) -> None:
        self.target = "root@fake"
        self.commands: list[str] = []
        self.closed = False

    async def run(self, cmd: str, on_line: Any) -> int:
        self.commands.append(cmd)
        return 0

    async def close(self) -> None:
        self.closed = True


class FakeSsh:
    """Stands in for kopers.vm.ssh: sshd answers when `ready` is set."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.ready.set()
        self.sessions: list[FakeSession] = []

    async def wait_session(self, *args: Any, **kwargs: Any) -> FakeSession:
        await self.ready.wait()
        session = FakeSession()
        self.sessions.append(session)
        return session


@pytest.fixture
def fake_ssh(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSsh]:
    fake = FakeSsh()
    monkeypatch.setattr(poolmod.ssh, "wait_session", fake.wait_session)
    monkeypatch.setattr(poolmod, "LIVENESS_INTERVAL_S", 0.01)
    yield fake


def make_pool(tmp_path: Path, *, warm: int, slots: int, max_concurrent: int = 9) -> VmPool:
    toml = tmp_path / "k.toml"
    toml.write_text(
        f'data_dir = "{tmp_path}"\n[vm]\nwarm = {warm}\nmax_concurrent = {max_concurrent}\n'
        f'[[vm.hosts]]\nname = "a"\nuri = "qemu:///system"\nslots = {slots}\n'
        f'[[vm.pools]]\ntemplate = "{TEMPLATE}"\nvcpus = 2\nmemory_mib = 1536\n'
    )
    cfg = config.load(str(toml), env={})
    pool = VmPool(cfg, DataPaths(tmp_path))
    image = Path("/nonexistent")
    pool.images = {
        TEMPLATE: TemplateImage(TEMPLATE, "0" * 16, image, image, image, image, image, "/b")
    }
    pool.hosts = [FakeHost("a", slots)]  # type: ignore[list-item]
    pool._started = True
    return pool


def driver(pool: VmPool) -> FakeDriver:
    return pool.hosts[0].driver  # type: ignore[return-value]


async def until(predicate: Any, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def refilling(pool: VmPool) -> AsyncIterator[None]:
    task = asyncio.create_task(pool.refill())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()


async def test_warm_clone_is_handed_out_then_destroyed_and_replaced(
    tmp_path: Path, fake_ssh: FakeSsh
) -> None:
    pool = make_pool(tmp_path, warm=1, slots=2)
    async with refilling(pool):
        await until(lambda: pool.status()["warm"] == 1)
        first = driver(pool).started[0]
        async with pool.builder(TEMPLATE, "7-chroot") as vm:
            assert (vm.name, vm.origin) == (first, "warm")
            # The task gets the login that found the clone ready, its builder warmed once.
            [ready] = fake_ssh.sessions[:1]
            assert vm.conn is ready and not ready.closed
            assert ready.commands == [f"{vm.builder} --warm"]
            assert pool.status()["busy"] == 1
            assert [v["task"] for v in pool.status()["vms"] if v["name"] == first] == ["7-chroot"]
            await until(lambda: pool.status()["warm"] == 1)  # a second slot: refilled at once
        assert first in driver(pool).destroyed
        assert ready.closed
        assert pool.status()["templates"][TEMPLATE]["warm"] == 1
        assert driver(pool).sizes[first] == VmSize(2, 1536, 0)
    assert driver(pool).running == set() and pool.vms == {}


async def test_cold_pool_boots_on_demand_and_leaves_nothing(
    tmp_path: Path, fake_ssh: FakeSsh
) -> None:
    pool = make_pool(tmp_path, warm=0, slots=1)
    async with refilling(pool):
        await asyncio.sleep(0.05)
        assert driver(pool).started == []
        async with pool.builder(TEMPLATE, "1-c") as vm:
            assert vm.origin == "cold"
        await until(lambda: not pool.vms)
        assert driver(pool).running == set()


async def test_one_slot_serves_tasks_one_after_another(tmp_path: Path, fake_ssh: FakeSsh) -> None:
    pool = make_pool(tmp_path, warm=0, slots=1)
    order: list[str] = []
    release = asyncio.Event()

    async def task(label: str) -> None:
        async with pool.builder(TEMPLATE, label):
            order.append(f"start {label}")
            await release.wait()
            order.append(f"end {label}")

    async with refilling(pool):
        first = asyncio.create_task(task("a"))
        await until(lambda: order == ["start a"])
        second = asyncio.create_task(task("b"))
        await until(lambda: pool.status()["waiting"] == 1)
        assert len(driver(pool).running) == 1
        release.set()
        await asyncio.gather(first, second)
    assert order == ["start a", "end a", "start b", "end b"]


async def test_cancel_while_booting_destroys_the_clone(tmp_path: Path, fake_ssh: FakeSsh) -> None:
    pool = make_pool(tmp_path, warm=0, slots=1)
    fake_ssh.ready.clear()  # sshd never answers

    async def use() -> None:
        async with pool.builder(TEMPLATE, "1-c"):
            raise AssertionError("never reached")

    async with refilling(pool):
        task = asyncio.create_task(use())
        await until(lambda: pool.status()["booting"] == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: not pool.vms)
        assert driver(pool).running == set()


async def test_a_failed_boot_is_an_infrastructure_error(tmp_path: Path, fake_ssh: FakeSsh) -> None:
    pool = make_pool(tmp_path, warm=0, slots=1)
    driver(pool).fail = True
    with pytest.raises(InfrastructureError, match="no luck"):
        async with pool.builder(TEMPLATE, "1-c"):
            pass
    assert not pool.vms
    await pool.close()


async def test_a_vm_that_dies_while_booting_fails_fast(tmp_path: Path, fake_ssh: FakeSsh) -> None:
    pool = make_pool(tmp_path, warm=0, slots=1)
    fake_ssh.ready.clear()

    async def kill_when_started() -> None:
        await until(lambda: driver(pool).running)
        driver(pool).running.clear()  # qemu killed

    killer = asyncio.create_task(kill_when_started())
    with pytest.raises(InfrastructureError, match=r"stopped while booting.*Kernel panic"):
        async with pool.builder(TEMPLATE, "1-c"):
            pass
    await killer
    assert not pool.vms
    await pool.close()


async def test_a_dead_warm_clone_is_not_handed_out(tmp_path: Path, fake_ssh: FakeSsh) -> None:
    pool = make_pool(tmp_path, warm=1, slots=2)
    async with refilling(pool):
        await until(lambda: pool.status()["warm"] == 1)
        dead = driver(pool).started[0]
        driver(pool).running.discard(dead)
        async with pool.builder(TEMPLATE, "1-c") as vm:
            assert vm.name != dead
        assert dead in driver(pool).destroyed


async def test_close_destroys_warm_and_booting_clones(tmp_path: Path, fake_ssh: FakeSsh) -> None:
    pool = make_pool(tmp_path, warm=2, slots=2)
    fake_ssh.ready.clear()
    async with refilling(pool):
        await until(lambda: pool.status()["booting"] == 2)
    assert driver(pool).running == set() and pool.vms == {}


async def test_a_host_that_went_away_under_a_task_boots_nothing_more(
    tmp_path: Path, fake_ssh: FakeSsh
) -> None:
    pool = make_pool(tmp_path, warm=0, slots=1)
    first, second = pool.hosts[0], FakeHost("b", 1)
    pool.hosts.append(second)  # type: ignore[arg-type]
    with pytest.raises(InfrastructureError):
        async with pool.builder(TEMPLATE, "1-c") as vm:
            assert vm.host == "a"  # the first listed wins a tie
            first.gone = "its libvirt connection broke: End of file"  # type: ignore[attr-defined]
            raise InfrastructureError("connection lost")
    assert not first.online and "End of file" in first.error  # type: ignore[attr-defined]
    async with pool.builder(TEMPLATE, "2-c") as vm:
        assert vm.host == "b"
    await pool.close()


async def test_a_retried_task_gets_its_next_vm_on_another_host(
    tmp_path: Path, fake_ssh: FakeSsh
) -> None:
    pool = make_pool(tmp_path, warm=0, slots=1)
    pool.hosts.append(FakeHost("b", 1))  # type: ignore[arg-type]
    with pytest.raises(InfrastructureError):
        async with pool.builder(TEMPLATE, "1-c") as vm:
            assert vm.host == "a"
            raise InfrastructureError("connection lost")  # the VM died; the host answers
    assert pool.hosts[0].online
    async with pool.builder(TEMPLATE, "1-c") as vm:
        assert vm.host == "b"  # its next attempt
    async with pool.builder(TEMPLATE, "2-c") as vm:
        assert vm.host == "a"  # anyone else: the first listed, as before
    await pool.close()


# The libvirt driver's overlay: its virtual size caps what a guest writes. -----


class FakeLibvirt:
    """A libvirt connection and its storage pool: records the XML it is given."""

    def __init__(self, overlay_dir: Path) -> None:
        self.overlay_dir = overlay_dir
        self.volumes: list[str] = []
        self.domains: list[str] = []

    def isAlive(self) -> bool:  # libvirt's method names
        return True

    def storagePoolLookupByName(self, name: str) -> FakeLibvirt:
        return self

    def isActive(self) -> bool:
        return True

    def createXML(self, xml: str, flags: int) -> Any:
        if xml.startswith("<volume"):
            self.volumes.append(xml)
            name = ET.fromstring(xml).findtext("name")
            return SimpleNamespace(path=lambda: str(self.overlay_dir / str(name)))
        self.domains.append(xml)
        return None


def qcow2_template(tmp_path: Path, virtual_bytes: int) -> TemplateImage:
    """A template whose base image has a qcow2 header declaring `virtual_bytes`."""
    folder = tmp_path / "template"
    folder.mkdir()
    base = folder / "base.qcow2"
    header = b"QFI\xfb" + (3).to_bytes(4, "big") + bytes(16) + virtual_bytes.to_bytes(8, "big")
    base.write_bytes(header + bytes(72))
    return TemplateImage(TEMPLATE, "0" * 16, folder, base, base, base, base, "/b")


def libvirt_driver(tmp_path: Path) -> tuple[LibvirtDriver, FakeLibvirt]:
    # A session URI: not the local system one, so no ACLs are touched.
    drv = LibvirtDriver("qemu:///session", "qemu", tmp_path / "overlays", 2, 1024)
    fake = FakeLibvirt(drv.overlay_dir)
    drv._conn = fake  # type: ignore[assignment]
    return drv, fake


def capacity(volume_xml: str) -> tuple[int, str]:
    el = ET.fromstring(volume_xml).find("capacity")
    assert el is not None and el.text is not None
    return int(el.text), el.attrib["unit"]


@pytest.mark.parametrize(
    ("disk_gib", "expected"),
    [
        (0, 3 << 30),  # no size configured: the template's own
        (20, 20 << 30),  # the configured size
        (1, 3 << 30),  # below the template's: the guest's filesystem must fit
    ],
)
async def test_the_overlay_always_has_an_explicit_virtual_size(
    tmp_path: Path, disk_gib: int, expected: int
) -> None:
    drv, fake = libvirt_driver(tmp_path)
    image = qcow2_template(tmp_path, 3 << 30)
    handle = await drv.start(image, "kopers-t-1", size=VmSize(2, 1024, disk_gib))
    [volume] = fake.volumes
    assert capacity(volume) == (expected, "bytes")
    assert ET.fromstring(volume).findtext("backingStore/path") == str(image.base_image)
    assert handle.overlay == drv.overlay_dir / overlay_volume_name("kopers-t-1")
    assert len(fake.domains) == 1


async def test_a_template_that_is_not_qcow2_makes_no_overlay(tmp_path: Path) -> None:
    drv, fake = libvirt_driver(tmp_path)
    image = qcow2_template(tmp_path, 1 << 30)
    image.base_image.write_bytes(b"\0" * 64)  # a raw image
    with pytest.raises(InfrastructureError, match="not a qcow2 image"):
        await drv.start(image, "kopers-t-2")
    assert fake.volumes == [] and fake.domains == []
