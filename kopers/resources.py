"""Where Kopers' own files are: the SQL, the pages' static files and the builder templates.

In the repository they are the top-level folders `sql/`, `static/` and
`vm_templates/`. A wheel carries them as package data below `kopers/_data/`
(pyproject.toml maps them there), because an installed package has no
repository around it. This module is the one place that knows both layouts:
the wheel's copy when it is there, else the checkout's folders (an editable
install, or running from the repository).

The page templates (`kopers/templates/`) are ordinary package data, found by
jinja2's PackageLoader in either layout.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Where the wheel puts the three folders; absent in a checkout.
INSTALLED_DIR = PACKAGE_DIR / "_data"
# A checkout: the package's parent is the repository.
CHECKOUT_DIR = PACKAGE_DIR.parent


def root() -> Path:
    """The folder that holds sql/, static/ and vm_templates/."""
    return INSTALLED_DIR if INSTALLED_DIR.is_dir() else CHECKOUT_DIR


def sql_dir() -> Path:
    """The numbered migrations (`NNNN_name.sql`)."""
    return root() / "sql"


def queries_dir() -> Path:
    """The named statements (`-- name:` blocks), one file per concept."""
    return sql_dir() / "queries"


def static_dir() -> Path:
    """The pages' own scripts and styles: a flat folder."""
    return root() / "static"


def vm_templates_dir() -> Path:
    """One folder per builder template: its image recipe and builder script."""
    return root() / "vm_templates"


def directories() -> dict[str, Path]:
    """Every folder above by name, for checks that all of them are present."""
    return {
        "sql": sql_dir(),
        "queries": queries_dir(),
        "static": static_dir(),
        "vm_templates": vm_templates_dir(),
    }
