"""The step clock and the builder's phases, on a clock the test moves."""

from __future__ import annotations

import pytest

from kopers.models import StepSource, TaskStep
from kopers.worker.steps import (
    MAX_BUILDER_STEPS,
    BuilderPhases,
    StepClock,
    step_line,
    steps_from_json,
    steps_json,
    summary_line,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_steps_are_timed_from_start_to_stop_with_their_offsets() -> None:
    t = Clock()
    clock = StepClock(t)
    t.now += 2
    clock.start("vm claim")
    t.now += 12.5
    claim = clock.stop("vm claim")
    with clock.step("upload"):
        t.now += 0.25
    assert claim == TaskStep("vm claim", 12.5, StepSource.KOPERS, 2.0)
    assert clock.steps == (claim, TaskStep("upload", 0.25, StepSource.KOPERS, 14.5))
    assert clock.stop("never started") is None


def test_a_step_that_raises_is_recorded_too() -> None:
    t = Clock()
    clock = StepClock(t)
    with pytest.raises(RuntimeError), clock.step("result download"):
        t.now += 1
        raise RuntimeError("the VM went away")
    assert [(s.name, s.seconds) for s in clock.steps] == [("result download", 1.0)]


def test_steps_are_listed_in_the_order_they_began() -> None:
    t = Clock()
    clock = StepClock(t)
    clock.start("builder")
    t.now += 1
    clock.add(TaskStep("rpmbuild", 3.0, StepSource.BUILDER, 1.0))
    t.now += 4
    clock.stop("builder")
    assert [s.name for s in clock.steps] == ["builder", "rpmbuild"]


BUILDER_RUN = [
    (0.0, "kopers-builder: build 7 for debian-12-x86_64, network off"),
    (0.1, "+ rpm -i --force-debian --define '_topdir /build/top' /build/in/x.src.rpm"),
    (0.5, "+ fetch http://127.0.0.1:4000/key.gpg > /build/repos.d/r.gpg"),
    (0.7, "+ rpm --import /build/repos.d/r.gpg"),
    (0.9, "+ cat /build/repos.d/kopers.repo"),
    (1.0, "+ dnf builddep -y --setopt=reposdir=/build/repos.d /build/top/SPECS/x.spec"),
    (1.5, "Nothing to do."),
    (4.0, "kopers-builder: buildroot manifest: 312 packages"),
    (4.2, "+ rpmbuild -ba --define '_topdir /build/top' /build/top/SPECS/x.spec"),
    (5.0, "+ echo this line of the build's own looks like a command"),
    (10.2, "kopers-builder: result: x-1-1.noarch.rpm"),
    (10.3, "kopers-builder: build succeeded"),
]


def test_builder_phases_are_timed_between_the_lines_that_announce_them() -> None:
    phases = BuilderPhases()
    found = [s for at, line in BUILDER_RUN if (s := phases.saw(line, at))]
    assert phases.end(10.4) is None
    assert [(s.name, round(s.seconds, 2), s.offset) for s in found] == [
        ("unpack", 0.4, 0.1),
        ("key import", 0.4, 0.5),
        ("builddep", 3.0, 1.0),
        ("rpmbuild", 6.0, 4.2),
    ]
    assert all(s.source == StepSource.BUILDER for s in found)


def test_a_run_that_stops_mid_phase_ends_the_phase_at_its_end() -> None:
    phases = BuilderPhases()
    assert phases.saw("+ rpmbuild -ba x.spec", 1.0) is None
    assert phases.saw("error: Bad exit status", 3.0) is None
    assert phases.end(3.5) == TaskStep("rpmbuild", 2.5, StepSource.BUILDER, 1.0)
    assert phases.end(4.0) is None


def test_a_build_printing_markers_cannot_add_steps_without_end() -> None:
    phases = BuilderPhases()
    found = []
    for i in range(1000):
        line = "+ rpm -i x" if i % 2 else "+ rpmbuild -ba x"
        if step := phases.saw(line, float(i)):
            found.append(step)
    assert len(found) == MAX_BUILDER_STEPS
    assert phases.end(2000.0) is None


def test_log_lines_say_who_timed_the_step() -> None:
    ours = TaskStep("upload", 0.123, StepSource.KOPERS, 1.0)
    theirs = TaskStep("rpmbuild", 6.0, StepSource.BUILDER, 2.0)
    assert step_line(ours) == "step upload: 0.12 s"
    assert (
        step_line(theirs) == "step rpmbuild: 6.00 s (timed between the builder's own output lines)"
    )
    assert summary_line([ours, theirs]) == (
        "step times: upload 0.12 s; as the builder's output divides its run: rpmbuild 6.00 s"
    )


def test_steps_survive_their_stored_form_and_malformed_entries_are_dropped() -> None:
    steps = (
        TaskStep("vm claim", 12.3456, StepSource.KOPERS, 0.01),
        TaskStep("rpmbuild", 6.0, StepSource.BUILDER, 20.0),
    )
    stored = steps_json(steps)
    assert stored[0] == {"name": "vm claim", "seconds": 12.346, "source": "kopers", "offset": 0.01}
    again = steps_from_json([*stored, {"name": "x"}, "junk", {**stored[0], "source": "evil"}])
    assert [(s.name, s.source) for s in again] == [
        ("vm claim", StepSource.KOPERS),
        ("rpmbuild", StepSource.BUILDER),
    ]
    assert steps_from_json(None) == ()
