"""The live server fuzzed against its own OpenAPI document, as an anonymous caller and as bob.

schemathesis loads /api/openapi.json from a Kopers served from another
thread (tests/integration/liveserver.py) and sends every operation a bounded
number of generated requests, valid ones and invalid ones, once without
credentials and once as bob, who owns `bob/mine` but has no role on
`alice/proj`. Path, query and body values are often swapped for real ones
(alice's and bob's projects and builds, users, token logins), so the
requests reach the objects and not only the 404s. Every answer must be
documented: no 5xx, a listed status, the listed media type and a body that
matches its schema. All findings are collected and reported together.

Afterwards alice's project looks to her exactly as before (settings,
chroots, roles, builds), every row that existed is unchanged, and every new
row is bob's own: a project under his name and what hangs off it, his events,
or a role he asked for (never one approved). Nothing is built: the scheduler
is not running.

Every run of generation has a fixed seed, so a run is reproducible;
KOPERS_FUZZ_EXAMPLES sets the examples per operation, mode and caller, and
KOPERS_FUZZ_SEED picks other seeds (to explore further, not in CI).
"""

from __future__ import annotations

import contextlib
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.liveserver import CHROOT, LiveServer, live_server

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("KOPERS_FUZZ_EXAMPLES", "12"))
SEED = os.environ.get("KOPERS_FUZZ_SEED", "kopers")
UNSUPPORTED = "not supported by this Kopers server"


def no_server_error(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """Any 5xx fails, except a documented 501 saying what this server does not offer.

    Copr's clients read a 404 as a missing object, so a path outside the
    router's grammar (a build id that is not digits, an empty segment) is
    answered "not supported"; so is a valid request for something this server
    lacks (a project directory, a source type it cannot build).
    """
    if (
        response.status_code == 501
        and "501" in case.operation.responses.status_codes
        and UNSUPPORTED in response.text
    ):
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
OWNER, PROJECT = "alice", "proj"


@dataclass(frozen=True)
class Finding:
    caller: str
    operation: str
    status: int | None
    problem: str  # the failed checks' titles, or the transport error
    curl: str

    def key(self) -> tuple[str, str, int | None, str]:
        return (self.caller, self.operation, self.status, self.problem)


@dataclass
class Tally:
    requests: int = 0
    seconds: float = 0.0
    findings: dict[tuple[str, str, int | None, str], Finding] = field(default_factory=dict)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status)

    def add(self, finding: Finding) -> None:
        self.findings.setdefault(finding.key(), finding)

    def report(self) -> str:
        return "\n".join(
            f"[{f.caller}] {f.operation} -> {f.status}: {f.problem}\n    {f.curl}"
            for f in self.findings.values()
        )


# Aiming: real names and ids in place of generated ones --------------------------------


@dataclass(frozen=True)
class Targets:
    """The objects worth hitting: one project and one build are drawn for each request."""

    projects: tuple[tuple[str, str], ...]
    builds: tuple[int, ...]
    users: tuple[str, ...]
    logins: tuple[str, ...]


def _aimed(key: str, owner: str, project: str, build: int, t: Targets, draw: Any) -> Any:
    """The real value for a parameter or body key named `key`, or None to keep it."""
    if key in ("ownername", "owner"):
        return owner
    if key in ("projectname", "project", "name", "project_dirname"):
        return project
    if key in ("build_id", "after_build_id", "with_build_id"):
        return build
    if key == "chrootname":
        return CHROOT
    if key == "login":
        return draw(st.sampled_from(t.logins))
    if key == "user":
        return draw(st.sampled_from(t.users))
    if key == "builds":
        return draw(st.lists(st.sampled_from(t.builds), min_size=1, max_size=2))
    return None


def aim(case: schemathesis.Case, data: st.DataObject, t: Targets) -> None:
    """Swap the generated names and ids for real ones (in place), in three cases of four."""
    if not data.draw(st.integers(0, 3), label="aim"):
        return
    owner, project = data.draw(st.sampled_from(t.projects), label="project")
    build = data.draw(st.sampled_from(t.builds), label="build")
    for where in (case.path_parameters, case.query):
        for key in list(where or {}):
            value = _aimed(key, owner, project, build, t, data.draw)
            if key == "project" and where is case.query:
                value = f"{owner}/{project}"  # /api/events?project=owner/name
            if value is not None:
                where[key] = value
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("json"), dict):
        body = body["json"]  # a multipart body's options part
    if not isinstance(body, dict):
        return
    if "/permissions/set/" in case.operation.path:
        case.body = {data.draw(st.sampled_from(t.users)): roles for roles in body.values()}
        return
    for key in ("ownername", "projectname", "name", "builds", "after_build_id", "with_build_id"):
        if key in body:
            body[key] = _aimed(key, owner, project, build, t, data.draw)


# The run ------------------------------------------------------------------------------


def fuzz_operation(
    server: LiveServer,
    operation: Any,
    caller: str | None,
    targets: Targets,
    tally: Tally,
    session: requests.Session,
    examples: int = EXAMPLES,
) -> None:
    """Valid and invalid requests, and the documented examples, as `caller` (None: anonymous)."""
    auth = {"Authorization": server.auth[caller]} if caller else None
    who = caller or "anonymous"

    def send(case: schemathesis.Case, data: st.DataObject) -> None:
        aim(case, data, targets)
        if case.headers:
            case.headers.pop("Authorization", None)  # the caller's own, or none
        try:
            response = case.call(base_url=server.url, session=session, headers=auth, timeout=60)
        except requests.RequestException as exc:
            tally.add(Finding(who, operation.label, None, repr(exc)[:300], case.as_curl_command()))
            return
        tally.requests += 1
        tally.statuses[operation.label, response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except FailureGroup as group:
            titles = "; ".join(sorted({f.title for f in group.exceptions}))
            curl = case.as_curl_command(headers=auth)
            tally.add(Finding(who, operation.label, response.status_code, titles, curl))

    runs = [(operation.as_strategy(generation_mode=mode), examples) for mode in MODES]
    # A documented example is a whole, valid body: aimed at alice's project, it is what
    # a caller without a role would send to change it.
    runs += [(s, max(1, examples // 3)) for s in operation.get_strategies_from_examples()]
    for run, (strategy, count) in enumerate(runs):
        test = given(case=strategy, data=st.data())(send)
        # A fixed seed of its own for each run: reproducible, and not one stream for all.
        test = seed(zlib.crc32(f"{SEED}:{operation.label}:{who}:{run}".encode()))(test)
        test = settings(
            max_examples=count,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(test)
        with contextlib.suppress(Unsatisfiable):  # nothing to make invalid: no parameters
            test()


def fuzz(
    server: LiveServer,
    callers: tuple[str | None, ...] = (None, "bob"),
    only: Callable[[str], bool] = lambda label: True,
    examples: int = EXAMPLES,
) -> Tally:
    """Every operation of the served document, for each caller; the findings and counts."""
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    targets = Targets(
        projects=((OWNER, PROJECT), (OWNER, PROJECT), (OWNER, PROJECT), ("bob", "mine")),
        builds=(*server.builds["alice"], *server.builds["bob"]),
        users=("alice", "bob", "carol", "root"),
        # Not bob's own: revoking it would end his part of the run.
        logins=(server.logins["alice"], server.logins["root"]),
    )
    tally = Tally()
    started = time.monotonic()
    with requests.Session() as session:
        operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
        # Deletes last: bob deleting his own project early would leave little to reach.
        for operation in sorted(operations, key=lambda o: (o.method.upper() == "DELETE", o.label)):
            if not only(operation.label):
                continue
            for caller in callers:
                if operation.label == "POST /api_3/api-token" and caller is not None:
                    # A success replaces the caller's own token: the rows-unchanged
                    # check would flag it. test_tokens_api.py covers that call.
                    continue
                fuzz_operation(server, operation, caller, targets, tally, session, examples)
    tally.seconds = time.monotonic() - started
    return tally


# What alice sees, and every row --------------------------------------------------------


def owner_view(server: LiveServer) -> dict[str, Any]:
    """alice's project as alice reads it over HTTP."""
    q = f"ownername={OWNER}&projectname={PROJECT}"
    paths = [
        f"/api_3/project?{q}",
        f"/api/projects/{OWNER}/{PROJECT}",
        f"/api_3/project-chroot?{q}&chrootname={CHROOT}",
        f"/api_3/project-chroot/build-config?{q}&chrootname={CHROOT}",
        f"/api_3/build/list?{q}",
        f"/api_3/package/list?{q}",
        f"/api_3/project/permissions/get/{OWNER}/{PROJECT}",
    ]
    for build_id in server.builds["alice"]:
        paths += [f"/api/builds/{build_id}", f"/api_3/build-chroot/list?build_id={build_id}"]
    headers = {"Authorization": server.auth["alice"]}
    view = {}
    for path in paths:
        response = requests.get(server.url + path, headers=headers, timeout=30)
        assert response.status_code == 200, (path, response.text)
        view[path] = response.json()
    return view


async def _rows(server: LiveServer) -> dict[str, list[dict[str, Any]]]:
    pool = server.kopers.store.pool
    tables = await pool.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    out = {}
    for name in sorted(r["table_name"] for r in tables):
        rows = [dict(r) for r in await pool.fetch(f'SELECT * FROM "{name}"')]
        if name == "tokens":
            rows = [{k: v for k, v in r.items() if k != "last_used"} for r in rows]
        out[name] = rows
    return out


def rows(server: LiveServer) -> dict[str, list[dict[str, Any]]]:
    return server.run(_rows(server))


def files(root: Path) -> dict[str, int]:
    """Every file under the data directory that is not bob's, with its size."""
    out = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and "/bob/" not in f"/{rel}" and not rel.startswith("keys/bob"):
            out[rel] = path.stat().st_size
    return out


def foreign_changes(
    before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]
) -> list[str]:
    """Rows added, changed or removed that are not bob's own doing."""
    [bob] = [u["id"] for u in after["users"] if u["name"] == "bob"]
    projects = {p["id"] for t in (before, after) for p in t["projects"] if p["owner"] == "bob"}
    builds = {b["id"] for t in (before, after) for b in t["builds"] if b["project_id"] in projects}
    foreign_batches = {b["batch_id"] for b in after["builds"] if b["id"] not in builds}

    def bobs(table: str, row: dict[str, Any]) -> bool:
        if table == "project_permissions":
            own = row["project_id"] in projects
            asked = row["user_id"] == bob and "approved" not in (row["builder"], row["admin"])
            return own or asked
        if table == "batches":
            return row["id"] not in foreign_batches
        if table == "events":
            return row["user_id"] == bob
        if "owner" in row:
            return bool(row["owner"] == "bob")
        if "project_id" in row:
            return row["project_id"] in projects
        if "build_id" in row:
            return row["build_id"] in builds
        return False

    problems = []
    for table, old_rows in before.items():
        old = {repr(sorted(r.items())): r for r in old_rows}
        new = {repr(sorted(r.items())): r for r in after.get(table, [])}
        problems += [
            f"{table}: gone or changed {old[k]}"
            for k in old.keys() - new.keys()
            if not bobs(table, old[k])
        ]
        problems += [
            f"{table}: new {new[k]}" for k in new.keys() - old.keys() if not bobs(table, new[k])
        ]
    return problems


def without_bobs_request(view: dict[str, Any]) -> dict[str, Any]:
    path = f"/api_3/project/permissions/get/{OWNER}/{PROJECT}"
    roles = dict(view[path]["permissions"])
    asked = roles.pop("bob", None)
    assert asked is None or "approved" not in asked.values(), asked
    return {**view, path: {"permissions": roles}}


def test_fuzz_every_operation_as_anonymous_and_as_a_non_owner(dsn: str, tmp_path: Path) -> None:
    with live_server(dsn, tmp_path / "data") as server:
        data_dir = server.kopers.config.data_dir
        view, table_rows, stored = owner_view(server), rows(server), files(data_dir)

        tally = fuzz(server)
        print(
            f"fuzz: {tally.requests} requests in {tally.seconds:.1f} s,"
            f" {EXAMPLES} examples per operation, mode and caller;"
            f" {len(tally.findings)} distinct findings"
        )
        assert tally.requests > 0

        # Every check runs, so one run reports every kind of problem at once.
        problems = []
        if tally.findings:
            problems.append("undocumented answers:\n" + tally.report())
        seen = without_bobs_request(owner_view(server))
        changed = [path for path in view if seen[path] != view[path]]
        if changed:
            problems.append(f"alice's project changed as she sees it: {changed}")
        problems += foreign_changes(table_rows, rows(server))
        now = files(data_dir)
        if now != stored:
            gone, new = stored.items() - now.items(), now.items() - stored.items()
            problems.append(f"files changed: gone or changed {gone}, new {new}")
        if any((data_dir / "incoming").iterdir()):
            problems.append("an upload's spool was left behind")
        assert not problems, "\n\n".join(problems)
