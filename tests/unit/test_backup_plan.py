"""What a backup holds and leaves out, and the small decisions around it (kopers.backup). Pure."""

from __future__ import annotations

import pytest

from kopers import backup, pgtools
from kopers.backup import Area, BackupError
from kopers.pgtools import Tool


def test_the_plan_takes_the_state_a_server_needs_and_leaves_out_what_it_rebuilds() -> None:
    names = ["pg", "results", "keys", "overlays", "sources", "incoming", "logs", "work"]
    plan = backup.plan_backup(names, results=True)
    assert plan.areas == (Area.KEYS, Area.LOGS, Area.RESULTS, Area.SOURCES)
    left = {item.name: item.reason for item in plan.left_out}
    assert set(left) == {"pg", "overlays", "incoming", "work"}
    assert "dump" in left["pg"]
    assert all(reason for reason in left.values())


def test_an_area_missing_on_disk_is_still_planned_and_unknown_entries_are_named() -> None:
    plan = backup.plan_backup(["keys", "mystery", ".hidden"], results=True)
    # An area with nothing in it yet is simply empty in the backup.
    assert plan.areas == (Area.KEYS, Area.LOGS, Area.RESULTS, Area.SOURCES)
    left = {item.name: item.reason for item in plan.left_out}
    assert set(left) == {"mystery", ".hidden"}
    assert "not known" in left["mystery"]


def test_no_results_leaves_the_results_tree_to_a_separate_copy() -> None:
    plan = backup.plan_backup(["results", "keys"], results=False)
    assert Area.RESULTS not in plan.areas
    assert any(item.name == "results" and "--no-results" in item.reason for item in plan.left_out)


@pytest.mark.parametrize(
    ("area", "parts", "is_dir", "kept"),
    [
        (Area.RESULTS, ("alice", "p", "debian-12-x86_64", "repodata"), True, True),
        (Area.RESULTS, ("alice", "p", "debian-12-x86_64", "repodata", "repomd.xml"), False, True),
        (Area.RESULTS, ("alice", "p", "pubkey.gpg"), False, True),
        (Area.RESULTS, ("@sig", "p", "c", "00000007-hello", "hello-1-1.noarch.rpm"), False, True),
        # The package index is re-read from the RPMs; copying a live SQLite file is unsafe.
        (Area.RESULTS, ("alice", "p", "c", ".kopers-index"), True, False),
        # The publisher's staging and trash directories, and its temporary files.
        (Area.RESULTS, ("alice", "p", "c", ".incoming-00000007-hello-x1"), True, False),
        (Area.RESULTS, ("alice", "p", "c", ".removing-00000003-old-ab12"), True, False),
        (Area.RESULTS, ("alice", "p", ".pubkey.gpg.k2j3"), False, False),
        # ... but a build taken out of the repository keeps its mark.
        (Area.RESULTS, ("alice", "p", "c", "00000003-old", ".kopers-removed"), False, True),
        (Area.KEYS, ("alice", "p", "pubring.kbx"), False, True),
        (Area.KEYS, ("alice", "p", "private-keys-v1.d"), True, True),
        (Area.KEYS, ("alice", "p", "private-keys-v1.d", "ABCD.key"), False, True),
        (Area.KEYS, ("alice", "p", "pubring.kbx.lock"), False, False),
        (Area.KEYS, ("alice", "p", ".#lk0x00005581.host.1234"), False, False),
        (Area.KEYS, ("alice", "p", "S.gpg-agent"), False, False),
        (Area.LOGS, ("00000007", "debian-12-x86_64", "builder-live.log"), False, True),
        (Area.SOURCES, ("00000007", "hello-1-1.src.rpm"), False, True),
    ],
)
def test_what_below_an_area_belongs_in_a_backup(
    area: Area, parts: tuple[str, ...], is_dir: bool, kept: bool
) -> None:
    assert backup.keep(area, parts, is_dir) is kept


def test_restored_files_get_modes_by_area_never_from_the_backup() -> None:
    assert backup.mode_for(Area.KEYS, is_dir=True) == 0o700
    assert backup.mode_for(Area.KEYS, is_dir=False) == 0o600
    for area in (Area.RESULTS, Area.SOURCES, Area.LOGS):
        assert backup.mode_for(area, is_dir=True) == 0o755
        assert backup.mode_for(area, is_dir=False) == 0o644


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ("pg_dump (PostgreSQL) 16.2\n", 16),
        ("pg_restore (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)\n", 15),
        ("pg_dump (PostgreSQL) 9.6.24\n", 9),
        ("pg_dump (PostgreSQL) 17beta1\n", 17),
        ("something else\n", None),
    ],
)
def test_a_tool_version_is_read_from_its_version_line(output: str, major: int | None) -> None:
    assert pgtools.parse_tool_version(output) == major


def test_the_oldest_tool_that_is_new_enough_is_chosen() -> None:
    found = [Tool("/a/pg_dump", 17), Tool("/b/pg_dump", 15), Tool("/c/pg_dump", 16)]
    assert pgtools.choose_tool("pg_dump", found, 16) == Tool("/c/pg_dump", 16)
    assert pgtools.choose_tool("pg_dump", found, 14) == Tool("/b/pg_dump", 15)


def test_no_tool_new_enough_is_one_clear_error_naming_what_was_found() -> None:
    with pytest.raises(BackupError) as err:
        pgtools.choose_tool("pg_dump", [Tool("/usr/lib/postgresql/15/bin/pg_dump", 15)], 16)
    text = err.value.message
    assert "pg_dump 16 or newer" in text
    assert "/usr/lib/postgresql/15/bin/pg_dump (15)" in text
    assert "postgresql-client-16" in text and "\n" not in text
    with pytest.raises(BackupError, match="no pg_restore was found"):
        pgtools.choose_tool("pg_restore", [], 16)


def test_server_version_numbers_give_the_major() -> None:
    assert pgtools.server_major(160002) == 16
    assert pgtools.server_major(90624) == 9


def test_the_highest_build_id_on_disk_comes_from_results_logs_and_sources() -> None:
    paths = [
        (Area.RESULTS, ("alice", "p", "debian-12-x86_64", "00000012-hello", "x.rpm")),
        (Area.RESULTS, ("alice", "p", "debian-12-x86_64", "repodata", "repomd.xml")),
        (Area.RESULTS, ("alice", "p", "pubkey.gpg")),
        (Area.LOGS, ("00000031", "srpm-build", "builder-live.log")),
        (Area.SOURCES, ("00000020", "hello.src.rpm")),
        (Area.SOURCES, ("notanid", "x")),
        (Area.KEYS, ("99999999", "pubring.kbx")),
    ]
    assert backup.highest_build_id(paths) == 31
    assert backup.highest_build_id([]) == 0


def test_restore_takes_only_an_empty_data_directory() -> None:
    assert backup.data_dir_refusal("/d", [], results_in_backup=True) is None
    refusal = backup.data_dir_refusal("/d", ["keys", "pg"], results_in_backup=True)
    assert refusal is not None and "/d is not empty" in refusal and "\n" not in refusal


def test_a_results_tree_synced_beforehand_is_taken_with_a_backup_made_without_one() -> None:
    assert backup.data_dir_refusal("/d", ["results"], results_in_backup=False) is None
    refusal = backup.data_dir_refusal("/d", ["results"], results_in_backup=True)
    assert refusal is not None and "not empty" in refusal
    refusal = backup.data_dir_refusal("/d", ["results", "keys"], results_in_backup=False)
    assert refusal is not None and "keys" in refusal


def test_an_interrupted_restore_is_named_as_such() -> None:
    refusal = backup.data_dir_refusal("/d", [backup.STAGING], results_in_backup=True)
    assert refusal is not None and "interrupted" in refusal


def test_the_dsn_password_travels_apart_from_the_command_line() -> None:
    assert pgtools.without_password("postgresql://kopers:s3cr%40t@db:5432/kopers") == (
        "postgresql://kopers@db:5432/kopers",
        "s3cr@t",
    )
    assert pgtools.without_password("postgresql://postgres:@/postgres?host=/tmp/x") == (
        "postgresql://postgres@/postgres?host=/tmp/x",
        None,
    )
    assert pgtools.without_password("postgres://db/kopers") == ("postgres://db/kopers", None)
