"""What following a huge build log costs the server: memory, and how late lines reach viewers.

One build prints `--mib` MiB of log (default 256, the most a build may print)
while `--viewers` websocket clients (default 500) follow it live. The server
is Kopers' own log hub and live-log websocket route (kopers/logs/hub.py,
kopers/api/websocket.py) in an aiohttp server in a process of its own, with a
stub store in place of Postgres. Its producer appends lines the way the runner
passes on a builder's output, one awaited append per line, at `--rate` MiB/s
(default 0.75, about what 500 viewers on a 2-core machine can follow; 0: as
fast as the hub takes them). No VM: a real one is far too slow for this. The
viewers are aiohttp websocket clients in this process that act as the build
page does: on a dropped connection they resume with `?from=<next line>`.

Measured:
- the server's RSS growth: its peak (VmHWM) minus its RSS once every viewer
  is connected, before the first line;
- the fan-out delay: from just before a line's append to its message reaching
  a viewer, for every `--sample`-th line at every `--probe`-th viewer (the
  others count lines without decoding messages, so that this process keeps
  up), on the monotonic clock the two processes share;
- that every viewer got every line once, in order (gaps, duplicates).

Then the same workload runs against the log hub and websocket route of an
earlier commit (`--old-rev`, by default the last one before bounded logs),
taken from git into a package of their own, at `--old-mib` (default 1: with
500 viewers the old hub slows the build down to some dozens of lines a
second), and the new hub runs at that size too, to compare like with like.

    .venv/bin/python bench/logs.py [--mib 256] [--viewers 500] [--rate 0.75]
                                   [--old-rev REV] [--old-mib 1]

Last line: `logs new_growth_mib=<at --mib> new_p99_ms=<at --mib> old_growth_mib=<at --old-mib>
same_size_growth_ratio=<old/new> same_size_build_s_ratio=<old/new, time to print the log>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
# The last commit whose hub kept every line of a log in memory.
OLD_REV = "2d90f33"
FILLER = (
    "gcc -DHAVE_CONFIG_H -I. -I../lib -O2 -g -pipe -Wall -Werror=format-security "
    "-fstack-protector-strong -fexceptions -grecord-gcc-switches -m64 -c -o src/module.o "
    "src/module.c && libtool: link: gcc -shared -fPIC src/.libs/module.o -Wl,-z,relro"
)
LENGTHS = (20, 45, 70, 90, 110, 130, 160, 35, 140, 200)  # characters after the timestamp
KOPERS_EVERY = 10_000  # a line of Kopers' own among the build's


# --- the server process ---------------------------------------------------------


async def serve(root: Path, workdir: Path, mib: float, rate: float) -> None:
    """Kopers' hub and websocket route on a free port; produce on "go", exit on "quit"."""
    sys.path.insert(0, str(root))
    from types import SimpleNamespace

    from aiohttp import web

    from kopers.api import websocket
    from kopers.api.app import KOPERS, errors_middleware
    from kopers.logs import hub as hubmod
    from kopers.logs.hub import LogHub

    class Store:
        """Build 1 with one chroot "c", running until the producer is done."""

        state = "running"

        async def get_build(self, build_id: int) -> object:
            task = SimpleNamespace(chroot="c", state=self.state, reason=None)
            return SimpleNamespace(
                id=build_id, chroots=("c",), canceled=False, tasks=[task], source_state="running"
            )

    hub, store = LogHub(workdir), Store()
    channel = hub.open(1, "c")
    app = web.Application(middlewares=[errors_middleware])
    app[KOPERS] = SimpleNamespace(hub=hub, store=store)  # type: ignore[misc]
    websocket.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    say(port=port, hub=hubmod.__file__)
    await loop.run_in_executor(None, sys.stdin.readline)  # "go"

    limit = int(mib * (1 << 20))
    fillers = [FILLER * (n // len(FILLER) + 1) for n in LENGTHS]
    fillers = [f[:n] for f, n in zip(fillers, LENGTHS, strict=True)]
    started = time.monotonic()
    written = lines = 0
    await channel.say("builder started on bench (a log hub benchmark)")
    while written < limit:
        if lines % KOPERS_EVERY == KOPERS_EVERY - 1:
            await channel.say(f"{time.monotonic_ns():019d} a line of Kopers' own")
        else:
            text = f"{time.monotonic_ns():019d} {fillers[lines % len(fillers)]}"
            await channel.append(text)
            written += len(text) + 1
        lines += 1
        if rate and lines % 64 == 0:
            ahead = started + written / (rate * (1 << 20)) - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
    await channel.say("task ended succeeded")
    store.state = "succeeded"
    channel.close("succeeded", None)
    say(produced=lines + 2, seconds=time.monotonic() - started)
    await loop.run_in_executor(None, sys.stdin.readline)  # "quit"
    await runner.cleanup()


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


# --- the viewers and the measurement --------------------------------------------


@dataclass
class Viewers:
    sample: int
    connected: int = 0
    ended: int = 0
    reconnects: int = 0
    gaps: int = 0
    duplicates: int = 0
    received: int = 0  # lines
    delays_ms: list[float] = field(default_factory=list)
    all_connected: asyncio.Event = field(default_factory=asyncio.Event)
    total: int = 0


LINES_HEAD = '{"type": "lines", "first": '


def first_and_count(text: str) -> tuple[int, int]:
    """A "lines" message's first line number and line count, without decoding it.

    The producer's lines hold no double quote, so '", "' only separates lines.
    """
    first = int(text[len(LINES_HEAD) : text.index(",", len(LINES_HEAD))])
    start, end = text.index('"lines": ["'), text.rindex('"]')
    return first, text.count('", "', start, end) + 1


async def view(
    session: aiohttp.ClientSession, url: str, viewers: Viewers, probe: bool, deflate: bool
) -> None:
    """Follow the log to its end, resuming after a dropped connection as the page does.

    Every viewer checks that it gets each line once, in order; a probe also
    decodes each message and times the sampled lines in it.
    """
    next_line, hello = 1, False
    while True:
        try:
            async with session.ws_connect(
                f"{url}?from={next_line}", compress=15 if deflate else 0, max_msg_size=0
            ) as ws:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    now = time.monotonic_ns()
                    if msg.data.startswith(LINES_HEAD):
                        if probe:
                            data = json.loads(msg.data)
                            first, count = data["first"], len(data["lines"])
                            for i in range(-first % viewers.sample, count, viewers.sample):
                                stamp = data["lines"][i][:19]
                                if stamp.isdigit():
                                    viewers.delays_ms.append((now - int(stamp)) / 1e6)
                        else:
                            first, count = first_and_count(msg.data)
                        if first > next_line:
                            viewers.gaps += 1
                        elif first < next_line:
                            viewers.duplicates += 1
                        next_line = first + count
                        viewers.received += count
                        continue
                    data = json.loads(msg.data)
                    if data["type"] == "end":
                        viewers.ended += 1
                        return
                    if data["type"] == "hello" and not hello:
                        hello = True
                        viewers.connected += 1
                        if viewers.connected == viewers.total:
                            viewers.all_connected.set()
        except (aiohttp.ClientError, ConnectionError):
            pass
        viewers.reconnects += 1
        await asyncio.sleep(0.5)


class Memory:
    """Samples a process's RSS from /proc in a thread of its own."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def status(self, key: str) -> int:
        """A /proc/PID/status field in bytes (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak_rss = max(self.peak_rss, self.status("VmRSS"))
            except (OSError, KeyError):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Result:
    label: str
    mib: float
    lines: int
    produce_s: float
    base_mib: float
    growth_mib: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float
    client_cpu_s: float
    reconnects: int
    gaps: int
    duplicates: int
    complete: int  # viewers that got every line and the end


async def run(label: str, root: Path, args: argparse.Namespace, mib: float, work: Path) -> Result:
    work.mkdir(parents=True)
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        "--root",
        str(root),
        "--dir",
        str(work),
        "--mib",
        str(mib),
        "--rate",
        str(args.rate),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=work,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        hello = json.loads(await server.stdout.readline())
        port = hello["port"]
        print(f"  {label}: {mib:g} MiB, {args.viewers} viewers, hub {hello['hub']}", flush=True)
        memory = Memory(server.pid)
        viewers = Viewers(sample=args.sample, total=args.viewers)
        url = f"ws://127.0.0.1:{port}/ws/builds/1/c/log"
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [
                asyncio.create_task(view(session, url, viewers, i % args.probe == 0, args.deflate))
                for i in range(args.viewers)
            ]
            await viewers.all_connected.wait()
            base = memory.status("VmRSS")
            client_cpu = time.process_time()
            server.stdin.write(b"go\n")
            produced = json.loads(await server.stdout.readline())
            try:
                async with asyncio.timeout(args.drain_s):
                    await asyncio.gather(*tasks)
            except TimeoutError:
                print(f"  {label}: viewers still behind after {args.drain_s:g} s", flush=True)
            client_cpu = time.process_time() - client_cpu
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        peak = max(memory.status("VmHWM"), memory.peak_rss)
        cpu = memory.cpu_s()
        memory.stop()
        server.stdin.write(b"quit\n")
        await server.wait()
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    delays = sorted(viewers.delays_ms) or [float("nan")]
    complete = viewers.ended if not (viewers.gaps or viewers.duplicates) else 0
    return Result(
        label=label,
        mib=mib,
        lines=produced["produced"],
        produce_s=produced["seconds"],
        base_mib=base / (1 << 20),
        growth_mib=(peak - base) / (1 << 20),
        p50_ms=statistics.median(delays),
        p99_ms=delays[min(len(delays) - 1, int(len(delays) * 0.99))],
        max_ms=delays[-1],
        cpu_s=cpu,
        client_cpu_s=client_cpu,
        reconnects=viewers.reconnects,
        gaps=viewers.gaps,
        duplicates=viewers.duplicates,
        complete=complete,
    )


def show(results: list[Result], viewers: int) -> None:
    head = (
        f"{'hub':<10}{'log MiB':>8}{'lines':>10}{'produce s':>10}{'RSS base':>9}"
        f"{'growth':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'cpu s':>7}{'viewers':>8}"
        f"{'resumes':>8}{'gap/dup':>8}{'complete':>9}"
    )
    print(head)
    for r in results:
        print(
            f"{r.label:<10}{r.mib:>8g}{r.lines:>10}{r.produce_s:>10.1f}{r.base_mib:>9.1f}"
            f"{r.growth_mib:>8.1f}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}{r.max_ms:>8.0f}{r.cpu_s:>7.0f}"
            f"{r.client_cpu_s:>8.0f}"
            f"{r.reconnects:>8}{f'{r.gaps}/{r.duplicates}':>8}{f'{r.complete}/{viewers}':>9}"
        )
    print(
        "(RSS and growth in MiB; delays from append to a viewer, over sampled lines;"
        " cpu s: the server's, viewers: this process's)"
    )


async def compare(args: argparse.Namespace) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="kopers-logs-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        results = [await run("new", ROOT, args, args.mib, work / "new")]
        show(results, args.viewers)
        if args.old_mib > 0:
            old_root = work / "old"
            old_root.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.old_rev, "kopers"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(old_root)], input=archive, check=True)
            if args.old_mib != args.mib:
                results.append(await run("new", ROOT, args, args.old_mib, work / "new-small"))
            results.append(
                await run(f"old {args.old_rev}", old_root, args, args.old_mib, work / "old-run")
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=256, help="log size (default 256)")
    parser.add_argument("--viewers", type=int, default=500, help="websocket viewers (500)")
    parser.add_argument("--old-rev", default=OLD_REV, help=f"the old hub (default {OLD_REV})")
    parser.add_argument(
        "--old-mib", type=float, default=1, help="log size for the old hub (default 1; 0: skip)"
    )
    parser.add_argument(
        "--rate", type=float, default=0.75, help="MiB/s the build prints (0.75; 0: flat out)"
    )
    parser.add_argument("--sample", type=int, default=97, help="time every Nth line (97)")
    parser.add_argument(
        "--probe", type=int, default=10, help="every Nth viewer times lines (default 10)"
    )
    parser.add_argument("--deflate", action="store_true", help="viewers ask for compression")
    parser.add_argument(
        "--drain-s", type=float, default=300, help="how long viewers may lag after the end"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.root, args.dir, args.mib, args.rate))
        return
    started = time.monotonic()
    results = asyncio.run(compare(args))
    show(results, args.viewers)
    new = results[0]
    line = f"logs new_growth_mib={new.growth_mib:.1f} new_p99_ms={new.p99_ms:.0f}"
    if len(results) > 1:
        old, same = results[-1], results[-2] if len(results) > 2 else new
        line += f" old_growth_mib={old.growth_mib:.1f}"
        line += f" same_size_growth_ratio={old.growth_mib / max(same.growth_mib, 0.1):.1f}"
        line += f" same_size_build_s_ratio={old.produce_s / same.produce_s:.1f}"
    print(line)
    print(f"(benchmark took {time.monotonic() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
