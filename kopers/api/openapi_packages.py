"""Copr's package calls and the monitor as OpenAPI operations, with their schemas. Pure.

The handlers are in coprpackages.py, the body parsers in package_bodies.py.
"""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_ops import (
    ECHO_OWNER,
    ECHO_PROJECT,
    LIMIT,
    OFFSET,
    OWNER_P,
    OWNER_Q,
    PROJECT_P,
    PROJECT_Q,
    READ,
    WRITE,
    json_body,
    op,
    p,
    q,
)
from kopers.api.openapi_schemas import (
    COPR_BOOL,
    FLAG,
    ID,
    LINK,
    MAX_TIMEOUT,
    MAX_URL,
    NAME,
    PATH_NAME,
    STRING,
    Schema,
    name_list,
    nullable,
    number_or_digits,
    obj,
    open_obj,
    ref,
    text,
)

SOURCE_TYPES = ["scm", "pypi", "rubygems", "custom", "distgit"]
PACKAGE_P = p("package_name", PATH_NAME, "The package's name (an RPM name).")
TYPE_P = p(
    "source_type_text",
    {"type": "string", "enum": SOURCE_TYPES},
    "How the package's source is defined.",
)
_PATH = (OWNER_P, PROJECT_P, PACKAGE_P)
_FLAGS = (q("with_latest_build", COPR_BOOL), q("with_latest_succeeded_build", COPR_BOOL))
_WHO = (
    "Needs credentials: the project's owner, its admins and site admins manage packages "
    "(builders only build them)."
)
_ONE_LINE = nullable(text(MAX_URL, lines=False))


def package_paths(max_text_bytes: int) -> dict[str, dict[str, Any]]:
    """The /api_3/package operations and /api_3/monitor."""
    add = op(
        "Add a package",
        "packages",
        ref("Package"),
        params=(*_PATH, TYPE_P, ECHO_OWNER, ECHO_PROJECT),
        body=json_body("PackageDefinition"),
        errors=(400, 403, 404, 409, 501),
        auth=WRITE,
        description=_WHO + " The body holds the source definition of the type in the path.",
    )
    edit = op(
        "Edit a package",
        "packages",
        ref("Package"),
        params=(*_PATH, TYPE_P, ECHO_OWNER, ECHO_PROJECT),
        body=json_body("PackageDefinition"),
        errors=(400, 403, 404, 501),
        auth=WRITE,
        description=_WHO + " A key that is null or missing keeps its value.",
    )
    edit_same = {**edit, "parameters": [*_PATH, ECHO_OWNER, ECHO_PROJECT]}
    edit_same["summary"] = "Edit a package, keeping its source type"
    reset = op(
        "Reset a package's source",
        "packages",
        ref("Package"),
        body=json_body("PackageRef"),
        errors=(400, 403, 404),
        auth=WRITE,
        description=_WHO + " Its source type becomes unset; its builds stay.",
    )
    return {
        "/api_3/package": {
            "get": op(
                "Get a package",
                "packages",
                ref("Package"),
                params=(OWNER_Q, PROJECT_Q, q("packagename", NAME, True), *_FLAGS),
                errors=(400, 404),
                auth=READ,
            )
        },
        "/api_3/package/list": {
            "get": op(
                "List a project's packages",
                "packages",
                ref("PackageList"),
                params=(OWNER_Q, PROJECT_Q, *_FLAGS, LIMIT, OFFSET),
                errors=(400, 404),
                auth=READ,
                description="By name. `builds` holds the newest builds the flags ask for.",
            )
        },
        "/api_3/package/add/{ownername}/{projectname}/{package_name}/{source_type_text}": {
            "post": add
        },
        "/api_3/package/edit/{ownername}/{projectname}/{package_name}/{source_type_text}": {
            "post": edit
        },
        "/api_3/package/edit/{ownername}/{projectname}/{package_name}": {"post": edit_same},
        "/api_3/package/reset": {"put": reset, "post": reset},
        "/api_3/package/delete": {
            "delete": op(
                "Delete a package and its builds",
                "packages",
                ref("Package"),
                body=json_body("PackageRef"),
                errors=(400, 403, 404),
                auth=WRITE,
                description=_WHO + " Its builds go too, results and repositories updated; "
                "a build still running refuses the delete.",
            )
        },
        "/api_3/package/build": {
            "post": op(
                "Build a package from its source",
                "packages",
                ref("Build"),
                body=json_body("PackageBuild"),
                errors=(400, 403, 404, 501),
                auth=WRITE,
                description="For the project's builders. Git (scm) and URL packages build; "
                "other source types answer 501.",
            )
        },
        "/api_3/monitor": {
            "get": op(
                "The newest build of each package in each chroot",
                "packages",
                ref("Monitor"),
                params=(
                    OWNER_Q,
                    PROJECT_Q,
                    q("project_dirname", NAME, description="Only the project's own name."),
                    q(
                        "additional_fields[]",
                        {
                            "type": "string",
                            "enum": ["url_build_log", "url_backend_log", "url_build"],
                        },
                        description="Repeat for each extra field of a cell.",
                    ),
                ),
                errors=(400, 404, 501),
                auth=READ,
            )
        },
    }


def package_schemas(max_text_bytes: int) -> dict[str, Schema]:
    """The package bodies (with an example each) and the monitor's answer."""
    names = name_list(NAME)
    definition = open_obj(
        {
            "package_name": nullable(NAME),
            "webhook_rebuild": FLAG,
            "max_builds": number_or_digits(0, 100),
            "timeout": number_or_digits(0, MAX_TIMEOUT),
            "chroot_denylist": names,
            "clone_url": nullable(LINK),
            "committish": _ONE_LINE,
            "subdirectory": _ONE_LINE,
            "spec": _ONE_LINE,
            "scm_type": nullable({"type": "string", "enum": ["git", "svn"]}),
            "source_build_method": nullable(
                {"type": "string", "enum": ["rpkg", "tito", "tito_test", "make_srpm"]}
            ),
            "pypi_package_name": nullable(NAME),
            "pypi_package_version": nullable(NAME),
            "spec_generator": nullable({"type": "string", "enum": ["pyp2rpm", "pyp2spec"]}),
            "spec_template": nullable(
                {"type": "string", "enum": ["", "fedora", "epel7", "mageia", "pld"]}
            ),
            "python_versions": nullable({"type": "array", "items": {"enum": [2, 3, "2", "3"]}}),
            "gem_name": nullable(NAME),
            "script": nullable(text(max_text_bytes)),
            "script_chroot": nullable(NAME),
            "script_builddeps": names,
            "script_resultdir": _ONE_LINE,
            "script_repos": name_list(LINK),
            "distgit": nullable(NAME),
            "namespace": nullable(NAME),
        }
    )
    where = {"ownername": "alice", "projectname": "demo", "package_name": "hello"}
    cell = obj(
        {
            "state": STRING,
            "status": {"type": "integer"},
            "build_id": ID,
            "pkg_version": nullable(STRING),
        },
        {"url_build_log": nullable(LINK), "url_backend_log": nullable(LINK), "url_build": LINK},
    )
    return {
        "PackageDefinition": {
            **definition,
            "description": "The source keys of the path's type, and the package's settings.",
            "examples": [
                {
                    "package_name": "hello",
                    "clone_url": "https://example.org/hello.git",
                    "committish": "",
                    "subdirectory": "",
                    "spec": "",
                    "scm_type": "git",
                    "source_build_method": "rpkg",
                    "max_builds": "5",
                    "timeout": None,
                    "chroot_denylist": None,
                    "webhook_rebuild": None,
                }
            ],
        },
        "PackageRef": {
            **open_obj(
                {"ownername": NAME, "projectname": NAME, "package_name": NAME},
                ("ownername", "projectname", "package_name"),
            ),
            "examples": [where],
        },
        "PackageBuild": {
            "allOf": [
                ref("BuildOptions"),
                open_obj({"package_name": NAME}, ("package_name",)),
            ],
            "examples": [{**where, "project_dirname": "demo", "chroots": None}],
        },
        "Monitor": obj(
            {
                "output": {"const": "ok"},
                "message": STRING,
                "packages": {
                    "type": "array",
                    "items": obj(
                        {
                            "name": STRING,
                            "chroots": {"type": "object", "additionalProperties": cell},
                        }
                    ),
                },
            }
        ),
    }
