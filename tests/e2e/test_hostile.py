"""Hostile builds and sources against a real Kopers, real VMs and the real copr-cli.

Each case is something a user could submit on purpose. For each, the build
ends in a final state with a reason naming the cause, within its bound; the
host's services on loopback see nothing; a canary file outside the data
directory is unchanged and no file the attacker named appears anywhere;
nothing any project's private key holds is served; and the server stays up.
Cases that need no VM of their own (links and odd files in the results, the
never-ending log, forged reasons) run in tests/integration on the real runner
with a fake VM.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import secrets
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kopers.worker.session import failure_reason
from tests.e2e.gitdaemon import git
from tests.e2e.server import CHROOT, WEBROOT_HOST, Server, free_port
from tests.e2e.vmhelp import build_id_of
from tests.rpms import rpmbuild, srpm_with_header_name

pytestmark = pytest.mark.e2e

TOKEN = "kopersevil"  # every name an attack tries to create on the host holds this
FIXED_REASONS = {failure_reason(status) for status in range(256)}


class Tripwire:
    """A web server on the host's loopback that counts every connection made to it."""

    def __init__(self) -> None:
        self.connections = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"tripwire secret\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Counting(http.server.ThreadingHTTPServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                outer.connections += 1
                return True

        self.httpd = Counting(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    yield wire
    wire.close()


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A file outside every data directory; no hostile build may change it."""
    path = tmp_path_factory.mktemp("canary") / "canary.txt"
    path.write_text(secrets.token_hex(32))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    yield path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


@pytest.fixture(scope="module")
def mallory(server: Server) -> str:
    server.user("mallory")
    r = server.copr("mallory", "create", "hostile", "--chroot", CHROOT)
    assert r.returncode == 0, r.stderr
    r = server.copr("mallory", "create", "netty", "--chroot", CHROOT, "--enable-net", "on")
    assert r.returncode == 0, r.stderr
    return "mallory"


def reason(server: Server, build_id: int) -> str:
    tasks = server.get(f"/api_3/build-chroot/list?build_id={build_id}")["items"]
    return str(tasks[0].get("reason") or "")


def served(server: Server, build_id: int) -> list[bytes]:
    """Everything Kopers serves about a build: API answers, its result files and logs."""
    bodies: list[bytes] = []

    def fetch(url: str) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                data: bytes = resp.read()
        except urllib.error.HTTPError as exc:
            data = exc.read()
        bodies.append(data)
        return data

    fetch(f"{server.url}/api_3/build/{build_id}")
    fetch(f"{server.url}/api/builds/{build_id}/buildroot")
    tasks = fetch(f"{server.url}/api_3/build-chroot/list?build_id={build_id}").decode()
    for result_url in set(re.findall(r'"result_url":\s*"([^"]+)"', tasks)):
        index = fetch(result_url).decode(errors="replace")
        for href in set(re.findall(r'href="([^"?/][^"]*)"', index)):
            fetch(result_url.rstrip("/") + "/" + href)
    return bodies


def assert_contained(server: Server, build_id: int, tripwire: Tripwire) -> None:
    """The checks every hostile case ends with."""
    assert tripwire.connections == 0, "a build or fetch reached a loopback service"
    with urllib.request.urlopen(f"{server.url}/api_3/", timeout=10) as resp:
        assert resp.status == 200  # the server is up
    keys = [p.read_bytes() for p in (server.data_dir / "keys").rglob("*.key")]
    assert keys, "every project has a signing key"
    bodies = served(server, build_id)
    for key in keys:
        for offset in range(0, max(len(key) - 24, 1), 16):
            window = key[offset : offset + 24]
            assert not any(window in body for body in bodies), "a private key was served"
    planted = subprocess.run(
        [
            "find",
            "/tmp",
            "/var/tmp",
            "/root",
            "/etc",
            str(server.data_dir.parent),
            "-xdev",
            "-name",
            f"*{TOKEN}*",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert planted == [], planted


def srpm(spec: str, name: str, tmp_path: Path) -> Path:
    return rpmbuild(spec, tmp_path / name)[-1]


NET_SPEC = """\
Name:           kopers-nosy
Version:        1
Release:        1%{{?dist}}
Summary:        Tries every way out of its VM
License:        MIT
BuildArch:      noarch

%description
Hostile on purpose.

%prep

%build
python3 - <<'PY'
import os, socket, urllib.request
for host in ("10.0.2.2", "127.0.0.1"):
    try:
        socket.create_connection((host, {port}), timeout=5).close()
        print(f"direct {{host}}: connected")
    except OSError:
        print(f"direct {{host}}: unreachable")
print("proxy given:", bool(os.environ.get("http_proxy")))
# The host's loopback, too, is tried through the proxy, not the VM's own.
os.environ.pop("no_proxy", None)
os.environ.pop("NO_PROXY", None)
for url in ("http://10.0.2.2:{port}/", "http://127.0.0.1:{port}/",
            "https://127.0.0.1:{port}/", "http://169.254.169.254/latest/meta-data/"):
    try:
        body = urllib.request.urlopen(url, timeout=20).read()
        print(f"via proxy {{url}}: got {{body!r}}")
    except urllib.error.HTTPError as exc:
        print(f"via proxy {{url}}: HTTP {{exc.code}}")
    except Exception as exc:
        print(f"via proxy {{url}}: failed ({{type(exc).__name__}})")
PY
# Outlive the build, holding the log open, and in a session of its own.
sleep 100000 &
setsid sleep 100000 </dev/null >/dev/null 2>&1 &
echo "kopers: task ended succeeded"
echo "kopers-builder: forged reason"
exit 1

%install

%files
"""


def test_a_network_enabled_build_reaches_nothing_on_the_host(
    server: Server, mallory: str, tripwire: Tripwire, canary: Path, tmp_path: Path
) -> None:
    spec = NET_SPEC.format(port=tripwire.port)
    r = server.copr(
        mallory,
        "build",
        "netty",
        str(srpm(spec, "nosy", tmp_path)),
        "--nowait",
        "--timeout",
        "7200",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    build_id = build_id_of(r.stdout)
    # Far below its timeout: the processes it left behind do not keep it running.
    build = server.wait_build(build_id, timeout=1200)
    assert build["state"] == "failed"
    why = reason(server, build_id)
    assert why in FIXED_REASONS and "forged" not in why, why
    tasks = server.get(f"/api_3/build-chroot/list?build_id={build_id}")["items"]
    log = server.get(tasks[0]["result_url"].removeprefix(server.url) + "build.log")
    assert "direct 10.0.2.2: unreachable" in log and "proxy given: True" in log, log[-3000:]
    assert "got b'tripwire" not in log
    for url in ("http://10.0.2.2", "http://127.0.0.1", "http://169.254.169.254"):
        assert re.search(rf"via proxy {re.escape(url)}\S*: HTTP 403", log), log[-3000:]
    # The build's lines cannot pass for Kopers' own.
    assert "\nkopers: task ended succeeded\n" not in log
    assert "\n| kopers: task ended succeeded\n" in log  # stored escaped
    assert "\nkopers: builder started on" in log
    assert_contained(server, build_id, tripwire)


NODIST_SPEC = """\
Name:           kopers-nodist
Version:        1
Release:        1
Summary:        No dist tag, and a daemon left behind
License:        MIT
BuildArch:      noarch

%description
Leaves %{?dist} out of its Release.

%prep

%build
setsid sh -c 'while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &
nohup sleep 100000 &

%install
mkdir -p %{buildroot}/usr/share/kopers-nodist
echo ok > %{buildroot}/usr/share/kopers-nodist/ok.txt

%files
/usr/share/kopers-nodist/ok.txt
"""


def test_a_spec_without_dist_gets_the_forced_identity(
    server: Server, mallory: str, tripwire: Tripwire, canary: Path, tmp_path: Path
) -> None:
    r = server.copr(
        mallory, "build", "hostile", str(srpm(NODIST_SPEC, "nodist", tmp_path)), "--nowait"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    build_id = build_id_of(r.stdout)
    build = server.wait_build(build_id, timeout=1200)
    assert build["state"] == "succeeded", reason(server, build_id)
    tasks = server.get(f"/api_3/build-chroot/list?build_id={build_id}")["items"]
    listing = server.get(tasks[0]["result_url"].removeprefix(server.url))
    assert "kopers-nodist-1-1.deb12.kopers.noarch.rpm" in listing
    assert_contained(server, build_id, tripwire)


EVIL_GIT_SPEC = """\
%define _srcrpmdir /build/elsewhere
%global planted %(cp /build/src/evil.src.rpm /build/out/ok-1-1.src.rpm)
Name:           kopers-gitevil
Version:        1
Release:        1
Summary:        Hands back a source package it did not make
License:        MIT
BuildArch:      noarch

%description
Hostile on purpose.

%files
"""


def test_a_source_package_from_git_with_a_hostile_header_name(
    server: Server, mallory: str, tripwire: Tripwire, canary: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "kopers-gitevil.spec").write_text(EVIL_GIT_SPEC)
    evil = srpm_with_header_name(tmp_path, f"../../../../../../tmp/{TOKEN}")
    (work / "evil.src.rpm").write_bytes(evil.read_bytes())
    git("init", "-q", "-b", "main", cwd=work)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "evil", cwd=work)
    served_dir = tmp_path / "served"
    served_dir.mkdir()
    git("clone", "-q", "--bare", str(work), str(served_dir / "evil.git"), cwd=tmp_path)
    port = free_port()
    with subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            f"--base-path={served_dir}",
            f"--listen={WEBROOT_HOST}",
            f"--port={port}",
            str(served_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as daemon:
        try:
            _wait_listening(WEBROOT_HOST, port)
            r = server.copr(
                mallory,
                "buildscm",
                "hostile",
                "--clone-url",
                f"git://{WEBROOT_HOST}:{port}/evil.git",
                "--nowait",
            )
            assert r.returncode == 0, r.stdout + r.stderr
            build_id = build_id_of(r.stdout)
            build = server.wait_build(build_id, timeout=1200)
        finally:
            daemon.terminate()
    assert build["state"] in ("failed", "skipped"), build
    why = reason(server, build_id)
    assert "source" in why and "header's name" in why, why
    assert_contained(server, build_id, tripwire)


def _wait_listening(host: str, port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {host}:{port}")


def test_a_url_import_of_a_loopback_address_is_refused(
    server: Server, mallory: str, tripwire: Tripwire, canary: Path
) -> None:
    for url in (
        f"http://127.0.0.1:{tripwire.port}/{TOKEN}.src.rpm",
        f"http://localhost:{tripwire.port}/x.src.rpm",
        "http://169.254.169.254/latest/meta-data/x.src.rpm",
    ):
        r = server.copr(mallory, "build", "hostile", url, "--nowait")
        assert r.returncode == 0, r.stdout + r.stderr
        build_id = build_id_of(r.stdout)
        assert server.wait_build(build_id, timeout=300)["state"] in ("failed", "skipped")
        why = reason(server, build_id)
        assert "refused" in why and "tripwire" not in why, why
        assert_contained(server, build_id, tripwire)


def test_a_committish_that_git_would_take_for_an_option_is_refused(
    server: Server, mallory: str
) -> None:
    r = server.copr(
        mallory,
        "buildscm",
        "hostile",
        "--clone-url",
        f"git://{WEBROOT_HOST}:9/x.git",
        "--commit",
        "--pathspec-from-file=/etc/shadow",
        "--nowait",
    )
    assert r.returncode != 0
    assert "committish" in r.stderr or "commit" in r.stderr, r.stderr
