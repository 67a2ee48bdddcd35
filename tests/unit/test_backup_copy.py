"""What `kopers backup` copies out of a data directory, and what it leaves (kopers.backupio)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from kopers import backup
from kopers.backup import Area, BackupError
from kopers.backupio import copy_areas, in_thread

CHROOT = "results/alice/p/debian-12-x86_64"


def write(root: Path, rel: str, content: bytes = b"x") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_the_copy_takes_state_and_leaves_scratch_links_and_sockets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kept = [
        f"{CHROOT}/repodata/repomd.xml",
        f"{CHROOT}/repodata/repomd.xml.asc",
        f"{CHROOT}/00000002-hello/hello-1-1.noarch.rpm",
        f"{CHROOT}/00000001-old/.kopers-removed",
        "results/alice/p/pubkey.gpg",
        "keys/alice/p/pubring.kbx",
        "keys/alice/p/private-keys-v1.d/AB.key",
        "sources/00000002/hello-1-1.src.rpm",
        "logs/00000002/debian-12-x86_64/builder-live.log",
    ]
    left = [
        f"{CHROOT}/.kopers-index/index.sqlite",
        f"{CHROOT}/.incoming-00000003-new-x1/new-1-1.noarch.rpm",
        "results/alice/p/.pubkey.gpg.tmp1",
        "keys/alice/p/pubring.kbx.lock",
        "keys/alice/p/.#lk0x0000.host.77",
        "overlays/clone.qcow2",
        "work/00000003-x/result.rpm",
    ]
    for rel in kept + left:
        write(data, rel, rel.encode())
    (data / "sources" / "00000002" / "link").symlink_to("/etc/hostname")
    os.mkfifo(data / "keys" / "alice" / "p" / "S.gpg-agent")  # as gpg-agent's socket would be
    os.mkfifo(data / "logs" / "00000002" / "fifo")
    plan = backup.plan_backup([p.name for p in data.iterdir()], results=True)
    out = tmp_path / "out"
    files = copy_areas(data, out, plan.areas, print)

    assert sorted(f.path for f in files) == sorted(f"data/{rel}" for rel in kept)
    for entry in files:
        content = (out / entry.path).read_bytes()
        assert entry.size == len(content)
        assert entry.sha256 == hashlib.sha256(content).hexdigest()
    copied = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() or p.is_symlink()}
    assert copied == {f.path for f in files}  # nothing on disk the manifest would not list
    assert all(backup.data_file(f.path) for f in files)  # and restore takes every path


def test_no_results_copies_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write(data, f"{CHROOT}/repodata/repomd.xml")
    write(data, "keys/alice/p/pubring.kbx")
    plan = backup.plan_backup(["results", "keys"], results=False)
    files = copy_areas(data, tmp_path / "out", plan.areas, print)
    assert [f.path for f in files] == ["data/keys/alice/p/pubring.kbx"]
    assert Area.RESULTS not in plan.areas


async def test_a_cancelled_copy_ends_its_thread_before_the_cancel_goes_on() -> None:
    """Cleanup after a cancel must not race a thread still writing files."""
    ended = threading.Event()

    def work(stop: threading.Event) -> None:
        stop.wait(60)  # the copy checks `stop` between chunks
        time.sleep(0.05)
        ended.set()
        raise BackupError("interrupted")

    task = asyncio.ensure_future(in_thread(work))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended.is_set()


def test_a_copy_told_to_stop_stops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write(data, "keys/alice/p/pubring.kbx")
    stop = threading.Event()
    stop.set()
    with pytest.raises(BackupError, match="interrupted"):
        copy_areas(data, tmp_path / "out", (Area.KEYS,), print, stop)
