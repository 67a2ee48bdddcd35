"""A backup's manifest: written, read back, and every way a hostile one is refused. Pure."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from kopers import backup
from kopers.backup import BackupRefused, FileEntry, Manifest

SHA = "ab" * 32
MIGRATIONS = ((1, "init"), (2, "accounts"), (4, "chains"))


def manifest(*paths: str, results: bool = True) -> Manifest:
    return Manifest(
        kopers_version="0.1.0",
        created="2025-01-02T03:04:05Z",
        migrations=MIGRATIONS,
        server_version="16.2",
        pg_dump_major=16,
        results=results,
        files=tuple(FileEntry(p, 10, SHA) for p in (backup.DUMP, *paths)),
    )


GOOD = manifest(
    "data/keys/alice/p/pubring.kbx",
    "data/results/alice/p/pubkey.gpg",
    "data/results/alice/p/debian-12-x86_64/00000001-hello/hello-1-1.noarch.rpm",
    "data/logs/00000001/debian-12-x86_64/builder-live.log",
)


def raw(m: Manifest) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(backup.encode_manifest(m))
    return data


def encoded(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def test_a_manifest_reads_back_as_written() -> None:
    assert backup.parse_manifest(backup.encode_manifest(GOOD)) == GOOD
    data = raw(GOOD)
    assert data["format"] == backup.FORMAT and data["version"] == backup.FORMAT_VERSION
    assert data["schema_version"] == 4
    assert data["files"][0] == {"path": "database.dump", "size": 10, "sha256": SHA}
    assert GOOD.schema_version == 4


def test_the_summary_counts_files_and_bytes() -> None:
    assert backup.describe(GOOD) == "schema version 4, database dump and 4 files, 50 bytes"


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": "something-else", "version": 1}',
        b"\xff\xfe",
    ],
)
def test_what_is_not_a_manifest_is_refused(bad: bytes) -> None:
    with pytest.raises(BackupRefused, match="manifest"):
        backup.parse_manifest(bad)


def test_a_newer_format_is_refused_as_such() -> None:
    data = raw(GOOD) | {"version": backup.FORMAT_VERSION + 1}
    with pytest.raises(BackupRefused, match="newer"):
        backup.parse_manifest(encoded(data))


@pytest.mark.parametrize(
    "change",
    [
        {"files": "x"},
        {"files": [{"path": "database.dump", "size": -1, "sha256": SHA}]},
        {"files": [{"path": "database.dump", "size": True, "sha256": SHA}]},
        {"files": [{"path": "database.dump", "size": 1, "sha256": "XYZ"}]},
        {"files": [{"path": "database.dump", "size": 1}]},
        {"migrations": [[1, "init"], [1, "init"]]},
        {"migrations": [[2, "b"], [1, "a"]]},
        {"migrations": []},
        {"migrations": [["1", "init"]]},
        {"database": {"file": "database.dump", "server_version": "16.2", "pg_dump_major": "16"}},
        {"database": "x"},
        {"results": "yes"},
        {"schema_version": 3},
    ],
)
def test_malformed_fields_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(BackupRefused):
        backup.parse_manifest(encoded(raw(GOOD) | change))


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "data/../../etc/passwd",
        "data/results/../keys/x",
        "data/results/./x",
        "data/results//x",
        "data/results/x/",
        "data/pg/base/1/1259",
        "data/overlays/x.qcow2",
        "data/results",
        "elsewhere/x",
        "data/results/a\x00b",
        "data/results/alice/p/line\nbreak",
        "data/logs/00000001/\x1b[2Jx",
        "data/results/alice/p/c/.kopers-index/index.sqlite",
        "data/keys/alice/p/S.gpg-agent",
        "manifest.json",
    ],
)
def test_entries_outside_what_a_backup_holds_are_refused(path: str) -> None:
    data = raw(GOOD)
    data["files"].append({"path": path, "size": 1, "sha256": SHA})
    with pytest.raises(BackupRefused):
        backup.parse_manifest(encoded(data))


def test_duplicates_and_a_file_that_is_also_a_directory_are_refused() -> None:
    data = raw(GOOD)
    data["files"].append(dict(data["files"][1]))
    with pytest.raises(BackupRefused, match="twice"):
        backup.parse_manifest(encoded(data))
    data = raw(manifest("data/results/a/b", "data/results/a/b/c"))
    with pytest.raises(BackupRefused, match="directory"):
        backup.parse_manifest(encoded(data))


def test_the_database_dump_must_be_there() -> None:
    data = raw(GOOD)
    data["files"] = data["files"][1:]
    with pytest.raises(BackupRefused, match="database"):
        backup.parse_manifest(encoded(data))


def test_results_in_a_backup_made_without_them_are_refused() -> None:
    data = raw(GOOD) | {"results": False}
    with pytest.raises(BackupRefused, match="results"):
        backup.parse_manifest(encoded(data))


def test_the_tree_must_match_the_manifest_exactly() -> None:
    sizes = {f.path: f.size for f in GOOD.files}
    dirs = {"data", "data/keys", "data/keys/alice", "data/keys/alice/p", "data/results"}
    backup.check_tree(GOOD, sizes, dirs)
    with pytest.raises(BackupRefused, match="missing"):
        backup.check_tree(GOOD, {k: v for k, v in sizes.items() if "keys" not in k}, set())
    with pytest.raises(BackupRefused, match="not in its manifest"):
        backup.check_tree(GOOD, sizes | {"data/keys/extra": 1}, set())
    with pytest.raises(BackupRefused, match="size"):
        backup.check_tree(GOOD, sizes | {backup.DUMP: 11}, set())
    with pytest.raises(BackupRefused, match="not in its manifest"):
        backup.check_tree(GOOD, sizes, {"data/sources"})


def test_migrations_must_be_this_kopers_own() -> None:
    known = [(1, "init"), (2, "accounts"), (4, "chains"), (5, "storage")]
    backup.check_migrations(GOOD, known)  # an older backup: newer migrations apply later
    with pytest.raises(BackupRefused, match="newer Kopers"):
        backup.check_migrations(GOOD, known[:2])
    with pytest.raises(BackupRefused, match="chains"):
        backup.check_migrations(GOOD, [(1, "init"), (2, "accounts"), (4, "other"), (5, "s")])
    with pytest.raises(BackupRefused, match="3"):
        backup.check_migrations(GOOD, [(1, "init"), (2, "accounts"), (3, "x"), (4, "chains")])


def test_files_are_mapped_to_their_place_in_the_data_directory() -> None:
    assert backup.data_file(backup.DUMP) is None
    assert backup.data_file("data/keys/alice/p/pubring.kbx") == (
        backup.Area.KEYS,
        ("alice", "p", "pubring.kbx"),
    )


def test_a_manifest_is_plain_data() -> None:
    changed = replace(GOOD, results=False, files=GOOD.files[:1])
    assert backup.parse_manifest(backup.encode_manifest(changed)) == changed
