"""The unmodified Copr clients against a route this server lacks.

copr-cli must print the server's 501 message as it is, and python-copr must
raise something a program can tell apart from "no such project"
(CoprNoResultException, which is what a 404 becomes).
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

import pytest
from copr.v3 import Client
from copr.v3.exceptions import CoprNoResultException, CoprRequestException

from tests.integration.conftest import Api, create

COPR_CLI = Path(sys.executable).with_name("copr-cli")
UNSUPPORTED = "is not supported by this Kopers server"


def client_config(api: Api, user: str) -> dict[str, str]:
    login, _, token = base64.b64decode(api.auth[user].split()[1]).decode().partition(":")
    url = str(api.client.make_url("")).rstrip("/")
    return {"login": login, "username": user, "token": token, "copr_url": url, "encrypted": "false"}


async def test_copr_cli_prints_the_501_message_verbatim(api: Api, tmp_path: Path) -> None:
    assert (await create(api, "alice", "alice", "demo"))[0] == 200
    conf = tmp_path / "copr.conf"
    conf.write_text(
        "[copr-cli]\n" + "".join(f"{k} = {v}\n" for k, v in client_config(api, "alice").items())
    )
    proc = await asyncio.create_subprocess_exec(
        str(COPR_CLI),
        "--config",
        str(conf),
        "build-distgit",
        "alice/demo",
        "--name",
        "hello",
        "--nowait",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    said = (out + err).decode()
    assert proc.returncode != 0, said
    expected = f"building from dist-git {UNSUPPORTED}: it has no dist-git"
    assert expected in said, said
    assert "Not Found" not in said


async def test_python_copr_raises_a_request_error_not_a_missing_result(api: Api) -> None:
    assert (await create(api, "alice", "alice", "demo"))[0] == 200
    client = Client(client_config(api, "alice"))

    def call() -> None:
        client.build_proxy.create_from_distgit("alice", "demo", "hello")

    # python-copr is synchronous: off the loop that serves the app.
    with pytest.raises(CoprRequestException) as caught:
        await asyncio.to_thread(call)
    assert not isinstance(caught.value, CoprNoResultException)
    assert UNSUPPORTED in str(caught.value)
