"""The `[limits]` settings: how much and how long one client may take. Pure.

Every request body has a cap that is checked before the body is read (a body
without a declared length is cut where it passes it): the whole multipart
upload (all parts, the `json` part included) is bounded by
`server.max_upload_mib`; every other body, and each free-text field, has the
much smaller caps here (kopers.api.bodycaps, kopers.api.upload). Slow clients
are cut off (kopers.api.guard): the request head must arrive within
`head_timeout` seconds, a body must keep up at least `min_body_rate_kib` KiB/s
once `body_grace` seconds have passed, and one address may hold
`connections_per_address` connections.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kopers.settings import natural, positive

DEFAULTS: dict[str, Any] = {
    "max_json_kib": 1024,
    "max_text_kib": 64,
    "head_timeout": 20,
    "body_grace": 10,
    "min_body_rate_kib": 8,
    "connections_per_address": 64,
}


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_json_kib: int = DEFAULTS["max_json_kib"]  # a JSON body, or a multipart `json` part
    max_text_kib: int = DEFAULTS["max_text_kib"]  # one free-text field (description, ...)
    head_timeout_s: int = DEFAULTS["head_timeout"]  # to receive a request's line and headers
    body_grace_s: int = DEFAULTS["body_grace"]  # before the body rate floor applies
    min_body_rate_kib: int = DEFAULTS["min_body_rate_kib"]  # KiB/s a body must average
    connections_per_address: int = DEFAULTS["connections_per_address"]  # 0: no cap

    @property
    def max_json_bytes(self) -> int:
        return self.max_json_kib << 10

    @property
    def max_text_bytes(self) -> int:
        return self.max_text_kib << 10


def parse_limits(section: Mapping[str, Any]) -> LimitsConfig:
    return LimitsConfig(
        max_json_kib=positive(section, "max_json_kib"),
        max_text_kib=positive(section, "max_text_kib"),
        head_timeout_s=positive(section, "head_timeout"),
        body_grace_s=positive(section, "body_grace"),
        min_body_rate_kib=natural(section, "min_body_rate_kib"),
        connections_per_address=natural(section, "connections_per_address"),
    )
