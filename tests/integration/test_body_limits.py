"""Request bodies have caps, decided before a body is read, and a refusal leaves nothing.

The whole upload request (every part) is bounded by server.max_upload_mib, the
`json` part and every other body by limits.max_json_kib. A declared length
over the cap is refused at once; a chunked body is cut where it passes the cap.
The last test runs the real `kopers serve` and watches its memory while a
client pushes a gigabyte at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kopers import config as config_mod
from kopers import tokens
from kopers.api.app import create_app
from kopers.db.database import open_database
from kopers.db.store import Store
from kopers.service import open_kopers
from tests.integration.conftest import CHROOT, Api, basic, create
from tests.integration.liveserver import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
JSON_KIB = 64
UPLOAD_MIB = 4
# Fixed: it is in test ids, which the xdist workers must agree on.
BOUNDARY = "kopers-test-boundary-5f1c"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
UPLOAD = "/api_3/build/create/upload"
CHECK = "/api_3/build/check-before-build"
OPTS = {"ownername": "alice", "projectname": "p", "project_dirname": "p", "chroots": None}


# raw HTTP ---------------------------------------------------------------------


def request_head(
    path: str, auth: str, content_type: str, length: int | None, method: str = "POST"
) -> bytes:
    """A request head; no length means a chunked body."""
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: kopers\r\nAuthorization: {auth}\r\n"
        f"Content-Type: {content_type}\r\n{framing}\r\n\r\n"
    ).encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def part_head(name: str, filename: str | None = None, content_type: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    typed = f"Content-Type: {content_type}\r\n" if content_type else ""
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{typed}\r\n".encode()


def part(name: str, data: bytes, filename: str | None = None, content_type: str = "") -> bytes:
    return part_head(name, filename, content_type) + data + b"\r\n"


END = f"--{BOUNDARY}--\r\n".encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, Any]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


@dataclass
class Pushed:
    status: int | None
    body: Any
    sent: int  # body bytes written before the server answered or hung up
    rss_kib: list[int]  # the server's resident size, sampled while sending


async def push(
    port: int,
    head: bytes,
    pieces: Iterable[bytes],
    *,
    chunked: bool,
    sample: Callable[[], int] | None = None,
    every: int = 32 << 20,
) -> Pushed:
    """Send `head` then `pieces` as fast as the server takes them, reading its answer meanwhile."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(read_response(reader))
    sent, mark, samples = 0, 0, []
    try:
        writer.write(head)
        for piece in pieces:
            writer.write(chunk(piece) if chunked else piece)
            await writer.drain()
            sent += len(piece)
            if sample is not None and sent - mark >= every:
                samples.append(sample())
                mark = sent
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # the server hung up: expected once it has refused the body
    try:
        status, body = await asyncio.wait_for(answer, 30)
    except (asyncio.IncompleteReadError, ConnectionError):
        status, body = None, None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return Pushed(status, body, sent, samples)


def filler(total: int, piece: int = 1 << 20) -> Iterator[bytes]:
    block = b"k" * piece
    for _ in range(total // piece):
        yield block
    if total % piece:
        yield block[: total % piece]


# an app with small caps ---------------------------------------------------------


async def open_api(dsn: str, data_dir: Path, **env: str) -> tuple[Api, Any]:
    cfg = config_mod.load(
        str(REPO / "kopers.toml"),
        env={"KOPERS_DATA_DIR": str(data_dir), "KOPERS_DATABASE_DSN": dsn, **env},
    )
    kopers = await open_kopers(cfg, with_vms=False)
    user = await kopers.store.create_user("alice", False)
    new = tokens.generate()
    await kopers.store.create_token(user.id, new.login, new.digest, None)
    client = TestClient(TestServer(create_app(kopers)))
    await client.start_server()
    return Api(client, kopers, {"alice": basic(new.login, new.secret)}), cfg


@pytest.fixture
async def capped(dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    api, _ = await open_api(
        dsn,
        tmp_path / "data",
        KOPERS_LIMITS_MAX_JSON_KIB=str(JSON_KIB),
        KOPERS_SERVER_MAX_UPLOAD_MIB=str(UPLOAD_MIB),
    )
    try:
        assert (await create(api, "alice", "alice", "p"))[0] == 200
        yield api
    finally:
        await api.client.close()
        await api.kopers.close()


def port_of(api: Api) -> int:
    port = api.client.server.port
    assert port is not None
    return port


def incoming(api: Api) -> list[Path]:
    return list(api.kopers.paths.incoming.iterdir())


# caps checked before reading ------------------------------------------------------


EDIT_CHROOT = f"/api_3/project-chroot/edit/alice/p/{CHROOT}"


@pytest.mark.parametrize(
    ("method", "path", "content_type", "setting"),
    [
        ("POST", UPLOAD, MULTIPART, "max_upload_mib"),
        ("POST", CHECK, "application/json", "max_json_kib"),
        ("PUT", EDIT_CHROOT, MULTIPART, "max_json_kib"),
    ],
)
async def test_a_declared_length_over_the_cap_is_refused_before_the_body(
    capped: Api, method: str, path: str, content_type: str, setting: str
) -> None:
    """Headers claim 2 GiB and only a few bytes follow: the 413 comes at once."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(capped))
    try:
        writer.write(request_head(path, capped.auth["alice"], content_type, 2 << 30, method))
        writer.write(part_head("json", "json", "application/json") + b'{"x":')
        await writer.drain()
        status, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert status == 413, body
    assert setting in body["error"] and "\n" not in body["error"]
    assert incoming(capped) == []


async def test_the_upload_route_keeps_the_upload_cap(
    capped: Api, make_srpm: Callable[..., Path]
) -> None:
    """An upload far over the JSON cap but within the upload cap is accepted."""
    srpm = make_srpm("hello")
    body = (
        part("pkgs", srpm.read_bytes(), srpm.name, "application/x-rpm")
        + part("comment", b"c" * (1 << 20))  # an unknown part, read and dropped
        + part("json", json.dumps(OPTS).encode(), "json", "application/json")
        + END
    )
    head = request_head(UPLOAD, capped.auth["alice"], MULTIPART, len(body))
    pushed = await push(port_of(capped), head, filler_from(body), chunked=False)
    assert pushed.status == 200, pushed.body
    assert pushed.body["source_package"]["name"] == "hello"
    assert incoming(capped) == []


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param([1536, 1536, 1536], id="parts-each-under-the-cap"),
        pytest.param([UPLOAD_MIB * 1024 + 512], id="one-part-over-the-cap"),
    ],
)
async def test_a_chunked_upload_is_cut_at_the_cap_and_leaves_nothing(
    capped: Api, make_srpm: Callable[..., Path], layout: list[int]
) -> None:
    srpm = make_srpm("hello").read_bytes()
    pieces = [part("json", json.dumps(OPTS).encode(), "json", "application/json")]
    for n, kib in enumerate(layout):
        filler_bytes = srpm + b"\0" * ((kib << 10) - len(srpm))
        pieces.append(part("pkgs", filler_bytes, f"p{n}.src.rpm", "application/x-rpm"))
    pieces.append(END)
    body = b"".join(pieces)
    head = request_head(UPLOAD, capped.auth["alice"], MULTIPART, None)
    pushed = await push(port_of(capped), head, filler_from(body), chunked=True)
    assert pushed.status == 413, pushed.body
    assert "max_upload_mib" in pushed.body["error"]
    assert incoming(capped) == []
    assert await capped.count("builds") == 0


def filler_from(body: bytes, piece: int = 256 << 10) -> Iterator[bytes]:
    for start in range(0, len(body), piece):
        yield body[start : start + piece]


@pytest.mark.parametrize("chunked", [False, True], ids=["with-length", "chunked"])
async def test_the_json_part_of_an_upload_is_capped(
    capped: Api, make_srpm: Callable[..., Path], chunked: bool
) -> None:
    srpm = make_srpm("hello")
    options = {**OPTS, "description": "d" * (JSON_KIB << 10)}
    body = (
        part("pkgs", srpm.read_bytes(), srpm.name, "application/x-rpm")
        + part("json", json.dumps(options).encode(), "json", "application/json")
        + END
    )
    head = request_head(UPLOAD, capped.auth["alice"], MULTIPART, None if chunked else len(body))
    pushed = await push(port_of(capped), head, filler_from(body), chunked=chunked)
    assert pushed.status == 413, pushed.body
    assert "json part" in pushed.body["error"] and "max_json_kib" in pushed.body["error"]
    assert incoming(capped) == []
    assert await capped.count("builds") == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["with-length", "chunked"])
async def test_a_json_body_over_the_cap_is_refused(capped: Api, chunked: bool) -> None:
    body = json.dumps({**OPTS, "description": "d" * (JSON_KIB << 10)}).encode()
    length = None if chunked else len(body)
    head = request_head(CHECK, capped.auth["alice"], "application/json", length)
    pushed = await push(port_of(capped), head, filler_from(body), chunked=chunked)
    assert pushed.status == 413, pushed.body
    assert "max_json_kib" in pushed.body["error"]
    # Just under the cap is fine.
    small = json.dumps(OPTS).encode()
    head = request_head(CHECK, capped.auth["alice"], "application/json", None)
    pushed = await push(port_of(capped), head, [small], chunked=True)
    assert pushed.status == 200, pushed.body


async def test_a_multipart_body_to_another_route_has_the_json_cap(capped: Api) -> None:
    """edit-chroot takes multipart too, but nothing in it may be large."""
    options = {"additional_repos": [], "comment": "c" * (JSON_KIB << 10)}
    body = part("json", json.dumps(options).encode(), "json", "application/json") + END
    for chunked in (False, True):
        length = None if chunked else len(body)
        head = request_head(EDIT_CHROOT, capped.auth["alice"], MULTIPART, length, "PUT")
        pushed = await push(port_of(capped), head, filler_from(body), chunked=chunked)
        assert pushed.status == 413, pushed.body
        assert "max_json_kib" in pushed.body["error"]


# the real server's memory while a gigabyte is refused --------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@dataclass
class Served:
    pid: int
    port: int
    auth: str


@pytest.fixture
async def served(dsn: str, tmp_path: Path) -> AsyncIterator[Served]:
    """`kopers serve` in its own process, on the test's database, with default limits."""
    port = free_port()
    env = {
        **os.environ,
        "KOPERS_CONFIG": str(REPO / "kopers.toml"),
        "KOPERS_DATA_DIR": str(tmp_path / "data"),
        "KOPERS_DATABASE_DSN": dsn,
        "KOPERS_LISTEN": f"127.0.0.1:{port}",
        "KOPERS_VM_WARM": "0",
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        # This checkout's kopers, whichever checkout the venv was installed from.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(VENV_BIN / "kopers"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # Up to 300 s, as for the e2e server: a first start on a new template
        # image probes KVM, which lasts a minute where KVM is broken.
        for _ in range(1200):
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "server.log").read_text()[-3000:])
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.25)
        db = await open_database(dsn, tmp_path / "data")
        try:
            store = Store(db.pool)
            user = await store.create_user("alice", False)
            new = tokens.generate()
            await store.create_token(user.id, new.login, new.digest, None)
        finally:
            await db.close()
        yield Served(proc.pid, port, basic(new.login, new.secret))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def test_server_memory_stays_flat_while_a_gigabyte_is_refused(served: Served) -> None:
    """RSS stays within 50 MiB of idle while 1 GiB arrives as a JSON body and as a json part."""
    json_head = request_head(CHECK, served.auth, "application/json", None)
    upload_head = request_head(UPLOAD, served.auth, MULTIPART, None)
    # Warm up every path once, so idle includes the code the refusals run.
    for head, body in (
        (json_head, json.dumps(OPTS).encode()),
        (upload_head, part("json", b"{}", "json", "application/json") + END),
    ):
        await push(served.port, head, [body], chunked=True)
    await asyncio.sleep(0.5)
    idle = rss_kib(served.pid)

    def gigabyte_json() -> Iterator[bytes]:
        yield b'{"ownername": "alice", "description": "'
        yield from filler(1 << 30)
        yield b'"}'

    def gigabyte_json_part() -> Iterator[bytes]:
        yield part_head("json", "json", "application/json") + b'{"description": "'
        yield from filler(1 << 30)
        yield b'"}\r\n' + END

    for head, pieces in ((json_head, gigabyte_json()), (upload_head, gigabyte_json_part())):
        pushed = await push(
            served.port, head, pieces, chunked=True, sample=lambda: rss_kib(served.pid)
        )
        assert pushed.status == 413, pushed.body
        assert pushed.sent >= 64 << 20, "the server stopped taking data at once"
        peak = max([*pushed.rss_kib, rss_kib(served.pid)])
        assert peak - idle < 50 << 10, f"RSS grew from {idle} KiB to {peak} KiB"


async def test_a_skipped_part_of_an_edit_chroot_body_counts_toward_the_cap(capped: Api) -> None:
    """A part edit-chroot ignores is still received: it may not be large either."""
    junk = part("anything", b"j" * (4 * JSON_KIB << 10))
    body = junk + part("json", b"{}", "json", "application/json") + END
    head = request_head(EDIT_CHROOT, capped.auth["alice"], MULTIPART, None, "PUT")
    pushed = await push(port_of(capped), head, filler_from(body), chunked=True)
    assert pushed.status == 413, pushed.body
    assert "max_json_kib" in pushed.body["error"]
