"""`kopers backup` of a running server, `kopers restore` into a new one, and dnf against it.

A server of its own builds one package (the module's one VM boot), is backed
up while it runs, and the backup is restored into a new, empty data
directory with its own embedded Postgres. A second `kopers serve` on that
directory, at its own address, then serves the same signed repository: dnf
installs the package with gpgcheck on, and the key it is checked with has
the original's fingerprint. Tests in this file run in order.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import service_dir
from tests.dnfroot import install_from
from tests.e2e.server import CHROOT, Server, keep_log

pytestmark = pytest.mark.e2e
PROJECT = "kept"
PACKAGE = "kopers-kept"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with service_dir("kopers-e2e-backup-") as path:
        yield path
        for log in sorted(path.glob("*/server.log")):
            keep_log(log, tmp_path_factory, f"backup-{log.parent.name}")


@pytest.fixture(scope="module")
def original(base: Path, make_srpm: Callable[..., Path]) -> Iterator[tuple[Server, int]]:
    """A running server with one succeeded build in alice/kept."""
    (base / "original").mkdir()
    server = Server.create(base / "original")
    server.start()
    try:
        server.user("alice")
        r = server.copr("alice", "create", PROJECT, "--chroot", CHROOT)
        assert r.returncode == 0, r.stderr
        r = server.copr("alice", "build", PROJECT, str(make_srpm(PACKAGE, "2.0")))
        assert r.returncode == 0 and "succeeded" in r.stdout, r.stdout + r.stderr
        match = re.search(r"Created builds: (\d+)", r.stdout)
        assert match, r.stdout
        yield server, int(match.group(1))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def backup_dir(original: tuple[Server, int], base: Path) -> Path:
    server, _ = original
    dest = base / "backup"
    r = server.kopers("backup", str(dest), check=False)
    assert r.returncode == 0, r.stderr
    assert f"backup written to {dest}" in r.stderr
    return dest


@pytest.fixture(scope="module")
def restored(backup_dir: Path, base: Path) -> Iterator[Server]:
    (base / "restored").mkdir()
    server = Server.create(base / "restored")
    r = server.kopers("restore", str(backup_dir), check=False)
    assert r.returncode == 0, r.stderr
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_backup_is_taken_while_the_server_runs(
    original: tuple[Server, int], backup_dir: Path
) -> None:
    server, build_id = original
    assert server.proc is not None and server.proc.poll() is None
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    build_dir = f"data/results/alice/{PROJECT}/{CHROOT}/{build_id:08d}-{PACKAGE}"
    assert f"{build_dir}/{PACKAGE}-2.0-1.deb12.kopers.noarch.rpm" in paths
    assert f"data/results/alice/{PROJECT}/{CHROOT}/repodata/repomd.xml.asc" in paths
    assert any(p.startswith(f"data/keys/alice/{PROJECT}/private-keys-v1.d/") for p in paths)
    assert not any(p.startswith(("data/pg/", "data/overlays/")) for p in paths)
    assert server.get(f"/api_3/build/{build_id}")["state"] == "succeeded"


def test_restore_refuses_a_data_directory_in_use(
    original: tuple[Server, int], backup_dir: Path
) -> None:
    server, _ = original
    r = server.kopers("restore", str(backup_dir), check=False)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "is not empty" in r.stderr, r.stderr


def fingerprint(key: str, home: Path) -> str:
    home.mkdir(mode=0o700)
    shown = subprocess.run(
        ["gpg", "--homedir", str(home), "--show-keys", "--with-colons"],
        input=key,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(line.split(":")[9] for line in shown.splitlines() if line.startswith("fpr:"))


def test_the_restored_server_serves_the_same_signed_repository(
    original: tuple[Server, int], restored: Server, tmp_path: Path
) -> None:
    server, build_id = original
    assert restored.url != server.url
    assert restored.get(f"/api_3/build/{build_id}")["state"] == "succeeded"
    key_path = f"/results/alice/{PROJECT}/pubkey.gpg"
    assert fingerprint(restored.get(key_path), tmp_path / "g1") == fingerprint(
        server.get(key_path), tmp_path / "g2"
    )

    repo_text = restored.get(f"/coprs/alice/{PROJECT}/repo/debian-12/dnf.repo?arch=x86_64")
    assert "gpgcheck=1" in repo_text and f"gpgkey={restored.url}/" in repo_text
    root = install_from(repo_text, PACKAGE, tmp_path)
    assert (root / f"usr/share/{PACKAGE}/hello.txt").read_text() == f"{PACKAGE} 2.0\n"

    # The restored server has nothing to build: it started no VM.
    assert restored.domains() == []
