"""The lines that open an automatic rebuild's log."""

from __future__ import annotations

from kopers.db.rebuilds import RebuildRecord
from kopers.worker.rebuildlog import rebuild_lines

RECORD = RebuildRecord(
    build_id=9,
    trigger_build_id=7,
    trigger_package="liba",
    source_build_id=4,
    origin_build_id=2,
    generation=2,
    chain=(9, 10),
    because=(
        {"package": "liba", "chroot": "x", "provides": ["liba.so.2()(64bit)", "liba-devel"]},
        {"package": "liba", "chroot": "y", "provides": ["other"]},
    ),
    broken=(("q", "p"),),
)


def test_a_rebuild_says_why_on_its_own_chroot_only() -> None:
    lines = list(rebuild_lines(RECORD, "x"))
    assert lines[0] == (
        "automatic rebuild (generation 2, release gets .2) of the source of build 4,"
        " in a chain started by build 7 of liba: builds 9, 10"
    )
    assert lines[1] == "  rebuilt because liba now provides liba.so.2()(64bit), liba-devel"
    assert lines[2] == "  dependency cycle broken: p is not waiting for q"
    assert len(lines) == 3


def test_other_builds_get_no_lines() -> None:
    assert list(rebuild_lines(None, "x")) == []
