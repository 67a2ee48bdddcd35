"""How fast the next step of a chain starts: Kopers' publish-to-start delay.

Starts a real Kopers (embedded Postgres, real VMs), submits chains A -> B
through the native chain API, where B BuildRequires A, and measures for each
chain the delay between A's task ending (its packages signed and published)
and B's task starting, next to A's own build time. Copr's dispatcher polls
every 30 s and Koji waits for a tag regeneration; here the scheduler is told
when the publish completes.

    .venv/bin/python bench/chain.py [--chains N]

Last line: `chain step_s=<median delay> build_s=<median build time of A>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import Server  # noqa: E402
from tests.rpms import noarch_srpm  # noqa: E402
from tests.webroot import WebRoot  # noqa: E402


def when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kopers-bench-chain-"))
    server = Server.create(base)
    (base / "web").mkdir()
    web = WebRoot(base / "web")
    server.start()
    try:
        server.user("bench")
        assert (
            server.copr("bench", "create", "chain", "--chroot", "debian-12-x86_64").returncode == 0
        )
        steps, builds = [], []
        for i in range(args.chains):
            a = web.add(noarch_srpm(base / "srpms", f"bench-a{i}"))
            b = web.add(
                noarch_srpm(base / "srpms", f"bench-b{i}", requires=f"BuildRequires: bench-a{i}")
            )
            answer = server.post(
                "bench", "/api/projects/bench/chain/chains", {"builds": [{"url": a}, {"url": b}]}
            )
            a_id, b_id = (x["id"] for x in answer["builds"])
            for build_id in (a_id, b_id):
                state = server.wait_build(build_id)["state"]
                if state != "succeeded":
                    print(f"build {build_id} ended {state}; see {server.log_path}", file=sys.stderr)
                    return 1
            ta = server.get(f"/api/builds/{a_id}")["tasks"][0]
            tb = server.get(f"/api/builds/{b_id}")["tasks"][0]
            step = when(tb["started_on"]) - when(ta["ended_on"])
            build = when(ta["ended_on"]) - when(ta["started_on"])
            steps.append(step)
            builds.append(build)
            print(
                f"chain {i}: A built in {build:.2f} s; B started {step:.3f} s after A published",
                flush=True,
            )
    finally:
        server.stop()
        web.close()
    print(f"chain step_s={statistics.median(steps):.3f} build_s={statistics.median(builds):.2f}")
    return 0


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"(benchmark took {time.monotonic() - start:.0f} s)", file=sys.stderr)
    raise SystemExit(code)
