"""Where a trivial build's time goes: submit to running, running to built, built to published.

Starts a real Kopers (embedded Postgres, real VMs) with one warm clone,
and submits N trivial noarch builds one after another, each once a warm
clone waits for it. For each build it reads the task's step times from
`GET /api/builds/<id>` and splits the build's life at three points:

- running: the task has its VM (the end of step "vm claim");
- built: the results are on the host (the end of step "result download");
- published: the task ended (`ended_on`), its packages signed and in the repodata.

Submit is the moment the upload request was sent. It prints each build,
then the median and p90 of each interval and of every step, so a change can
be judged side by side with the commit before it:

    .venv/bin/python bench/latency.py [--builds N] [--json FILE]

"overhead" is Kopers' own part of a build: total minus the time rpmbuild ran
(the builder's "rpmbuild" phase). "vm release" happens after the task ended
and is not part of any interval.

Last line: `latency submit_running_s=… running_built_s=… built_published_s=… total_s=…
overhead_s=…` (medians).

`--queue N` measures throughput instead: with two VM slots and two warm
clones, N trivial builds are submitted at once; it prints builds per hour
and how long tasks waited for a VM (the pool not keeping up):

    .venv/bin/python bench/latency.py --queue 20

Last line: `throughput builds=N builds_per_hour=… vm_wait_median_s=… vm_wait_p90_s=…`.
"""

from __future__ import annotations

import argparse
import base64
import configparser
import json
import math
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import CHROOT, Server  # noqa: E402
from tests.rpms import noarch_srpm  # noqa: E402

USER, PROJECT = "bench", "latency"
PHASES = ("submit_running", "running_built", "built_published", "total", "overhead")


def when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def pct(values: list[float], p: float) -> float:
    """The p-th percentile by nearest rank (p90 of 5 values is the largest)."""
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]


def upload(server: Server, srpm: Path) -> int:
    """Submit `srpm` the way copr-cli does (multipart), without its start-up time."""
    ini = configparser.ConfigParser()
    ini.read(server.configs[USER])
    creds = f"{ini['copr-cli']['login']}:{ini['copr-cli']['token']}".encode()
    boundary = uuid.uuid4().hex
    options = json.dumps({"ownername": USER, "projectname": PROJECT, "chroots": [CHROOT]})
    parts = [
        (f'name="pkgs"; filename="{srpm.name}"', "application/x-rpm", srpm.read_bytes()),
        ('name="json"; filename="json"', "application/json", options.encode()),
    ]
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Disposition: form-data; {disp}\r\n"
            f"Content-Type: {ctype}\r\n\r\n".encode()
            + data
            + b"\r\n"
            for disp, ctype, data in parts
        )
        + f"--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{server.url}/api_3/build/create/upload",
        data=body,
        method="POST",
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": "Basic " + base64.b64encode(creds).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=120) as resp:
        return int(json.loads(resp.read())["id"])


def wait_task(server: Server, build_id: int, timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [task] = server.get(f"/api/builds/{build_id}")["tasks"]
        if task["ended_on"] is not None:
            return dict(task)
        time.sleep(0.1)
    raise RuntimeError(f"build {build_id} did not end in {timeout} s")


def with_release(server: Server, build_id: int, task: dict[str, Any]) -> dict[str, Any]:
    """The task once its VM's release time is recorded too (after the task ended)."""
    deadline = time.monotonic() + 60
    while not any(s["name"] == "vm release" for s in task["steps"]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
        [task] = server.get(f"/api/builds/{build_id}")["tasks"]
    return task


def step_end(task: dict[str, Any], name: str) -> float:
    """Seconds after the task's start at which its step `name` ended."""
    step = next(s for s in task["steps"] if s["name"] == name and s["source"] == "kopers")
    return float(step["offset"] + step["seconds"])


def measure(server: Server, srpm: Path) -> tuple[int, dict[str, float], dict[str, float]]:
    server.wait_warm()
    submitted = time.time()
    build_id = upload(server, srpm)
    task = wait_task(server, build_id)
    if task["state"] != "succeeded":
        raise RuntimeError(f"build {build_id} ended {task['state']}: {task['reason']}")
    started = when(task["started_on"])
    running = started + step_end(task, "vm claim")
    built = started + step_end(task, "result download")
    published = when(task["ended_on"])
    rpmbuild = sum(
        s["seconds"] for s in task["steps"] if s["name"] == "rpmbuild" and s["source"] == "builder"
    )
    phases = {
        "submit_running": running - submitted,
        "running_built": built - running,
        "built_published": published - built,
        "total": published - submitted,
        # Kopers' own part: all but the time rpmbuild itself ran.
        "overhead": published - submitted - rpmbuild,
    }
    task = with_release(server, build_id, task)
    steps: dict[str, float] = {}
    for s in task["steps"]:
        key = s["name"] if s["source"] == "kopers" else f"{s['name']} (builder)"
        steps[key] = steps.get(key, 0.0) + s["seconds"]
    return build_id, phases, steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--queue", type=int, default=0, help="throughput of N builds at once")
    args = parser.parse_args()
    if args.queue:
        return throughput(args.queue)
    base = Path(tempfile.mkdtemp(prefix="kopers-bench-latency-"))
    server = Server.create(base, KOPERS_VM_WARM="1")
    server.start()
    runs: list[dict[str, Any]] = []
    try:
        server.user(USER)
        if server.copr(USER, "create", PROJECT, "--chroot", CHROOT).returncode != 0:
            print("creating the project failed", file=sys.stderr)
            return 1
        for i in range(args.builds):
            srpm = noarch_srpm(base / "srpms", f"bench-latency{i}")
            build_id, phases, steps = measure(server, srpm)
            runs.append({"build": build_id, "phases": phases, "steps": steps})
            shown = "  ".join(f"{k}={v:.2f}" for k, v in phases.items())
            print(f"build {build_id}: {shown}", flush=True)
    except Exception as exc:
        print(f"{exc}; see {server.log_path}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    report(runs)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


def throughput(count: int) -> int:
    """Submit `count` builds at once to a pool of two slots, two warm; print builds per hour."""
    base = Path(tempfile.mkdtemp(prefix="kopers-bench-throughput-"))
    server = Server.create(base, KOPERS_VM_WARM="2", KOPERS_VM_MAX_CONCURRENT="2")
    server.start()
    try:
        server.user(USER)
        if server.copr(USER, "create", PROJECT, "--chroot", CHROOT).returncode != 0:
            print("creating the project failed", file=sys.stderr)
            return 1
        srpms = [noarch_srpm(base / "srpms", f"bench-queue{i}") for i in range(count)]
        deadline = time.monotonic() + 900
        while server.get("/api/status")["vm"]["warm"] < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("two warm clones did not come up")
            time.sleep(0.5)
        first = time.time()
        ids = [upload(server, srpm) for srpm in srpms]
        tasks = [wait_task(server, build_id, timeout=3600) for build_id in ids]
    except Exception as exc:
        print(f"{exc}; see {server.log_path}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    failed = [t for t in tasks if t["state"] != "succeeded"]
    if failed:
        print(f"{len(failed)} builds did not succeed: {failed[0]['reason']}", file=sys.stderr)
        return 1
    span = max(when(t["ended_on"]) for t in tasks) - first
    waits = [
        next(
            s["seconds"] for s in t["steps"] if s["name"] == "vm claim" and s["source"] == "kopers"
        )
        for t in tasks
    ]
    per_hour = count / span * 3600
    print(f"{count} builds in {span:.1f} s: {per_hour:.0f} builds per hour")
    print(f"waiting for a VM: median {pct(waits, 50):.2f} s, p90 {pct(waits, 90):.2f} s")
    print(
        f"throughput builds={count} builds_per_hour={per_hour:.0f} "
        f"vm_wait_median_s={pct(waits, 50):.2f} vm_wait_p90_s={pct(waits, 90):.2f}"
    )
    return 0


def report(runs: list[dict[str, Any]]) -> None:
    print(f"\n{len(runs)} builds          median     p90")
    for name in PHASES:
        values = [r["phases"][name] for r in runs]
        print(f"  {name:<18} {pct(values, 50):7.2f} {pct(values, 90):7.2f}")
    print("steps                 median     p90")
    names: list[str] = []
    for r in runs:
        names += [n for n in r["steps"] if n not in names]
    for name in names:
        values = [r["steps"].get(name, 0.0) for r in runs]
        print(f"  {name:<22} {pct(values, 50):6.2f} {pct(values, 90):7.2f}")
    medians = {name: pct([r["phases"][name] for r in runs], 50) for name in PHASES}
    print("latency " + " ".join(f"{k}_s={v:.2f}" for k, v in medians.items()))


if __name__ == "__main__":
    sys.exit(main())
