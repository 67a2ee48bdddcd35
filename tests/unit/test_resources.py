"""kopers.resources: the checkout's folders here, the wheel's copies when installed.

The wheel itself is built and installed in tests/e2e/test_wheel.py; here the
checkout's side, and that pyproject.toml maps into the wheel exactly the
folders the module looks for.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from kopers import resources
from kopers.api.views import STATIC_DIR
from kopers.db.migrations import SQL_DIR, discover
from kopers.db.queries import QUERIES_DIR, Queries
from kopers.vm.template import default_templates_root, template_dir

REPO = Path(__file__).resolve().parents[2]


def test_in_a_checkout_every_folder_is_the_checkouts_own_and_exists() -> None:
    assert resources.root() == REPO
    found = resources.directories()
    assert found == {
        "sql": REPO / "sql",
        "queries": REPO / "sql" / "queries",
        "static": REPO / "static",
        "vm_templates": REPO / "vm_templates",
    }
    for name, path in found.items():
        assert path.is_dir() and any(path.iterdir()), name


def test_every_user_takes_its_folder_from_the_module() -> None:
    assert resources.static_dir() == STATIC_DIR
    assert resources.sql_dir() == SQL_DIR
    assert resources.queries_dir() == QUERIES_DIR
    assert resources.vm_templates_dir() == default_templates_root()
    # And what they find there loads.
    assert discover()[0].version == 1
    Queries()
    assert template_dir("debian-12", default_templates_root()).is_dir()


def test_an_installed_copy_is_preferred(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(resources, "INSTALLED_DIR", tmp_path / "_data")
    assert resources.root() == REPO  # no copy there: the checkout
    (tmp_path / "_data").mkdir()
    assert resources.root() == tmp_path / "_data"
    assert resources.vm_templates_dir() == tmp_path / "_data" / "vm_templates"


def test_the_wheel_maps_each_top_level_folder_to_where_the_module_looks() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["kopers"]
    installed = resources.INSTALLED_DIR.relative_to(REPO).as_posix()
    tops = {p.relative_to(REPO).parts[0] for p in resources.directories().values()}
    assert wheel["force-include"] == {top: f"{installed}/{top}" for top in sorted(tops)}
