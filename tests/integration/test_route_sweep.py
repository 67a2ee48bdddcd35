"""Every route of the app, with hostile values in each place a client puts one: no 5xx.

For each route: each path placeholder, then each common query parameter,
takes each hostile value (past bigint, negative, not a number, NUL, other
scripts' digits, 300 bytes, 5,000 digits, broken percent-encoding, an
encoded slash, ..), and the Host header takes values that are no host;
sent anonymously and as bob (who has no role on alice's project). 501 is
the answer to an /api_3 route this server lacks, not an error.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import CHROOT, Api
from tests.integration.rawhttp import send, world

pytestmark = pytest.mark.integration

BIG = str(2**63)
MANY = "1" * 5000
SWEEP_VALUES = [BIG, "-1", "abc", "%00", "%C2%B2", "%D9%A3", "x" * 300, MANY, "%FF", "a%2Fb", ".."]
SWEEP_QUERY = [
    "ownername",
    "projectname",
    "chrootname",
    "build_id",
    "limit",
    "offset",
    "from",
    "packagename",
    "status",
    "query",
    "arch",
    "exist_ok",
    "project",
    "user",
    "since",
    "with_latest_build",
    "with_latest_succeeded_build",
    "project_dirname",
    "additional_fields[]",
    "next",  # where signing in leads
    # the HTML pages' lists and search
    "page",
    "per_page",
    "state",
    "package",
    "q",
]
GOOD = {
    "ownername": "alice",
    "projectname": "p",
    "chrootname": CHROOT,
    "owner": "alice",
    "project": "p",
    "chroot": CHROOT,
    "group": "grp",
    "osver": "debian-12",
    "login": "nobody",
    "who": "bob",
    "package_name": "hello",
    "source_type_text": "scm",
    "tail": "alice/p/",
    "name": "kopers.css",
    "hook_id": "1",  # an outgoing webhook (of alice/p, if it had one)
    # A webhook's project id and secret (/webhooks/...): wrong ones, answered alike.
    "project_id": "1",
    "uuid": "6f1c9a7e-2b44-4c8e-9d3b-0a5e7c1d2f30",
}


async def test_no_route_answers_a_hostile_value_with_a_5xx(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    """Every route x placeholder/query parameter/Host x hostile value, anonymous and as bob: no 5xx.

    (501 is the answer to an /api_3 route this server lacks, not an error.)
    """
    build_id = await world(api, make_srpm)
    good = {**GOOD, "build_id": str(build_id)}
    failures: list[tuple[str, str, str | None, int]] = []
    seen: set[tuple[str, str]] = set()
    for route in api.client.server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if template is None or route.method == "HEAD" or (route.method, template) in seen:
            continue
        seen.add((route.method, template))
        names = [n for n in good if "{" + n + "}" in template]

        def target(over: dict[str, str], template: str = template, names: list = names) -> str:
            values = {n: over.get(n, urllib.parse.quote(good[n], safe="/")) for n in names}
            return str(template.format(**values))

        requests = [(target({n: v}), "kopers") for n in names for v in SWEEP_VALUES]
        requests += [(f"{target({})}?{q}={v}", "kopers") for q in SWEEP_QUERY for v in SWEEP_VALUES]
        requests += [(target({}), host) for host in ("a]b", "[::1", "x" * 300, "")]
        for path, host in requests:
            for user in (None, "bob"):
                status, _ = await send(api, route.method, path, user=user, headers={"Host": host})
                if status >= 500 and status != 501:
                    failures.append((route.method, path[:100], user, status))
    assert not failures, failures[:20]
