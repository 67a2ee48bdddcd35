"""How fast builds start on their own: a forge's webhook, and an automatic rebuild.

Starts a real Kopers (embedded Postgres, real VMs) with a warm pool
(`vm.warm = 1`, `vm.max_concurrent = 2`) and listens to its event stream
(/api/events/stream), whose events carry the server's commit time.

Part 1, webhook: a git package (served by `git daemon`) with webhook rebuild
on; each run pushes a commit and POSTs a signed GitHub push delivery, then
measures from just before the POST to the moment the build's first task
(the source step, which makes the SRPM in a VM) is `running`.

Part 2, automatic rebuild: packages A and B (B BuildRequires A) in a project
with `rebuild_dependents` on; each run builds A again and measures from A's
`build.published` event to the `running` event of the rebuild of B that
follows, the settle window (`[rebuild] settle_ms`) included.

Copr's side, from its published defaults: its backend's build dispatcher
asks the frontend for pending jobs every `sleeptime` = 5 s
(copr_backend/helpers.py), for SRPM builds and RPM builds alike, so a new
webhook build, or the next batch of a chain after the previous one ended,
waits 0-5 s (2.5 s on average) before a worker is even started; Copr has no
automatic rebuild of dependents at all, so the nearest step is a chain's
next batch. Those waits are printed beside Kopers' measured ones.

    .venv/bin/python bench/webhook.py [--runs N]

Last line: `webhook delivery_to_running_s=<median> publish_to_rebuild_running_s=<median>
copr_poll_mean_s=2.5 ratio_webhook=<copr/kopers> ratio_rebuild=<copr/kopers>`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import forgepush  # noqa: E402
from tests.e2e.forgepush import github_push, signed  # noqa: E402
from tests.e2e.gitdaemon import GitRepo, git_daemon  # noqa: E402
from tests.e2e.server import Server  # noqa: E402
from tests.rpms import noarch_srpm  # noqa: E402

CHROOT = "debian-12-x86_64"
USER = "bench"
COPR_SLEEPTIME_S = 5.0  # copr_backend/helpers.py: [backend] sleeptime default
SPEC = """\
Name: bench-hooked
Version: {version}
Release: 1%{{?dist}}
Summary: s
License: MIT
BuildArch: noarch
%description
d
%install
mkdir -p %{{buildroot}}/usr/share/bench-hooked
echo {version} > %{{buildroot}}/usr/share/bench-hooked/v
%files
/usr/share/bench-hooked/v
"""


class Events:
    """The server's event stream, collected in a thread: (kind, build, state) -> commit time."""

    def __init__(self, url: str) -> None:
        self.seen: dict[tuple[str, int, str], float] = {}
        self.lock = threading.Lock()
        request = urllib.request.Request(
            f"{url}/api/events/stream", headers={"Accept": "text/event-stream"}
        )
        self.response = urllib.request.urlopen(request, timeout=600)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.response:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                event = json.loads(line[6:])
                at = datetime.fromisoformat(event["at"]).timestamp()
                with self.lock:
                    self.seen.setdefault((event["kind"], event["build"], event["state"]), at)

    def wait(self, kind: str, build: int, state: str, timeout: float = 900) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if (kind, build, state) in self.seen:
                    return self.seen[(kind, build, state)]
            time.sleep(0.05)
        raise RuntimeError(f"no {kind} {state} event for build {build}")


def deliver(server: Server, project_id: int, secret: str, repo: GitRepo, commit: str) -> int:
    body = github_push(repo.url, commit, "bench-hooked.spec")
    url = f"{server.url}/webhooks/github/{project_id}/{secret}/"
    status, answer = forgepush.deliver(url, body, signed(body, secret, commit))
    if status != 200:
        raise RuntimeError(f"the delivery got {status}: {answer}")
    (build,) = json.loads(answer)["builds"]
    return int(build)


def webhook_runs(server: Server, events: Events, base: Path, runs: int) -> list[float]:
    ok(server.copr(USER, "create", "hooked", "--chroot", CHROOT))
    project_id = int(server.get(f"/api_3/project?ownername={USER}&projectname=hooked")["id"])
    secret = str(server.get_as(USER, f"/api/projects/{USER}/hooked")["webhook_secret"])
    times = []
    with git_daemon(base / "git", "hooked.git", {"bench-hooked.spec": SPEC.format(version=1)}) as r:
        ok(
            server.copr(
                USER,
                "add-package-scm",
                "hooked",
                "--name",
                "bench-hooked",
                "--clone-url",
                r.url,
                "--spec",
                "bench-hooked.spec",
                "--webhook-rebuild",
                "on",
            )
        )
        for i in range(runs):
            commit = r.commit({"bench-hooked.spec": SPEC.format(version=i + 2)})
            server.wait_warm()
            sent = time.time()
            build = deliver(server, project_id, secret, r, commit)
            running = events.wait("source.state", build, "running")
            times.append(running - sent)
            print(f"webhook {i}: source step running {running - sent:.3f} s after the POST")
            finish(server, build)
    return times


def rebuild_runs(server: Server, events: Events, base: Path, runs: int) -> list[float]:
    ok(server.copr(USER, "create", "deps", "--chroot", CHROOT))
    srpms = base / "srpms"
    finish(server, created(server.copr(USER, "build", "deps", str(noarch_srpm(srpms, "bench-a")))))
    b = noarch_srpm(srpms, "bench-b", requires="BuildRequires: bench-a")
    finish(server, created(server.copr(USER, "build", "deps", str(b))))
    server.post(USER, "/api/projects/bench/deps", {"rebuild_dependents": True}, method="PATCH")
    times = []
    for i in range(runs):
        server.wait_warm()
        a = noarch_srpm(srpms, "bench-a", version=str(i + 2))
        a_id = created(server.copr(USER, "build", "deps", str(a), "--nowait"))
        published = events.wait("build.published", a_id, "published")
        rebuild = next_build(server, a_id)
        running = events.wait("task.state", rebuild, "running")
        times.append(running - published)
        print(f"rebuild {i}: B's rebuild running {running - published:.3f} s after A published")
        finish(server, rebuild)
    return times


def next_build(server: Server, after: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = server.get(f"/api_3/build/list?ownername={USER}&projectname=deps")["items"]
        newer = [b["id"] for b in items if b["id"] > after]
        if newer:
            return min(newer)
        time.sleep(0.1)
    raise RuntimeError(f"no rebuild followed build {after}")


def created(r: Any) -> int:
    return int(ok(r).rsplit("Created builds:", 1)[1].split()[0])


def ok(r: Any) -> str:
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    return str(r.stdout)


def finish(server: Server, build: int) -> None:
    state = server.wait_build(build)["state"]
    if state != "succeeded":
        raise RuntimeError(f"build {build} ended {state}; see {server.log_path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kopers-bench-webhook-"))
    server = Server.create(base, KOPERS_VM_WARM="1", KOPERS_VM_MAX_CONCURRENT="2")
    server.start()
    try:
        server.user(USER)
        events = Events(server.url)
        hooks = webhook_runs(server, events, base, args.runs)
        rebuilds = rebuild_runs(server, events, base, args.runs)
    finally:
        server.stop()
    copr = COPR_SLEEPTIME_S / 2
    hook, rebuild = statistics.median(hooks), statistics.median(rebuilds)
    print(
        f"Copr's dispatcher alone waits 0-{COPR_SLEEPTIME_S:.0f} s "
        f"({copr:.1f} s on average) before it starts a worker for either step"
    )
    print(
        f"webhook delivery_to_running_s={hook:.3f} publish_to_rebuild_running_s={rebuild:.3f} "
        f"copr_poll_mean_s={copr:.1f} ratio_webhook={copr / hook:.1f} "
        f"ratio_rebuild={copr / rebuild:.1f}"
    )
    return 0


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"(benchmark took {time.monotonic() - start:.0f} s)", file=sys.stderr)
    raise SystemExit(code)
