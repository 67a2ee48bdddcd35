"""Which builds retention removes (kopers.publish.retention)."""

from __future__ import annotations

import pytest

from kopers.errors import BadRequest
from kopers.publish.retention import BuildDir, plan_prune


def builds(*names: str, failed: tuple[str, ...] = ()) -> list[BuildDir]:
    return [BuildDir(name, name not in failed) for name in names]


def test_keeps_newest_per_package() -> None:
    given = builds("00000001-foo", "00000003-foo", "00000010-foo", "00000002-bar", "00000004-bar")
    assert plan_prune(given, 1) == ["00000001-foo", "00000002-bar", "00000003-foo"]
    assert plan_prune(given, 2) == ["00000001-foo"]
    assert plan_prune(given, 3) == []


def test_newest_is_by_build_id_not_by_name() -> None:
    # 100000000 sorts before 99999999 as text but is the newer build.
    given = builds("99999999-foo", "100000000-foo")
    assert plan_prune(given, 1) == ["99999999-foo"]


def test_package_names_may_contain_dashes() -> None:
    given = builds("00000001-python3-foo", "00000002-python3-foo", "00000003-python3")
    assert plan_prune(given, 1) == ["00000001-python3-foo"]


def test_last_successful_build_survives_failures() -> None:
    given = builds(
        "00000001-foo", "00000002-foo", "00000003-foo", "00000004-foo",
        failed=("00000003-foo", "00000004-foo"),
    )  # fmt: skip
    # The two kept builds failed: 2 (the newest with RPMs) stays too.
    assert plan_prune(given, 2) == ["00000001-foo"]
    assert plan_prune(given, 1) == ["00000001-foo", "00000003-foo"]


def test_other_directories_are_never_pruned() -> None:
    given = builds("repodata", "my-notes", "00000001-foo", "00000002-foo")
    assert plan_prune(given, 1) == ["00000001-foo"]


@pytest.mark.parametrize("keep", [0, -1, True, 1.5])
def test_keep_must_be_positive(keep: int) -> None:
    with pytest.raises(BadRequest):
        plan_prune([], keep)
