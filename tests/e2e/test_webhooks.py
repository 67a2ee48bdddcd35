"""Webhooks end to end: a forge's signed push builds the pushed commit, and every state
change of that build reaches the project's outgoing webhook, in order and signed,
even those that happened while the receiver was down and across a `kill -9`.

Real VMs (the git package's source step and its chroot build), a git daemon and
the receiver on the loopback address builds and hooks may reach.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e import forgepush
from tests.e2e.forgepush import signed
from tests.e2e.gitdaemon import GitRepo, git_daemon
from tests.e2e.server import CHROOT, WEBROOT_HOST, Server, free_port

pytestmark = pytest.mark.e2e

OWNER, PROJECT, PACKAGE = "hanna", "hooked", "kopers-hooked"
HOOK_SECRET = "receiver-secret-7"
SPEC = """\
Name:           kopers-hooked
Version:        {version}
Release:        1%{{?dist}}
Summary:        Built when its repository is pushed to
License:        MIT
BuildArch:      noarch

%description
A package of the webhook test.

%prep

%build

%install
mkdir -p %{{buildroot}}/usr/share/kopers-hooked
echo {version} > %{{buildroot}}/usr/share/kopers-hooked/version

%files
/usr/share/kopers-hooked/version
"""


@dataclass
class Receiver:
    """An HTTP endpoint that records what it is sent; down until `up()`."""

    port: int
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    def up(self) -> None:
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((WEBROOT_HOST, self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitRepo]:
    base = tmp_path_factory.mktemp("hooked-git")
    with git_daemon(base, "hooked.git", {"kopers-hooked.spec": SPEC.format(version="1.0")}) as r:
        yield r


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.down()


def deliver(server: Server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    return forgepush.deliver(f"{server.url}{path}", body, headers)


def github_push(repo: GitRepo, commit: str) -> bytes:
    return forgepush.github_push(repo.url, commit, "kopers-hooked.spec")


def build_count(server: Server) -> int:
    page = server.get(f"/api_3/build/list?ownername={OWNER}&projectname={PROJECT}")
    return len(page["items"])


def test_a_signed_push_builds_the_pushed_commit_and_its_events_go_out_across_a_crash(
    server: Server, repo: GitRepo, receiver: Receiver
) -> None:
    server.user(OWNER)
    assert server.copr(OWNER, "create", PROJECT, "--chroot", CHROOT).returncode == 0
    r = server.copr(
        OWNER,
        "add-package-scm",
        PROJECT,
        "--name",
        PACKAGE,
        "--clone-url",
        repo.url,
        "--spec",
        "kopers-hooked.spec",
        "--webhook-rebuild",
        "on",
    )
    assert r.returncode == 0, r.stderr
    secret = server.get_as(OWNER, f"/api/projects/{OWNER}/{PROJECT}")["webhook_secret"]
    project_id = server.get(f"/api_3/project?ownername={OWNER}&projectname={PROJECT}")["id"]
    hook_url = f"http://{WEBROOT_HOST}:{receiver.port}/events"
    hook = server.post(
        OWNER, f"/api/projects/{OWNER}/{PROJECT}/hooks", {"url": hook_url, "secret": HOOK_SECRET}
    )

    # The pushed commit is 1.1; the branch moves on to 2.0 before the build fetches it.
    pushed = repo.commit({"kopers-hooked.spec": SPEC.format(version="1.1")}, message="1.1")
    repo.commit({"kopers-hooked.spec": SPEC.format(version="2.0")}, message="2.0")
    url = f"/webhooks/github/{project_id}/{secret}/"
    body = github_push(repo, pushed)
    before = build_count(server)
    assert deliver(server, url, body, signed(body, "not-the-secret", "d-0"))[0] == 403
    wrong_uuid = f"/webhooks/github/{project_id}/{'1' * 8}-1111-4111-8111-{'1' * 12}/"
    assert deliver(server, wrong_uuid, body, signed(body, secret, "d-1"))[0] == 404
    other = github_push(GitRepo("git://127.0.0.2:1/elsewhere.git", repo.work, repo.bare), pushed)
    assert deliver(server, url, other, signed(other, secret, "d-2"))[0] == 404
    assert build_count(server) == before

    status, answer = deliver(server, url, body, signed(body, secret, "d-3"))
    assert status == 200, answer
    (build_id,) = json.loads(answer)["builds"]
    assert deliver(server, url, body, signed(body, secret, "d-3"))[0] == 409  # a replay

    # The receiver is down: the first deliveries fail and wait for another try.
    deliveries = f"/api/projects/{OWNER}/{PROJECT}/hooks/{hook['id']}/deliveries?limit=500"
    deadline = time.monotonic() + 60
    while not any(
        d["attempts"] and d["last_error"] for d in server.get_as(OWNER, deliveries)["items"]
    ):
        assert time.monotonic() < deadline, server.get_as(OWNER, deliveries)
        time.sleep(0.2)
    # The server dies without any cleanup, then comes back, and so does the receiver.
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.proc = None
    receiver.up()
    server.start()
    build = server.wait_build(build_id)
    assert build["state"] == "succeeded", build
    built = server.get(f"/api_3/build/built-packages/{build_id}")[CHROOT]["packages"]
    assert {p["version"] for p in built} == {"1.1"}  # the pushed commit, not the branch head

    # Every event of the build arrives, in order, signed with the hook's secret.
    deadline = time.monotonic() + 120
    while not any(
        json.loads(b).get("kind") == "build.state" and json.loads(b).get("state") == "succeeded"
        for _, b in receiver.got
    ):
        assert time.monotonic() < deadline, [json.loads(b) for _, b in receiver.got]
        time.sleep(0.5)
    events = []
    for headers, raw in receiver.got:
        digest = hmac.new(HOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert headers["x-kopers-signature-256"] == f"sha256={digest}"
        event = json.loads(raw)
        assert headers["x-kopers-event"] == event["kind"]
        events.append(event)
    ours = [e for e in events if e["build"] == build_id]
    ids = [e["id"] for e in ours]
    assert ids == sorted(set(ids)), ids  # in order, none twice
    # All of the build's events, as the server's own list of deliveries has them.
    listed = server.get_as(OWNER, deliveries)["items"]
    stored = sorted(d["notification"] for d in listed if d["build"] == build_id)
    assert ids == stored
    assert {d["state"] for d in listed} == {"delivered"}
    # The first ones happened before the kill, while nothing listened: tried, failed, kept.
    first = next(d for d in listed if d["notification"] == ids[0])
    assert first["attempts"] > 1, first
    states = [(e["kind"], e["chroot"], e["state"]) for e in ours]
    assert states[0][2] in ("pending", "waiting", "importing"), states
    assert ("task.state", CHROOT, "running") in states
    assert ("build.published", CHROOT, "published") in states
    assert states.index(("build.published", CHROOT, "published")) < states.index(
        ("task.state", CHROOT, "succeeded")
    )
    assert states[-1] == ("build.state", None, "succeeded"), states
