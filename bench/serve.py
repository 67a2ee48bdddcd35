"""Serving results: nginx with deploy/nginx/kopers.conf against Kopers itself, side by side.

    apt-get install -y nginx wrk        # Debian's packages; without wrk, a built-in client
    .venv/bin/python bench/serve.py [--duration 5] [--rounds 3] [--connections 32] [--rpm-mib 1]

Starts a real Kopers (embedded Postgres) whose data directory holds one
published repository: a project's key, a small noarch package and one of
about `--rpm-mib` MiB, signed and indexed by Kopers' own publisher (as
tests/integration/test_publisher.py does it, no VM). Then nginx from
Debian's package with the shipped configuration in front of it
(tests/e2e/nginxfront.py: the operator's values replaced, a self-signed
certificate, one worker per core), plus one plain-HTTP listener on its
HTTPS server block, so that nginx's own cost and TLS's show apart.

For `repomd.xml` and each RPM it measures requests per second with
`wrk -t1 -cN -dS` (or, without wrk, an asyncio client with N connections),
keep-alive, so TLS costs its encryption and not handshakes: straight from
Kopers (plain HTTP), through nginx over plain HTTP, and through nginx over
HTTPS. The three are interleaved, `--rounds` times, in the same run, and
the medians printed with nginx's rates as multiples of Kopers'. Every body
is first fetched all three ways and compared, so all serve the same bytes.

Last line: `serve repomd_Kopers_http=… repomd_nginx_http=… repomd_nginx_https=…
rpm<KiB>k_…=…` (requests/s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kopers.publish.layout import Layout  # noqa: E402
from kopers.publish.publisher import Publisher  # noqa: E402
from kopers.publish.signing import Signer  # noqa: E402
from tests.e2e.nginxfront import Front, free_port  # noqa: E402
from tests.e2e.server import CHROOT, Server  # noqa: E402
from tests.rpms import noarch_rpm, rpmbuild  # noqa: E402

OWNER, PROJECT = "bench", "serve"
BIG_SPEC = """\
Name: bench-big
Version: 1.0
Release: 1
Summary: A package of random bytes
License: MIT
BuildArch: noarch
%description
Random bytes, which no compression shrinks.
%install
mkdir -p %{{buildroot}}/usr/share/bench-big
head -c {size} /dev/urandom > %{{buildroot}}/usr/share/bench-big/data
%files
/usr/share/bench-big/data
"""


@dataclass(frozen=True)
class Target:
    label: str
    path: str  # below the public URL
    size: int


async def publish(data_dir: Path, work: Path, big_bytes: int) -> list[Path]:
    """One signed repository in `data_dir`'s results, as Kopers' publisher writes it."""
    small, _ = noarch_rpm(work, "bench-small")
    big = rpmbuild(BIG_SPEC.format(size=big_bytes), work / "big", "-bb")[0]
    layout = Layout(data_dir / "results", "http://unused")
    signer = Signer(data_dir / "keys")
    try:
        publisher = Publisher(layout, signer)
        await publisher.init_project(OWNER, PROJECT, chroots=[CHROOT])
        build_dir = await publisher.publish(OWNER, PROJECT, CHROOT, 1, "bench", [small, big])
    finally:
        await signer.close()
    return sorted(build_dir.glob("*.rpm"))


def fetch(url: str, context: ssl.SSLContext | None = None) -> bytes:
    with urllib.request.urlopen(url, timeout=30, context=context) as resp:
        return bytes(resp.read())


def wrk(url: str, duration: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"no rate in wrk's output:\n{out}")
    return float(match.group(1))


async def _client(url: str, duration: int, connections: int, tls: ssl.SSLContext | None) -> float:
    """Requests per second of `connections` keep-alive clients looping for `duration` s."""
    done = 0
    deadline = time.monotonic() + duration
    connector = aiohttp.TCPConnector(limit=connections, ssl=tls if tls else False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url}: {resp.status}")
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(connections)))
        return done / (time.monotonic() - started)


def rate(url: str, duration: int, connections: int, tls: ssl.SSLContext | None) -> float:
    if shutil.which("wrk"):
        return wrk(url, duration, connections)
    return asyncio.run(_client(url, duration, connections, tls))


@dataclass(frozen=True)
class Way:
    label: str
    base: str  # URL up to the path
    tls: ssl.SSLContext | None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each, interleaved")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rpm-mib", type=float, default=1.0, help="size of the large package")
    args = parser.parse_args()
    if not Path("/usr/sbin/nginx").is_file():
        print("nginx is not installed: apt-get install -y nginx", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="kopers-bench-serve-", dir="/var/tmp"))
    base.chmod(0o755)  # nginx's workers run as www-data
    server = Server.create(base, KOPERS_SERVER_TRUSTED_PROXIES="127.0.0.1/32")
    front = Front.create(base / "nginx", server.data_dir, server.port, workers="auto")
    front.plain_port = free_port()
    server.env["KOPERS_PUBLIC_URL"] = front.url
    rates: dict[tuple[str, str], list[float]] = {}
    try:
        rpms = asyncio.run(publish(server.data_dir, base / "rpms", int(args.rpm_mib * (1 << 20))))
        server.start()
        front.start()
        repo = f"/results/{OWNER}/{PROJECT}/{CHROOT}/"
        repomd = server.data_dir / repo.lstrip("/") / "repodata" / "repomd.xml"
        targets = [Target("repomd.xml", repo + "repodata/repomd.xml", repomd.stat().st_size)]
        for rpm in rpms:
            path = f"{repo}{rpm.parent.name}/{rpm.name}"
            targets.append(Target(rpm.name, path, rpm.stat().st_size))
        ways = [
            Way("Kopers http", server.url, None),
            Way("nginx http", front.plain_url, None),
            Way("nginx https", front.url, front.ssl_context()),
        ]
        for t in targets:
            bodies = {fetch(w.base + t.path, w.tls) for w in ways}
            if len(bodies) != 1:
                raise RuntimeError(f"{t.path}: Kopers and nginx serve different bytes")
        tool = "wrk -t1" if shutil.which("wrk") else "an asyncio client"
        print(
            f"{tool}, {args.connections} keep-alive connections, {args.duration} s each, "
            f"{args.rounds} rounds interleaved; nginx workers: one per core ({os.cpu_count()})"
        )
        for round_ in range(1, args.rounds + 1):
            for t in targets:
                for w in ways:
                    rps = rate(w.base + t.path, args.duration, args.connections, w.tls)
                    rates.setdefault((t.label, w.label), []).append(rps)
                    print(f"  round {round_}: {t.label} {w.label}: {rps:.0f}/s", flush=True)
    except Exception as exc:
        print(f"{exc}; see {server.log_path} and {front.error_log}", file=sys.stderr)
        return 1
    finally:
        front.stop()
        server.stop()
    report(targets, [w.label for w in ways], rates)
    shutil.rmtree(base, ignore_errors=True)
    return 0


def report(
    targets: list[Target], ways: list[str], rates: dict[tuple[str, str], list[float]]
) -> None:
    """The median of each, and nginx's rates as multiples of Kopers'."""
    med = {key: statistics.median(values) for key, values in rates.items()}
    print(f"\nrequests/s (median) {'size':>11}" + "".join(f"{w:>13}" for w in ways) + "   ratios")
    figures = []
    for i, t in enumerate(targets):
        size = f"{t.size / 1024:.1f} KiB"
        row = [med[(t.label, w)] for w in ways]
        ratios = "  ".join(f"{r / row[0]:.1f}x" for r in row[1:])
        print(
            f"{t.label[:19]:<19} {size:>11}" + "".join(f"{r:>13.0f}" for r in row) + f"   {ratios}"
        )
        name = "repomd" if i == 0 else f"rpm{t.size >> 10}k"
        figures += [f"{name}_{w.replace(' ', '_')}={r:.0f}" for w, r in zip(ways, row, strict=True)]
    print("ratios: nginx http / Kopers, nginx https / Kopers")
    print("serve " + " ".join(figures))


if __name__ == "__main__":
    sys.exit(main())
