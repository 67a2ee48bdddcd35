"""The compatibility table covers the pinned clients exactly, and README.md shows it as it is."""

from __future__ import annotations

from tests import copr_compat as cc


def test_every_copr_cli_subcommand_has_exactly_one_row() -> None:
    rows = [e.name for e in cc.CLI]
    assert len(rows) == len(set(rows))
    assert sorted(rows) == sorted(cc.cli_subcommands())


def test_every_python_copr_method_has_exactly_one_row() -> None:
    rows = [e.name for e in cc.PYTHON_COPR]
    assert len(rows) == len(set(rows))
    assert sorted(rows) == cc.python_copr_methods()


def test_the_readme_table_is_the_rendered_one() -> None:
    section = cc.readme_section(cc.README.read_text())
    assert section is not None, "README.md lacks the compatibility table"
    assert section == cc.render(), "run: python -m tests.copr_compat --write"


def test_a_changed_row_is_noticed() -> None:
    # The comparison above must be able to fail.
    first = cc.CLI[0]
    changed = cc.Entry(first.name, cc.Support.UNSUPPORTED, first.note)
    original = cc.CLI
    try:
        cc.CLI = (changed, *original[1:])
        assert cc.readme_section(cc.README.read_text()) != cc.render()
    finally:
        cc.CLI = original
