"""The sign-in rules: throttling windows, session lifetimes, where `next` may lead, [web]."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kopers import config
from kopers.errors import ConfigError
from kopers.loginpolicy import (
    Failures,
    WebConfig,
    due_touch,
    local_target,
    retry_after,
    session_alive,
    session_end,
)

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CFG = WebConfig(account_failures=3, address_failures=5, failure_window_min=15)


def ago(*minutes: float) -> tuple[datetime, ...]:
    return tuple(NOW - timedelta(minutes=m) for m in minutes)


def test_under_the_limits_an_attempt_may_be_made() -> None:
    assert retry_after(Failures(ago(1, 2), ago(1, 2, 3, 4)), CFG, NOW) is None
    assert retry_after(Failures((), ()), CFG, NOW) is None


def test_an_account_at_its_limit_waits_until_the_limit_th_newest_failure_leaves_the_window() -> (
    None
):
    # Failures 1, 2 and 10 minutes ago: the third newest leaves the window in 5 minutes.
    assert retry_after(Failures(ago(1, 2, 10), ()), CFG, NOW) == 5 * 60


def test_failures_older_than_the_window_do_not_count() -> None:
    assert retry_after(Failures(ago(1, 2, 15, 16), ()), CFG, NOW) is None
    assert retry_after(Failures((), ago(1, 2, 3, 4, 20)), CFG, NOW) is None


def test_an_address_at_its_limit_locks_every_account_and_the_longer_wait_wins() -> None:
    assert retry_after(Failures((), ago(0.5, 1, 2, 3, 14)), CFG, NOW) == 60
    # The account is free in 5 minutes, the address in 1: both must be free.
    assert retry_after(Failures(ago(1, 2, 10), ago(0.5, 1, 2, 3, 14)), CFG, NOW) == 5 * 60


def test_a_wait_is_never_zero_seconds() -> None:
    almost = (NOW - timedelta(minutes=15) + timedelta(milliseconds=10),)
    assert retry_after(Failures(ago(0, 0) + almost, ()), CFG, NOW) == 1


def test_a_session_ends_when_idle_or_at_its_absolute_end() -> None:
    cfg = WebConfig(idle_hours=8, absolute_days=7)
    started = NOW - timedelta(days=2)
    ends = session_end(started, cfg)
    assert ends == started + timedelta(days=7)
    assert session_alive(NOW - timedelta(hours=7, minutes=59), ends, NOW, cfg)
    assert not session_alive(NOW - timedelta(hours=8), ends, NOW, cfg)
    # Busy to the last minute, it still ends at its absolute end.
    assert not session_alive(ends - timedelta(minutes=1), ends, ends, cfg)
    assert session_alive(ends - timedelta(minutes=1), ends, ends - timedelta(seconds=1), cfg)


def test_last_seen_is_written_at_most_once_a_minute() -> None:
    assert not due_touch(NOW - timedelta(seconds=30), NOW)
    assert due_touch(NOW - timedelta(minutes=1), NOW)


@pytest.mark.parametrize(
    "target",
    ["/", "/api/", "/coprs/alice/p/?page=2#builds", "/a%2F%2Fb", "/login/?next=/api/"],
)
def test_local_paths_are_kept(target: str) -> None:
    assert local_target(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "//evil.example/",
        "///evil.example/",
        "https://evil.example/",
        "http:evil.example",
        "javascript:alert(1)",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        "/ok\\..",
        "evil.example",
        "/\t/evil.example",
        "/x\r\nSet-Cookie: a=b",
        "/ /evil",
        "/caf\u00e9",
        "/" + "a" * 3000,
        ["/api/"],
    ],
)
def test_anything_else_goes_to_the_front_page(target: object) -> None:
    assert local_target(target) == "/"


def test_web_settings_have_defaults_and_are_range_checked(tmp_path: Path) -> None:
    cfg = config.load(str(REPO / "kopers.toml"), env={})
    assert cfg.web == WebConfig()
    assert (cfg.web.idle, cfg.web.absolute) == (timedelta(hours=8), timedelta(days=7))
    env = {"KOPERS_WEB_IDLE_HOURS": "2", "KOPERS_WEB_ACCOUNT_FAILURES": "9"}
    cfg = config.load(str(REPO / "kopers.toml"), env=env)
    assert (cfg.web.idle_hours, cfg.web.account_failures) == (2, 9)
    bad = tmp_path / "bad.toml"
    bad.write_text("[web]\nabsolute_days = 0\n")
    with pytest.raises(ConfigError, match="absolute_days"):
        config.load(str(bad), env={})
    bad.write_text("[web]\nremember_me = true\n")
    with pytest.raises(ConfigError, match="remember_me"):
        config.load(str(bad), env={})
