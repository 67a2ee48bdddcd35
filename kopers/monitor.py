"""The project monitor: a package x chroot matrix of the newest build states. Pure.

Each cell is the newest build of the package that has a task in that chroot,
with the task's state there: a chroot a newer build left out keeps showing
the older build's result, as Copr's monitor does. The columns are the
project's chroots, in the project's order; a chroot a build had but the
project no longer offers has no column. A package without builds has a row
of empty cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kopers.models import Build, BuildState, Package


@dataclass(frozen=True, slots=True)
class Cell:
    """The newest build of one package in one chroot, and its state there."""

    build_id: int
    state: BuildState
    version: str | None


@dataclass(frozen=True, slots=True)
class Row:
    package: str
    cells: tuple[Cell | None, ...]  # one per column; None: never built there

    def cell(self, index: int) -> Cell | None:
        return self.cells[index]


@dataclass(frozen=True, slots=True)
class Monitor:
    chroots: tuple[str, ...]
    rows: tuple[Row, ...]

    def states(self) -> dict[BuildState, int]:
        """How many cells are in each state, for the summary line."""
        out: dict[BuildState, int] = {}
        for row in self.rows:
            for cell in row.cells:
                if cell is not None:
                    out[cell.state] = out.get(cell.state, 0) + 1
        return out


def latest_cells(chroots: Sequence[str], builds: Sequence[Build]) -> tuple[Cell | None, ...]:
    """One package's cells: per chroot, the newest of `builds` (any order) with a task there."""
    columns = {chroot: i for i, chroot in enumerate(chroots)}
    cells: list[Cell | None] = [None] * len(chroots)
    newest: list[int] = [0] * len(chroots)
    for build in builds:
        for task in build.tasks:
            i = columns.get(task.chroot)
            if i is not None and build.id > newest[i]:
                newest[i] = build.id
                cells[i] = Cell(build.id, task.state, build.package_version)
    return tuple(cells)


def plan_monitor(
    chroots: Sequence[str],
    packages: Sequence[Package],
    builds: Mapping[int, Sequence[Build]],
) -> Monitor:
    """The matrix of `packages` (rows, by name) x `chroots` (columns); `builds` by package id."""
    rows = tuple(
        Row(p.name, latest_cells(chroots, builds.get(p.id, ())))
        for p in sorted(packages, key=lambda p: p.name)
    )
    return Monitor(tuple(chroots), rows)
