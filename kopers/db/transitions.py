"""The state transitions of build tasks and of builds' source steps.

Pure. Every statement that changes a state in sql/queries/builds.sql takes the
states it may start from as a parameter (`state = ANY(...)`) and says whether
it applied (`RETURNING`). A write that arrives late, after a newer one, then
changes nothing: a finish after the user's cancel finds the task canceled and
leaves it so, and a finished task is never started again. Postgres locks the
row for the update and re-checks the condition after a concurrent writer
commits, so two writers racing each other are settled by the same table.

The table says, for each target state, where it may come from. It follows the
flows, not every pair that might look sensible: a state not listed as a
target is never written by an update.
"""

from __future__ import annotations

from collections.abc import Mapping

from kopers.errors import Conflict
from kopers.models import BuildState

S = BuildState
UNFINISHED = frozenset(s for s in BuildState if not s.finished)

# The states an attempt begins in (`start_task`).
ATTEMPT_STATES = frozenset({S.STARTING, S.RUNNING})

TASK_FROM: Mapping[BuildState, frozenset[BuildState]] = {
    # A chained build's task, held back at submission behind an unfinished task.
    S.WAITING: frozenset({S.PENDING}),
    # Promoted once what it waited for succeeded; or put back after Kopers
    # stopped while it was starting or running, to run again at start-up.
    S.PENDING: frozenset({S.WAITING, S.STARTING, S.RUNNING, S.IMPORTING}),
    # An attempt begins: the first from pending, a retry on a fresh VM after
    # an infrastructure failure from wherever the failed attempt got to.
    S.STARTING: frozenset({S.PENDING, S.STARTING, S.RUNNING}),
    # The VM is up. A runner may also report running as the attempt begins.
    S.RUNNING: frozenset({S.PENDING, S.STARTING}),
    S.SUCCEEDED: frozenset({S.STARTING, S.RUNNING}),
    # Pending too: a task fails before any attempt when its chroot is gone
    # from the configuration, or when Kopers itself failed around it.
    S.FAILED: frozenset({S.PENDING, S.STARTING, S.RUNNING}),
    # A dependency or the source step failed: only a task that never started.
    S.SKIPPED: frozenset({S.WAITING, S.PENDING}),
    S.CANCELED: UNFINISHED,
}

SOURCE_FROM: Mapping[BuildState, frozenset[BuildState]] = {
    # The source step begins (git: running, URL: importing); again after a
    # restart interrupted it.
    S.RUNNING: frozenset({S.PENDING, S.RUNNING}),
    S.IMPORTING: frozenset({S.PENDING, S.IMPORTING}),
    S.SUCCEEDED: frozenset({S.RUNNING, S.IMPORTING}),
    S.FAILED: frozenset({S.PENDING, S.RUNNING, S.IMPORTING}),
    # Canceling a build ends a source step that has not ended; an uploaded
    # source (succeeded from the start) stays as it is.
    S.CANCELED: frozenset({S.PENDING, S.RUNNING, S.IMPORTING}),
    # Every chroot task of the build was skipped (a dependency failed) before
    # the step began: nothing would use the source it makes.
    S.SKIPPED: frozenset({S.PENDING}),
}


def task_from(target: BuildState) -> list[str]:
    """The task states `target` may be reached from, as the SQL parameter."""
    return sorted(str(state) for state in TASK_FROM.get(target, frozenset()))


def source_from(target: BuildState) -> list[str]:
    """The source states `target` may be reached from, as the SQL parameter."""
    return sorted(str(state) for state in SOURCE_FROM.get(target, frozenset()))


class TransitionRefused(Conflict):
    """A state change the table does not allow from the row's current state."""
