"""Hostile requests found by an attacker's pass over the request layer.

Each is refused with a 4xx (or served harmlessly), never a 500, and leaves
nothing behind: compressed request bodies, non-ASCII credentials, upload
file names that are directories or too long, a deletion list that repeats
one id, static and result paths built to probe the host, and infrastructure
details on the public status page.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Api, create
from tests.integration.rawhttp import send, snapshot, world

CHECK = "/api_3/build/check-before-build"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "x-anything"])
async def test_a_compressed_request_body_is_refused(api: Api, encoding: str) -> None:
    # A few KiB of gzip can inflate past every cap: bodies are taken as sent, or not at all.
    body = gzip.compress(json.dumps({"ownername": "alice", "projectname": "p"}).encode())
    status, answer = await send(
        api, "POST", CHECK, user="alice", body=body, headers={"Content-Encoding": encoding}
    )
    if encoding == "br" and status == 400:
        return  # aiohttp's own parser refuses an encoding it cannot decode: fine too
    assert status == 415, answer
    assert "Content-Encoding" in answer["error"]


async def test_a_corrupt_compressed_body_is_not_a_server_error(api: Api) -> None:
    status, answer = await send(
        api, "POST", CHECK, user="alice", body=b"not gzip", headers={"Content-Encoding": "gzip"}
    )
    assert status == 415, answer


@pytest.mark.parametrize("credentials", ["é", "é:x", "\u00e9\u00e9\u00e9=="])
async def test_non_ascii_basic_credentials_are_an_invalid_login(api: Api, credentials: str) -> None:
    header = "Basic " + credentials
    status, answer = await send(
        api,
        "GET",
        "/api_3/auth-check",
        headers={"Authorization": header.encode().decode("latin-1")},
    )
    assert status == 401, answer
    assert "Login invalid" in answer["error"]


async def test_a_deletion_list_cannot_multiply_work_or_events(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    build = await world(api, make_srpm)
    await api.kopers.store.cancel_build(build)  # only ended builds may be deleted
    before = await api.count("events")
    status, answer = await send(
        api, "DELETE", "/api_3/build/delete/list", user="alice", body={"builds": [build] * 3000}
    )
    assert status == 400, answer
    assert "builds" in answer["error"]
    assert await api.count("events") == before
    status, answer = await send(
        api, "DELETE", "/api_3/build/delete/list", user="alice", body={"builds": [build] * 3}
    )
    assert status == 200, answer
    assert answer["builds"] == [build]
    # One event per build actually deleted, not per id sent.
    assert await api.count("events") == before + 1


@pytest.mark.parametrize(
    "filename",
    ["..", ".", "a/..", "x" * 300 + ".src.rpm", ""],
    ids=["dotdot", "dot", "a-dotdot", "long", "empty"],
)
async def test_hostile_upload_file_names_are_no_server_error(
    api: Api, make_srpm: Callable[..., Path], filename: str
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    srpm = make_srpm("hello")
    boundary = "b0undary"
    options = json.dumps({"ownername": "alice", "projectname": "p"}).encode()
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="pkgs"; filename="{filename}"\r\n'
        "Content-Type: application/x-rpm\r\n\r\n"
    ).encode() + srpm.read_bytes()
    body += (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="json"; filename="json"\r\n'
        "Content-Type: application/json\r\n\r\n"
    ).encode() + options
    body += f"\r\n--{boundary}--\r\n".encode()
    status, answer = await send(
        api,
        "POST",
        "/api_3/build/create/upload",
        user="alice",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert status in (200, 400), answer
    assert list(api.kopers.paths.incoming.iterdir()) == []


async def test_a_long_static_name_is_not_found(api: Api) -> None:
    status, _ = await send(api, "GET", "/static/" + "a" * 300)
    assert status == 404


async def test_results_do_not_confirm_the_host_data_path(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    await world(api, make_srpm)
    # /results/ followed by the absolute path of the results directory.
    status, answer = await send(api, "GET", f"/results/{api.kopers.paths.results}/alice/")
    assert status == 404, answer
    assert str(api.kopers.config.data_dir) not in str(answer)


async def test_the_public_status_names_no_host_paths_or_uris(api: Api) -> None:
    status, answer = await send(api, "GET", "/api/status")
    assert status == 200
    text = json.dumps(answer)
    assert str(api.kopers.config.vm.cache_dir) not in text
    assert str(api.kopers.config.data_dir) not in text
    # What is left out for whom: tests/unit/test_api_pure.py (this server runs no VM hosts).


async def test_nothing_changes_after_the_refusals(api: Api, make_srpm: Callable[..., Path]) -> None:
    await world(api, make_srpm)
    before = await snapshot(api)
    gz = gzip.compress(b'{"ownername": "alice", "projectname": "p", "chroots": []}')
    await send(
        api,
        "PUT",
        "/api_3/project-chroot/edit/alice/p/debian-12-x86_64",
        user="alice",
        body=gz,
        headers={"Content-Encoding": "gzip"},
    )
    await send(api, "GET", "/api_3/auth-check", headers={"Authorization": "Basic " + "é"})
    assert await snapshot(api) == before
