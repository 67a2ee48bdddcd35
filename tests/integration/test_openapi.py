"""The OpenAPI document at /api/openapi.json: valid, complete, true, and readable at /api/docs.

The document must describe exactly the routes the app serves under /api/
and /api_3 (HEAD comes with GET and is not listed), validate as OpenAPI 3.1,
load in schemathesis, and the answers of real calls (successes and errors,
made the way copr-cli makes them) must match the schemas it gives for them.
The page lists every operation with its parameters and statuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis.core.result import Err

from kopers.api.app import create_app
from kopers.api.openapi import describe
from tests.integration.conftest import CHROOT, Api, create

pytestmark = pytest.mark.integration
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


async def fetch_document(api: Api) -> dict[str, Any]:
    status, doc = await api.call("GET", "/api/openapi.json")
    assert status == 200 and isinstance(doc, dict)
    return doc


def served(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route under /api/ and /api_3; HEAD comes with GET."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical.startswith(("/api/", "/api_3"))
    }


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


async def test_the_document_is_valid_openapi_3_1_and_loads_in_schemathesis(api: Api) -> None:
    doc = await fetch_document(api)
    assert doc["openapi"].startswith("3.1.")
    errors = [e.message for e in OpenAPIV31SpecValidator(doc).iter_errors()]
    assert errors == []
    results = list(schemathesis.openapi.from_dict(doc).get_all_operations())
    broken = [str(r.err()) for r in results if isinstance(r, Err)]
    assert broken == [] and len(results) == len(documented(doc))


async def test_every_route_has_an_operation_and_every_operation_a_route(api: Api) -> None:
    app = api.client.app
    assert app is not None
    doc = await fetch_document(api)
    assert served(app) - documented(doc) == set(), "routes the document does not describe"
    assert documented(doc) - served(app) == set(), "operations the app does not serve"


async def test_a_route_added_without_its_operation_is_noticed(api: Api) -> None:
    app = create_app(api.kopers)

    async def extra(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_post("/api/extra/{thing}", extra)
    assert served(app) - documented(await fetch_document(api)) == {("POST", "/api/extra/{thing}")}


async def test_each_operation_declares_its_path_placeholders_and_answers(api: Api) -> None:
    doc = await fetch_document(api)
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            placeholders = set(re.findall(r"{(\w+)}", path))
            params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert params == placeholders, (method, path)
            codes = set(operation["responses"])
            assert "200" in codes, (method, path)
            if operation["security"] == [{"basic": []}]:
                assert "401" in codes, (method, path)
            if "requestBody" in operation:
                assert "413" in codes, (method, path)


# The page ------------------------------------------------------------------------------


class Sections(HTMLParser):
    """The text of each `<section class="op">`, keyed by (method, path)."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[tuple[str, str], list[str]] = {}
        self.current: tuple[str, str] | None = None
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "section":
            return
        if self.current is not None:
            self.depth += 1
            return
        a = dict(attrs)
        if a.get("class") == "op":
            self.current = (str(a["data-method"]), str(a["data-path"]))
            self.sections[self.current] = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self.current is not None:
            if self.depth:
                self.depth -= 1
            else:
                self.current = None

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.sections[self.current].append(data)


async def test_the_docs_page_lists_every_operation_with_its_parameters_and_answers(
    api: Api,
) -> None:
    doc = await fetch_document(api)
    async with api.client.get("/api/docs") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    parser = Sections()
    parser.feed(page)
    assert set(parser.sections) == documented(doc)
    for (method, path), chunks in parser.sections.items():
        text = " ".join(chunks)
        operation = doc["paths"][path][method.lower()]
        assert path in text and operation["summary"] in text
        for param in operation.get("parameters", []):
            assert param["name"] in text and describe(param["schema"]) in text, (path, param)
        for code in operation["responses"]:
            assert code in text, (method, path, code)
    assert "<script" not in page  # nothing to fetch or run: the server renders it all


def test_schemas_read_as_short_phrases() -> None:
    bigint = {"type": "integer", "minimum": 1, "maximum": 9}
    assert describe(bigint) == "integer 1..9"
    assert describe({"anyOf": [{"$ref": "#/components/schemas/Build"}, {"type": "null"}]}) == (
        "Build or null"
    )
    assert describe({"type": "array", "items": {"type": "string", "enum": ["a"]}}) == (
        'array of one of "a"'
    )


# Real answers against their schemas --------------------------------------------------


Check = Callable[[str, str, int, Any], None]


def checker(doc: dict[str, Any]) -> tuple[Check, set[tuple[str, str, int]]]:
    """check(method, path template, status, body): the body matches the documented schema."""
    seen: set[tuple[str, str, int]] = set()

    def check(method: str, path: str, status: int, body: Any) -> None:
        operation = doc["paths"][path][method.lower()]
        assert str(status) in operation["responses"], (method, path, status, body)
        answer = operation["responses"][str(status)]
        if "$ref" in answer:
            answer = doc["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
        schema = answer["content"]["application/json"]["schema"]
        jsonschema.validate(body, {**schema, "components": doc["components"]})
        seen.add((method, path, status))

    return check, seen


async def test_real_answers_match_the_documented_schemas(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    """Successes and errors of real calls, each checked against its operation's schema."""
    doc = await fetch_document(api)
    check, seen = checker(doc)

    async def call(user: str | None, method: str, template: str, **kw: Any) -> Any:
        path = template.format(**kw.pop("path", {}))
        status, body = await api.call(method, path + kw.pop("query", ""), user, **kw)
        check(method, template, status, body)
        return body

    proj = {"ownername": "alice", "projectname": "proj"}
    p = "?ownername=alice&projectname=proj"
    c = f"{p}&chrootname={CHROOT}"
    status, body = await create(api, "alice", "alice", "proj")
    check("POST", "/api_3/project/add/{ownername}", status, body)
    status, body = await create(api, "alice", "alice", "proj")
    check("POST", "/api_3/project/add/{ownername}", status, body)  # 409: it exists
    for template in ("/api_3", "/api_3/", "/api_3/mock-chroots/list", "/api/status"):
        await call(None, "GET", template)
    await call("alice", "GET", "/api_3/auth-check")
    await call(None, "GET", "/api_3/auth-check")  # 401
    await call(None, "GET", "/api_3/project", query=p)
    await call(None, "GET", "/api_3/project", query="?ownername=alice&projectname=no")  # 404
    await call(None, "GET", "/api_3/project/list", query="?ownername=alice")
    await call(None, "GET", "/api_3/project/list", query="?limit=many")  # 400
    await call(None, "GET", "/api_3/project/search", query="?query=pro&limit=5")
    await call(None, "GET", "/api_3/project-chroot", query=c)
    await call(None, "GET", "/api_3/project-chroot/build-config", query=c)
    edit = "/api_3/project-chroot/edit/{ownername}/{projectname}/{chrootname}"
    repos = {"additional_repos": ["https://example.org/repo/"]}
    await call("alice", "PUT", edit, path={**proj, "chrootname": CHROOT}, json=repos)

    perms = "/api_3/project/permissions/{verb}/{{ownername}}/{{projectname}}"
    get, ask, set_ = (perms.format(verb=v) for v in ("get", "request", "set"))
    await call("alice", "GET", get, path=proj)  # 404: no roles yet
    await call("bob", "PUT", ask, path=proj, json={"admin": True})
    await call("bob", "GET", get, path=proj)  # 403
    await call("alice", "PUT", set_, path=proj, json={"bob": {"builder": "approved"}})
    await call("alice", "GET", get, path=proj)

    settings = "/api/projects/{owner}/{project}"
    mine = {"owner": "alice", "project": "proj"}
    await call(None, "GET", settings, path=mine)
    await call("alice", "PATCH", settings, path=mine, json={"keep_builds": 3})

    options = {**proj, "chroots": None}
    await call("alice", "POST", "/api_3/build/check-before-build", json=options)
    status, uploaded = await api.upload("alice", make_srpm("hello", "1.0"), options)
    check("POST", "/api_3/build/create/upload", status, uploaded)
    pkgs = {**options, "pkgs": ["https://example.org/a-1-1.src.rpm"]}
    url_build = (await call("alice", "POST", "/api_3/build/create/url", json=pkgs))["items"][0]
    scm = {**options, "clone_url": "https://example.org/a.git", "scm_type": "git"}
    await call("alice", "POST", "/api_3/build/create/scm", json=scm)
    chain = {"builds": [{"url": "https://example.org/b-1-1.src.rpm"}]}
    await call("bob", "POST", "/api/projects/{owner}/{project}/chains", path=mine, json=chain)

    build = {"build_id": uploaded["id"]}
    for template in (
        "/api_3/build/{build_id}",
        "/api_3/build/built-packages/{build_id}",
        "/api/builds/{build_id}",
        "/api/builds/{build_id}/buildroot",
    ):
        await call(None, "GET", template, path=build)
    await call(None, "GET", "/api_3/build/{build_id}", path={"build_id": 999999})  # 404
    await call(None, "GET", "/api_3/build/list", query=f"{p}&limit=2&offset=1")
    await call(None, "GET", "/api_3/build-chroot/list", query=f"?build_id={build['build_id']}")
    both = f"?build_id={build['build_id']}&chrootname={CHROOT}"
    await call(None, "GET", "/api_3/build-chroot", query=both)
    await call(None, "GET", "/api_3/package/list", query=f"{p}&with_latest_build=True")
    url = {"build_id": url_build["id"]}
    await call("alice", "PUT", "/api_3/build/cancel/{build_id}", path=url)
    await call("alice", "PUT", "/api_3/build/cancel/{build_id}", path=url)  # 409: ended
    await call("alice", "POST", "/api/builds/{build_id}/resubmit", path=url)
    await call("alice", "DELETE", "/api_3/build/delete/list", json={"builds": [url["build_id"]]})
    regenerate = "/api_3/project/regenerate-repos/{ownername}/{projectname}"
    await call("alice", "PUT", regenerate, path=proj)
    await call("alice", "GET", "/api/events", query="?project=alice/proj&limit=50")
    await call("alice", "DELETE", "/api/tokens/{login}", path={"login": "nosuchlogin"})  # 404
    await call("alice", "DELETE", "/api_3/project/delete/{ownername}/{projectname}", path=proj)

    status_codes = {s for _, _, s in seen}
    assert {200, 400, 401, 403, 404, 409} <= status_codes
    assert len({(m, t) for m, t, s in seen if s == 200}) >= 35
