"""Building blocks of the OpenAPI operations: parameters, bodies, responses, security. Pure.

Each operation lists the statuses its handler can answer. Copr's clients tell
an error by its `error` key, so every error body is the `Error` object. A path
under /api_3 that no route matches answers 501, not 404: python-copr reads a
404 as "no such project". That includes a path segment the router cannot
match (empty, or holding `{` or `}`), so operations with path parameters
under /api_3 list 501 too.
"""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_schemas import COUNT, ID, NAME, PATH_NAME, Schema, ref

ERRORS = {
    400: "A parameter or the body is malformed or out of range; `error` names it.",
    401: "Credentials are missing, wrong, revoked or expired.",
    403: "The caller may not do this to this object.",
    404: "The named project, build, chroot, user or token does not exist.",
    409: "The object's state forbids this (it exists already, has ended, is revoked).",
    413: "The body is over its cap (server.max_upload_mib, limits.max_json_kib).",
    501: "The path names no route of this server (e.g. an empty segment, or one with braces).",
}
READ = "optional"  # reads take credentials but never need them (Copr's clients send none)
WRITE = "required"


def q(name: str, schema: Schema, required: bool = False, description: str = "") -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def p(name: str, schema: Schema, description: str = "") -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def json_body(schema: str, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": ref(schema)}}}


def op(
    summary: str,
    tag: str,
    ok: Schema | None,
    *,
    params: tuple[Schema, ...] = (),
    body: Schema | None = None,
    errors: tuple[int, ...] = (),
    auth: str | None = None,
    description: str = "",
    ok_description: str = "Success.",
    media: str = "application/json",
) -> dict[str, Any]:
    """One operation: its 200 answer (`ok` schema), error statuses and security."""
    out: dict[str, Any] = {"summary": summary, "tags": [tag]}
    if description:
        out["description"] = description
    if params:
        out["parameters"] = list(params)
    if body is not None:
        out["requestBody"] = body
    codes = set(errors)
    if auth == WRITE:
        codes.add(401)
    if body is not None:
        codes.add(413)
    responses: dict[str, Any] = {
        "200": {"description": ok_description, "content": {media: {"schema": ok or {}}}}
    }
    for code in sorted(codes):
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    out["responses"] = responses
    if auth == WRITE:
        out["security"] = [{"basic": []}]
    elif auth == READ:
        out["security"] = [{}, {"basic": []}]
    else:
        out["security"] = [{}]
    return out


# Parameters used by many operations.
OWNER_Q = q("ownername", NAME, True, "The owner: a user name, or @group.")
PROJECT_Q = q("projectname", NAME, True, "The project's name.")
CHROOT_Q = q("chrootname", NAME, True, "A chroot enabled in the project.")
OWNER_P = p("ownername", PATH_NAME, "The owner: a user name, or @group.")
PROJECT_P = p("projectname", PATH_NAME, "The project's name.")
BUILD_P = p("build_id", ID, "The build's id.")
LIMIT = q("limit", COUNT, description="At most this many items; no limit when absent.")
OFFSET = q("offset", COUNT, description="Items to skip.")
# copr-cli repeats path placeholders in the query; the handler reads the path.
ECHO_OWNER = q("ownername", NAME, description="copr-cli repeats the path's owner here.")
ECHO_PROJECT = q("projectname", NAME, description="copr-cli repeats the path's project here.")
PROJECT_PATH = (OWNER_P, PROJECT_P, ECHO_OWNER, ECHO_PROJECT)
