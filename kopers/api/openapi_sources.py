"""The build sources beyond SRPMs, URLs and git as OpenAPI operations and bodies. Pure.

create/custom, create/pypi and create/rpm-upload as python-copr sends them,
and the two Copr source kinds this server answers 501 to (RubyGems, dist-git).
"""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_bodies import build_option_fields
from kopers.api.openapi_ops import WRITE, json_body, op
from kopers.api.openapi_schemas import (
    HTTP_URL,
    STRING,
    Schema,
    name_list,
    nullable,
    open_obj,
    ref,
    text,
)
from kopers.sourcekinds import MAX_SCRIPT_BYTES


def _upload_body(what: str) -> Schema:
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["pkgs", "json"],
                    "properties": {
                        "pkgs": {
                            "type": "string",
                            "format": "binary",
                            "description": what,
                        },
                        "json": ref("BuildOptions"),
                    },
                },
                "encoding": {
                    "pkgs": {"contentType": "application/x-rpm"},
                    "json": {"contentType": "application/json"},
                },
            }
        },
    }


def source_paths() -> dict[str, dict[str, Any]]:
    """The operations; create/upload itself (SRPM or .spec) is in openapi_copr."""
    return {
        "/api_3/build/create/rpm-upload": {
            "post": op(
                "Publish an uploaded binary RPM",
                "builds",
                ref("Build"),
                body=_upload_body("a built (binary) RPM"),
                errors=(400, 403, 404),
                auth=WRITE,
                description=(
                    "The RPM is published into the build's chroots as it is, signed with the "
                    "project's key, without building; source RPMs are refused."
                ),
            )
        },
        "/api_3/build/create/custom": {
            "post": op(
                "Build from a script",
                "builds",
                ref("Build"),
                body=json_body("CustomBuild"),
                errors=(400, 403, 404),
                auth=WRITE,
                description=(
                    "The script runs as root in a fresh VM of `chroot` with `builddeps` installed "
                    "and network only through the egress proxy; the spec and sources it leaves "
                    "in `resultdir` become the source RPM."
                ),
            )
        },
        "/api_3/build/create/pypi": {
            "post": op(
                "Build a package from the Python package index",
                "builds",
                ref("Build"),
                body=json_body("PypiBuild"),
                errors=(400, 403, 404),
                auth=WRITE,
                description=(
                    "pyp2spec generates the spec in a VM from the server's configured index "
                    "(`[sources] pypi_url`); pyp2rpm is not offered."
                ),
            )
        },
        "/api_3/build/create/rubygems": {
            "post": op(
                "Build from RubyGems (not offered)",
                "builds",
                None,
                errors=(401, 501),
                description="This server has no RubyGems mirror: always 501.",
            )
        },
        "/api_3/build/create/distgit": {
            "post": op(
                "Build from dist-git (not offered)",
                "builds",
                None,
                errors=(401, 501),
                description="This server has no dist-git: always 501.",
            )
        },
    }


def source_schemas() -> dict[str, Schema]:
    options = build_option_fields()
    where = {"ownername": "alice", "projectname": "demo", "chroots": None}
    custom = open_obj(
        {
            **options,
            "script": text(MAX_SCRIPT_BYTES),
            "chroot": nullable(STRING),
            "builddeps": nullable(name_list(STRING)),
            "resultdir": nullable(text(4096, lines=False)),
            "repos": nullable(name_list(HTTP_URL)),
        },
        ("ownername", "projectname", "script"),
    )
    pypi = open_obj(
        {
            **options,
            "pypi_package_name": {"type": "string", "minLength": 1, "maxLength": 200},
            "pypi_package_version": nullable(STRING),
            "spec_generator": nullable({"type": "string", "enum": ["pyp2spec"]}),
            "spec_template": nullable({"type": "string", "enum": [""]}),
            "python_versions": nullable(
                {
                    "type": "array",
                    "items": {"type": ["integer", "string"], "enum": [2, 3, "2", "3"]},
                }
            ),
        },
        ("ownername", "projectname", "pypi_package_name"),
    )
    script = "#!/bin/sh\nmkdir out && cp /usr/share/doc/hello.spec out/\n"
    return {
        "CustomBuild": {
            **custom,
            "examples": [{**where, "script": script, "resultdir": "out", "builddeps": []}],
        },
        "PypiBuild": {
            **pypi,
            "examples": [{**where, "pypi_package_name": "six", "spec_generator": "pyp2spec"}],
        },
    }
