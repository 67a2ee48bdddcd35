"""`kopers restore` on backups that were tampered with, and on data directories in use.

Everything here is refused before any database is touched, so these run on
plain files: a backup tree is written by hand, then damaged.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from kopers import backup, restoreio
from kopers import config as config_mod
from kopers.backup import BackupError, BackupRefused, FileEntry, Manifest
from kopers.backupio import check_destination
from kopers.config import Config

REPO = Path(__file__).resolve().parents[2]
FILES = {
    backup.DUMP: b"PGDMP not really a dump",
    "data/keys/alice/p/pubring.kbx": b"public keyring",
    "data/keys/alice/p/private-keys-v1.d/ABCD.key": b"secret key",
    "data/results/alice/p/pubkey.gpg": b"-----BEGIN PGP PUBLIC KEY BLOCK-----",
    "data/results/alice/p/debian-12-x86_64/00000001-hello/hello-1-1.noarch.rpm": b"rpm",
    "data/logs/00000001/debian-12-x86_64/builder-live.log": b"kopers: hello\n",
}


def write_backup(root: Path, files: dict[str, bytes] | None = None) -> Manifest:
    files = FILES if files is None else files
    root.mkdir()
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    m = Manifest(
        kopers_version="0.1.0",
        created="2025-01-02T03:04:05Z",
        migrations=((1, "init"),),
        server_version="16.2",
        pg_dump_major=16,
        results=True,
        files=tuple(
            FileEntry(rel, len(content), hashlib.sha256(content).hexdigest())
            for rel, content in files.items()
        ),
    )
    (root / backup.MANIFEST).write_bytes(backup.encode_manifest(m))
    return m


def config(data_dir: Path) -> Config:
    return config_mod.load(str(REPO / "kopers.toml"), env={"KOPERS_DATA_DIR": str(data_dir)})


def test_a_good_backup_is_verified_and_copied_with_modes_by_area(tmp_path: Path) -> None:
    src = tmp_path / "backup"
    written = write_backup(src)
    assert restoreio.verify_source(src) == written
    staging = tmp_path / "staging"
    staging.mkdir()
    restoreio.copy_verified(src, staging, written)
    key = staging / "data/keys/alice/p/private-keys-v1.d/ABCD.key"
    assert key.read_bytes() == b"secret key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for folder in (staging / "data/keys", staging / "data/keys/alice", key.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    rpm = staging / "data/results/alice/p/debian-12-x86_64/00000001-hello/hello-1-1.noarch.rpm"
    assert stat.S_IMODE(rpm.stat().st_mode) == 0o644
    assert stat.S_IMODE(rpm.parent.stat().st_mode) == 0o755
    assert stat.S_IMODE((staging / "data").stat().st_mode) == 0o700
    dump = restoreio.staged_dump(staging)
    assert dump.read_bytes() == FILES[backup.DUMP]
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600


def test_a_symlinked_file_is_refused_even_with_the_right_checksum(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"host secret")
    files = dict(FILES) | {"data/results/alice/p/stolen": secret.read_bytes()}
    src = tmp_path / "backup"
    write_backup(src, files)
    (src / "data/results/alice/p/stolen").unlink()
    (src / "data/results/alice/p/stolen").symlink_to(secret)
    with pytest.raises(BackupRefused, match="symbolic link"):
        restoreio.verify_source(src)


def test_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "backup"
    write_backup(src)
    elsewhere = tmp_path / "elsewhere"
    (src / "data/keys").rename(elsewhere)
    (src / "data/keys").symlink_to(elsewhere)
    with pytest.raises(BackupRefused, match="symbolic link"):
        restoreio.verify_source(src)


def test_a_symlinked_manifest_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "backup"
    write_backup(src)
    (src / backup.MANIFEST).rename(tmp_path / "m.json")
    (src / backup.MANIFEST).symlink_to(tmp_path / "m.json")
    with pytest.raises(BackupRefused, match="manifest"):
        restoreio.verify_source(src)


def test_a_file_the_manifest_does_not_list_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "backup"
    write_backup(src)
    (src / "data/keys/alice/p/planted").write_bytes(b"x")
    with pytest.raises(BackupRefused, match="not in its manifest"):
        restoreio.verify_source(src)


def test_a_special_file_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "backup"
    write_backup(src)
    os.mkfifo(src / "data/results/alice/fifo")
    with pytest.raises(BackupRefused, match="not a regular file"):
        restoreio.verify_source(src)


def test_a_missing_manifest_is_one_clear_refusal(tmp_path: Path) -> None:
    src = tmp_path / "backup"
    write_backup(src)
    (src / backup.MANIFEST).unlink()
    with pytest.raises(BackupRefused, match="no manifest"):
        restoreio.verify_source(src)
    with pytest.raises(BackupRefused, match="not a directory"):
        restoreio.verify_source(tmp_path / "nowhere")


def test_changed_content_of_the_same_size_is_refused_while_copying(tmp_path: Path) -> None:
    src = tmp_path / "backup"
    written = write_backup(src)
    (src / "data/keys/alice/p/pubring.kbx").write_bytes(b"PUBLIC keyring")
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(BackupRefused, match="checksum"):
        restoreio.copy_verified(src, staging, written)


async def test_a_tampered_backup_leaves_no_data_directory_behind(tmp_path: Path) -> None:
    src = tmp_path / "backup"
    write_backup(src)
    (src / backup.DUMP).write_bytes(b"PGDMP not really a dumq")  # same size, one byte off
    data_dir = tmp_path / "data"
    with pytest.raises(BackupRefused, match="checksum"):
        await restoreio.restore_backup(config(data_dir), src, lambda line: None)
    assert not data_dir.exists()
    data_dir.mkdir()
    with pytest.raises(BackupRefused, match="checksum"):
        await restoreio.restore_backup(config(data_dir), src, lambda line: None)
    assert list(data_dir.iterdir()) == []


async def test_a_data_directory_in_use_is_refused_and_left_alone(tmp_path: Path) -> None:
    src = tmp_path / "backup"
    write_backup(src)
    data_dir = tmp_path / "data"
    (data_dir / "keys").mkdir(parents=True)
    (data_dir / "keys" / "mine").write_text("keep me")
    with pytest.raises(BackupError, match="is not empty") as err:
        await restoreio.restore_backup(config(data_dir), src, lambda line: None)
    assert "\n" not in err.value.message
    assert (data_dir / "keys" / "mine").read_text() == "keep me"


def test_a_backup_goes_only_where_nothing_is(tmp_path: Path) -> None:
    check_destination(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_destination(tmp_path / "empty")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        check_destination(tmp_path / "full")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BackupError, match="not a directory"):
        check_destination(tmp_path / "file")
    with pytest.raises(BackupError, match="does not exist"):
        check_destination(tmp_path / "no" / "parent")


def test_a_fifo_put_in_place_of_a_file_after_the_check_is_refused_not_waited_on(
    tmp_path: Path,
) -> None:
    src = tmp_path / "backup"
    written = write_backup(src)
    log = src / "data/logs/00000001/debian-12-x86_64/builder-live.log"
    log.unlink()
    os.mkfifo(log)
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(BackupRefused, match="not a regular file"):
        restoreio.copy_verified(src, staging, written)
