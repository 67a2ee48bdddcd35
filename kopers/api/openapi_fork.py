"""The OpenAPI operation of Copr's `project/fork` and the schema of its body. Pure."""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_ops import PROJECT_PATH, WRITE, json_body, op
from kopers.api.openapi_schemas import FLAG, NAME, PROJECT_NAME, Schema, open_obj, ref


def fork_paths() -> dict[str, dict[str, Any]]:
    return {
        "/api_3/project/fork/{ownername}/{projectname}": {
            "post": op(
                "Fork a project",
                "projects",
                ref("Project"),
                params=PROJECT_PATH,
                body=json_body("ProjectFork"),
                errors=(400, 403, 404, 409, 501),
                auth=WRITE,
                description=(
                    "Copies the project in the path, with its settings, chroots and packages"
                    " and the newest successful build of each package in each chroot, into"
                    " `ownername/name`: the caller's own name, or a group the caller is a"
                    " member of. The answer is the new project at once; its builds are"
                    " `forked` until their results are copied, re-signed with its own key and"
                    " published, then `succeeded`. Forking into an existing project needs"
                    " `confirm`: it then gets the packages and builds it has no copy of yet."
                ),
            )
        }
    }


def fork_schemas() -> dict[str, Schema]:
    return {
        "ProjectFork": {
            **open_obj(
                {
                    "name": PROJECT_NAME,
                    "ownername": {
                        "anyOf": [NAME, {"type": "null"}],
                        "description": "the fork's owner (a user, or @group); null: the caller",
                    },
                    "confirm": FLAG,
                },
                ("name",),
            ),
            "examples": [{"name": "demo-fork", "ownername": "bob", "confirm": False}],
        }
    }
