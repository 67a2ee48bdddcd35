"""Every mutating endpoint, called by every kind of caller, against a real Postgres.

For each mutating route of the app (any method but GET/HEAD/OPTIONS), on a
user-owned and on a group-owned project, the call is made as: anonymous,
another user, an approved builder, an approved project admin, the owner (for
a group project: an admin of the group), a plain member of the owning group,
and a site admin. Each call must be allowed or denied as the table says; a
denied call must leave every table (and the stored files) exactly as it was,
and an allowed call must leave exactly one audit event naming the caller.
A mutating route missing from the table fails the test.

Each call gets fresh objects (project, builds, tokens) made through the
store, so calls cannot influence each other. No VM runs: the app is opened
without VMs and the scheduler loop is not started.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from kopers import config as config_mod
from kopers import tokens
from kopers.access import Grant, PermState
from kopers.api.app import create_app
from kopers.api.webhooks_in import paths as webhook_paths
from kopers.db.packages import PackageSettings
from kopers.forgehook import signature_of
from kopers.models import Project, ScmPackageSource
from kopers.service import Kopers, open_kopers
from tests.integration.conftest import table_rows, waiting_build
from tests.rpms import noarch_rpm
from tests.unit import test_forgehook as hooks

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CHROOT = "debian-12-x86_64"
READ_METHODS = {"GET", "HEAD", "OPTIONS"}

KINDS = ("user", "group")
PRINCIPALS = ("anonymous", "other", "builder", "project_admin", "owner", "member", "site_admin")


def who(kind: str, principal: str) -> str | None:
    """The user name playing `principal` for a project of `kind`."""
    return {
        "anonymous": None,
        "other": "eve",
        "builder": "bea",
        "project_admin": "pat",
        "owner": "olga" if kind == "user" else "gadm",
        "member": "gmem",
        "site_admin": "root",
    }[principal]


def owner_of(kind: str) -> str:
    return "olga" if kind == "user" else "@sig"


def basic(login: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()


@dataclass
class World:
    client: TestClient
    kopers: Kopers
    srpm: Path
    auth: dict[str, str] = field(default_factory=dict)
    serial: itertools.count[int] = field(default_factory=itertools.count)

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(self.serial)}"

    async def project(self, kind: str, creator: str = "olga") -> Project:
        """A fresh project of `kind` where bea is builder and pat is admin (rows only)."""
        store = self.kopers.store
        made_by = await store.get_user(creator)
        project = await store.create_project(
            owner_of(kind),
            self.name("p"),
            description="",
            instructions="",
            homepage=None,
            contact=None,
            chroots=[CHROOT],
            additional_repos=[],
            enable_net=False,
            created_by=made_by.id,
        )
        grants = {
            "bea": Grant(builder=PermState.APPROVED),
            "pat": Grant(admin=PermState.APPROVED),
        }
        await store.update_grants(project.id, lambda _: grants)
        return project

    async def build(self, project: Project, finished: bool) -> int:
        olga = await self.kopers.store.get_user("olga")
        return await waiting_build(self.kopers.store, project.id, olga.id, finished)

    async def token(self, user: str) -> str:
        u = await self.kopers.store.get_user(user)
        new = tokens.generate()
        await self.kopers.store.create_token(u.id, new.login, new.digest, None)
        return new.login

    async def snapshot(self) -> dict[str, list[str]]:
        """Every table's rows (tokens without last_used: using a token is not a change)."""
        out = await table_rows(self.kopers.store.pool)
        paths = self.kopers.paths
        for d in (paths.incoming, paths.sources, paths.results):
            out[f"files:{d.name}"] = sorted(str(p) for p in d.rglob("*"))
        return out


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    kw: dict[str, Any] = field(default_factory=dict)
    obj: str = ""  # the audit event's object
    form: Callable[[], aiohttp.FormData] | None = None


Prepare = Callable[[World, str, str | None], Awaitable[Call]]


async def add_project(w: World, kind: str, user: str | None) -> Call:
    owner, name = owner_of(kind), w.name("new")
    body = {"name": name, "chroots": [CHROOT], "description": "d", "additional_repos": []}
    path = f"/api_3/project/add/{owner}?ownername={owner.replace('@', '%40')}&exist_ok=False"
    return Call("POST", path, {"json": body}, f"{owner}/{name}")


async def fork_project(w: World, kind: str, user: str | None) -> Call:
    source = await w.project(kind)
    owner, name = owner_of(kind), w.name("fork")
    body = {"name": name, "ownername": owner, "confirm": False}
    path = f"/api_3/project/fork/{source.owner}/{source.name}"
    return Call("POST", path, {"json": body}, f"{owner}/{name}")


async def edit_project(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    body = {"description": "changed", "repos": None, "bootstrap": "default", "chroots": None}
    return Call("PUT", f"/api_3/project/edit/{p.owner}/{p.name}", {"json": body}, p.full_name)


async def new_webhook_secret(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    return Call("POST", f"/api_3/webhook/generate/{p.owner}/{p.name}", {}, p.full_name)


async def delete_project(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    await w.build(p, finished=False)  # a delete also cancels what still runs
    path = f"/api_3/project/delete/{p.owner}/{p.name}"
    return Call("DELETE", path, {"json": {"verify": True}}, p.full_name)


def _opts(p: Project) -> dict[str, Any]:
    return {"ownername": p.owner, "projectname": p.name, "project_dirname": p.name, "chroots": None}


async def check_before_build(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    return Call("POST", "/api_3/build/check-before-build", {"json": _opts(p)}, p.full_name)


async def upload(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)

    def form() -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field(
            "pkgs", w.srpm.read_bytes(), filename=w.srpm.name, content_type="application/x-rpm"
        )
        data.add_field(
            "json", json.dumps(_opts(p)), filename="json", content_type="application/json"
        )
        return data

    return Call("POST", "/api_3/build/create/upload", {}, p.full_name, form)


async def url_build(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    body = {**_opts(p), "pkgs": ["http://127.0.0.1:1/hello.src.rpm"]}
    return Call("POST", "/api_3/build/create/url", {"json": body}, p.full_name)


async def scm_build(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    body = {**_opts(p), "clone_url": "https://127.0.0.1:1/x.git", "scm_type": "git"}
    return Call("POST", "/api_3/build/create/scm", {"json": body}, p.full_name)


async def pypi_build(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    body = {**_opts(p), "pypi_package_name": "six", "spec_generator": "pyp2spec"}
    return Call("POST", "/api_3/build/create/pypi", {"json": body}, p.full_name)


async def custom_build(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    body = {**_opts(p), "script": "#!/bin/sh\nexit 0\n"}
    return Call("POST", "/api_3/build/create/custom", {"json": body}, p.full_name)


def unoffered_build(source: str, extra: dict[str, Any]) -> Prepare:
    async def prepare(w: World, kind: str, user: str | None) -> Call:
        p = await w.project(kind)
        return Call("POST", f"/api_3/build/create/{source}", {"json": {**_opts(p), **extra}}, "")

    return prepare


async def rpm_upload(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    rpm = w.srpm.parent / "binary" / "hello-matrix-1.0-1.noarch.rpm"
    if not rpm.exists():
        built, _ = noarch_rpm(w.srpm.parent / "binary-build", "hello-matrix")
        rpm.parent.mkdir(exist_ok=True)
        shutil.copyfile(built, rpm)

    def form() -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field(
            "pkgs", rpm.read_bytes(), filename=rpm.name, content_type="application/x-rpm"
        )
        data.add_field(
            "json", json.dumps(_opts(p)), filename="json", content_type="application/json"
        )
        return data

    return Call("POST", "/api_3/build/create/rpm-upload", {}, p.full_name, form)


async def edit_chroot(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    path = f"/api_3/project-chroot/edit/{p.owner}/{p.name}/{CHROOT}"
    body = {"additional_repos": ["https://127.0.0.1:1/repo/"]}
    return Call("PUT", path, {"json": body}, p.full_name)


async def regenerate_repos(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    return Call("PUT", f"/api_3/project/regenerate-repos/{p.owner}/{p.name}", {}, p.full_name)


async def project_storage(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    body = {"keep_builds": 5, "quota_mib": 100}
    return Call("PATCH", f"/api/projects/{p.owner}/{p.name}", {"json": body}, p.full_name)


async def chain(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    body = {"builds": [{"url": "http://127.0.0.1:1/a.src.rpm"}]}
    return Call("POST", f"/api/projects/{p.owner}/{p.name}/chains", {"json": body}, p.full_name)


async def resubmit(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    return Call("POST", f"/api/builds/{await w.build(p, True)}/resubmit", {}, p.full_name)


async def cancel_build(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    return Call("PUT", f"/api_3/build/cancel/{await w.build(p, False)}", {}, p.full_name)


async def delete_builds(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    body = {"builds": [await w.build(p, True)]}
    return Call("DELETE", "/api_3/build/delete/list", {"json": body}, p.full_name)


async def delete_build(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    return Call("DELETE", f"/api_3/build/delete/{await w.build(p, True)}", {}, p.full_name)


async def new_api_token(w: World, kind: str, user: str | None) -> Call:
    # The call replaces the token it is made with: give the caller a fresh one.
    if user is not None:
        u = await w.kopers.store.get_user(user)
        new = tokens.generate()
        await w.kopers.store.create_token(u.id, new.login, new.digest, None)
        w.auth[user] = basic(new.login, new.secret)
    return Call("POST", "/api_3/api-token", {}, user or "")


async def set_permissions(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    path = f"/api_3/project/permissions/set/{p.owner}/{p.name}"
    return Call("PUT", path, {"json": {"eve": {"builder": "approved"}}}, p.full_name)


async def request_permissions(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    path = f"/api_3/project/permissions/request/{p.owner}/{p.name}"
    return Call("PUT", path, {"json": {"builder": True}}, p.full_name)


async def revoke_token(w: World, kind: str, user: str | None) -> Call:
    holder = who(kind, "owner")
    assert holder is not None
    return Call("DELETE", f"/api/tokens/{await w.token(holder)}", {}, holder)


async def add_hook(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    body = {"url": "https://hooks.example.com/kopers"}
    return Call("POST", f"/api/projects/{p.owner}/{p.name}/hooks", {"json": body}, p.full_name)


async def delete_hook(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    olga = await w.kopers.store.get_user("olga")
    hook = await w.kopers.store.create_hook(p.id, "https://hooks.example.com/k", "s" * 20, olga.id)
    path = f"/api/projects/{p.owner}/{p.name}/hooks/{hook.id}"
    return Call("DELETE", path, {}, p.full_name)


def page_form(path: str, **fields: str) -> Prepare:
    """A browser form posted with the caller's Basic credentials and a made-up CSRF token."""

    async def prepare(w: World, kind: str, user: str | None) -> Call:
        data = {"csrf_token": "x" * 43, **fields}
        return Call("POST", path, {"data": data}, "")

    return prepare


async def revoke_token_form(w: World, kind: str, user: str | None) -> Call:
    holder = who(kind, "owner")
    assert holder is not None
    path = f"/api/tokens/{await w.token(holder)}/revoke/"
    return Call("POST", path, {"data": {"csrf_token": "x" * 43}}, "")


def project_page_form(tail: str, group_route: bool = False, **fields: str) -> Prepare:
    """A form of a fresh project's pages (`/coprs/<owner>/<project>/<tail>`), as page_form."""

    async def prepare(w: World, kind: str, user: str | None) -> Call:
        p = await w.project("group" if group_route else kind)
        owner = "g/sig" if group_route else p.owner
        data = {"csrf_token": "x" * 43, **fields}
        return Call("POST", f"/coprs/{owner}/{p.name}/{tail}", {"data": data}, "")

    return prepare


def hook_delete_form(group_route: bool = False) -> Prepare:
    async def prepare(w: World, kind: str, user: str | None) -> Call:
        p = await w.project("group" if group_route else kind)
        olga = await w.kopers.store.get_user("olga")
        hook = await w.kopers.store.create_hook(
            p.id, "https://hooks.example.com/k", "s" * 20, olga.id
        )
        owner = "g/sig" if group_route else p.owner
        path = f"/coprs/{owner}/{p.name}/integrations/hooks/{hook.id}/delete/"
        return Call("POST", path, {"data": {"csrf_token": "x" * 43}}, "")

    return prepare


@dataclass(frozen=True)
class Case:
    prepare: Prepare
    allowed: tuple[frozenset[str], frozenset[str]]  # principals allowed: (user kind, group kind)
    audit: str | None  # the event an allowed call leaves; None: the call changes nothing
    refused: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())  # 400, not 403
    offered: bool = True  # False: every signed-in caller gets the 501 of a missing service
    # A webhook: the secret in its URL is the credential, so every caller gets 200, and
    # the builds are made as these users (user kind, group kind), not as the caller.
    acts_as: tuple[str, str] | None = None
    # A browser form: only a session with its CSRF token may use it, never HTTP Basic
    # credentials, so every caller here (none has a session) gets 403.
    page: bool = False

    def expected(self, kind: str, principal: str) -> int:
        i = KINDS.index(kind)
        if self.acts_as is not None:
            return 200
        if self.page:
            return 403
        if not self.offered:
            return 401 if principal == "anonymous" else 501
        if principal in self.allowed[i]:
            return 200
        if principal == "anonymous":
            return 401
        return 400 if principal in self.refused[i] else 403


def _s(*names: str) -> frozenset[str]:
    return frozenset(names)


EDITORS = _s("owner", "project_admin", "site_admin")
BUILDERS = EDITORS | {"builder"}
GROUP_BUILDERS = BUILDERS | {"member"}
ANY_USER = frozenset(PRINCIPALS) - {"anonymous"}

SCM_SOURCE = ScmPackageSource("https://127.0.0.1:1/x.git")


async def _package(w: World, kind: str, with_build: bool = False) -> tuple[Project, str]:
    p = await w.project(kind)
    name = w.name("pkg")
    package = await w.kopers.store.create_package(p.id, name, PackageSettings(SCM_SOURCE))
    if with_build:
        build_id = await w.build(p, finished=True)
        await w.kopers.store.attach_build(build_id, package.id)
    return p, name


def _ref(p: Project, name: str) -> dict[str, str]:
    return {"ownername": p.owner, "projectname": p.name, "package_name": name}


async def add_package(w: World, kind: str, user: str | None) -> Call:
    p = await w.project(kind)
    path = f"/api_3/package/add/{p.owner}/{p.name}/hello/scm"
    return Call("POST", path, {"json": {"clone_url": "https://127.0.0.1:1/x.git"}}, p.full_name)


async def edit_package(w: World, kind: str, user: str | None) -> Call:
    p, name = await _package(w, kind)
    path = f"/api_3/package/edit/{p.owner}/{p.name}/{name}/scm"
    return Call("POST", path, {"json": {"committish": "main"}}, p.full_name)


async def edit_package_same_type(w: World, kind: str, user: str | None) -> Call:
    p, name = await _package(w, kind)
    path = f"/api_3/package/edit/{p.owner}/{p.name}/{name}"
    return Call("POST", path, {"json": {"max_builds": 2}}, p.full_name)


def reset_package(method: str) -> Prepare:
    async def prepare(w: World, kind: str, user: str | None) -> Call:
        p, name = await _package(w, kind)
        return Call(method, "/api_3/package/reset", {"json": _ref(p, name)}, p.full_name)

    return prepare


async def delete_package(w: World, kind: str, user: str | None) -> Call:
    p, name = await _package(w, kind, with_build=True)
    return Call("DELETE", "/api_3/package/delete", {"json": _ref(p, name)}, p.full_name)


async def build_package(w: World, kind: str, user: str | None) -> Call:
    p, name = await _package(w, kind)
    return Call("POST", "/api_3/package/build", {"json": _ref(p, name)}, p.full_name)


PACKAGE_MATRIX: dict[tuple[str, str], Case] = {
    (
        "POST",
        "/api_3/package/add/{ownername}/{projectname}/{package_name}/{source_type_text}",
    ): Case(add_package, (EDITORS, EDITORS), "package.add"),
    (
        "POST",
        "/api_3/package/edit/{ownername}/{projectname}/{package_name}/{source_type_text}",
    ): Case(edit_package, (EDITORS, EDITORS), "package.edit"),
    ("POST", "/api_3/package/edit/{ownername}/{projectname}/{package_name}"): Case(
        edit_package_same_type, (EDITORS, EDITORS), "package.edit"
    ),
    ("PUT", "/api_3/package/reset"): Case(
        reset_package("PUT"), (EDITORS, EDITORS), "package.reset"
    ),
    ("POST", "/api_3/package/reset"): Case(
        reset_package("POST"), (EDITORS, EDITORS), "package.reset"
    ),
    ("DELETE", "/api_3/package/delete"): Case(delete_package, (EDITORS, EDITORS), "package.delete"),
    ("POST", "/api_3/package/build"): Case(
        build_package, (BUILDERS, GROUP_BUILDERS), "build.submit"
    ),
}


MATRIX: dict[tuple[str, str], Case] = {
    ("POST", "/api_3/project/add/{ownername}"): Case(
        add_project,
        (_s("owner", "site_admin"), _s("owner", "member", "site_admin")),
        "project.create",
    ),
    ("POST", "/api_3/project/fork/{ownername}/{projectname}"): Case(
        fork_project,
        (_s("owner", "site_admin"), _s("owner", "member", "site_admin")),
        "project.fork",
    ),
    ("POST", "/api_3/build/create/pypi"): Case(
        pypi_build, (BUILDERS, GROUP_BUILDERS), "build.submit"
    ),
    ("POST", "/api_3/build/create/custom"): Case(
        custom_build, (BUILDERS, GROUP_BUILDERS), "build.submit"
    ),
    ("POST", "/api_3/build/create/rpm-upload"): Case(
        rpm_upload, (BUILDERS, GROUP_BUILDERS), "build.submit"
    ),
    ("POST", "/api_3/build/create/rubygems"): Case(
        unoffered_build("rubygems", {"gem_name": "rake"}), (_s(), _s()), None, offered=False
    ),
    ("POST", "/api_3/build/create/distgit"): Case(
        unoffered_build("distgit", {"package_name": "tar"}), (_s(), _s()), None, offered=False
    ),
    ("PUT", "/api_3/project/edit/{ownername}/{projectname}"): Case(
        edit_project, (EDITORS, EDITORS), "project.edit"
    ),
    ("POST", "/api_3/webhook/generate/{ownername}/{projectname}"): Case(
        new_webhook_secret, (EDITORS, EDITORS), "project.webhook-secret"
    ),
    ("DELETE", "/api_3/project/delete/{ownername}/{projectname}"): Case(
        delete_project, (_s("owner", "site_admin"), _s("owner", "site_admin")), "project.delete"
    ),
    ("POST", "/api_3/build/check-before-build"): Case(
        check_before_build, (BUILDERS, GROUP_BUILDERS), None
    ),
    ("POST", "/api_3/build/create/upload"): Case(
        upload, (BUILDERS, GROUP_BUILDERS), "build.submit"
    ),
    ("POST", "/api_3/build/create/url"): Case(
        url_build, (BUILDERS, GROUP_BUILDERS), "build.submit"
    ),
    ("POST", "/api_3/build/create/scm"): Case(
        scm_build, (BUILDERS, GROUP_BUILDERS), "build.submit"
    ),
    ("PUT", "/api_3/project-chroot/edit/{ownername}/{projectname}/{chrootname}"): Case(
        edit_chroot, (EDITORS, EDITORS), "project.edit-chroot"
    ),
    ("PUT", "/api_3/project/regenerate-repos/{ownername}/{projectname}"): Case(
        regenerate_repos, (EDITORS, EDITORS), "project.regenerate-repos"
    ),
    ("PATCH", "/api/projects/{owner}/{project}"): Case(
        project_storage, (EDITORS, EDITORS), "project.storage"
    ),
    ("POST", "/api/projects/{owner}/{project}/chains"): Case(
        chain, (BUILDERS, GROUP_BUILDERS), "build.submit"
    ),
    ("POST", "/api/builds/{build_id}/resubmit"): Case(
        resubmit, (BUILDERS, GROUP_BUILDERS), "build.submit"
    ),
    ("PUT", "/api_3/build/cancel/{build_id}"): Case(
        cancel_build, (BUILDERS, GROUP_BUILDERS), "build.cancel"
    ),
    ("DELETE", "/api_3/build/delete/list"): Case(delete_builds, (EDITORS, EDITORS), "build.delete"),
    ("DELETE", "/api_3/build/delete/{build_id}"): Case(
        delete_build, (EDITORS, EDITORS), "build.delete"
    ),
    ("POST", "/api_3/api-token"): Case(new_api_token, (ANY_USER, ANY_USER), "token.rotate"),
    ("PUT", "/api_3/project/permissions/set/{ownername}/{projectname}"): Case(
        set_permissions, (EDITORS, EDITORS), "permission.set"
    ),
    # Any user may ask for a role, except the owning user (Copr: 400), and a
    # builder asking again for the builder role it has (Copr: 400).
    ("PUT", "/api_3/project/permissions/request/{ownername}/{projectname}"): Case(
        request_permissions,
        (ANY_USER - {"owner", "builder"}, ANY_USER - {"builder"}),
        "permission.request",
        refused=(_s("owner", "builder"), _s("builder")),
    ),
    # The token belongs to the "owner" principal (olga, or gadm for the group kind).
    ("DELETE", "/api/tokens/{login}"): Case(
        revoke_token, (_s("owner", "site_admin"), _s("owner", "site_admin")), "token.revoke"
    ),
    ("POST", "/api/projects/{owner}/{project}/hooks"): Case(
        add_hook, (EDITORS, EDITORS), "hook.create"
    ),
    ("DELETE", "/api/projects/{owner}/{project}/hooks/{hook_id}"): Case(
        delete_hook, (EDITORS, EDITORS), "hook.delete"
    ),
}
MATRIX.update(PACKAGE_MATRIX)
MATRIX.update(
    {
        ("POST", "/login/"): Case(
            page_form("/login/", username="olga", password="pw"), (_s(), _s()), None, page=True
        ),
        ("POST", "/logout/"): Case(page_form("/logout/"), (_s(), _s()), None, page=True),
        ("POST", "/api/tokens/new/"): Case(
            page_form("/api/tokens/new/"), (_s(), _s()), None, page=True
        ),
        ("POST", "/api/tokens/{login}/revoke/"): Case(
            revoke_token_form, (_s(), _s()), None, page=True
        ),
    }
)
# A project's forms (kopers.api.forms_project, forms_permissions, forms_integrations).
_PROJECT_FORMS = {
    "edit/": {"description": "changed", "chroots": CHROOT},
    "delete/": {"confirm": "x"},
    "permissions/request/": {"builder": "on"},
    "permissions/set/": {"user": "eve", "builder": "approved"},
    "integrations/secret/": {},
    "integrations/hooks/": {"url": "https://hooks.example.com/kopers"},
}
MATRIX.update(
    {
        ("POST", "/coprs/{owner}/add/"): Case(
            page_form("/coprs/olga/add/", name="webnew", chroots=CHROOT),
            (_s(), _s()),
            None,
            page=True,
        ),
        ("POST", "/coprs/g/{group}/add/"): Case(
            page_form("/coprs/g/sig/add/", name="webnew", chroots=CHROOT),
            (_s(), _s()),
            None,
            page=True,
        ),
        ("POST", "/coprs/{owner}/{project}/integrations/hooks/{hook_id}/delete/"): Case(
            hook_delete_form(), (_s(), _s()), None, page=True
        ),
        ("POST", "/coprs/g/{group}/{project}/integrations/hooks/{hook_id}/delete/"): Case(
            hook_delete_form(group_route=True), (_s(), _s()), None, page=True
        ),
    }
)
for _tail, _fields in _PROJECT_FORMS.items():
    MATRIX[("POST", "/coprs/{owner}/{project}/" + _tail)] = Case(
        project_page_form(_tail, **_fields), (_s(), _s()), None, page=True
    )
    MATRIX[("POST", "/coprs/g/{group}/{project}/" + _tail)] = Case(
        project_page_form(_tail, group_route=True, **_fields), (_s(), _s()), None, page=True
    )

# The build forms (kopers.api.forms_submit, forms_build): new builds, a build's buttons, rebuild.
_BUILD_FORMS = {
    "add_build/url/": {"pkgs": "http://127.0.0.1:1/a.src.rpm", "chroots": CHROOT},
    "add_build/scm/": {"clone_url": "https://127.0.0.1:1/x.git", "chroots": CHROOT},
    "add_build/upload/": {"chroots": CHROOT},
    "package/{package_name}/rebuild/": {},
}
for _tail, _fields in _BUILD_FORMS.items():
    _path = _tail.replace("{package_name}", "hello")
    MATRIX[("POST", "/coprs/{owner}/{project}/" + _tail)] = Case(
        project_page_form(_path, **_fields), (_s(), _s()), None, page=True
    )
    MATRIX[("POST", "/coprs/g/{group}/{project}/" + _tail)] = Case(
        project_page_form(_path, group_route=True, **_fields), (_s(), _s()), None, page=True
    )


def build_page_form(action: str, finished: bool, **fields: str) -> Prepare:
    """A button of a fresh build's page (`/coprs/build/<id>/<action>/`), as page_form."""

    async def prepare(w: World, kind: str, user: str | None) -> Call:
        build_id = await w.build(await w.project(kind), finished)
        path = f"/coprs/build/{build_id}/{action}/"
        return Call("POST", path, {"data": {"csrf_token": "x" * 43, **fields}}, "")

    return prepare


MATRIX.update(
    {
        ("POST", "/coprs/build/{build_id}/cancel/"): Case(
            build_page_form("cancel", False), (_s(), _s()), None, page=True
        ),
        ("POST", "/coprs/build/{build_id}/resubmit/"): Case(
            build_page_form("resubmit", True), (_s(), _s()), None, page=True
        ),
        ("POST", "/coprs/build/{build_id}/delete/"): Case(
            build_page_form("delete", True, confirm="yes"), (_s(), _s()), None, page=True
        ),
    }
)

# Each forge's push, as it signs it, from the repository of the project's package.
HOOK_REPOS = {
    "github": "https://github.com/octo/hello",
    "gitlab": "https://gitlab.com/grp/hello",
    "bitbucket": "https://bitbucket.org/team/hello",
    "pagure": "https://pagure.io/hello",
    "custom": "https://github.com/octo/hello",
}


def _delivery(forge: str, secret: str) -> tuple[bytes, dict[str, str]]:
    json_type = {"Content-Type": "application/json"}
    match forge:
        case "github":
            raw = hooks.body(hooks.github_push())
            signed = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature_of(secret, raw)}
            return raw, {**json_type, **signed}
        case "gitlab":
            token = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}
            return hooks.body(hooks.gitlab_push()), {**json_type, **token}
        case "bitbucket":
            return hooks.body(hooks.bitbucket_push()), {**json_type, "X-Event-Key": "repo:push"}
        case "pagure":
            return hooks.body(hooks.pagure_push()), {**json_type, "X-Pagure-Topic": "git.receive"}
    return b"", {}


def webhook(forge: str, path: str) -> Prepare:
    async def prepare(w: World, kind: str, user: str | None) -> Call:
        store = w.kopers.store
        # A group project's builds run as its creator, who must be a member.
        p = await w.project(kind, creator="olga" if kind == "user" else "gadm")
        source = ScmPackageSource(HOOK_REPOS[forge] + ".git")
        await store.create_package(p.id, "hello", PackageSettings(source, webhook_rebuild=True))
        data, headers = _delivery(forge, p.webhook_secret)
        target = path.format(project_id=p.id, uuid=p.webhook_secret, package_name="hello")
        return Call("POST", target, {"data": data, "headers": headers}, p.full_name)

    return prepare


MATRIX.update(
    {
        ("POST", path): Case(
            webhook(str(forge), path), (_s(), _s()), "build.submit", acts_as=("olga", "gadm")
        )
        for forge, path in webhook_paths()
    }
)


@pytest.fixture
async def world(dsn: str, tmp_path: Path, make_srpm: Callable[..., Path]) -> AsyncIterator[World]:
    cfg = config_mod.load(
        str(REPO / "kopers.toml"),
        env={"KOPERS_DATA_DIR": str(tmp_path / "data"), "KOPERS_DATABASE_DSN": dsn},
    )
    kopers = await open_kopers(cfg, with_vms=False)
    client = TestClient(TestServer(create_app(kopers)))
    w = World(client, kopers, make_srpm("hello", "1.0"))
    store = kopers.store
    for name in ("olga", "eve", "bea", "pat", "gadm", "gmem", "root"):
        user = await store.create_user(name, is_admin=name == "root")
        new = tokens.generate()
        await store.create_token(user.id, new.login, new.digest, None)
        w.auth[name] = basic(new.login, new.secret)
    sig = await store.create_group("sig")
    await store.add_group_member(sig, await store.get_user("gadm"), True)
    await store.add_group_member(sig, await store.get_user("gmem"), False)
    # eve admins another group, which must not matter for @sig projects.
    other = await store.create_group("other-sig")
    await store.add_group_member(other, await store.get_user("eve"), True)
    await client.start_server()
    try:
        yield w
    finally:
        await client.close()
        await kopers.close()


def mutating_routes(w: World) -> set[tuple[str, str]]:
    app = w.client.server.app
    assert app is not None
    return {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method not in READ_METHODS and r.resource is not None
    }


async def test_every_mutating_route_is_in_the_matrix(world: World) -> None:
    routes = mutating_routes(world)
    assert routes - set(MATRIX) == set(), "mutating routes missing from the authorization matrix"
    assert set(MATRIX) - routes == set(), "the matrix lists routes the app no longer has"


@pytest.mark.parametrize("route", list(MATRIX), ids=[f"{m} {p}" for m, p in MATRIX])
async def test_route_allows_and_denies_as_the_matrix_says(
    world: World, route: tuple[str, str]
) -> None:
    case = MATRIX[route]
    failures = []
    for kind, principal in itertools.product(KINDS, PRINCIPALS):
        user = who(kind, principal)
        call = await case.prepare(world, kind, user)
        before = await world.snapshot()
        last_event = await world.kopers.store.pool.fetchval("SELECT max(id) FROM events")
        kw = dict(call.kw)
        headers = {**kw.pop("headers", {}), **({"Authorization": world.auth[user]} if user else {})}
        if call.form is not None:
            kw["data"] = call.form()
        async with world.client.request(call.method, call.path, headers=headers, **kw) as resp:
            status, body = resp.status, await resp.json(content_type=None)
        after = await world.snapshot()
        new_events = await world.kopers.store.pool.fetch(
            "SELECT e.action, e.object, e.address, u.name AS username FROM events e"
            " LEFT JOIN users u ON u.id = e.user_id WHERE e.id > $1 ORDER BY e.id",
            last_event or 0,
        )
        want = case.expected(kind, principal)
        label = f"{kind} project, {principal} ({user}): {call.method} {call.path}"
        # A custom webhook answers its build's id as text, as Copr does.
        assert isinstance(body, dict) or case.acts_as is not None, label
        if status != want:
            failures.append(f"{label}: got {status} {body}, expected {want}")
            continue
        if want != 200 or case.audit is None:
            # Denied (or a pure check): nothing changed, nothing was logged.
            assert "error" in body or want == 200, label
            changed = {t for t in before if before[t] != after[t]}
            if changed:
                failures.append(f"{label}: changed {sorted(changed)} though {status}")
            continue
        got = [(e["action"], e["object"], e["username"]) for e in new_events]
        actor = case.acts_as[KINDS.index(kind)] if case.acts_as else user
        if got != [(case.audit, call.obj, actor)] or new_events[0]["address"] is None:
            failures.append(f"{label}: audit events {got}, expected [{case.audit}]")
    assert not failures, "\n".join(failures)


async def test_audit_log_is_append_only_in_the_database(world: World) -> None:
    import asyncpg

    pool = world.kopers.store.pool
    await world.kopers.store.add_event(None, "test", "test.event", "x", {})
    for sql in ("UPDATE events SET action = 'forged'", "DELETE FROM events", "TRUNCATE events"):
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await pool.execute(sql)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE action = 'test.event'") == 1


async def test_events_api_filters_by_project_and_user_and_links_the_buildroot(
    world: World,
) -> None:
    w = world
    p = await w.project("group")
    call = await url_build(w, "group", "gmem")
    async with w.client.request(
        call.method, call.path, headers={"Authorization": w.auth["gmem"]}, **call.kw
    ) as resp:
        assert resp.status == 200
    project = call.obj
    async with w.client.get(f"/api/events?project={project.replace('@', '%40')}") as resp:
        assert resp.status == 401 and "authentication" in (await resp.json())["error"]
    async with w.client.get(
        "/api/events",
        params={"project": project, "user": "gmem", "limit": "5"},
        headers={"Authorization": w.auth["eve"]},
    ) as resp:
        assert resp.status == 200
        page = await resp.json()
    [event] = page["items"]
    assert event["action"] == "build.submit" and event["user"] == "gmem"
    # Addresses are for the server's admins only.
    assert event["object"] == project and event["address"] is None
    build_id = event["details"]["build"]
    assert event["buildroot_url"].endswith(f"/api/builds/{build_id}/buildroot")
    async with w.client.get(f"/api/builds/{build_id}/buildroot") as resp:
        assert resp.status == 200
    async with w.client.get(
        "/api/events", params={"user": "nobody"}, headers={"Authorization": w.auth["eve"]}
    ) as resp:
        assert (await resp.json())["items"] == []
    async with w.client.get(
        "/api/events", params={"project": p.full_name}, headers={"Authorization": w.auth["eve"]}
    ) as resp:
        assert (await resp.json())["items"] == []  # p was made through the store, not the API
