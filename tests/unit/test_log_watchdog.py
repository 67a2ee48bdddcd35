"""The builder watchdog: timeout, silence and log size, with a clock passed in."""

from kopers.logs.watchdog import Limit, Limits, Watchdog


def dog(timeout: float = 100, silence: float = 10, max_bytes: int = 1000) -> Watchdog:
    return Watchdog(Limits(timeout, silence, max_bytes), started=1000.0)


def test_silence_deadline_moves_with_each_line() -> None:
    w = dog()
    assert w.deadline() == 1010.0
    assert w.breach_at(1009.9) is None
    w.saw("hello", 1008.0)
    assert w.deadline() == 1018.0
    assert w.breach_at(1012.0) is None
    breach = w.breach_at(1018.0)
    assert breach is not None and breach.limit == Limit.SILENCE
    assert "printed nothing for 10 s" in breach.reason


def test_overall_timeout_wins_over_a_chatty_build() -> None:
    w = dog(timeout=30)
    for t in range(1000, 1031, 5):
        w.saw("tick", float(t))
    assert w.deadline() == 1030.0  # the timeout, not last line + silence
    breach = w.breach_at(1030.0)
    assert breach is not None and breach.limit == Limit.TIMEOUT
    assert "timeout of 30 s" in breach.reason


def test_log_size_cap_counts_utf8_bytes_and_newlines() -> None:
    w = dog(max_bytes=10)
    assert w.saw("1234", 1001.0) is None  # 5 bytes
    assert w.saw("é", 1001.0) is None  # 3 bytes: 8
    assert w.saw("", 1001.0) is None  # 1 byte: 9
    breach = w.saw("x", 1002.0)  # 11 > 10
    assert breach is not None and breach.limit == Limit.SIZE
    assert "MiB" in breach.reason


def test_size_reason_names_mib() -> None:
    w = dog(max_bytes=2 << 20)
    breach = w.saw("x" * (2 << 20), 1001.0)
    assert breach is not None and "2 MiB" in breach.reason
