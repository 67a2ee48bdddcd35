"""The OpenAPI 3.1 description of /api and /api_3: served as JSON and as an HTML page.

`GET /api/openapi.json` is the document; `GET /api/docs` renders it on the
server (jinja2, no script, nothing fetched from elsewhere) with every
operation's method, path, summary, parameters, body and answers.

The operations are in openapi_copr.py and openapi_native.py (the /api/
tokens page and its browser forms in openapi_web.py) and the schemas in
openapi_schemas.py; a test holds them to the app's routes, and the API
fuzzer holds the handlers' answers to them. Left out: the HTML pages, the
`/results/` tree, `dnf.repo` files and the `/ws/` websocket, which are not
JSON APIs.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from aiohttp import web
from markupsafe import Markup, escape

import kopers
from kopers.api.keys import KOPERS
from kopers.api.openapi_bodies import request_schemas
from kopers.api.openapi_builds import build_paths, build_schemas
from kopers.api.openapi_copr import copr_paths
from kopers.api.openapi_fork import fork_paths, fork_schemas
from kopers.api.openapi_hooks import hook_paths, hook_schemas
from kopers.api.openapi_native import native_paths
from kopers.api.openapi_ops import ERRORS
from kopers.api.openapi_packages import package_paths, package_schemas
from kopers.api.openapi_projects import project_schemas
from kopers.api.openapi_schemas import Schema, ref, response_schemas
from kopers.api.openapi_sources import source_paths, source_schemas
from kopers.api.openapi_web import SESSION, SESSION_SCHEME, web_paths
from kopers.api.openapi_webhooks import webhook_paths, webhook_schemas
from kopers.api.views import render
from kopers.config import Config

routes = web.RouteTableDef()
METHODS = ("get", "put", "post", "delete", "patch")
TAGS = {
    "copr": "Copr's API v3: the server itself.",
    "projects": "Projects: Copr's calls under /api_3/project, Kopers' settings under /api.",
    "builds": "Submitting, reading, canceling and deleting builds.",
    "packages": "The packages a project has built.",
    "chroots": "A project's chroots.",
    "permissions": "Copr's per-project roles: builder and admin.",
    "kopers": "Kopers' own calls: status, audit log, tokens, this document.",
}
DESCRIPTION = """\
Kopers builds RPM packages and hosts them as signed dnf repositories.
`/api_3` is Copr's API v3, as copr-cli and python-copr call it; `/api` holds
Kopers' own additions.

Credentials are HTTP Basic: the `login` and `token` of a copr-cli config.
Reads take none. Every error answer is a JSON object with an `error` key.

Before any route: a client address holding more than
`limits.connections_per_address` connections gets a 503, and a body slower
than `limits.min_body_rate_kib` loses its connection.
"""


@functools.lru_cache(maxsize=8)
def _document(chroots: tuple[str, ...], public_url: str, max_text_bytes: int) -> str:
    components: dict[str, Any] = {
        "schemas": {
            **response_schemas(),
            **request_schemas(list(chroots), max_text_bytes),
            **project_schemas(list(chroots), max_text_bytes),
            **package_schemas(max_text_bytes),
            **build_schemas(),
            **fork_schemas(),
            **source_schemas(),
            **hook_schemas(),
            **webhook_schemas(),
        },
        "responses": {
            f"E{code}": {
                "description": text,
                "content": {"application/json": {"schema": ref("Error")}},
            }
            for code, text in ERRORS.items()
        },
        "securitySchemes": {
            "basic": {
                "type": "http",
                "scheme": "basic",
                "description": "login:token, as in copr-cli's config (`kopers token create`).",
            },
            SESSION: SESSION_SCHEME,
        },
    }
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "Kopers API", "version": kopers.__version__, "description": DESCRIPTION},
        "servers": [{"url": public_url}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": dict(
            sorted(
                {
                    **copr_paths(max_text_bytes),
                    **native_paths(),
                    **package_paths(max_text_bytes),
                    **build_paths(),
                    **fork_paths(),
                    **source_paths(),
                    **hook_paths(),
                    **webhook_paths(),
                    **web_paths(),
                }.items()
            )
        ),
        "components": components,
    }
    return json.dumps(doc, indent=1)


def document(config: Config) -> dict[str, Any]:
    """The OpenAPI document for this server (its chroots, its URL)."""
    chroots = tuple(c.name for c in config.enabled_chroots)
    raw = _document(chroots, config.server.public_url, config.limits.max_text_bytes)
    result: dict[str, Any] = json.loads(raw)
    return result


@routes.get("/api/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    config = request.app[KOPERS].config
    return web.json_response(document(config))


@routes.get("/api/docs")
async def api_docs(request: web.Request) -> web.Response:
    doc = document(request.app[KOPERS].config)
    return render(
        "api_docs.html",
        info=doc["info"],
        intro=[prose(para) for para in doc["info"]["description"].split("\n\n")],
        server=doc["servers"][0]["url"],
        tags={name: prose(text) for name, text in TAGS.items()},
        operations=operations(doc),
        schemas=schema_tables(doc),
        named=set(doc["components"]["schemas"]),
    )


# The page ----------------------------------------------------------------------


def operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each operation of `doc`, flattened for the page, in tag then path order. Pure."""
    out = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            out.append(
                {
                    "id": re.sub(r"[^A-Za-z0-9_]+", "-", f"{method}{path}").strip("-"),
                    "method": method.upper(),
                    "path": path,
                    "tag": operation["tags"][0],
                    "summary": operation["summary"],
                    "description": prose(operation.get("description", "")),
                    "auth": _auth(operation["security"]),
                    "parameters": [
                        {
                            "name": param["name"],
                            "in": param["in"],
                            "required": param["required"],
                            "type": describe(param["schema"]),
                            "description": prose(param.get("description", "")),
                        }
                        for param in operation.get("parameters", [])
                    ],
                    "body": _body(operation.get("requestBody"), doc),
                    "responses": [
                        _response(code, answer, doc)
                        for code, answer in operation["responses"].items()
                    ],
                }
            )
    tags = list(TAGS)
    return sorted(out, key=lambda o: (tags.index(o["tag"]), o["path"], o["method"]))


def _auth(security: list[dict[str, Any]]) -> str:
    if security == [{SESSION: []}]:
        return "browser session and CSRF token"
    if security == [{}]:
        return "none"
    return "optional" if {} in security else "HTTP Basic"


def _body(body: dict[str, Any] | None, doc: dict[str, Any]) -> list[dict[str, str]] | None:
    if body is None:
        return None
    out = []
    for media, content in body["content"].items():
        schema = content["schema"]
        named = doc["components"]["schemas"].get(str(schema.get("$ref", "")).rsplit("/", 1)[-1])
        examples = (named or schema).get("examples") or [None]
        out.append(
            {
                "media": media,
                "type": describe(schema),
                "required": "required" if body.get("required") else "optional",
                "example": "" if examples[0] is None else json.dumps(examples[0], indent=1),
            }
        )
    return out


def _response(code: str, answer: dict[str, Any], doc: dict[str, Any]) -> dict[str, str]:
    if "$ref" in answer:
        answer = doc["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
    media, content = next(iter(answer["content"].items()))
    return {
        "code": code,
        "description": prose(answer["description"]),
        "media": media,
        "type": describe(content["schema"]),
    }


def schema_tables(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each component schema as rows of (property, type, required). Pure."""
    out = []
    for name, schema in doc["components"]["schemas"].items():
        required = set(schema.get("required", []))
        rows = [
            {"name": prop, "type": describe(sub), "required": prop in required}
            for prop, sub in schema.get("properties", {}).items()
        ]
        out.append({"name": name, "type": describe(schema, top=True), "rows": rows})
    return out


def prose(text: str) -> Markup:
    """Plain text for the page, escaped, with `quoted` words set as code. Pure."""
    parts = str(escape(text)).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def describe(schema: Schema, top: bool = False) -> str:
    """A schema as a short phrase: "integer 1..9223372036854775807", "array of Build". Pure."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(dict.fromkeys(describe(s) for s in schema["anyOf"]))
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type", "any value")
    if kind == "array":
        return "array of " + describe(schema.get("items", {}))
    if kind == "object":
        return _describe_object(schema, top)
    return kind + _bounds(schema)


def _describe_object(schema: Schema, top: bool) -> str:
    extra = schema.get("additionalProperties")
    props = schema.get("properties", {})
    if isinstance(extra, dict) and not props:
        return "object: name -> " + describe(extra)
    if props and not top:
        return "object {" + ", ".join(props) + "}"
    return "object" if extra is not False or top else "object {}"


def _bounds(schema: Schema) -> str:
    parts = []
    if "format" in schema:
        parts.append(schema["format"])
    if "minimum" in schema or "maximum" in schema:
        parts.append(f"{schema.get('minimum', '')}..{schema.get('maximum', '')}")
    if "maxLength" in schema:
        parts.append(f"{schema.get('minLength', 0)}..{schema['maxLength']} characters")
    if "pattern" in schema:
        parts.append(f"matching {schema['pattern']}")
    return (" " + ", ".join(parts)) if parts else ""


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
