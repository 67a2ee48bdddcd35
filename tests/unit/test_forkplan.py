"""Which builds a fork copies (kopers.forkplan): the newest success per package and chroot."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kopers.forkplan import BuildCopy, copied_pairs, forked_from, plan_copies, with_origin
from kopers.models import Build, BuildState, BuildTask, SourceType

S = BuildState
C1, C2, C3 = "debian-12-x86_64", "fedora-40-x86_64", "fedora-41-x86_64"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def build(
    build_id: int,
    package: str | None,
    states: dict[str, BuildState],
    source: dict[str, Any] | None = None,
    canceled: bool = False,
) -> Build:
    return Build(
        id=build_id,
        project_id=1,
        owner="alice",
        project="src",
        submitter="alice",
        source_type=SourceType.UPLOAD,
        source=source or {},
        package_name=package,
        package_version="1.0" if package else None,
        srpm_name=f"{package}-1.0-1.src.rpm" if package else None,
        source_state=S.SUCCEEDED,
        canceled=canceled,
        timeout=3600,
        submitted_on=NOW,
        started_on=NOW,
        ended_on=NOW,
        tasks=tuple(BuildTask(build_id, c, s) for c, s in sorted(states.items())),
    )


def test_the_newest_success_of_each_package_in_each_chroot_is_copied() -> None:
    builds = [
        build(1, "hello", {C1: S.SUCCEEDED, C2: S.SUCCEEDED}),
        build(2, "hello", {C1: S.SUCCEEDED, C2: S.FAILED}),
        build(3, "hello", {C1: S.FAILED, C2: S.FAILED}),
        build(4, "hello", {C1: S.RUNNING, C2: S.PENDING}),
        build(5, "other", {C1: S.SUCCEEDED}),
        build(6, "other", {C1: S.CANCELED}),
    ]
    assert plan_copies(builds, [C1, C2]) == [
        BuildCopy(1, "hello", (C2,)),
        BuildCopy(2, "hello", (C1,)),
        BuildCopy(5, "other", (C1,)),
    ]


def test_the_order_of_the_input_does_not_matter_and_copies_come_oldest_first() -> None:
    builds = [
        build(9, "b", {C1: S.SUCCEEDED}),
        build(3, "a", {C1: S.SUCCEEDED}),
        build(7, "a", {C1: S.SUCCEEDED}),
    ]
    assert plan_copies(builds, [C1]) == [BuildCopy(7, "a", (C1,)), BuildCopy(9, "b", (C1,))]
    assert plan_copies(list(reversed(builds)), [C1]) == plan_copies(builds, [C1])


def test_chroots_the_destination_lacks_are_left_out() -> None:
    builds = [build(1, "hello", {C1: S.SUCCEEDED, C2: S.SUCCEEDED, C3: S.SUCCEEDED})]
    assert plan_copies(builds, [C2, C3]) == [BuildCopy(1, "hello", (C2, C3))]
    assert plan_copies(builds, []) == []


def test_builds_without_a_package_and_copies_under_way_are_not_successes() -> None:
    builds = [
        build(1, None, {C1: S.SUCCEEDED}),
        build(2, "hello", {C1: S.SUCCEEDED}),
        # The source is a fork itself, still copying this one: no results yet.
        build(3, "hello", {C1: S.FORKED}),
        build(4, "hello", {C1: S.SKIPPED}),
    ]
    assert plan_copies(builds, [C1]) == [BuildCopy(2, "hello", (C1,))]


def test_a_canceled_build_still_offers_the_chroot_that_succeeded() -> None:
    builds = [build(1, "hello", {C1: S.SUCCEEDED, C2: S.CANCELED}, canceled=True)]
    assert plan_copies(builds, [C1, C2]) == [BuildCopy(1, "hello", (C1,))]


def test_forking_again_copies_only_what_is_new() -> None:
    source = [
        build(1, "hello", {C1: S.SUCCEEDED, C2: S.SUCCEEDED}),
        build(2, "other", {C1: S.SUCCEEDED}),
    ]
    origin = with_origin({"url": "https://example.org/x.src.rpm"}, 1, "alice/src")
    destination = [
        build(10, "hello", {C1: S.SUCCEEDED, C2: S.FORKED}, source=origin),
        # A copy that failed is copied again.
        build(11, "other", {C1: S.FAILED}, source=with_origin({}, 2, "alice/src")),
        # A build of the destination's own is no copy.
        build(12, "hello", {C1: S.SUCCEEDED}),
    ]
    copied = copied_pairs(destination)
    assert copied == {(1, C1), (1, C2)}
    assert plan_copies(source, [C1, C2], copied) == [BuildCopy(2, "other", (C1,))]
    newer = [*source, build(3, "hello", {C1: S.SUCCEEDED, C2: S.FAILED})]
    assert plan_copies(newer, [C1, C2], copied) == [
        BuildCopy(2, "other", (C1,)),
        BuildCopy(3, "hello", (C1,)),
    ]


def test_the_origin_is_kept_in_the_source_and_read_back_only_when_well_formed() -> None:
    source = with_origin({"url": "u"}, 42, "alice/src")
    assert source["url"] == "u"
    assert forked_from(source) == 42
    assert forked_from({}) is None
    for bad in ("42", None, True, 0, -1, 4.2, [42]):
        assert forked_from({"forked_from": {"build_id": bad}}) is None
    assert forked_from({"forked_from": 42}) is None
