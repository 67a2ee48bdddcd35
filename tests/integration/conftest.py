"""Integration fixtures: the Kopers app on a real Postgres, gpg and rpm, without VMs.

`api` opens Kopers with its scheduler loop stopped (nothing is built) and
serves it with aiohttp's test server; users alice, bob (plain) and root (site
admin) each have a token, and "wrong" carries credentials that do not exist.
Requests are shaped the way copr-cli sends them.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from kopers import config as config_mod
from kopers import tokens
from kopers.api.app import create_app
from kopers.config import Config
from kopers.db.store import NewBuild, Store
from kopers.models import BuildState, SourceType
from kopers.service import Kopers, open_kopers

REPO = Path(__file__).resolve().parents[2]
CHROOT = "debian-12-x86_64"


@dataclass
class Api:
    client: TestClient
    kopers: Kopers
    auth: dict[str, str]  # user name -> Authorization header

    async def call(
        self, method: str, path: str, user: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": self.auth[user]} if user else {}
        async with self.client.request(method, path, headers=headers, **kw) as resp:
            body = await resp.text()
            try:
                return resp.status, json.loads(body)
            except json.JSONDecodeError:
                return resp.status, body

    async def upload(self, user: str, path: Path, options: dict[str, Any]) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field(
            "pkgs", path.read_bytes(), filename=path.name, content_type="application/x-rpm"
        )
        form.add_field(
            "json", json.dumps(options), filename="json", content_type="application/json"
        )
        return await self.call("POST", "/api_3/build/create/upload", user, data=form)

    async def count(self, table: str) -> int:
        return int(await self.kopers.store.pool.fetchval(f"SELECT count(*) FROM {table}"))


def basic(login: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()


@contextlib.asynccontextmanager
async def serving(cfg: Config, users: bool = True) -> AsyncIterator[Api]:
    """Kopers on `cfg` behind aiohttp's test server, with alice, bob and root (admin).

    Without `users`, no account is made (a restart on the same database).
    """
    kopers = await open_kopers(cfg, with_vms=False)
    auth = {}
    for name, admin in (("alice", False), ("bob", False), ("root", True)) if users else ():
        user = await kopers.store.create_user(name, admin)
        new = tokens.generate()
        await kopers.store.create_token(user.id, new.login, new.digest, None)
        auth[name] = basic(new.login, new.secret)
    auth["wrong"] = basic("nobody", "nothing")
    client = TestClient(TestServer(create_app(kopers)))
    await client.start_server()
    try:
        yield Api(client, kopers, auth)
    finally:
        await client.close()
        await kopers.close()


@pytest.fixture
async def api(dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    cfg = config_mod.load(
        str(REPO / "kopers.toml"),
        env={"KOPERS_DATA_DIR": str(tmp_path / "data"), "KOPERS_DATABASE_DSN": dsn},
    )
    async with serving(cfg) as api:
        yield api


async def create(
    api: Api, user: str, owner: str, name: str, chroots: list[str] | None = None
) -> tuple[int, Any]:
    body = {
        "name": name,
        "chroots": chroots or [CHROOT],
        "description": "d",
        "additional_repos": [],
    }
    return await api.call(
        "POST", f"/api_3/project/add/{owner}?ownername={owner}&exist_ok=False", user, json=body
    )


async def waiting_build(store: Store, project_id: int, submitter_id: int, finished: bool) -> int:
    """A build row from a URL nothing serves, waiting (or canceled): an object to act on."""
    build = await store.create_build(
        NewBuild(
            project_id=project_id,
            submitter_id=submitter_id,
            source_type=SourceType.URL,
            source={"url": "http://127.0.0.1:1/hello-1.0-1.src.rpm"},
            package_name=None,
            package_version=None,
            srpm_name=None,
            source_state=BuildState.PENDING,
            timeout=3600,
            chroots=(CHROOT,),
            task_state=BuildState.WAITING,
        )
    )
    if finished:
        await store.cancel_build(build.id)
    return build.id


async def table_rows(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Every table's rows (tokens without last_used: using a token is not a change)."""
    tables = await pool.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    out = {}
    for t in sorted(r["table_name"] for r in tables):
        rows = await pool.fetch(f'SELECT * FROM "{t}"')
        drop = {"last_used"} if t == "tokens" else set()
        out[t] = sorted(repr({k: v for k, v in r.items() if k not in drop}) for r in rows)
    return out
