"""The rules of signing in on the web: the `[web]` settings, throttling, session life. Pure.

Throttling counts failed sign-ins in a sliding window (`failure_window`
minutes): an account with `account_failures` failures, or a client address
with `address_failures`, is refused every attempt, even one with the right
password, until the oldest failure that keeps it over the limit leaves the
window. An account's count starts again after a success on that account; an
address's count does not: signing in to one's own account must not buy more
guesses at other people's. The counts live in Postgres (kopers.db.websessions),
so a restart does not clear them.

A session ends at whichever comes first: `idle_hours` without a request, or
`absolute_days` after it began, however busy.

After signing in the browser goes to the page it came from (`next`), but only
to a path on this server: anything a browser could read as another host
(`//evil`, `https://evil`, a backslash, which browsers read as a slash) goes
to the front page instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from kopers.settings import positive

WEB_DEFAULTS: dict[str, Any] = {
    "idle_hours": 8,
    "absolute_days": 7,
    "account_failures": 5,
    "address_failures": 20,
    "failure_window": 15,
}

# A session's last_seen is written at most this often: every page would be a write otherwise.
TOUCH_EVERY = timedelta(minutes=1)
MAX_TARGET_CHARS = 2048
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")  # spaces too: no URL of ours holds one raw


@dataclass(frozen=True, slots=True)
class WebConfig:
    idle_hours: int = WEB_DEFAULTS["idle_hours"]  # a session unused this long ends
    absolute_days: int = WEB_DEFAULTS["absolute_days"]  # a session this old ends, used or not
    account_failures: int = WEB_DEFAULTS["account_failures"]  # per account in the window
    address_failures: int = WEB_DEFAULTS["address_failures"]  # per client address in the window
    failure_window_min: int = WEB_DEFAULTS["failure_window"]  # minutes a failure counts

    @property
    def idle(self) -> timedelta:
        return timedelta(hours=self.idle_hours)

    @property
    def absolute(self) -> timedelta:
        return timedelta(days=self.absolute_days)

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.failure_window_min)


def parse_web(section: Mapping[str, Any]) -> WebConfig:
    return WebConfig(
        idle_hours=positive(section, "idle_hours"),
        absolute_days=positive(section, "absolute_days"),
        account_failures=positive(section, "account_failures"),
        address_failures=positive(section, "address_failures"),
        failure_window_min=positive(section, "failure_window"),
    )


# Throttling -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failures:
    """The newest failed sign-ins that count, newest first: of the account, of the address.

    Only the newest `limit` of each matter, so that is all the store returns.
    """

    account: tuple[datetime, ...]
    address: tuple[datetime, ...]


def retry_after(failures: Failures, config: WebConfig, now: datetime) -> int | None:
    """Seconds until an attempt may be made, or None if one may be made now."""
    waits = [
        _wait(failures.account, config.account_failures, config.window, now),
        _wait(failures.address, config.address_failures, config.window, now),
    ]
    longest = max((w for w in waits if w is not None), default=None)
    return longest


def _wait(
    newest_first: Sequence[datetime], limit: int, window: timedelta, now: datetime
) -> int | None:
    counted = [at for at in newest_first if at > now - window]
    if len(counted) < limit:
        return None
    # Under the limit again once the limit-th newest failure leaves the window.
    seconds = (counted[limit - 1] + window - now).total_seconds()
    return max(1, math.ceil(seconds))


# Sessions ---------------------------------------------------------------------


def session_end(started: datetime, config: WebConfig) -> datetime:
    """When a session started at `started` ends however it is used."""
    return started + config.absolute


def session_alive(last_seen: datetime, ends: datetime, now: datetime, config: WebConfig) -> bool:
    return now < ends and now < last_seen + config.idle


def due_touch(last_seen: datetime, now: datetime) -> bool:
    """Whether a request should move the session's last_seen forward."""
    return now - last_seen >= TOUCH_EVERY


# Where to go after signing in ------------------------------------------------------


def local_target(value: Any, default: str = "/") -> str:
    """`value` if it is a path on this server (with its query), else `default`."""
    if not isinstance(value, str) or not value or len(value) > MAX_TARGET_CHARS:
        return default
    if not value.isascii():  # browsers send URLs percent-encoded: this is no link of ours
        return default
    if not value.startswith("/") or value.startswith("//"):
        return default
    # Browsers read a backslash as a slash (`/\evil` is `//evil`), and drop tabs
    # and line breaks from URLs; a control character is also no header value.
    if "\\" in value or _CONTROL.search(value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value
