"""Build state derivation, as Copr computes it."""

from kopers.models import BuildState as S
from kopers.models import derive_build_state


def test_canceled_wins() -> None:
    assert derive_build_state(True, S.SUCCEEDED, [S.RUNNING]) == S.CANCELED


def test_source_phase_shows_through() -> None:
    assert derive_build_state(False, S.IMPORTING, [S.WAITING]) == S.IMPORTING
    assert derive_build_state(False, S.FAILED, [S.SKIPPED]) == S.FAILED


def test_chroot_precedence() -> None:
    assert derive_build_state(False, S.SUCCEEDED, [S.SUCCEEDED, S.RUNNING]) == S.RUNNING
    assert derive_build_state(False, S.SUCCEEDED, [S.SUCCEEDED, S.FAILED]) == S.FAILED
    assert derive_build_state(False, S.SUCCEEDED, [S.SUCCEEDED, S.SKIPPED]) == S.SUCCEEDED
    assert derive_build_state(False, S.SUCCEEDED, [S.WAITING]) == S.PENDING
    assert derive_build_state(False, S.SUCCEEDED, []) == S.WAITING


def test_finished_states() -> None:
    assert S.SKIPPED.finished and S.CANCELED.finished
    assert not S.WAITING.finished and not S.PENDING.finished
