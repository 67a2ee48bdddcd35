"""Reading pg_restore's output as data only, never as SQL (kopers.dumpscript). Pure."""

from __future__ import annotations

import pytest

from kopers import dumpscript
from kopers.backup import BackupRefused
from kopers.dumpscript import CopyStart, SetVal, TocEntry

HEADER = b"""--
-- PostgreSQL database dump
--

\\restrict 3fTJk0AbCd
-- Dumped from database version 16.2

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET default_table_access_method = heap;

--
-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: postgres
--
"""


def test_header_comments_and_settings_are_skipped() -> None:
    for line in HEADER.splitlines():
        assert dumpscript.parse_line(line) is None, line


def test_copy_and_setval_are_read() -> None:
    line = b"COPY public.users (id, name, is_admin, created_on) FROM stdin;"
    assert dumpscript.parse_line(line) == CopyStart(
        "users", ("id", "name", "is_admin", "created_on")
    )
    quoted = b'COPY public."order" ("user", "a ""b""") FROM stdin;'
    assert dumpscript.parse_line(quoted) == CopyStart("order", ("user", 'a "b"'))
    setval = b"SELECT pg_catalog.setval('public.builds_id_seq', 42, true);"
    assert dumpscript.parse_line(setval) == SetVal("builds_id_seq", 42, True)
    assert dumpscript.parse_line(b"SELECT pg_catalog.setval('public.x_seq', 1, false);") == SetVal(
        "x_seq", 1, False
    )
    assert dumpscript.parse_line(b"\\unrestrict 3fTJk0AbCd") is None


@pytest.mark.parametrize(
    "line",
    [
        b"DROP TABLE users;",
        b"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1';",
        b"COPY public.users (id) TO PROGRAM 'sh -c id';",
        b"COPY public.users (id) FROM PROGRAM 'sh -c id';",
        b"COPY public.users (id) FROM '/etc/passwd';",
        b"COPY pg_catalog.pg_authid (rolname) FROM stdin;",
        b"COPY public.users (id) FROM stdin; DROP TABLE users;",
        b"COPY public.users FROM stdin;",
        b"COPY public.users () FROM stdin;",
        b"SELECT pg_catalog.setval('public.x', 1, true); DROP TABLE users;",
        b"SELECT pg_catalog.setval('pg_catalog.x', 1, true);",
        b"SELECT pg_catalog.setval('public.x', 1, maybe);",
        b"SELECT pg_catalog.setval('public.x', -1, true);",
        b"SELECT pg_read_file('/etc/shadow');",
        b"\\! sh -c id",
        b"\\copy users from '/etc/passwd'",
        b"\\i /etc/passwd",
        b"SET role = x; DROP TABLE users;",
        b"ALTER TABLE users DISABLE TRIGGER ALL;",
        b"  COPY public.users (id) FROM stdin;",
        b"COPY public.users (id) FROM stdin;\x00",
    ],
)
def test_anything_else_is_refused(line: bytes) -> None:
    with pytest.raises(BackupRefused):
        dumpscript.parse_line(line)


def test_the_end_of_a_copy_block_is_the_line_a_backslash_and_a_dot() -> None:
    assert dumpscript.is_end_of_data(b"\\.")
    assert not dumpscript.is_end_of_data(b"1\t\\\\.")
    assert not dumpscript.is_end_of_data(b"\\.x")


TOC = """;
; Archive created at 2025-01-02 19:59:55 UTC
;     dbname: postgres
;
; Selected TOC Entries:
;
252; 1255 16589 FUNCTION public events_refuse_change() postgres
217; 1259 16385 TABLE public users postgres
2880; 0 16599 TABLE DATA public batches postgres
2869; 0 16459 TABLE DATA public builds postgres
2860; 0 16384 TABLE DATA public schema_migrations postgres
2862; 0 16393 TABLE DATA public users postgres
2918; 0 0 SEQUENCE SET public builds_id_seq postgres
2683; 2606 16419 FK CONSTRAINT public tokens tokens_user_id_fkey postgres
"""


def test_the_archive_contents_give_its_data_entries() -> None:
    assert dumpscript.parse_toc(TOC) == [
        TocEntry(2880, dumpscript.TABLE_DATA, "batches"),
        TocEntry(2869, dumpscript.TABLE_DATA, "builds"),
        TocEntry(2860, dumpscript.TABLE_DATA, "schema_migrations"),
        TocEntry(2862, dumpscript.TABLE_DATA, "users"),
        TocEntry(2918, dumpscript.SEQUENCE_SET, "builds_id_seq"),
    ]


def test_data_of_another_schema_in_the_archive_is_refused() -> None:
    with pytest.raises(BackupRefused, match="evil"):
        dumpscript.parse_toc("17; 0 1 TABLE DATA evil users postgres\n")


def test_tables_load_parents_first() -> None:
    tables = ["builds", "projects", "users", "tokens", "batches", "events"]
    fks = [
        ("builds", "projects"),
        ("builds", "users"),
        ("builds", "batches"),
        ("projects", "users"),
        ("tokens", "users"),
        ("batches", "batches"),  # a table referring to itself loads in one COPY
        ("events", "users"),
    ]
    order = dumpscript.load_order(tables, fks)
    assert sorted(order) == sorted(tables)
    for child, parent in fks:
        assert order.index(parent) <= order.index(child)
    assert order == dumpscript.load_order(list(reversed(tables)), fks)  # deterministic


def test_a_foreign_key_cycle_is_reported() -> None:
    with pytest.raises(BackupRefused, match="cycle"):
        dumpscript.load_order(["a", "b"], [("a", "b"), ("b", "a")])


def test_the_restore_list_names_data_in_load_order_then_sequences() -> None:
    entries = dumpscript.parse_toc(TOC)
    listing = dumpscript.restore_list(entries, ["users", "batches", "builds", "schema_migrations"])
    assert listing.splitlines() == [
        "2862; 0 0 TABLE DATA public users -",
        "2880; 0 0 TABLE DATA public batches -",
        "2869; 0 0 TABLE DATA public builds -",
        "2860; 0 0 TABLE DATA public schema_migrations -",
        "2918; 0 0 SEQUENCE SET public builds_id_seq -",
    ]


def test_data_for_a_table_the_schema_lacks_is_refused() -> None:
    entries = [TocEntry(1, dumpscript.TABLE_DATA, "evil")]
    with pytest.raises(BackupRefused, match="evil"):
        dumpscript.restore_list(entries, ["users"])


def test_a_copy_must_name_the_tables_columns_exactly() -> None:
    known = {"users": frozenset({"id", "name"})}
    dumpscript.check_copy(CopyStart("users", ("name", "id")), known)
    with pytest.raises(BackupRefused, match="evil"):
        dumpscript.check_copy(CopyStart("evil", ("id",)), known)
    with pytest.raises(BackupRefused, match="columns"):
        dumpscript.check_copy(CopyStart("users", ("id",)), known)
    with pytest.raises(BackupRefused, match="columns"):
        dumpscript.check_copy(CopyStart("users", ("id", "name", "is_admin")), known)
    with pytest.raises(BackupRefused, match="columns"):
        dumpscript.check_copy(CopyStart("users", ("id", "id")), known)
