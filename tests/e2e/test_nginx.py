"""Kopers behind Debian's nginx, running the shipped deploy/nginx/kopers.conf.

One Kopers, whose public URL is nginx's https URL and which trusts nginx's
address as its proxy, and nginx in front of it (tests/e2e/nginxfront.py: the
shipped file with only the operator's values replaced, a self-signed
certificate). One build for the whole module, a trivial noarch SRPM whose
%build prints a tick every two seconds, uploaded through nginx: one VM boot.
The first test follows that build while it runs, so it comes first.

Shown through nginx: the live log of the running build (websocket, the
plain-text builder-live.log and the event stream), dnf installing the built
package with both signature checks, `copr-cli download-build` reading
nginx's directory listings; results answered by nginx itself (its access
log names no upstream, and Kopers' own request counter for /results/ stands
still); a hostile results tree (symbolic links, dot names, files of unknown
kinds) that nginx does not follow, execute or expose; an upload of exactly
the largest size Kopers accepts passing nginx, one byte more refused; the
client address Kopers records, right through nginx and unforgeable past it;
plain HTTP redirected.
"""

from __future__ import annotations

import asyncio
import base64
import configparser
import json
import os
import re
import ssl
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kopers import config
from tests.conftest import service_dir
from tests.dnfroot import dnf
from tests.e2e.nginxfront import SHIPPED, Answer, Front
from tests.e2e.server import CHROOT, REPO, Server
from tests.e2e.vmhelp import instance_prefix, wait_until

pytestmark = pytest.mark.e2e
OWNER, PROJECT, PACKAGE = "nina", "front", "kopers-front"
TICKS = 5
BUILD = f"""
for i in $(seq 1 {TICKS}); do echo "tick $i of {TICKS}"; sleep 2; done
"""
# Addresses the tests connect from (all of 127/8 is this host's loopback).
CLIENT, DIRECT_CLIENT, SPOOFED = "127.0.0.5", "127.0.0.6", "198.51.100.7"
# The test server runs on the repository's kopers.toml, so its upload cap is that file's.
MAX_UPLOAD = config.load(str(REPO / "kopers.toml"), {}).server.max_upload_mib << 20


@dataclass
class Site:
    server: Server
    front: Front

    def get(self, path: str) -> Answer:
        return self.front.request("GET", path)

    def auth(self) -> dict[str, str]:
        """OWNER's credentials, from its copr-cli config, as copr-cli sends them."""
        ini = configparser.ConfigParser()
        ini.read(self.server.configs[OWNER])
        login, token = ini["copr-cli"]["login"], ini["copr-cli"]["token"]
        return {"Authorization": "Basic " + base64.b64encode(f"{login}:{token}".encode()).decode()}


@dataclass(frozen=True)
class Build:
    id: int
    result_path: str  # the URL path of its result directory, with a trailing slash


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with service_dir("kopers-nginx-") as base:
        base.chmod(0o755)  # nginx's workers run as www-data, as Debian's do
        server = Server.create(base, KOPERS_SERVER_TRUSTED_PROXIES="127.0.0.1/32")
        front = Front.create(base / "nginx", server.data_dir, server.port)
        wgetrc = base / "wgetrc"
        wgetrc.write_text(f"ca_certificate = {front.cert}\n")
        server.env.update(
            {
                "KOPERS_PUBLIC_URL": front.url,
                # copr-cli (requests) and the wget it runs trust the certificate.
                "REQUESTS_CA_BUNDLE": str(front.cert),
                "WGETRC": str(wgetrc),
            }
        )
        server.start()
        try:
            front.start()
            yield Site(server, front)
        finally:
            front.stop()
            server.stop()
            print(f"\nbuilder VMs: {instance_prefix(server)}*")
            print(f"nginx error log:\n{front.error_log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def project(site: Site) -> str:
    """OWNER/PROJECT, made with copr-cli through nginx."""
    site.server.user(OWNER, admin=True)
    r = site.server.copr(OWNER, "create", PROJECT, "--chroot", CHROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return f"{OWNER}/{PROJECT}"


def multipart(package: bytes | int, options: dict[str, Any]) -> tuple[str, int, Iterator[bytes]]:
    """An upload body as copr-cli sends it: (content type, length, the body in blocks).

    `package` is the file's bytes, or a size to fill with zeros so that the
    whole body is exactly that many bytes long.
    """
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="json"; filename="json"\r\n'
        f"Content-Type: application/json\r\n\r\n{json.dumps(options)}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="pkgs"; '
        f'filename="{PACKAGE}-1.0-1.src.rpm"\r\nContent-Type: application/x-rpm\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    if isinstance(package, bytes):
        blocks: list[bytes] = [package]
        size = len(head) + len(package) + len(tail)
    else:
        size = package
        fill = package - len(head) - len(tail)
        block = bytes(1 << 20)
        blocks = [block] * (fill // len(block)) + [bytes(fill % len(block))]

    def body() -> Iterator[bytes]:
        yield head
        yield from blocks
        yield tail

    return f"multipart/form-data; boundary={boundary}", size, body()


def upload(site: Site, package: bytes | int, source: str | None = None, **headers: str) -> Answer:
    content_type, size, body = multipart(
        package, {"ownername": OWNER, "projectname": PROJECT, "chroots": [CHROOT]}
    )
    return site.front.request(
        "POST",
        "/api_3/build/create/upload",
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Length": str(size),
            **site.auth(),
            **headers,
        },
        source=source,
        timeout=600,
    )


@pytest.fixture(scope="module")
def build(site: Site, project: str, make_srpm: Callable[..., Path]) -> Build:
    """The module's one build, uploaded through nginx from CLIENT with a forged X-Forwarded-For."""
    srpm = make_srpm(PACKAGE, "1.0", build=BUILD)
    answer = upload(site, srpm.read_bytes(), source=CLIENT, **{"X-Forwarded-For": SPOOFED})
    assert answer.status == 200, answer.text
    build_id = int(answer.json()["id"])
    return Build(build_id, f"/results/{project}/{CHROOT}/{build_id:08d}-{PACKAGE}/")


def state(site: Site, build: Build) -> str:
    return str(site.get(f"/api_3/build/{build.id}").json()["state"])


@pytest.fixture(scope="module")
def finished(site: Site, build: Build) -> Build:
    ended = wait_until(
        lambda: state(site, build) in ("succeeded", "failed", "canceled"), 1200, "the build"
    )
    assert ended and state(site, build) == "succeeded", site.server.log_path.read_text()[-3000:]
    return build


def served_by_nginx(front: Front, path: str) -> list[str]:
    """Access log lines of GETs of `path` that nginx answered itself (200, no upstream)."""
    return [
        line
        for line in front.log_lines()
        if line.startswith(f'"GET {path} ') and " 200 " in line and line.endswith("upstream=-")
    ]


def kopers_results_requests(server: Server) -> int:
    """How many /results/ requests Kopers itself has answered (its own counter)."""
    text = server.get("/metrics")
    counts = re.findall(
        r'^kopers_http_requests_total\{[^}]*route="/results/[^"]*"[^}]*\} (\S+)$', text, re.M
    )
    return int(sum(float(c) for c in counts))


def logged(front: Front, status: str, upstream: str) -> None:
    """nginx logged the last upload with this status and upstream (it logs as it finishes)."""

    def last() -> bool:
        lines = [x for x in front.log_lines() if x.startswith('"POST /api_3/build/create/upload ')]
        return bool(lines) and status in lines[-1] and upstream in lines[-1]

    wait_until(last, 10, f"an upload logged with {status.strip()} and {upstream}")


# 1. While the build runs ------------------------------------------------------------


async def read_events(
    session: aiohttp.ClientSession, url: str, tls: ssl.SSLContext, got: list[dict[str, Any]]
) -> None:
    """Append each server-sent event's data to `got`, until canceled."""
    headers = {"Accept": "text/event-stream"}
    async with session.get(url, headers=headers, ssl=tls) as resp:
        assert resp.status == 200, await resp.text()
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                got.append(json.loads(line.removeprefix("data: ")))


async def test_a_running_builds_live_log_streams_through_nginx(site: Site, build: Build) -> None:
    front, tls = site.front, site.front.ssl_context()
    ws_url = front.url.replace("https://", "wss://") + f"/ws/builds/{build.id}/{CHROOT}/log"
    live_path = build.result_path + "builder-live.log"
    events: list[dict[str, Any]] = []
    lines: list[str] = []
    end: dict[str, Any] | None = None
    early = ""
    async with aiohttp.ClientSession() as session:
        # The event stream is opened first, so it must carry the build's end as it happens.
        stream = asyncio.create_task(
            read_events(
                session, f"{front.url}/api/events/stream?project={OWNER}/{PROJECT}", tls, events
            )
        )
        try:
            async with asyncio.timeout(1200), session.ws_connect(ws_url, ssl=tls) as ws:
                async for raw in ws:
                    msg = json.loads(raw.data)
                    if msg["type"] == "lines":
                        lines += msg["lines"]
                        if not early and any(t == f"tick 1 of {TICKS}" for t in lines):
                            # A line came through while the build still runs, and the
                            # plain-text log under the result URL has it too.
                            assert await asyncio.to_thread(state, site, build) == "running"
                            answer = await asyncio.to_thread(site.get, live_path)
                            assert answer.status == 200, answer.text
                            early = answer.text
                            assert f"tick 1 of {TICKS}" in early
                            assert f"tick {TICKS} of {TICKS}" not in early
                    elif msg["type"] == "end":
                        end = msg
                        break
            assert end is not None and end["state"] == "succeeded", (end, lines[-20:])
            assert [t for t in lines if t.startswith("tick ")] == [
                f"tick {i} of {TICKS}" for i in range(1, TICKS + 1)
            ]

            def ended_event() -> bool:
                return any(
                    e["build"] == build.id
                    and e["kind"] == "task.state"
                    and e["state"] == "succeeded"
                    for e in events
                )

            await asyncio.to_thread(wait_until, ended_event, 60, "the end event on the stream")
        finally:
            stream.cancel()
            await asyncio.gather(stream, return_exceptions=True)
    later = (await asyncio.to_thread(site.get, live_path)).text
    assert early and later.startswith(early) and len(later) > len(early)  # it grew, uncached
    assert later.splitlines()[-1] == "kopers: task ended succeeded"
    # Both went through nginx to Kopers (nginx logs a websocket once it is closed).
    ws_line = rf'"GET /ws/builds/{build.id}/{CHROOT}/log HTTP/1.1" 101 .*upstream=127'
    text_line = rf'"GET {re.escape(live_path)} HTTP/1.1" 200 .*upstream=127'
    for line in (ws_line, text_line):

        def seen(pattern: str = line) -> bool:
            return re.search(pattern, "\n".join(front.log_lines())) is not None

        await asyncio.to_thread(wait_until, seen, 30, line)


# 2. Results: dnf, copr-cli, and who answers ---------------------------------------------


def test_dnf_installs_the_build_through_nginx_which_serves_the_results_itself(
    site: Site, finished: Build, tmp_path: Path
) -> None:
    front, server = site.front, site.server
    repo = site.get(f"/coprs/{OWNER}/{PROJECT}/repo/debian-12/dnf.repo?arch=x86_64")
    assert repo.status == 200, repo.text
    assert f"baseurl={front.url}/results/{OWNER}/{PROJECT}/{CHROOT}/" in repo.text
    assert "gpgcheck=1" in repo.text and "repo_gpgcheck=1" in repo.text
    key = site.get(f"/results/{OWNER}/{PROJECT}/pubkey.gpg")
    assert key.status == 200 and b"BEGIN PGP PUBLIC KEY BLOCK" in key.body
    root, reposdir, cache = tmp_path / "root", tmp_path / "repos", tmp_path / "cache"
    for d in (root, reposdir, cache):
        d.mkdir()
    (reposdir / "front.repo").write_text(repo.text)
    (tmp_path / "pubkey.gpg").write_bytes(key.body)
    subprocess.run(
        ["rpm", "--root", str(root), "--import", str(tmp_path / "pubkey.gpg")],
        check=True,
        capture_output=True,
    )

    before = kopers_results_requests(server)
    r = dnf(root, reposdir, f"--setopt=sslcacert={front.cert}", "install", PACKAGE, cachedir=cache)
    assert r.returncode == 0, r.stdout + r.stderr
    q = subprocess.run(["rpm", "--root", str(root), "-q", PACKAGE], capture_output=True, text=True)
    assert q.stdout.strip() == f"{PACKAGE}-1.0-1.deb12.kopers.noarch", q.stdout + q.stderr
    assert (root / f"usr/share/{PACKAGE}/hello.txt").read_text() == f"{PACKAGE} 1.0\n"

    # nginx answered the repodata and the package; Kopers saw none of it.
    assert kopers_results_requests(server) == before
    repodata = f"/results/{OWNER}/{PROJECT}/{CHROOT}/repodata/"
    assert served_by_nginx(front, repodata + "repomd.xml")
    assert served_by_nginx(front, repodata + "repomd.xml.asc")
    rpm = f"{finished.result_path}{PACKAGE}-1.0-1.deb12.kopers.noarch.rpm"
    assert served_by_nginx(front, rpm), "\n".join(front.log_lines()[-20:])


def test_copr_cli_download_build_reads_nginx_listings(
    site: Site, finished: Build, tmp_path: Path
) -> None:
    before = kopers_results_requests(site.server)
    r = site.server.copr(OWNER, "download-build", str(finished.id), "-d", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    got = sorted(p.name for p in tmp_path.rglob("*.rpm"))
    assert got == [
        f"{PACKAGE}-1.0-1.deb12.kopers.noarch.rpm",
        f"{PACKAGE}-1.0-1.deb12.kopers.src.rpm",
    ]
    # wget found them through the directory listing nginx made.
    assert served_by_nginx(site.front, finished.result_path)
    assert kopers_results_requests(site.server) == before


# 3. A hostile results tree ------------------------------------------------------------


def test_nginx_follows_no_link_executes_nothing_and_exposes_nothing_else(
    site: Site, finished: Build
) -> None:
    data = site.server.data_dir
    chroot_dir = data / "results" / OWNER / PROJECT / CHROOT
    build_dir = chroot_dir / finished.result_path.rstrip("/").rsplit("/", 1)[1]
    chroot_url = f"/results/{OWNER}/{PROJECT}/{CHROOT}/"
    build_url = finished.result_path
    rpm_name = f"{PACKAGE}-1.0-1.deb12.kopers.noarch.rpm"
    secret = data / "keys" / "planted-secret.txt"
    secret.write_text("not for the world\n")
    planted = {
        "passwd.rpm": "/etc/passwd",  # a link out of the tree
        "copy.rpm": str(build_dir / rpm_name),  # a link to a published file
        "keys": str(data / "keys"),  # a directory link out of the tree
    }
    for name, target in planted.items():
        os.symlink(target, build_dir / name)
    os.symlink(data / "keys", chroot_dir / "00000999-linked")  # where a running build's dir goes
    files = {
        "page.html": b"<script>alert(document.cookie)</script>",
        "page.shtml": b'<!--#exec cmd="id" -->',
        "run.php": b"<?php system('id'); ?>",
        "run.cgi": b"#!/bin/sh\necho Content-Type: text/plain\necho; id\n",
        "notes.repo": b"[x]\nbaseurl=file:///\n",
        "notes.log": b"a log\n",
        "notes.xml.gz": b"\x1f\x8b\x08\x00",
    }
    for name, content in files.items():
        (build_dir / name).write_bytes(content)
    (chroot_dir / ".kopers-index").mkdir(exist_ok=True)
    (chroot_dir / ".kopers-index" / "planted").write_text("index\n")
    try:
        # Links are refused, whether they leave the tree or not.
        for name in ("passwd.rpm", "copy.rpm"):
            answer = site.get(build_url + name)
            assert answer.status == 403, (name, answer.status)
        for path in (build_url + "keys/planted-secret.txt", build_url + "keys/"):
            answer = site.get(path)
            assert answer.status == 404 and b"not for the world" not in answer.body, path
        # A linked build directory is no directory to nginx; Kopers, asked for a running
        # build's listing there, has no such build either.
        answer = site.get(chroot_url + "00000999-linked/")
        assert answer.status == 404 and b"planted-secret" not in answer.body
        answer = site.get(chroot_url + "00000999-linked/planted-secret.txt")
        assert answer.status == 404 and b"not for the world" not in answer.body
        # Nothing runs: every file comes back as it is, unknown kinds as downloads,
        # with no sniffing and no scripts even if a browser renders one.
        for name, content in files.items():
            answer = site.get(build_url + name)
            assert answer.status == 200 and answer.body == content, name
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in answer.headers["content-security-policy"]
        kinds = {
            "page.html": "application/octet-stream",
            "page.shtml": "application/octet-stream",
            "run.php": "application/octet-stream",
            "run.cgi": "application/octet-stream",
            "notes.repo": "text/plain; charset=utf-8",
            "notes.log": "text/plain; charset=utf-8",
            "notes.xml.gz": "application/gzip",
            rpm_name: "application/x-redhat-package-manager",
        }
        for name, kind in kinds.items():
            answer = site.get(build_url + name)
            assert answer.headers["content-type"] == kind, name
            assert "content-encoding" not in answer.headers, name  # .gz is a file, not an encoding
        repomd = site.get(chroot_url + "repodata/repomd.xml")
        assert repomd.headers["content-type"] == "application/xml"
        # Dot names (the publisher's staging and index) are not served, nor listed.
        for path in (chroot_url + ".kopers-index/planted", chroot_url + "%2ekopers-index/planted"):
            assert site.get(path).status == 404, path
        listing = site.get(chroot_url)
        assert listing.status == 200 and "text/html" in listing.headers["content-type"]
        assert ".kopers-index" not in listing.text and "repodata/" in listing.text
        # Nothing of the data directory but results/, however the path is spelled.
        for path in (
            "/keys/planted-secret.txt",
            "/results/../keys/planted-secret.txt",
            "/results/%2e%2e/keys/planted-secret.txt",
            "/results/..%2fkeys/planted-secret.txt",
            "/results//keys/planted-secret.txt",
        ):
            answer = site.get(path)
            assert answer.status in (400, 404) and b"not for the world" not in answer.body, path
        # Kopers' metrics are not lent the proxy's loopback address.
        assert site.get("/metrics").status == 403
    finally:
        for name in [*planted, *files]:
            (build_dir / name).unlink()
        (chroot_dir / "00000999-linked").unlink()
        secret.unlink()


# 4. Uploads ---------------------------------------------------------------------------


def test_nginx_takes_bodies_exactly_as_large_as_kopers_uploads() -> None:
    caps = re.findall(r"^\s*client_max_body_size (\d+)m;", SHIPPED.read_text(), re.M)
    assert caps and [int(c) << 20 for c in caps] == [MAX_UPLOAD] * len(caps)


def test_an_upload_of_the_largest_accepted_size_passes_nginx(site: Site, project: str) -> None:
    # One byte over: nginx refuses it from the declared length, before any body.
    content_type, _, _ = multipart(0, {})
    over = site.front.request(
        "POST",
        "/api_3/build/create/upload",
        headers={
            "Content-Type": content_type,
            "Content-Length": str(MAX_UPLOAD + 1),
            **site.auth(),
        },
    )
    assert over.status == 413 and b"nginx" in over.body, over.text
    logged(site.front, " 413 ", "upstream=-")

    # Exactly the cap: all of it reaches Kopers, which reads it and then judges the file.
    answer = upload(site, MAX_UPLOAD)
    assert answer.status != 413, answer.text
    assert 400 <= answer.status < 500, (answer.status, answer.text)
    error = answer.json()["error"]  # Kopers' JSON, not an nginx page
    assert "upload is larger" not in error, error
    logged(site.front, f" {answer.status} ", "upstream=127.0.0.1:")
    incoming = site.server.data_dir / "incoming"
    assert wait_until(lambda: not any(incoming.iterdir()), 30, "the spool to go")


# 5. Who the client is ------------------------------------------------------------------


def test_kopers_records_the_address_nginx_saw_and_nothing_a_client_claims(
    site: Site, build: Build
) -> None:
    # Straight to Kopers from an address that is no trusted proxy: its header is ignored.
    request = site.server.url + f"/api_3/project/edit/{OWNER}/{PROJECT}"
    r = subprocess.run(
        [
            "curl",
            "-fsS",
            "--interface",
            DIRECT_CLIENT,
            "-X",
            "PUT",
            request,
            "-H",
            "Content-Type: application/json",
            "-H",
            "X-Forwarded-For: 127.0.0.1",
            "-H",
            f"Authorization: {site.auth()['Authorization']}",
            "-d",
            json.dumps({"description": "edited straight"}),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    events = site.server.get_as(OWNER, f"/api/events?project={OWNER}/{PROJECT}")["items"]
    by_action = {e["action"]: e for e in reversed(events)}  # the newest of each
    # The build was uploaded through nginx from CLIENT, claiming to be SPOOFED.
    submit = by_action["build.submit"]
    assert submit["details"]["build"] == build.id and submit["address"] == CLIENT, submit
    assert by_action["project.edit"]["address"] == DIRECT_CLIENT
    # copr-cli made the project through nginx from this host.
    assert by_action["project.create"]["address"] == "127.0.0.1"


# 6. Plain HTTP ------------------------------------------------------------------------


def test_plain_http_is_redirected_to_https(site: Site) -> None:
    answer = site.front.request("GET", "/coprs/?page=2", plain=True)
    assert answer.status == 301
    # The shipped block redirects to the server name on the standard port.
    assert answer.headers["location"] == "https://127.0.0.1/coprs/?page=2"
