"""Named SQL statements loaded from sql/queries/*.sql.

Each statement follows a `-- name: some_name` line. Keeping the SQL in files
lets it be read and reviewed as SQL, and keeps `store.py` about mapping rows.
"""

from __future__ import annotations

import re
from pathlib import Path

from kopers import resources
from kopers.errors import ConfigError

QUERIES_DIR = resources.queries_dir()
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """Split a file of `-- name:` blocks into {name: statement}."""
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in out:
            raise ConfigError(f"query {name} is defined twice")
        out[name] = body.strip()
    return out


class Queries:
    """Attribute access to every named statement, checked at load time."""

    def __init__(self, queries_dir: Path = QUERIES_DIR) -> None:
        self._q: dict[str, str] = {}
        for path in sorted(queries_dir.glob("*.sql")):
            for name, sql in parse(path.read_text()).items():
                if name in self._q:
                    raise ConfigError(f"query {name} is defined in two files")
                self._q[name] = sql

    def __getattr__(self, name: str) -> str:
        try:
            return self._q[name]
        except KeyError:
            raise AttributeError(f"no SQL query named {name}") from None
