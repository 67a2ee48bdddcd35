"""Incoming webhooks at Copr's URLs, on a real Postgres: what builds, what is refused, the record.

Deliveries are shaped as each forge sends them (the builders in
tests/unit/test_forgehook.py). No VM runs: a build a delivery starts is
checked as its row (its committish is the pushed commit), and every refusal
must leave the builds table as it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from kopers.api.openapi_webhooks import KEEP as DOCUMENTED_KEEP
from kopers.config import NetworkConfig
from kopers.db.webhooks import KEEP, KEEP_ACCEPTED, KEEP_REFUSED, NewReceipt
from kopers.errors import BuildFailed
from kopers.forgehook import Forge, signature_of
from kopers.forgepayload import RefKind
from kopers.models import BuildState, Project
from kopers.net.local import address_policy
from kopers.net.policy import AddressPolicy
from kopers.sched.graph import SOURCE, TaskKey
from kopers.worker.runner import Runner
from kopers.worker.scm import RefPin, checkout
from tests.e2e.gitdaemon import GitRepo, git, git_daemon
from tests.fakevm import FakeVmPool
from tests.integration.conftest import CHROOT, Api, create
from tests.integration.test_body_limits import open_api, port_of, push, request_head
from tests.integration.test_openapi import checker, fetch_document
from tests.unit.test_forgehook import (
    SHA,
    ZERO,
    bitbucket_push,
    body,
    github_push,
    gitlab_push,
    pagure_push,
)

pytestmark = pytest.mark.integration

GITHUB = "https://github.com/octo/hello"
SHA3 = "c" * 40
SCM = "/api_3/package/add/alice/p/{name}/scm?ownername=alice&projectname=p"
# The test git daemon listens here (tests/e2e/gitdaemon.py); clones may reach it.
GIT_NETWORK = NetworkConfig((ipaddress.ip_network("127.0.0.2/32"),))


async def add_package(api: Api, name: str, clone_url: str, **extra: Any) -> None:
    data = {"package_name": name, "clone_url": clone_url, "webhook_rebuild": True, **extra}
    status, answer = await api.call("POST", SCM.format(name=name), "alice", json=data)
    assert status == 200, answer


@pytest.fixture
async def hooked(api: Api) -> Api:
    """alice/p with packages from GitHub (two), GitLab, Bitbucket and Pagure, and a quiet one."""
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    await add_package(api, "hello", GITHUB + ".git")
    await add_package(api, "hello-docs", "ssh://git@github.com/octo/hello", subdirectory="docs")
    await add_package(api, "hello-main", GITHUB, committish="main")
    await add_package(api, "hello-stable", GITHUB, committish="stable")
    await add_package(api, "quiet", "https://github.com/octo/quiet", webhook_rebuild=False)
    await add_package(api, "lab", "https://gitlab.com/grp/hello.git")
    await add_package(api, "bucket", "https://bitbucket.org/team/hello")
    await add_package(api, "pag", "https://pagure.io/hello.git")
    await add_package(api, "pinned", "https://github.com/octo/pinned", committish="main")
    return api


async def project(api: Api) -> Project:
    return await api.kopers.store.get_project("alice", "p")


async def deliver(
    api: Api,
    forge: str,
    data: Any,
    headers: dict[str, str] | None = None,
    *,
    project_id: int | str | None = None,
    secret: str | None = None,
    tail: str = "/",
) -> tuple[int, Any]:
    p = await project(api)
    pid = p.id if project_id is None else project_id
    path = f"/webhooks/{forge}/{pid}/{secret or p.webhook_secret}{tail}"
    raw = data if isinstance(data, bytes) else body(data)
    head = {"Content-Type": "application/json", **(headers or {})}
    async with api.client.post(path, data=raw, headers=head) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if resp.content_type == "application/json" else text


async def github(api: Api, data: Any, event: str = "push", **kw: Any) -> tuple[int, Any]:
    raw = data if isinstance(data, bytes) else body(data)
    secret = (await project(api)).webhook_secret
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": signature_of(secret, raw),
        **kw.pop("headers", {}),
    }
    return await deliver(api, "github", raw, headers, **kw)


async def builds_of(api: Api) -> dict[str, tuple[str, str]]:
    """package -> (committish, submitter) of every build, by package name."""
    rows = await api.kopers.store.pool.fetch(
        "SELECT pk.name, b.source->>'committish' AS at, u.name AS who FROM builds b"
        " JOIN packages pk ON pk.id = b.package_id JOIN users u ON u.id = b.submitter_id"
    )
    return {r["name"]: (r["at"], r["who"]) for r in rows}


async def receipts_of(api: Api) -> list[tuple[int, tuple[int, ...]]]:
    """(status, builds) of the project's receipts, oldest first."""
    rows = await api.kopers.store.webhook_receipts((await project(api)).id, KEEP)
    return [(r.status, tuple(sorted(r.builds))) for r in reversed(rows)]


async def receipts(api: Api, user: str = "alice", query: str = "") -> tuple[int, Any]:
    return await api.call("GET", f"/api/projects/alice/p/webhooks/received{query}", user)


# -- GitHub ---------------------------------------------------------------------------------


async def test_a_signed_github_push_builds_each_matching_package_at_the_pushed_sha(
    hooked: Api,
) -> None:
    api = hooked
    status, answer = await github(api, github_push(paths=["docs/index.md"]))
    assert status == 200, answer
    built = await builds_of(api)
    # hello-stable follows another branch; quiet has webhook_rebuild off; the rest are elsewhere.
    assert built == {
        "hello": (SHA, "alice"),
        "hello-docs": (SHA, "alice"),
        "hello-main": (SHA, "alice"),
    }
    assert sorted(answer["builds"]) == sorted(
        await api.kopers.store.pool.fetchval("SELECT array_agg(id) FROM builds")
    )
    assert "hello-docs at aaaaaaaaaaaa" in answer["message"]
    # Through Kopers.submit: each build audited, as the owner, from the forge's address.
    events = await api.kopers.store.pool.fetch(
        "SELECT e.action, u.name, e.address FROM events e JOIN users u ON u.id = e.user_id"
        " WHERE action = 'build.submit'"
    )
    assert [(e["action"], e["name"]) for e in events] == [("build.submit", "alice")] * 3
    assert all(e["address"] for e in events)
    # As Copr's API shows each build's source: the package's repository at the pushed commit.
    for build_id in answer["builds"]:
        status, shown = await api.call("GET", f"/api_3/build/source-build-config/{build_id}")
        assert status == 200 and shown["source_dict"]["committish"] == SHA, shown
    assert await receipts_of(api) == [(200, tuple(sorted(answer["builds"])))]


async def test_a_change_outside_the_subdirectory_does_not_build_it(hooked: Api) -> None:
    status, answer = await github(hooked, github_push(after=SHA3, paths=["src/main.c"]))
    assert status == 200, answer
    assert set(await builds_of(hooked)) == {"hello", "hello-main"}


async def test_a_tag_builds_every_package_of_the_repository(hooked: Api) -> None:
    status, answer = await github(hooked, github_push(ref="refs/tags/v1.0", after=SHA3))
    assert status == 200, answer
    built = await builds_of(hooked)
    assert set(built) == {"hello", "hello-docs", "hello-main", "hello-stable"}
    assert {at for at, _ in built.values()} == {SHA3}


async def test_the_route_works_without_the_trailing_slash(hooked: Api) -> None:
    status, answer = await github(hooked, github_push(ref="refs/heads/stable"), tail="")
    assert status == 200, answer
    assert set(await builds_of(hooked)) == {"hello", "hello-docs", "hello-stable"}


async def test_refused_github_deliveries_build_nothing(hooked: Api) -> None:
    api = hooked
    p = await project(api)
    push_body = body(github_push())
    wrong_secret = "0" * 8 + p.webhook_secret[8:]
    cases: list[tuple[str, Any, dict[str, Any], int, str]] = [
        (
            "wrong signature",
            push_body,
            {"headers": {"X-Hub-Signature-256": "sha256=" + "0" * 64}},
            403,
            "signature",
        ),
        (
            "signed with another key",
            push_body,
            {"headers": {"X-Hub-Signature-256": signature_of("x", push_body)}},
            403,
            "signature",
        ),
        ("wrong uuid", push_body, {"secret": wrong_secret}, 404, "no webhook"),
        ("uuid in upper case", push_body, {"secret": p.webhook_secret.upper()}, 404, "no webhook"),
        ("wrong project id", push_body, {"project_id": p.id + 1000}, 404, "no webhook"),
        ("project id not a number", push_body, {"project_id": "x1"}, 404, "no webhook"),
        ("project id too large", push_body, {"project_id": "9" * 30}, 404, "no webhook"),
        (
            "repository of no package",
            github_push(repo="https://github.com/octo/other"),
            {},
            404,
            "github.com/octo/other",
        ),
        (
            "only a package with webhook_rebuild off",
            github_push(repo="https://github.com/octo/quiet"),
            {},
            404,
            "no package",
        ),
        ("malformed JSON", b'{"ref": "refs/heads/main", ', {}, 400, "JSON"),
        ("wrong type", {**github_push(), "commits": "many"}, {}, 400, "commits"),
        ("missing field", {**github_push(), "after": None}, {}, 400, "after"),
        ("hostile ref", {**github_push(), "ref": "refs/heads/--upload-pack=sh"}, {}, 400, "ref"),
    ]
    before = await api.count("builds")
    for label, data, kw, want, word in cases:
        status, answer = await github(api, data, **kw)
        assert status == want, (label, answer)
        assert word.lower() in answer["error"].lower(), (label, answer)
        assert "\n" not in answer["error"], label
        assert await api.count("builds") == before, label
    # Signed, but the signature header left out.
    raw = body(github_push())
    status, answer = await deliver(api, "github", raw, {"X-GitHub-Event": "push"})
    assert status == 401 and "X-Hub-Signature-256" in answer["error"]
    assert await api.count("builds") == before == 0
    # Refusals that reached the project are on record; wrong ids and secrets are not.
    got = [status for status, _ in await receipts_of(api)]
    assert got == [403, 403, 404, 404, 400, 400, 400, 400, 401]


async def test_ping_and_a_deleted_branch_answer_200_and_build_nothing(hooked: Api) -> None:
    api = hooked
    status, answer = await github(api, {"zen": "Keep it simple.", "hook_id": 1}, "ping")
    assert status == 200 and answer["builds"] == [] and "ping" in answer["message"]
    status, answer = await github(api, github_push(after=ZERO, deleted=True))
    assert status == 200 and answer["builds"] == [] and "deleted" in answer["message"]
    status, answer = await github(api, {"action": "opened"}, "issues")
    assert status == 200 and answer["builds"] == []
    other_branch = github_push(repo="https://github.com/octo/pinned", ref="refs/heads/feature-x")
    status, answer = await github(api, other_branch)
    assert status == 200 and answer["builds"] == [], answer
    assert answer["message"] == "nothing to build: pinned: it follows main, not feature-x"
    assert await api.count("builds") == 0
    # A ping still needs the signature.
    status, _ = await deliver(api, "github", {"zen": "x"}, {"X-GitHub-Event": "ping"})
    assert status == 401


async def test_a_replayed_delivery_is_refused_and_builds_nothing(hooked: Api) -> None:
    api = hooked
    data = github_push(paths=["src/x.c"])
    status, first = await github(api, data)
    assert status == 200 and len(first["builds"]) == 2
    count = await api.count("builds")
    status, again = await github(api, data)
    assert status == 409 and "accepted before" in again["error"]
    assert await api.count("builds") == count
    # Two copies at the same moment: one builds, one is refused.
    twin = github_push(after=SHA3, paths=["src/y.c"])
    results = await asyncio.gather(github(api, twin), github(api, twin))
    assert sorted(s for s, _ in results) == [200, 409], results
    assert await api.count("builds") == count + 2
    # The refused copy waited for the other's commit, so its receipt comes after.
    assert [status for status, _ in await receipts_of(api)] == [200, 409, 200, 409]


# -- the other forges -------------------------------------------------------------------------


async def test_gitlab_needs_its_token(hooked: Api) -> None:
    api = hooked
    secret = (await project(api)).webhook_secret
    hook = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "gl-1"}
    for token, want in ((None, 401), ("wrong", 403), (secret.upper(), 403)):
        headers = hook if token is None else {**hook, "X-Gitlab-Token": token}
        status, answer = await deliver(api, "gitlab", gitlab_push(), headers)
        assert status == want, answer
    assert await api.count("builds") == 0
    status, answer = await deliver(api, "gitlab", gitlab_push(), {**hook, "X-Gitlab-Token": secret})
    assert status == 200, answer
    assert await builds_of(api) == {"lab": (SHA, "alice")}
    tag = gitlab_push(ref="refs/tags/v2", after=SHA3, tag=True)
    headers = {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": secret}
    status, answer = await deliver(api, "gitlab", tag, headers)
    assert status == 200 and len(answer["builds"]) == 1


async def test_bitbucket_signed_unsigned_and_badly_signed(hooked: Api) -> None:
    api = hooked
    secret = (await project(api)).webhook_secret
    event = {"X-Event-Key": "repo:push", "X-Request-UUID": "bb-1"}
    unsigned = bitbucket_push()
    status, answer = await deliver(api, "bitbucket", unsigned, event)
    assert status == 200 and len(answer["builds"]) == 1, answer
    change = {"new": {"type": "branch", "name": "main", "target": {"hash": SHA3}}}
    signed = body(bitbucket_push(changes=[change]))
    bad = {**event, "X-Hub-Signature": signature_of("not the secret", signed)}
    status, answer = await deliver(api, "bitbucket", signed, bad)
    assert status == 403, answer
    assert await api.count("builds") == 1
    good = {**event, "X-Hub-Signature": signature_of(secret, signed)}
    status, answer = await deliver(api, "bitbucket", signed, good)
    assert status == 200 and len(answer["builds"]) == 1, answer
    assert await builds_of(api) == {"bucket": (SHA3, "alice")}


async def test_pagure_json_and_form(hooked: Api) -> None:
    api = hooked
    topic = {"X-Pagure-Topic": "git.receive"}
    status, answer = await deliver(api, "pagure", pagure_push(), topic)
    assert status == 200 and len(answer["builds"]) == 1, answer
    form = urlencode({"payload": json.dumps(pagure_push(end=SHA3))}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, answer = await deliver(api, "pagure", form, headers)
    assert status == 200 and len(answer["builds"]) == 1, answer
    at = await api.kopers.store.pool.fetch(
        "SELECT source->>'committish' AS c FROM builds ORDER BY id"
    )
    assert [r["c"] for r in at] == [SHA, SHA3]
    assert set(await builds_of(api)) == {"pag"}
    issue = {**pagure_push(), "topic": "issue.new"}
    status, answer = await deliver(api, "pagure", issue, {"X-Pagure-Topic": "issue.new"})
    assert status == 200 and answer["builds"] == []
    assert await api.count("builds") == 2


# -- custom ---------------------------------------------------------------------------------------


async def test_a_custom_webhook_builds_the_named_package(hooked: Api) -> None:
    api = hooked
    p = await project(api)
    for tail in ("/hello-stable/", "/hello-stable"):
        path = f"/webhooks/custom/{p.id}/{p.webhook_secret}{tail}"
        async with api.client.post(path, data=b"anything at all \x00\xff") as resp:
            assert resp.status == 200
            text = await resp.text()
        build = await api.kopers.store.get_build(int(text))
        assert text.endswith("\n") and build.source["committish"] == "stable"
    # No body at all, and pressed twice: a button, not a replay.
    async with api.client.post(f"/webhooks/custom/{p.id}/{p.webhook_secret}/hello/") as resp:
        assert resp.status == 200
    assert await api.count("builds") == 3
    for name in ("ghost", "a%00b", "a%0Ab", "x" * 300, "-x", "a..b"):
        status, answer = await api.call(
            "POST", f"/webhooks/custom/{p.id}/{p.webhook_secret}/{name}/"
        )
        assert status == 404 and "\n" not in answer["error"], (name, answer)
    # A dot segment is resolved by the router: no route, its plain 404.
    status, _ = await api.call("POST", f"/webhooks/custom/{p.id}/{p.webhook_secret}/../")
    assert status == 404
    status, _ = await api.call("POST", f"/webhooks/custom/{p.id}/wrong/hello/")
    assert status == 404
    assert await api.count("builds") == 3
    status, _ = await api.call("GET", f"/webhooks/custom/{p.id}/{p.webhook_secret}/hello/")
    assert status == 405


# -- body caps ----------------------------------------------------------------------------------


async def test_a_delivery_over_the_cap_is_refused_before_it_is_read(hooked: Api) -> None:
    api = hooked
    p = await project(api)
    path = f"/webhooks/github/{p.id}/{p.webhook_secret}/"
    cap = api.kopers.config.webhooks.max_body_bytes
    head = request_head(path, "none", "application/json", 2 << 30)
    pushed = await push(port_of(api), head, [b'{"ref": '], chunked=False)
    assert pushed.status == 413 and "webhooks.max_body_kib" in pushed.body["error"]
    big = body({**github_push(), "padding": "x" * cap})
    head = request_head(path, "none", "application/json", None)
    pushed = await push(
        port_of(api), head, [big[i : i + 65536] for i in range(0, len(big), 65536)], chunked=True
    )
    assert pushed.status == 413 and "webhooks.max_body_kib" in pushed.body["error"]
    assert await api.count("builds") == 0


@pytest.fixture
async def small_caps(dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    api, _ = await open_api(
        dsn, tmp_path / "data", KOPERS_LIMITS_MAX_JSON_KIB="16", KOPERS_WEBHOOKS_MAX_BODY_KIB="64"
    )
    try:
        assert (await create(api, "alice", "alice", "p"))[0] == 200
        await add_package(api, "hello", GITHUB)
        yield api
    finally:
        await api.client.close()
        await api.kopers.close()


async def test_deliveries_have_their_own_cap(small_caps: Api) -> None:
    """Past the JSON cap but within the webhook cap: accepted; past the webhook cap: 413."""
    api = small_caps
    status, answer = await github(api, {**github_push(), "padding": "x" * (32 << 10)})
    assert status == 200, answer
    status, answer = await github(api, {**github_push(after=SHA3), "padding": "x" * (80 << 10)})
    assert status == 413 and "webhooks.max_body_kib" in answer["error"]
    assert await api.count("builds") == 1


# -- the record -------------------------------------------------------------------------------


async def test_receipts_are_listed_to_editors_with_what_they_started_and_why(hooked: Api) -> None:
    api = hooked
    status, built = await github(api, github_push(paths=["docs/a"]))
    assert status == 200
    await github(api, github_push(), headers={"X-Hub-Signature-256": "sha256=00"})
    await github(api, github_push(), "ping")
    status, listed = await receipts(api)
    assert status == 200, listed
    newest, refused, accepted = listed["items"]
    assert (newest["status"], newest["builds"], newest["event"]) == (200, [], "ping")
    assert (refused["status"], refused["accepted"], refused["builds"]) == (403, False, [])
    assert "signature" in refused["reason"]
    assert accepted["builds"] == built["builds"] and accepted["accepted"]
    assert accepted["forge"] == "github" and accepted["delivery_id"] == "d-1"
    assert len(accepted["digest"]) == 64 and "building" in accepted["reason"]
    check, _ = checker(await fetch_document(api))
    route = "/api/projects/{owner}/{project}/webhooks/received"
    check("GET", route, status, listed)
    status, one = await receipts(api, query="?limit=1")
    assert status == 200 and [r["id"] for r in one["items"]] == [newest["id"]]
    for query in ("?limit=0", f"?limit={KEEP + 1}", "?limit=x"):
        status, answer = await receipts(api, query=query)
        assert status == 400 and "limit" in answer["error"], query
        check("GET", route, status, answer)
    assert (await receipts(api, "root"))[0] == 200
    status, answer = await receipts(api, "bob")
    assert status == 403
    check("GET", route, status, answer)
    status, answer = await api.call("GET", "/api/projects/alice/p/webhooks/received")
    assert status == 401
    check("GET", route, status, answer)
    status, answer = await api.call("GET", "/api/projects/alice/nope/webhooks/received", "alice")
    assert status == 404
    check("GET", route, status, answer)
    assert DOCUMENTED_KEEP == KEEP


async def fill(api: Api, status: int, n: int) -> None:
    """`n` receipts of `status` for alice/p, such as pings (or refused pings) leave."""
    store = api.kopers.store
    p = await project(api)

    async def one(i: int) -> None:
        receipt = NewReceipt(p.id, Forge.GITHUB, status, "filler", "ping", None, f"{i:064x}")
        await store.add_webhook_receipt(receipt)

    for start in range(0, n, 50):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 50))))
    # Each receipt prunes what committed before it: one more settles any overlap.
    await one(n)


async def test_accepted_and_refused_receipts_are_kept_apart(hooked: Api) -> None:
    api = hooked
    store = api.kopers.store
    p = await project(api)
    status, built = await github(api, github_push())
    assert status == 200
    # More refused deliveries than are kept: the accepted one stays, the oldest refused go.
    raw = body(github_push())
    tasks = [
        github(api, raw, headers={"X-Hub-Signature-256": f"sha256={i:064x}"})
        for i in range(KEEP_REFUSED + 20)
    ]
    for i in range(0, len(tasks), 50):
        await asyncio.gather(*tasks[i : i + 50])
    await github(api, raw, headers={"X-Hub-Signature-256": "sha256=" + "f" * 64})
    kept = await store.webhook_receipts(p.id, KEEP)
    assert len(kept) == 1 + KEEP_REFUSED
    assert [r.builds for r in kept if r.accepted] == [tuple(built["builds"])]
    # And the replay protection of the accepted one holds.
    status, _ = await github(api, github_push())
    assert status == 409
    assert KEEP_ACCEPTED + KEEP_REFUSED == KEEP


async def test_refusals_stay_on_record_however_many_deliveries_are_accepted(hooked: Api) -> None:
    api = hooked
    p = await project(api)
    status, _ = await github(
        api, github_push(), headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}
    )
    assert status == 403
    await fill(api, 200, KEEP + 10)
    kept = await api.kopers.store.webhook_receipts(p.id, KEEP)
    assert [r.status for r in kept if not r.accepted] == [403]
    assert sum(r.accepted for r in kept) == KEEP_ACCEPTED


async def test_a_replay_is_refused_after_its_receipt_is_pruned(hooked: Api) -> None:
    """A captured delivery, signature and all, does not build again once its receipt is gone."""
    api = hooked
    data = github_push(paths=["src/x.c"])
    status, first = await github(api, data)
    assert status == 200 and first["builds"]
    count = await api.count("builds")
    await fill(api, 200, KEEP_ACCEPTED + 10)
    ids = [r.id for r in await api.kopers.store.webhook_receipts((await project(api)).id, KEEP)]
    assert first["receipt"] not in ids
    status, again = await github(api, data)
    assert status == 409 and "accepted before" in again["error"], again
    assert await api.count("builds") == count


async def test_a_body_is_remembered_for_30_days(hooked: Api) -> None:
    api = hooked
    pool = api.kopers.store.pool
    data = github_push(paths=["src/x.c"])
    status, first = await github(api, data)
    assert status == 200
    count = await api.count("builds")
    await pool.execute("UPDATE webhook_digests SET seen_at = now() - interval '29 days'")
    status, _ = await github(api, data)
    assert status == 409 and await api.count("builds") == count
    await pool.execute("UPDATE webhook_digests SET seen_at = now() - interval '31 days'")
    status, again = await github(api, data)
    assert status == 200 and len(again["builds"]) == len(first["builds"])
    # The old claim went when the new one was made; the new one holds.
    ages = await pool.fetch(
        "SELECT now() - seen_at < interval '1 day' AS fresh FROM webhook_digests"
    )
    assert [r["fresh"] for r in ages] == [True]
    status, _ = await github(api, data)
    assert status == 409


async def test_a_delivery_that_built_nothing_does_not_claim_its_body(hooked: Api) -> None:
    api = hooked
    other = github_push(repo="https://github.com/octo/pinned", ref="refs/heads/feature-x")
    status, answer = await github(api, other)
    assert status == 200 and answer["builds"] == [], answer
    # The package is set to follow that branch, and the forge delivers the same body again.
    await api.kopers.store.pool.execute(
        "UPDATE packages SET source = jsonb_set(source, '{committish}', '\"feature-x\"')"
        " WHERE name = 'pinned'"
    )
    status, again = await github(api, other)
    assert status == 200 and len(again["builds"]) == 1, again
    status, _ = await github(api, other)
    assert status == 409
    for _ in range(2):
        status, answer = await github(api, {"zen": "same"}, "ping")
        assert status == 200 and answer["builds"] == []


# -- packages that cannot be built ------------------------------------------------------------


async def test_an_unbuildable_package_is_skipped_and_the_others_build(hooked: Api) -> None:
    api = hooked
    store = api.kopers.store
    pool = store.pool
    await pool.execute(
        "UPDATE packages SET source = jsonb_set(source, '{source_build_method}', '\"tito\"')"
        " WHERE name = 'hello-main'"
    )
    # Refused inside the submission: every chroot of the project denied to it.
    await pool.execute(
        "UPDATE packages SET chroot_denylist = $1 WHERE name = 'hello-docs'", [CHROOT]
    )
    status, answer = await github(api, github_push(paths=["docs/x", "src/x"]))
    assert status == 200, answer
    assert set(await builds_of(api)) == {"hello"}
    assert await api.count("builds") == len(answer["builds"]) == 1
    skipped = {s["package"]: s["reason"] for s in answer["skipped"]}
    assert set(skipped) == {"hello-main", "hello-docs"}
    assert "tito" in skipped["hello-main"] and "chroot" in skipped["hello-docs"]
    assert all("\n" not in r for r in skipped.values())
    [receipt] = await store.webhook_receipts((await project(api)).id, KEEP)
    assert receipt.accepted and receipt.builds == tuple(answer["builds"])
    assert receipt.reason == answer["message"]
    assert "building hello at" in receipt.reason and "hello-main" in receipt.reason
    assert "tito" in receipt.reason and "hello-docs" in receipt.reason
    # Nothing buildable at all: the first refusal, as before, and nothing built.
    await pool.execute(
        "UPDATE packages SET source = jsonb_set(source, '{source_build_method}', '\"tito\"')"
        " WHERE name = 'hello'"
    )
    status, answer = await github(api, github_push(after=SHA3, paths=["src/x"]))
    assert status == 400 and "tito" in answer["error"], answer
    assert await api.count("builds") == 1
    assert [s for s, _ in await receipts_of(api)] == [200, 400]
    assert await pool.fetchval("SELECT count(*) FROM webhook_digests") == 1


# -- the audit log ----------------------------------------------------------------------------


async def test_a_webhook_build_is_audited_as_one(hooked: Api) -> None:
    api = hooked
    status, answer = await github(api, github_push(paths=["src/x"]))
    assert status == 200 and answer["builds"]
    rows = await api.kopers.store.pool.fetch(
        "SELECT details FROM events WHERE action = 'build.submit' ORDER BY id"
    )
    details = [
        json.loads(r["details"]) if isinstance(r["details"], str) else r["details"] for r in rows
    ]
    assert sorted(d["build"] for d in details) == sorted(answer["builds"])
    for d in details:
        assert (d["via"], d["forge"], d["receipt"]) == ("webhook", "github", answer["receipt"])
        assert d["chroots"] == [CHROOT]


# -- what reaches the log and the record ------------------------------------------------------


def kopers_log(caplog: pytest.LogCaptureFixture) -> str:
    """What Kopers logged (the test server's own access log is not Kopers': serve turns it off)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("kopers"))


async def test_the_webhook_secret_stays_out_of_the_server_log(
    hooked: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api = hooked
    p = await project(api)
    await api.kopers.store.pool.execute(
        "UPDATE packages SET source = jsonb_set(source, '{scm_type}', '\"svn\"')"
        " WHERE name = 'hello'"
    )
    caplog.set_level(logging.INFO)
    status, _ = await deliver(api, "custom", b"", tail="/hello/")
    assert status == 501
    logged = kopers_log(caplog)
    assert f"/webhooks/custom/{p.id}/<secret>/hello/" in logged
    assert p.webhook_secret not in logged


async def test_a_slow_delivery_is_logged_without_the_secret(
    dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api, _ = await open_api(
        dsn,
        tmp_path / "data",
        KOPERS_LIMITS_BODY_GRACE="1",
        KOPERS_LIMITS_MIN_BODY_RATE_KIB="4",
    )
    caplog.set_level(logging.INFO)
    try:
        assert (await create(api, "alice", "alice", "p"))[0] == 200
        p = await project(api)
        path = f"/webhooks/github/{p.id}/{p.webhook_secret}/"
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(api))
        writer.write(request_head(path, "none", "application/json", 10_000) + b"{")
        await writer.drain()
        try:
            async with asyncio.timeout(10):
                while await reader.read(1 << 16):
                    pass
        except ConnectionError:
            pass
        writer.close()
        logged = kopers_log(caplog)
        assert "the body arrived at under" in logged
        assert f"/webhooks/github/{p.id}/<secret>/" in logged
        assert p.webhook_secret not in logged
    finally:
        await api.client.close()
        await api.kopers.close()


async def test_receipt_reasons_name_no_host_path(hooked: Api) -> None:
    api = hooked
    data_dir = str(api.kopers.config.data_dir)
    status, answer = await github(api, github_push(repo=f"https://github.com{data_dir}/x"))
    assert status == 404 and data_dir not in answer["error"], answer
    [receipt] = await api.kopers.store.webhook_receipts((await project(api)).id, KEEP)
    assert receipt.reason == answer["error"]
    assert data_dir not in receipt.reason and "<data>" in receipt.reason


# -- the pushed commit is held to its ref -------------------------------------------------------


def allow_git() -> AddressPolicy:
    """This host's policy with only the test git daemon's address allow-listed."""
    return address_policy(GIT_NETWORK)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[GitRepo]:
    with git_daemon(tmp_path / "git", "hello.git", {"hello.spec": "Name: hello\n"}) as repo:
        yield repo


async def test_a_pushed_commit_is_checked_out_only_on_the_ref_it_names(
    tmp_path: Path, served: GitRepo
) -> None:
    repo = served
    first = git("rev-parse", "HEAD", cwd=repo.work).strip()
    second = repo.commit({"hello.spec": "Name: hello\nVersion: 2\n"})
    unreviewed = repo.commit({"evil": "1"}, branch="unreviewed")
    away = repo.commit({"later": "1"}, branch="main")
    for args in (("tag", "v1", first), ("tag", "-a", "v2", "-m", "two", second)):
        git(*args, cwd=repo.work)
    git("push", "-q", str(repo.bare), "v1", "v2", cwd=repo.work)
    main, tag = RefPin(RefKind.BRANCH, "main"), RefPin(RefKind.TAG, "v1")
    tree = tmp_path / "tree"

    async def out(commit: str, on: RefPin | None) -> str:
        return await checkout(repo.url, commit, tree, allow_git(), on=on)

    # On the branch: its newest commit, and an older one (the branch holds it).
    assert await out(away, main) == away
    assert await out(first, main) == first
    assert await out(unreviewed, RefPin(RefKind.BRANCH, "unreviewed")) == unreviewed
    assert await out(first, tag) == first
    assert await out(second, RefPin(RefKind.TAG, "v2")) == second  # annotated
    # Without a ref (a build asked for by hand): any commit, as before.
    assert await out(unreviewed, None) == unreviewed
    refused = [
        (unreviewed, main, f"commit {unreviewed} is not on branch main"),
        (second, tag, f"tag v1 does not point to commit {second}"),
        ("d" * 40, main, f"commit {'d' * 40} is not in the repository"),
        (first, RefPin(RefKind.BRANCH, "gone"), "branch gone is not in the repository"),
        (first, RefPin(RefKind.TAG, "gone"), "tag gone is not in the repository"),
    ]
    for commit, on, reason in refused:
        with pytest.raises(BuildFailed) as info:
            await out(commit, on)
        assert info.value.message.startswith(reason), (info.value.message, reason)
        assert "\n" not in info.value.message
        assert not (tree / "evil").exists()


async def test_a_push_naming_a_commit_off_its_branch_fails_its_source_step(
    api: Api, tmp_path: Path, served: GitRepo
) -> None:
    repo = served
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    await add_package(api, "hello", repo.url)
    evil = repo.commit({"evil": "1"}, branch="unreviewed")
    status, answer = await github(api, github_push(repo=repo.url, after=evil))
    assert status == 200, answer
    [build_id] = answer["builds"]
    k = api.kopers
    build = await k.store.get_build(build_id)
    assert (build.source["committish"], build.source["ref"]) == (evil, "refs/heads/main")
    config = dataclasses.replace(k.config, network=GIT_NETWORK)
    runner = Runner(config, k.paths, k.store, k.hub, k.publisher, FakeVmPool(tmp_path / "vms"))  # type: ignore[arg-type]
    assert await runner.run(TaskKey(build_id, SOURCE)) == BuildState.FAILED
    reason = (await k.store.get_build(build_id)).tasks[0].reason
    assert reason == f"source import failed: commit {evil} is not on branch main"
