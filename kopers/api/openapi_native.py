"""Kopers' own API under /api as OpenAPI operations. Pure.

The handlers are in auth.py (tokens), events.py, native.py (status, build
detail, buildroot), submit.py (chains, resubmit), projects.py (settings) and
openapi.py (this document and its page).
"""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_ops import READ, WRITE, json_body, op, p, q
from kopers.api.openapi_schemas import (
    ID,
    NAME,
    OWNER_OR_PROJECT,
    PATH_NAME,
    ref,
)

OWNER = p("owner", PATH_NAME, "The owner: a user name, or @group.")
PROJECT = p("project", PATH_NAME, "The project's name.")
BUILD = p("build_id", ID, "The build's id.")


def native_paths() -> dict[str, dict[str, Any]]:
    return {
        "/api/openapi.json": {
            "get": op(
                "This document",
                "kopers",
                {"type": "object", "required": ["openapi", "paths"]},
                description="The OpenAPI 3.1 description of /api and /api_3.",
            )
        },
        "/api/docs": {
            "get": op(
                "This document as a page",
                "kopers",
                {"type": "string"},
                media="text/html",
                description="Every operation with its parameters and answers, as HTML.",
            )
        },
        "/api/status": {
            "get": op(
                "The server's state",
                "kopers",
                ref("Status"),
                description="Version, chroots, the VM pool and the scheduler's queue.",
            )
        },
        "/api/events": {
            "get": op(
                "The audit log",
                "kopers",
                ref("EventList"),
                params=(
                    q(
                        "project",
                        OWNER_OR_PROJECT,
                        description="Only events of this owner or project.",
                    ),
                    q("user", NAME, description="Only what this user did."),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ),
                errors=(400, 403),
                auth=WRITE,
                description="Newest first; for any authenticated user.",
            )
        },
        "/api/tokens/{login}": {
            "delete": op(
                "Revoke a token",
                "kopers",
                ref("TokenRevoked"),
                params=(p("login", PATH_NAME, "The token's login (copr-cli's `login =`)."),),
                errors=(400, 403, 404, 409),
                auth=WRITE,
                description="For the token's owner and site admins; its next use fails.",
            )
        },
        "/api/projects/{owner}/{project}": {
            "get": op(
                "A project's storage settings",
                "projects",
                ref("ProjectSettings"),
                params=(OWNER, PROJECT),
                errors=(400, 404),
                auth=READ,
            ),
            "patch": op(
                "Change a project's storage settings",
                "projects",
                ref("ProjectSettings"),
                params=(OWNER, PROJECT),
                body=json_body("ProjectSettingsUpdate"),
                errors=(400, 403, 404),
                auth=WRITE,
                description="A key left out keeps its value; null clears it.",
            ),
        },
        "/api/projects/{owner}/{project}/chains": {
            "post": op(
                "Submit a chain of builds",
                "builds",
                ref("Builds"),
                params=(OWNER, PROJECT),
                body=json_body("Chain"),
                errors=(400, 403, 404),
                auth=WRITE,
                description=(
                    "Each step waits for the one before it, or for the steps its `after` names."
                ),
            )
        },
        "/api/builds/{build_id}": {
            "get": op(
                "A build with its tasks",
                "builds",
                ref("BuildDetail"),
                params=(BUILD,),
                errors=(400, 404),
                auth=READ,
                description="Copr's build object plus each task, with ISO 8601 times.",
            )
        },
        "/api/builds/{build_id}/resubmit": {
            "post": op(
                "Build an ended build again",
                "builds",
                ref("Build"),
                params=(BUILD,),
                errors=(400, 403, 404),
                auth=WRITE,
            )
        },
        "/api/builds/{build_id}/buildroot": {
            "get": op(
                "What a build was built against",
                "builds",
                ref("Buildroot"),
                params=(BUILD,),
                errors=(400, 404),
                auth=READ,
                description="Chroot -> the NEVRAs installed in its buildroot.",
            )
        },
    }
