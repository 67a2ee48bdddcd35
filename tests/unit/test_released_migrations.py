"""A migration that shipped in a release is never edited, and none goes missing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kopers.db.migrations import SQL_DIR, discover, releases
from kopers.errors import ConfigError


def test_every_released_migration_is_unchanged() -> None:
    shipped = releases()
    assert shipped, "sql/released.txt names no release"
    for name, digest in shipped[-1].files.items():
        text = (SQL_DIR / name).read_bytes()
        assert hashlib.sha256(text).hexdigest() == digest, f"{name} changed after it shipped"


def test_a_release_holds_every_earlier_migration_and_new_ones_come_after() -> None:
    last = releases()[-1]
    versions = {m.path.name: m.version for m in discover()}
    shipped = {name for name in versions if versions[name] <= last.version}
    assert shipped == set(last.files)
    assert all(v > last.version for n, v in versions.items() if n not in last.files)


def test_each_release_extends_the_one_before(tmp_path: Path) -> None:
    (tmp_path / "released.txt").write_text(
        "# comment\nrelease 1\n"
        + "a" * 64
        + "  0001_init.sql\n\nrelease 2\n"
        + "b" * 64
        + "  0002_more.sql\n"
    )
    first, second = releases(tmp_path)
    assert (first.name, first.version, list(first.files)) == ("1", 1, ["0001_init.sql"])
    assert (second.version, sorted(second.files)) == (2, ["0001_init.sql", "0002_more.sql"])


@pytest.mark.parametrize(
    "line", ["a" * 64 + " 0001_init.sql", "abc  0001_init.sql", "a" * 64 + "  ../x.sql"]
)
def test_a_malformed_line_is_refused(tmp_path: Path, line: str) -> None:
    (tmp_path / "released.txt").write_text(f"release 1\n{line}\n")
    with pytest.raises(ConfigError, match="line 2"):
        releases(tmp_path)
