"""OpenAPI operations and schemas: one build, its source step, api-token, can_build_in. Pure.

The handlers are in coprbuilds.py (delete one build, build-chroot build-config
and built-packages), buildsource.py, coprtokens.py and permissions.py.
"""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_ops import BUILD_P, CHROOT_Q, READ, WRITE, op, p, q
from kopers.api.openapi_schemas import (
    BOOL,
    ID,
    MAX_BIGINT,
    NAME,
    PATH_NAME,
    STRING,
    STRINGS,
    URL,
    Schema,
    nullable,
    obj,
    ref,
)

BUILD_Q = q("build_id", ID, True, "The build's id.")
STATE: Schema = {"type": "string"}


def build_schemas() -> dict[str, Schema]:
    """The answers of these operations, by name."""
    repo = obj(
        {
            "id": STRING,
            "name": STRING,
            "baseurl": URL,
            "priority": nullable({"type": "integer"}),
            "module_hotfixes": BOOL,
            "repo_gpgcheck": BOOL,
        }
    )
    return {
        "SourceChroot": obj(
            {
                "state": STATE,
                "result_url": {"type": "null", "description": "no srpm-builds directory"},
                "srpm": nullable(STRING),
                "log_url": nullable(URL),
            }
        ),
        "SourceBuildConfig": obj(
            {
                "source_type": STRING,
                "source_dict": {"type": "object"},
                "timeout": {"type": "integer", "minimum": 0, "maximum": MAX_BIGINT},
                "is_background": BOOL,
            }
        ),
        "BuildChrootConfig": obj(
            {
                "chroot": STRING,
                "repos": {"type": "array", "items": repo},
                "additional_repos": STRINGS,
                "additional_packages": STRINGS,
                "additional_modules": STRINGS,
                "with_opts": STRINGS,
                "without_opts": STRINGS,
                "enable_net": BOOL,
                "is_background": BOOL,
                "timeout": {"type": "integer", "minimum": 0, "maximum": MAX_BIGINT},
                "macros": {
                    "type": "object",
                    "additionalProperties": STRING,
                    "description": "dist, vendor and packager, forced on every package",
                },
            }
        ),
        "ChrootPackages": obj({"packages": {"type": "array", "items": ref("Nevra")}}),
        "ApiToken": obj(
            {
                "api_login": STRING,
                "api_token": STRING,
                "expiration": nullable({"type": "string", "format": "date"}),
            }
        ),
        "CanBuildIn": obj(
            {"who": STRING, "ownername": STRING, "projectname": STRING, "can_build_in": BOOL}
        ),
    }


def build_paths() -> dict[str, dict[str, Any]]:
    chroot = (BUILD_Q, CHROOT_Q)
    return {
        "/api_3/build/delete/{build_id}": {
            "delete": op(
                "Delete one build",
                "builds",
                ref("Build"),
                params=(BUILD_P,),
                errors=(400, 403, 404, 501),
                auth=WRITE,
                description="As the list delete: for the project's editors, once the build"
                " has ended. Answers the build as it was.",
            )
        },
        "/api_3/build/source-chroot/{build_id}": {
            "get": op(
                "A build's source step",
                "builds",
                ref("SourceChroot"),
                params=(BUILD_P,),
                errors=(400, 404, 501),
                auth=READ,
                description="Its state, the SRPM it gave, and its log (only a source made"
                " from git has one).",
            )
        },
        "/api_3/build/source-build-config/{build_id}": {
            "get": op(
                "Where a build's source comes from",
                "builds",
                ref("SourceBuildConfig"),
                params=(BUILD_P,),
                errors=(400, 404, 501),
                auth=READ,
            )
        },
        "/api/builds/{build_id}/source-log": {
            "get": op(
                "The log of a build's source step",
                "builds",
                STRING,
                params=(BUILD_P,),
                errors=(400, 404),
                auth=READ,
                media="text/plain",
                description="Plain text; 404 for a source that needed no build step.",
            )
        },
        "/api_3/build-chroot/build-config": {
            "get": op(
                "What one chroot of a build was given",
                "builds",
                ref("BuildChrootConfig"),
                params=chroot,
                errors=(400, 404),
                auth=READ,
                description="Repositories (as the project is set now), options, and the"
                " macros forced on its packages.",
            )
        },
        "/api_3/build-chroot/built-packages": {
            "get": op(
                "What one chroot of a build built",
                "builds",
                ref("ChrootPackages"),
                params=chroot,
                errors=(400, 404),
                auth=READ,
            )
        },
        "/api_3/api-token": {
            "post": op(
                "Replace the caller's API token",
                "copr",
                ref("ApiToken"),
                auth=WRITE,
                description="The token the call is made with stops working; the new one"
                " lasts server.token_days (expiration null: never expires).",
            )
        },
        "/api_3/project/permissions/can_build_in/{who}/{ownername}/{projectname}": {
            "get": op(
                "May a user build in a project",
                "permissions",
                ref("CanBuildIn"),
                params=(
                    p("who", PATH_NAME, "The user asked about."),
                    p("ownername", PATH_NAME, "The owner: a user name, or @group."),
                    p("projectname", PATH_NAME, "The project's name."),
                    q("who", NAME, description="python-copr repeats the path's user here."),
                    q("ownername", NAME, description="python-copr repeats the path's owner."),
                    q("projectname", NAME, description="python-copr repeats the project."),
                ),
                errors=(400, 404, 501),
                auth=WRITE,
                description="The rule a build submission meets; any user may ask.",
            )
        },
    }
