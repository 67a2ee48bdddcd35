"""Debian's nginx with the shipped deploy/nginx/kopers.conf, in front of a test Kopers.

The shipped file is read as it is and only its operator values are replaced
(server name, certificate paths, data directory, upstream address, listen
addresses; bench/serve.py adds one plain-HTTP listener to the HTTPS block, to
tell nginx's cost from TLS's). Each replacement must match exactly as often
as the file says, so a change to the file that moves one of them fails
loudly instead of testing something else. The file is included inside an http {} block like
Debian's /etc/nginx/nginx.conf (`user www-data`, sendfile, mime.types, gzip),
with pid, logs and temporary directories in a prefix of its own, and nginx
runs in the foreground as a child of the test. The certificate is
self-signed, made with openssl for 127.0.0.1.

Used by tests/e2e/test_nginx.py and bench/serve.py.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "nginx" / "kopers.conf"
NGINX = "/usr/sbin/nginx"
HOST = "127.0.0.1"
# What the shipped file says, and how often: the operator's values.
SERVER_NAME = ("server_name kopers.example.org;", 2)
CERT = ("ssl_certificate /etc/letsencrypt/live/kopers.example.org/fullchain.pem;", 1)
CERT_KEY = ("ssl_certificate_key /etc/letsencrypt/live/kopers.example.org/privkey.pem;", 1)
DATA_DIR = ("root /var/lib/kopers;", 1)
UPSTREAM = ("server 127.0.0.1:8080;", 1)
LISTEN_HTTPS = ("listen 443 ssl http2;", 1)
LISTEN_HTTPS6 = ("listen [::]:443 ssl http2;", 1)
LISTEN_HTTP = ("listen 80;", 1)
LISTEN_HTTP6 = ("listen [::]:80;", 1)
# Access log lines: enough to tell who answered (upstream "-": nginx itself).
LOG_FORMAT = '"$request" $status $body_bytes_sent upstream=$upstream_addr'

MAIN_CONF = """\
user www-data;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
daemon off;
events {{
    worker_connections 1024;
}}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    log_format kopers_test '{log_format}';
    access_log {prefix}/access.log kopers_test;
    gzip on;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/kopers.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def replace(text: str, value: tuple[str, int], new: str) -> str:
    """`text` with the shipped directive `value` replaced, checking how often it occurs."""
    old, count = value
    found = text.count(old)
    if found != count:
        raise AssertionError(f"{SHIPPED.name} holds {old!r} {found} times, expected {count}")
    return text.replace(old, new)


def make_certificate(where: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA): (cert.pem, key.pem)."""
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", f"/CN={HOST}",
            "-addext", f"subjectAltName=IP:{HOST}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Front:
    """nginx with the shipped configuration, its prefix, ports and certificate."""

    prefix: Path
    data_dir: Path
    upstream_port: int
    https_port: int
    http_port: int
    cert: Path
    key: Path
    workers: str = "1"  # worker_processes ("auto": one per core)
    # A plain-HTTP listener added to the HTTPS server block: only bench/serve.py
    # uses it, to tell nginx's cost from TLS's. None: the shipped listeners only.
    plain_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, prefix: Path, data_dir: Path, upstream_port: int, workers: str = "1") -> Front:
        """A front for the Kopers on `upstream_port` whose data directory is `data_dir`."""
        prefix.mkdir(parents=True, exist_ok=True)
        prefix.chmod(0o755)
        cert, key = make_certificate(prefix)
        return cls(
            prefix=prefix,
            data_dir=data_dir,
            upstream_port=upstream_port,
            https_port=free_port(),
            http_port=free_port(),
            cert=cert,
            key=key,
            workers=workers,
        )

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def plain_url(self) -> str:
        """The HTTPS server block over plain HTTP (with `plain_port` only)."""
        assert self.plain_port is not None
        return f"http://{HOST}:{self.plain_port}"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def render(self) -> str:
        """The shipped file with this front's values in place of the operator's."""
        text = SHIPPED.read_text()
        text = replace(text, CERT, f"ssl_certificate {self.cert};")
        text = replace(text, CERT_KEY, f"ssl_certificate_key {self.key};")
        text = replace(text, SERVER_NAME, f"server_name {HOST};")
        text = replace(text, DATA_DIR, f"root {self.data_dir};")
        text = replace(text, UPSTREAM, f"server {HOST}:{self.upstream_port};")
        https = f"listen {HOST}:{self.https_port} ssl http2;"
        if self.plain_port is not None:
            https += f"\n    listen {HOST}:{self.plain_port};"
        text = replace(text, LISTEN_HTTPS, https)
        text = replace(text, LISTEN_HTTP, f"listen {HOST}:{self.http_port};")
        # The IPv6 listeners: on ::1 if there is one, else gone (as on such a host).
        six = has_ipv6_loopback()
        text = replace(
            text, LISTEN_HTTPS6, f"listen [::1]:{self.https_port} ssl http2;" if six else ""
        )
        return replace(text, LISTEN_HTTP6, f"listen [::1]:{self.http_port};" if six else "")

    def write(self) -> Path:
        (self.prefix / "tmp").mkdir(exist_ok=True)
        (self.prefix / "kopers.conf").write_text(self.render())
        main = self.prefix / "nginx.conf"
        main.write_text(
            MAIN_CONF.format(prefix=self.prefix, workers=self.workers, log_format=LOG_FORMAT)
        )
        return main

    def check(self) -> None:
        """`nginx -t` on the configuration: it must load without complaint."""
        main = self.write()
        r = subprocess.run(
            [NGINX, "-t", "-p", str(self.prefix), "-e", str(self.error_log), "-c", str(main)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0 or "[warn]" in r.stderr or "[emerg]" in r.stderr:
            raise RuntimeError(f"nginx -t:\n{r.stderr}")

    def start(self) -> None:
        self.check()
        main = self.prefix / "nginx.conf"
        with (self.prefix / "stderr.log").open("ab") as err:
            self.proc = subprocess.Popen(
                [NGINX, "-p", str(self.prefix), "-e", str(self.error_log), "-c", str(main)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{self.error_log.read_text()[-3000:]}")
            try:
                socket.create_connection((HOST, self.https_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not listen in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast: open websockets need not end first
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        source: str | None = None,
        plain: bool = False,
        timeout: float = 120,
    ) -> Answer:
        """One request to nginx (https, or its plain-HTTP block), from `source` if given."""
        bind = (source, 0) if source else None
        conn: http.client.HTTPConnection
        if plain:
            conn = http.client.HTTPConnection(
                HOST, self.http_port, timeout=timeout, source_address=bind
            )
        else:
            conn = http.client.HTTPSConnection(
                HOST,
                self.https_port,
                timeout=timeout,
                source_address=bind,
                context=self.ssl_context(),
            )
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            answer = {k.lower(): v for k, v in resp.getheaders()}
            return Answer(resp.status, answer, resp.read())
        finally:
            conn.close()

    def log_lines(self) -> list[str]:
        return self.access_log.read_text(errors="replace").splitlines()
