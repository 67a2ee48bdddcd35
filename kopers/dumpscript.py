"""Reading a database dump as data only. Pure.

A custom-format dump is replayed by pg_restore as SQL text stored in the
archive, and a tampered archive can store any SQL there: run as the
embedded server's superuser, `COPY ... TO PROGRAM` would run commands on
the host. So restore never executes what the archive says. It makes the
schema with this Kopers' own migrations, asks pg_restore only for the data
entries, as a script on stdout (`pg_restore -L list -f -`), and reads that
script here, line by line, as data:

- `COPY public.<table> (<columns>) FROM stdin;` starts a table's rows, which
  end at a line `\\.`; the rows go to Postgres through COPY FROM STDIN with
  the table and columns quoted by the loader, after `check_copy` has held
  them to the schema the migrations made;
- `SELECT pg_catalog.setval('public.<sequence>', N, true|false);` gives a
  sequence's value, set by the loader with N as a parameter;
- comments, `SET` lines, the search_path reset and `\\restrict` lines are
  skipped;
- anything else refuses the backup.

The archive's table of contents (`pg_restore -l`) gives the data entries;
`load_order` puts tables before the tables that refer to them, so each COPY
meets the foreign keys of the schema already in place.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kopers.backup import BackupRefused

TABLE_DATA = "TABLE DATA"
SEQUENCE_SET = "SEQUENCE SET"
SCHEMA = "public"
END_OF_DATA = b"\\."

_IDENT = rb'(?:[a-z_][a-z0-9_$]*|"(?:[^"\x00-\x1f]|"")+")'
_COPY = re.compile(
    rb"COPY public\.(" + _IDENT + rb") \((" + _IDENT + rb"(?:, " + _IDENT + rb")*)\) FROM stdin;"
)
_IDENT_ITEM = re.compile(_IDENT)
_SETVAL = re.compile(
    rb"SELECT pg_catalog\.setval\('public\.([a-z_][a-z0-9_$]*)', (\d{1,19}), (true|false)\);"
)
_SKIPPED = (
    re.compile(rb"--[^\x00]*"),
    re.compile(rb"SET [a-z_]+ = [^;\x00]*;"),
    re.compile(rb"SELECT pg_catalog\.set_config\('search_path', '', false\);"),
    re.compile(rb"\\(?:un)?restrict [A-Za-z0-9]+"),
)
_TOC = re.compile(r"(\d+); \d+ \d+ (TABLE DATA|SEQUENCE SET) (\S+) (\S+)(?: \S+)?")


@dataclass(frozen=True, slots=True)
class CopyStart:
    table: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetVal:
    sequence: str
    value: int
    called: bool


@dataclass(frozen=True, slots=True)
class TocEntry:
    dump_id: int
    kind: str  # TABLE_DATA or SEQUENCE_SET
    name: str


def parse_line(line: bytes) -> CopyStart | SetVal | None:
    """One script line outside a COPY block: what it says, or None to skip it."""
    if not line or any(p.fullmatch(line) for p in _SKIPPED):
        return None
    copy = _COPY.fullmatch(line)
    if copy is not None:
        columns = tuple(_ident(m.group(0)) for m in _IDENT_ITEM.finditer(copy.group(2)))
        return CopyStart(_ident(copy.group(1)), columns)
    setval = _SETVAL.fullmatch(line)
    if setval is not None:
        return SetVal(setval.group(1).decode(), int(setval.group(2)), setval.group(3) == b"true")
    shown = line[:60].decode("utf-8", "replace")
    raise BackupRefused(f"the database dump holds a statement restore does not take: {shown!r}")


def _ident(raw: bytes) -> str:
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise BackupRefused("the database dump names a table or column that is not UTF-8") from None
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text


def is_end_of_data(line: bytes) -> bool:
    """Whether a line ends a COPY block (a row's own backslashes are always escaped)."""
    return line == END_OF_DATA


def parse_toc(text: str) -> list[TocEntry]:
    """The data entries of an archive's table of contents (`pg_restore -l`), in its order."""
    entries = []
    for line in text.splitlines():
        if not line or line.startswith(";"):
            continue
        match = _TOC.fullmatch(line)
        if match is None:
            if TABLE_DATA in line or SEQUENCE_SET in line:
                raise BackupRefused(f"the database dump has an entry restore cannot read: {line!r}")
            continue  # schema entries: the schema comes from the migrations
        if match.group(3) != SCHEMA:
            raise BackupRefused(f"the database dump holds data outside the schema: {line!r}")
        entries.append(TocEntry(int(match.group(1)), match.group(2), match.group(4)))
    return entries


def load_order(tables: Iterable[str], foreign_keys: Iterable[tuple[str, str]]) -> list[str]:
    """Tables with every table they refer to before them; ties by name.

    `foreign_keys` are (referring table, referred table). A table referring to
    itself needs no order (its rows arrive in one COPY, checked at its end).
    """
    names = set(tables)
    parents: dict[str, set[str]] = {t: set() for t in names}
    children: dict[str, set[str]] = {t: set() for t in names}
    for child, parent in foreign_keys:
        if child != parent and child in names and parent in names:
            parents[child].add(parent)
            children[parent].add(child)
    ready = [t for t in names if not parents[t]]
    heapq.heapify(ready)
    order = []
    while ready:
        table = heapq.heappop(ready)
        order.append(table)
        for child in children[table]:
            parents[child].discard(table)
            if not parents[child]:
                heapq.heappush(ready, child)
    if len(order) != len(names):
        stuck = ", ".join(sorted(names - set(order)))
        raise BackupRefused(f"the schema has a foreign-key cycle among {stuck}; cannot order data")
    return order


def restore_list(entries: Sequence[TocEntry], order: Sequence[str]) -> str:
    """A `pg_restore -L` list: the tables' data in `order`, then the sequences.

    pg_restore reads only the leading entry id of each line.
    """
    rank = {table: i for i, table in enumerate(order)}
    data = [e for e in entries if e.kind == TABLE_DATA]
    for entry in data:
        if entry.name not in rank:
            raise BackupRefused(
                f"the database dump holds data for table {entry.name}, "
                "which is not part of the Kopers schema"
            )
    data.sort(key=lambda e: rank[e.name])
    sequences = [e for e in entries if e.kind == SEQUENCE_SET]
    return "".join(f"{e.dump_id}; 0 0 {e.kind} {SCHEMA} {e.name} -\n" for e in data + sequences)


def check_copy(copy: CopyStart, known: Mapping[str, frozenset[str]]) -> None:
    """A COPY must name a table of the schema and exactly its columns, each once."""
    columns = known.get(copy.table)
    if columns is None:
        raise BackupRefused(
            f"the database dump holds data for table {copy.table}, "
            "which is not part of the Kopers schema"
        )
    if len(set(copy.columns)) != len(copy.columns) or set(copy.columns) != columns:
        raise BackupRefused(
            f"the database dump's columns of table {copy.table} differ from the schema's"
        )
