"""Copr's API v3 under /api_3 as OpenAPI operations: what copr-cli and python-copr call. Pure.

The contract is ../shared/docs/copr-api-v3.md; the handlers are in the copr*.py modules,
chroots.py and permissions.py.
"""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_ops import (
    BUILD_P,
    CHROOT_Q,
    ECHO_OWNER,
    LIMIT,
    OFFSET,
    OWNER_P,
    OWNER_Q,
    PROJECT_P,
    PROJECT_PATH,
    PROJECT_Q,
    READ,
    WRITE,
    json_body,
    op,
    p,
    q,
)
from kopers.api.openapi_schemas import COPR_BOOL, ID, NAME, PATH_NAME, Schema, ref


def _page(item: str) -> Schema:
    return ref(item + "List")


def copr_paths(max_text_bytes: int) -> dict[str, dict[str, Any]]:
    """Copr's API v3: what copr-cli, python-copr and `dnf copr` call; free text up to the cap."""
    root = op("API version", "copr", ref("Version"), description="Copr's API version, always 3.")
    perm_ops = "Needs credentials; for the project's owner, its admins and site admins."
    return {
        "/api_3": {"get": root},
        "/api_3/": {"get": root},
        "/api_3/auth-check": {
            "get": op(
                "Who am I",
                "copr",
                ref("Whoami"),
                auth=WRITE,
                description="The user the credentials belong to.",
            )
        },
        "/api_3/mock-chroots/list": {
            "get": op(
                "Chroots this server builds for",
                "copr",
                ref("MockChroots"),
                description='A flat object: chroot name -> comment ("" for none).',
            )
        },
        "/api_3/project": {
            "get": op(
                "Get a project",
                "projects",
                ref("Project"),
                params=(OWNER_Q, PROJECT_Q),
                errors=(400, 404),
                auth=READ,
            )
        },
        "/api_3/project/list": {
            "get": op(
                "List projects",
                "projects",
                _page("Project"),
                params=(q("ownername", NAME, description="Only this owner's."), LIMIT, OFFSET),
                errors=(400,),
                auth=READ,
            )
        },
        "/api_3/project/search": {
            "get": op(
                "Search projects",
                "projects",
                _page("Project"),
                params=(
                    q("query", NAME, description="Text the full name contains."),
                    LIMIT,
                    OFFSET,
                ),
                errors=(400,),
                auth=READ,
            )
        },
        "/api_3/project/add/{ownername}": {
            "post": op(
                "Create a project",
                "projects",
                ref("Project"),
                params=(
                    OWNER_P,
                    ECHO_OWNER,
                    q("exist_ok", COPR_BOOL, description="True: answer an existing project."),
                ),
                body=json_body("ProjectAdd"),
                errors=(400, 403, 404, 409, 501),
                auth=WRITE,
                description=(
                    "For the owner, or a member of the owning group. Makes its key. "
                    "persistent, and auto_prune off, are for server admins."
                ),
            )
        },
        "/api_3/project/edit/{ownername}/{projectname}": {
            "put": op(
                "Change a project",
                "projects",
                ref("Project"),
                params=PROJECT_PATH,
                body=json_body("ProjectEdit"),
                errors=(400, 403, 404, 501),
                auth=WRITE,
                description=(
                    "copr-cli modify. For the owner and the project's admins. null leaves a "
                    "field as it is; a chroot list replaces the set (a chroot taken out keeps "
                    "its results on disk)."
                ),
            )
        },
        "/api_3/webhook/generate/{ownername}/{projectname}": {
            "post": op(
                "A new webhook secret",
                "projects",
                ref("WebhookSecret"),
                params=PROJECT_PATH,
                errors=(400, 403, 404, 501),
                auth=WRITE,
                description="copr-cli new-webhook-secret. The old secret stops working.",
            )
        },
        "/api_3/project/regenerate-repos/{ownername}/{projectname}": {
            "put": op(
                "Rebuild a project's repodata",
                "projects",
                ref("Project"),
                params=PROJECT_PATH,
                errors=(400, 403, 404, 501),
                auth=WRITE,
                description="Rebuilds every chroot's repodata from the files on disk.",
            )
        },
        "/api_3/project/delete/{ownername}/{projectname}": {
            "delete": op(
                "Delete a project",
                "projects",
                ref("Project"),
                params=PROJECT_PATH,
                body={
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"verify": {"type": "boolean"}},
                            }
                        }
                    },
                },
                errors=(400, 403, 404, 501),
                auth=WRITE,
                description=(
                    "Cancels its unfinished builds, then removes rows, key and results. "
                    "A persistent project only by a server admin."
                ),
            )
        },
        "/api_3/build/check-before-build": {
            "post": op(
                "Check a build before uploading",
                "builds",
                ref("CheckResult"),
                body=json_body("BuildOptions"),
                errors=(400, 403, 404),
                auth=WRITE,
                description="The project exists, the caller may build, the options are valid.",
            )
        },
        "/api_3/build/create/upload": {
            "post": op(
                "Build an uploaded source RPM",
                "builds",
                ref("Build"),
                body={
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["pkgs", "json"],
                                "properties": {
                                    "pkgs": {"type": "string", "format": "binary"},
                                    "json": ref("BuildOptions"),
                                },
                            },
                            "encoding": {
                                "pkgs": {"contentType": "application/x-rpm"},
                                "json": {"contentType": "application/json"},
                            },
                        }
                    },
                },
                errors=(400, 403, 404),
                auth=WRITE,
                description="Multipart: the file (`pkgs`) first, then the options (`json`).",
            )
        },
        "/api_3/build/create/url": {
            "post": op(
                "Build source RPMs from URLs",
                "builds",
                ref("UrlBuilds"),
                body=json_body("UrlBuild"),
                errors=(400, 403, 404),
                auth=WRITE,
                description="One build per URL; the host fetches each in the build's source step.",
            )
        },
        "/api_3/build/create/scm": {
            "post": op(
                "Build from a git repository",
                "builds",
                ref("Build"),
                body=json_body("ScmBuild"),
                errors=(400, 403, 404),
                auth=WRITE,
            )
        },
        "/api_3/build/{build_id}": {
            "get": op(
                "Get a build", "builds", ref("Build"), params=(BUILD_P,), errors=(400, 404, 501)
            )
        },
        "/api_3/build/list": {
            "get": op(
                "List a project's builds",
                "builds",
                _page("Build"),
                params=(
                    OWNER_Q,
                    PROJECT_Q,
                    q("packagename", NAME, description="Only builds of this package."),
                    q("status", NAME, description="Only builds in this state."),
                    LIMIT,
                    OFFSET,
                ),
                errors=(400, 404),
                auth=READ,
                description="Newest first.",
            )
        },
        "/api_3/build/cancel/{build_id}": {
            "put": op(
                "Cancel a build",
                "builds",
                ref("Build"),
                params=(BUILD_P,),
                errors=(400, 403, 404, 409, 501),
                auth=WRITE,
            )
        },
        "/api_3/build/delete/list": {
            "delete": op(
                "Delete ended builds",
                "builds",
                ref("DeletedBuilds"),
                body=json_body("BuildIds"),
                errors=(400, 403, 404),
                auth=WRITE,
            )
        },
        "/api_3/build/built-packages/{build_id}": {
            "get": op(
                "What a build built",
                "builds",
                ref("BuiltPackages"),
                params=(BUILD_P,),
                errors=(400, 404, 501),
                description="Chroot -> the packages built there; {} before any is published.",
            )
        },
        "/api_3/build-chroot/list": {
            "get": op(
                "A build's chroots",
                "builds",
                _page("BuildChroot"),
                params=(q("build_id", ID, True), LIMIT, OFFSET),
                errors=(400, 404),
            )
        },
        "/api_3/build-chroot": {
            "get": op(
                "One chroot of a build",
                "builds",
                ref("BuildChroot"),
                params=(q("build_id", ID, True), CHROOT_Q),
                errors=(400, 404),
            )
        },
        "/api_3/package/list": {
            "get": op(
                "List a project's packages",
                "packages",
                _page("Package"),
                params=(
                    OWNER_Q,
                    PROJECT_Q,
                    q("with_latest_build", COPR_BOOL),
                    q("with_latest_succeeded_build", COPR_BOOL),
                    LIMIT,
                    OFFSET,
                ),
                errors=(400, 404),
                auth=READ,
                description="Packages are the names of built source packages, by name.",
            )
        },
        "/api_3/project-chroot": {
            "get": op(
                "A project's chroot settings",
                "chroots",
                ref("ProjectChroot"),
                params=(OWNER_Q, PROJECT_Q, CHROOT_Q),
                errors=(400, 404),
                auth=READ,
            )
        },
        "/api_3/project-chroot/edit/{ownername}/{projectname}/{chrootname}": {
            "put": op(
                "Edit a project's chroot",
                "chroots",
                ref("ProjectChroot"),
                params=(
                    OWNER_P,
                    PROJECT_P,
                    p("chrootname", PATH_NAME, "A chroot enabled in the project."),
                    q("ownername", NAME, description="If given, it names the owner instead."),
                    q("projectname", NAME, description="If given, it names the project instead."),
                    q("chrootname", NAME, description="If given, it names the chroot instead."),
                ),
                body={
                    "required": False,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "upload_comps": {"type": "string", "format": "binary"},
                                    "json": ref("ProjectChrootEdit"),
                                },
                            },
                            "encoding": {"json": {"contentType": "application/json"}},
                        },
                        "application/json": {"schema": ref("ProjectChrootEdit")},
                    },
                },
                errors=(400, 403, 404, 501),
                auth=WRITE,
                description=(
                    "copr-cli sends multipart (an optional comps file, refused, then `json`); "
                    "JSON works too. Only additional_repos is kept per chroot; mock's "
                    "bootstrap and isolation only at their defaults."
                ),
            )
        },
        "/api_3/project-chroot/build-config": {
            "get": op(
                "A mock configuration's inputs",
                "chroots",
                ref("BuildConfig"),
                params=(OWNER_Q, PROJECT_Q, CHROOT_Q),
                errors=(400, 404),
                auth=READ,
                description="What `copr-cli mock-config` turns into a mock config.",
            )
        },
        "/api_3/project/permissions/get/{ownername}/{projectname}": {
            "get": op(
                "A project's roles",
                "permissions",
                ref("Permissions"),
                params=PROJECT_PATH,
                errors=(400, 403, 404, 501),
                auth=WRITE,
                description=perm_ops + " 404 while the project has no roles at all.",
            )
        },
        "/api_3/project/permissions/set/{ownername}/{projectname}": {
            "put": op(
                "Set users' roles",
                "permissions",
                ref("PermissionsSetResult"),
                params=PROJECT_PATH,
                body=json_body("PermissionsSet"),
                errors=(400, 403, 404, 501),
                auth=WRITE,
                description=perm_ops + " Answers the users whose roles changed.",
            )
        },
        "/api_3/project/permissions/request/{ownername}/{projectname}": {
            "put": op(
                "Ask for roles",
                "permissions",
                ref("PermissionsRequestResult"),
                params=PROJECT_PATH,
                body=json_body("PermissionsRequest"),
                errors=(400, 403, 404, 501),
                auth=WRITE,
                description="Any user but the owner; true asks for a role, false gives it up.",
            )
        },
    }
