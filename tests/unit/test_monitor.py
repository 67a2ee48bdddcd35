"""The monitor's matrix (kopers.monitor): the newest build per package and chroot."""

from __future__ import annotations

from datetime import UTC, datetime

from kopers.models import Build, BuildState, BuildTask, Package, PackageSourceType, SourceType
from kopers.monitor import Cell, plan_monitor

F40, F41, EL9 = "fedora-40-x86_64", "fedora-41-x86_64", "epel-9-x86_64"
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def package(pid: int, name: str) -> Package:
    return Package(pid, 1, "alice", "p", name, PackageSourceType.UNSET, None)


def build(bid: int, version: str, **states: BuildState) -> Build:
    tasks = tuple(
        BuildTask(bid, chroot.replace("_", "-", 2), state) for chroot, state in states.items()
    )
    return Build(
        id=bid,
        project_id=1,
        owner="alice",
        project="p",
        submitter="alice",
        source_type=SourceType.UPLOAD,
        source={},
        package_name="x",
        package_version=version,
        srpm_name=None,
        source_state=BuildState.SUCCEEDED,
        canceled=False,
        timeout=3600,
        submitted_on=NOW,
        started_on=None,
        ended_on=None,
        tasks=tasks,
    )


S, F, R = BuildState.SUCCEEDED, BuildState.FAILED, BuildState.RUNNING


def test_each_cell_is_the_newest_build_with_a_task_in_that_chroot() -> None:
    old = build(3, "1.0", fedora_40_x86_64=S, fedora_41_x86_64=S)
    new = build(7, "1.1", fedora_40_x86_64=F)  # left fedora-41 out
    got = plan_monitor([F40, F41], [package(1, "a")], {1: [old, new]})  # any order
    assert got.chroots == (F40, F41)
    [row] = got.rows
    assert row.package == "a"
    assert row.cells == (Cell(7, F, "1.1"), Cell(3, S, "1.0"))


def test_columns_are_the_project_chroots_only_and_unbuilt_cells_are_empty() -> None:
    b = build(5, "2", epel_9_x86_64=R, fedora_41_x86_64=S)  # epel-9: no longer offered
    got = plan_monitor([F41, F40], [package(2, "zeta"), package(1, "alpha")], {2: [b]})
    assert got.chroots == (F41, F40)
    assert [r.package for r in got.rows] == ["alpha", "zeta"]
    assert got.rows[0].cells == (None, None)
    assert got.rows[1].cells == (Cell(5, S, "2"), None)
    assert got.states() == {S: 1}


def test_a_project_without_packages_or_chroots_has_an_empty_matrix() -> None:
    assert plan_monitor([], [], {}).rows == ()
    got = plan_monitor([], [package(1, "a")], {1: [build(1, "1", fedora_40_x86_64=S)]})
    assert got.rows[0].cells == () and got.states() == {}
