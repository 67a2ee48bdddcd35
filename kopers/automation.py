"""The `[webhooks]` and `[rebuild]` settings: builds that start themselves. Pure.

`[webhooks]` bounds what a forge may send in (`max_body_kib`) and how Kopers
sends its own events out: each delivery waits at most `timeout` seconds for
an answer; a failed one is tried again after `retry_initial` seconds, the
pause doubling up to `retry_max`, until `give_up_hours` have passed.

`[rebuild]` governs the automatic rebuilds of dependent packages: a change
waits `settle_ms` for others to join it into one chain, and a project holds
at most `max_queued_per_project` automatic builds that have not ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kopers.settings import natural, positive

WEBHOOK_DEFAULTS: dict[str, Any] = {
    "max_body_kib": 1024,
    "timeout": 10,
    "retry_initial": 5,
    "retry_max": 300,
    "give_up_hours": 72,
}

REBUILD_DEFAULTS: dict[str, Any] = {
    "settle_ms": 500,
    "max_queued_per_project": 50,
}


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    max_body_kib: int = WEBHOOK_DEFAULTS["max_body_kib"]  # an incoming delivery's body
    timeout_s: int = WEBHOOK_DEFAULTS["timeout"]  # to wait for a receiver's answer
    retry_initial_s: int = WEBHOOK_DEFAULTS["retry_initial"]  # first pause after a failure
    retry_max_s: int = WEBHOOK_DEFAULTS["retry_max"]  # longest pause between tries
    give_up_hours: int = WEBHOOK_DEFAULTS["give_up_hours"]  # a delivery older is dropped

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_kib << 10


@dataclass(frozen=True, slots=True)
class RebuildConfig:
    settle_ms: int = REBUILD_DEFAULTS["settle_ms"]  # a burst of changes within it: one chain
    max_queued_per_project: int = REBUILD_DEFAULTS["max_queued_per_project"]


def parse_webhooks(section: Mapping[str, Any]) -> WebhookConfig:
    return WebhookConfig(
        max_body_kib=positive(section, "max_body_kib"),
        timeout_s=positive(section, "timeout"),
        retry_initial_s=positive(section, "retry_initial"),
        retry_max_s=positive(section, "retry_max"),
        give_up_hours=positive(section, "give_up_hours"),
    )


def parse_rebuild(section: Mapping[str, Any]) -> RebuildConfig:
    return RebuildConfig(
        settle_ms=natural(section, "settle_ms"),
        max_queued_per_project=positive(section, "max_queued_per_project"),
    )
