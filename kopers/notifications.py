"""Notifications: the events Kopers sends out, as records, as JSON, and signed. Pure.

Every state change of a build (a task's, its source step's, the build's own)
and every publish of a chroot's results is a notification (sql/0010). A
project's outgoing webhooks each get one delivery of it, POSTed as the JSON
of `event_json`, with the headers of `delivery_headers`:

    Content-Type: application/json
    User-Agent: Kopers-Hookshot
    X-Kopers-Event: <kind>
    X-Kopers-Delivery: <delivery id>
    X-Kopers-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>

A receiver checks the signature over the exact bytes it received, and may
use the delivery id to drop a repeat: delivery is at least once. The live
stream (/api/events/stream) sends the same JSON with `delivery` null.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

USER_AGENT = "Kopers-Hookshot"
EVENT_HEADER = "X-Kopers-Event"
DELIVERY_HEADER = "X-Kopers-Delivery"
SIGNATURE_HEADER = "X-Kopers-Signature-256"
MAX_ANSWER_CHARS = 500  # of a receiver's answer, kept for the deliveries list


class EventKind(enum.StrEnum):
    TASK_STATE = "task.state"  # a chroot's task: pending, starting, running, succeeded, ...
    SOURCE_STATE = "source.state"  # the source step: importing, running, succeeded, failed
    BUILD_STATE = "build.state"  # the build's overall state, as the API reports it
    BUILD_PUBLISHED = "build.published"  # a chroot's results are in its repository


PUBLISHED = "published"  # the state of a build.published event


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # given up: too old when it failed again


@dataclass(frozen=True, slots=True)
class Notification:
    """One event, as stored."""

    id: int
    at: datetime
    project_id: int
    project: str  # owner/name
    kind: EventKind
    build_id: int
    chroot: str | None
    state: str
    previous: str | None


@dataclass(frozen=True, slots=True)
class Hook:
    """An outgoing webhook of a project."""

    id: int
    project_id: int
    url: str
    secret: str = field(repr=False)
    created_at: datetime
    created_by: str | None  # the user's name; None once the account is gone


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification's way to one hook: how far it got."""

    id: int
    hook_id: int
    notification: Notification
    state: DeliveryState
    attempts: int
    next_at: datetime
    last_at: datetime | None
    last_status: int | None
    last_answer: str | None
    last_error: str | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A delivery about to be sent, and where to."""

    delivery: Delivery
    url: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DueHook:
    """A hook whose oldest pending delivery (its head) is due: what the sender may start on."""

    hook_id: int
    project_id: int
    due_at: datetime  # when its head fell due


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one try at a delivery came to; `status` None when no answer came."""

    delivered: bool
    status: int | None = None
    answer: str | None = None
    error: str | None = None


def build_url(public_url: str, build_id: int) -> str:
    return f"{public_url}/api_3/build/{build_id}"


def event_json(n: Notification, delivery: int | None, public_url: str) -> dict[str, Any]:
    """The JSON of an event; `delivery` is the delivery's id (None on the live stream)."""
    return {
        "id": n.id,
        "delivery": delivery,
        "kind": str(n.kind),
        "at": n.at.isoformat(),
        "project": n.project,
        "project_id": n.project_id,
        "build": n.build_id,
        "chroot": n.chroot,
        "state": n.state,
        "previous": n.previous,
        "url": build_url(public_url, n.build_id),
    }


def body_bytes(event: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact, keys sorted, ASCII."""
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, body: bytes) -> str:
    """The X-Kopers-Signature-256 value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(kind: EventKind, delivery: int, secret: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: str(kind),
        DELIVERY_HEADER: str(delivery),
        SIGNATURE_HEADER: signature(secret, body),
    }


def retry_delay(attempts: int, initial_s: float, max_s: float) -> float:
    """Seconds before the next try after `attempts` failed ones: doubling, capped."""
    if attempts < 1:
        return 0.0
    # The exponent is capped too: 2**attempts of a long outage would be a huge number.
    return float(min(initial_s * 2 ** min(attempts - 1, 62), max_s))


def answer_text(raw: bytes) -> str:
    """The start of a receiver's answer as text Postgres can hold (no NUL)."""
    text = raw.decode("utf-8", "replace").replace("\x00", "\ufffd")
    return text[:MAX_ANSWER_CHARS]


def sse_message(n: Notification, public_url: str) -> bytes:
    """One server-sent event: `id`, `event` (the kind) and `data` (the JSON, one line)."""
    data = body_bytes(event_json(n, None, public_url)).decode()
    return f"id: {n.id}\nevent: {n.kind}\ndata: {data}\n\n".encode()
