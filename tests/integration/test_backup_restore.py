"""`kopers backup` and `kopers restore` on a real Postgres, gpg and createrepo_c, without VMs.

A project with a signing key, a build row with its stored source, and a
published package make the install; it is backed up while its Kopers runs,
and restored into an empty external database and, once more, into the
embedded Postgres of a new data directory. The restored install must hold
the same rows, the same key and the same results, and publish again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import createrepo_c as cr
import pytest

from kopers import backup
from kopers import config as config_mod
from kopers.backup import BackupRefused
from kopers.backupio import take_backup
from kopers.config import Config
from kopers.db.database import embedded_dsn
from kopers.db.migrations import migrate
from kopers.publish.signing import Signer
from kopers.restoreio import restore_backup
from tests.conftest import PgServer, fresh_database, service_dir
from tests.integration.conftest import CHROOT, REPO, create, serving, table_rows
from tests.rpms import noarch_rpm

pytestmark = pytest.mark.integration
OPTS = {"ownername": "alice", "projectname": "tools", "chroots": None, "timeout": "3600"}


@pytest.fixture
async def empty_dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """A second fresh, empty database, to restore into."""
    async with fresh_database(pg_server) as url:
        yield url


def config(data_dir: Path, dsn: str = "") -> Config:
    env = {"KOPERS_DATA_DIR": str(data_dir), "KOPERS_DATABASE_DSN": dsn}
    return config_mod.load(str(REPO / "kopers.toml"), env=env)


def tree(root: Path) -> dict[str, str]:
    """path -> SHA-256 of every file a backup holds below `root` (an area)."""
    found = {}
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        area = backup.Area(root.name)
        kept = all(backup.keep(area, parts[: i + 1], i + 1 < len(parts)) for i in range(len(parts)))
        if kept and path.is_file() and not path.is_symlink():
            found["/".join(parts)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def packages(chroot_dir: Path) -> set[str]:
    md = cr.Metadata()
    md.locate_and_load_xml(str(chroot_dir))
    keys = md.keys()
    return {md.get(key).location_href for key in keys}


async def rows_of(dsn: str) -> dict[str, list[str]]:
    """Every table's rows, with jsonb decoded as Kopers' own pool decodes it."""

    async def init(conn: asyncpg.Connection) -> None:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=init)
    assert pool is not None
    try:
        return await table_rows(pool)
    finally:
        await pool.close()


async def test_a_running_install_round_trips_through_a_backup(
    dsn: str, empty_dsn: str, tmp_path: Path, make_srpm: Callable[..., Path]
) -> None:
    source = config(tmp_path / "a", dsn)
    said: list[str] = []
    async with serving(source) as api:
        assert (await create(api, "alice", "alice", "tools"))[0] == 200
        status, build = await api.upload("alice", make_srpm("hello", "1.0"), OPTS)
        assert status == 200, build
        rpm, _ = noarch_rpm(tmp_path, "hello")
        await api.kopers.publisher.publish("alice", "tools", CHROOT, build["id"], "hello", [rpm])
        fingerprint = await Signer(tmp_path / "a" / "keys").fingerprint("alice", "tools")
        alice = api.auth["alice"]

        manifest = await take_backup(source, tmp_path / "backup", results=True, say=said.append)
        before = await table_rows(api.kopers.store.pool)

    assert any(line.startswith("leaving out overlays") for line in said), said
    assert stat.S_IMODE((tmp_path / "backup").stat().st_mode) == 0o700
    listed = {f.path for f in manifest.files}
    chroot = f"data/results/alice/tools/{CHROOT}"
    assert f"{chroot}/repodata/repomd.xml" in listed
    assert f"{chroot}/{build['id']:08d}-hello/{rpm.name}" in listed
    assert f"data/sources/{build['id']:08d}/hello-1.0-1.src.rpm" in listed
    assert not any(".kopers-index" in p or "/S.gpg-agent" in p for p in listed)
    assert manifest.schema_version == max(v for v, _ in manifest.migrations)

    target = config(tmp_path / "b", empty_dsn)
    await restore_backup(target, tmp_path / "backup", said.append)
    assert await rows_of(empty_dsn) == before
    for area in backup.Area:
        assert tree(tmp_path / "b" / area) == tree(tmp_path / "a" / area), area
    assert not (tmp_path / "b" / backup.STAGING).exists()
    assert await Signer(tmp_path / "b" / "keys").fingerprint("alice", "tools") == fingerprint
    home = tmp_path / "b" / "keys" / "alice" / "tools"
    for path in [home.parent, *home.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path

    # The restored install runs: its tokens work, and it publishes with the same key.
    async with serving(target, users=False) as api:
        api.auth["alice"] = alice
        status, same = await api.call("GET", f"/api_3/build/{build['id']}", "alice")
        assert status == 200 and same["source_package"]["name"] == "hello"
        again, _ = noarch_rpm(tmp_path, "again")
        next_id = await api.kopers.store.pool.fetchval("SELECT nextval('builds_id_seq')")
        assert next_id > build["id"]
        await api.kopers.publisher.publish("alice", "tools", CHROOT, next_id, "again", [again])
    chroot_dir = tmp_path / "b" / "results" / "alice" / "tools" / CHROOT
    assert packages(chroot_dir) == {
        f"{build['id']:08d}-hello/{rpm.name}",
        f"{next_id:08d}-again/{again.name}",
    }
    pubkey = tmp_path / "b" / "results" / "alice" / "tools" / "pubkey.gpg"
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(gnupg), "--batch", "--quiet"]
    subprocess.run([*gpg, "--import", str(pubkey)], check=True, capture_output=True)
    repomd = chroot_dir / "repodata" / "repomd.xml"
    check = subprocess.run(
        [*gpg, "--verify", f"{repomd}.asc", str(repomd)], capture_output=True, text=True
    )
    subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "all"], capture_output=True)
    assert check.returncode == 0, check.stderr

    # The split for large installs, into the embedded Postgres of a new data
    # directory: a backup without results, the results tree copied apart after
    # it, and the backup restored around that copy.
    split = await take_backup(source, tmp_path / "split", results=False, say=said.append)
    assert not any(f.path.startswith("data/results/") for f in split.files)
    with service_dir("kopers-test-restore-") as base:
        data = base / "data"
        shutil.copytree(tmp_path / "a" / "results", data / "results", ignore=hidden)
        await restore_backup(config(data), tmp_path / "split", said.append)
        assert (data / "pg" / "PG_VERSION").is_file()
        assert sorted(os.listdir(data)) == sorted(
            ["incoming", "keys", "logs", "overlays", "pg", "results", "sources", "work"]
        )
        assert tree(data / "keys") == tree(tmp_path / "a" / "keys")
        uri, server = embedded_dsn(data)
        try:
            assert await rows_of(uri) == before
        finally:
            server.cleanup()


def hidden(folder: str, names: list[str]) -> list[str]:
    """What an rsync with --exclude='.*' leaves out."""
    return [n for n in names if n.startswith(".")]


async def test_data_outside_the_kopers_schema_is_refused_and_nothing_is_kept(
    dsn: str, empty_dsn: str, tmp_path: Path
) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert pool is not None
    try:
        await migrate(pool)
        await pool.execute("CREATE TABLE planted (x int); INSERT INTO planted VALUES (1)")
    finally:
        await pool.close()
    (tmp_path / "a").mkdir()
    await take_backup(config(tmp_path / "a", dsn), tmp_path / "backup", results=True, say=print)

    target = tmp_path / "b"
    with pytest.raises(BackupRefused, match="planted"):
        await restore_backup(config(target, empty_dsn), tmp_path / "backup", print)
    assert not target.exists()
    conn = await asyncpg.connect(empty_dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
    finally:
        await conn.close()
    assert tables == 0


async def test_a_database_that_is_not_empty_is_refused_before_anything_is_written(
    dsn: str, tmp_path: Path
) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert pool is not None
    try:
        await migrate(pool)
    finally:
        await pool.close()
    (tmp_path / "a").mkdir()
    await take_backup(config(tmp_path / "a", dsn), tmp_path / "backup", results=True, say=print)
    with pytest.raises(backup.BackupError, match="database is not empty"):
        await restore_backup(config(tmp_path / "b", dsn), tmp_path / "backup", print)
    assert not (tmp_path / "b").exists()
