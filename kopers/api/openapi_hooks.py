"""Events out as OpenAPI: a project's outgoing webhooks, and the live event stream. Pure.

The handlers are in hooks.py and eventstream.py; the event JSON and the
delivery headers in kopers/notifications.py.
"""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_ops import READ, WRITE, json_body, op, p, q
from kopers.api.openapi_schemas import (
    BUILD_STATES,
    COUNT,
    ID,
    MAX_BIGINT,
    NAME,
    OWNER_OR_PROJECT,
    PATH_NAME,
    STRING,
    Schema,
    nullable,
    obj,
    open_obj,
    ref,
)

OWNER = p("owner", PATH_NAME, "The owner: a user name, or @group.")
PROJECT = p("project", PATH_NAME, "The project's name.")
HOOK = p("hook_id", ID, "The webhook's id.")
BASE = "/api/projects/{owner}/{project}/hooks"
KINDS = ["task.state", "source.state", "build.state", "build.published"]
TIME: Schema = {"type": "string", "format": "date-time"}
_WHO = (
    "For those who may edit the project: its owner, its admins, a group's admins and site admins."
)
_EVENTS = (
    " Each event is POSTed as JSON (`id`, `delivery`, `kind`, `at`, `project`,"
    " `project_id`, `build`, `chroot`, `state`, `previous`, `url`) with the headers"
    " `X-Kopers-Event` (the kind), `X-Kopers-Delivery` (the delivery's id, to drop a"
    " repeat) and `X-Kopers-Signature-256: sha256=<hex HMAC-SHA256 of the body with the"
    " secret>`. A 2xx answer delivers it; anything else is tried again later, the"
    " hook's later events waiting behind it. The address policy (`[network] allow`)"
    " decides at each delivery where the URL may lead."
)
NOT_ACCEPTABLE = {
    "description": "The request did not ask for a stream (`Accept: text/event-stream`).",
    "content": {"application/json": {"schema": ref("Error")}},
}

TOO_MANY_STREAMS = {
    "description": "This address has as many streams open as it may (an eighth of"
    " `limits.connections_per_address`, at least 8): close one first.",
    "content": {"application/json": {"schema": ref("Error")}},
}
SERVER_FULL = {
    "description": "The server has as many streams open as it serves (1000).",
    "content": {"application/json": {"schema": ref("Error")}},
}


def hook_paths() -> dict[str, dict[str, Any]]:
    """The hooks of a project, and /api/events/stream."""
    stream = op(
        "Live events (server-sent events)",
        "kopers",
        {"type": "string"},
        params=(
            q("project", OWNER_OR_PROJECT, description="Only this project's (owner/name)."),
            q("since", COUNT, description="First replay the stored events after this id."),
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": COUNT,
                "description": "As `since`; EventSource sends it when it reconnects.",
            },
        ),
        errors=(400, 404),
        auth=READ,
        media="text/event-stream",
        ok_description="A stream of `id:`, `event:` (the kind) and `data:` (the JSON) lines.",
        description=(
            "Every task, source step and build state change, and every publish, as it"
            " happens: the JSON of a webhook delivery, with `delivery` null. Needs"
            " `Accept: text/event-stream`. After `since` or `Last-Event-ID` the stored events"
            " come first (at most 1000; with more waiting the stream ends there, and a"
            " reconnect goes on), then live ones, without gap or repeat. A comment line"
            " every 15 s keeps it open; a client that falls behind is dropped."
        ),
    )
    stream["responses"]["406"] = NOT_ACCEPTABLE
    stream["responses"]["429"] = TOO_MANY_STREAMS
    stream["responses"]["503"] = SERVER_FULL
    return {
        BASE: {
            "get": op(
                "A project's webhooks",
                "projects",
                ref("HookList"),
                params=(OWNER, PROJECT),
                errors=(400, 403, 404),
                auth=WRITE,
                description=_WHO + " Secrets are not shown again.",
            ),
            "post": op(
                "Add a webhook",
                "projects",
                ref("HookCreated"),
                params=(OWNER, PROJECT),
                body=json_body("NewHook"),
                errors=(400, 403, 404, 409),
                auth=WRITE,
                description=(
                    _WHO + " At most 20 per project. The answer holds the secret (made when"
                    " none is given): it is shown this once." + _EVENTS
                ),
            ),
        },
        BASE + "/{hook_id}": {
            "delete": op(
                "Delete a webhook",
                "projects",
                ref("HookDeleted"),
                params=(OWNER, PROJECT, HOOK),
                errors=(400, 403, 404),
                auth=WRITE,
                description=_WHO + " Its deliveries go with it.",
            )
        },
        BASE + "/{hook_id}/deliveries": {
            "get": op(
                "A webhook's deliveries",
                "projects",
                ref("HookDeliveryList"),
                params=(
                    OWNER,
                    PROJECT,
                    HOOK,
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ),
                errors=(400, 403, 404),
                auth=WRITE,
                description=(
                    _WHO + " Newest event first: each one's state, tries, and the last"
                    " answer (its status and first 500 characters) or error."
                ),
            )
        },
        "/api/events/stream": {"get": stream},
    }


def hook_schemas() -> dict[str, Schema]:
    hook = {
        "id": ID,
        "url": STRING,
        "created_at": TIME,
        "created_by": nullable(NAME),
    }
    return {
        "NewHook": {
            **open_obj(
                {
                    "url": {
                        "type": "string",
                        "maxLength": 2000,
                        "pattern": "^https?://",
                        "description": "http or https, a host, no user:password@",
                    },
                    "secret": {
                        "type": "string",
                        "minLength": 16,
                        "maxLength": 256,
                        "pattern": "^[ -~]+$",
                        "description": "printable ASCII; absent: one is made",
                    },
                },
                ("url",),
            ),
            "examples": [{"url": "https://hooks.example.com/kopers"}],
        },
        "Hook": obj(hook),
        "HookCreated": obj({**hook, "secret": STRING}),
        "HookList": obj({"items": {"type": "array", "items": ref("Hook")}}),
        "HookDeleted": obj({"id": ID, "deleted": {"const": True}}),
        "HookDelivery": obj(
            {
                "id": ID,
                "notification": ID,
                "event": {"type": "string", "enum": KINDS},
                "build": {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT},
                "chroot": nullable(STRING),
                "event_state": {"type": "string", "enum": [*BUILD_STATES, "published"]},
                "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
                "attempts": COUNT,
                "last_status": nullable({"type": "integer"}),
                "last_answer": nullable(STRING),
                "last_error": nullable(STRING),
                "created_at": TIME,
                "last_at": nullable(TIME),
                "next_at": nullable(TIME),
                "delivered_at": nullable(TIME),
            }
        ),
        "HookDeliveryList": obj(
            {
                "items": {"type": "array", "items": ref("HookDelivery")},
                "meta": obj({"limit": COUNT, "hook": ID}),
            }
        ),
    }
