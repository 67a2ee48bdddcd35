"""What the per-chroot pipeline hands a build about the network, on the real runner.

Real Postgres, store, log hub, publisher and Runner, with a FakeVm (tests/fakevm.py)
standing in for the builder VM. A user's repository on a host-only address is
left out with a note and the build goes on; a network-enabled build gets a
proxy session of its own forwarded into its VM and named in its job, closed
when the build ends however it ends, and cannot run on a server that has no
proxy.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from kopers.config import NetworkConfig
from kopers.errors import InfrastructureError
from kopers.models import BuildState
from kopers.net.local import address_policy
from kopers.net.proxy import EgressProxy, ProxySession
from kopers.sched.graph import TaskKey
from kopers.worker import job as jobs
from kopers.worker.runner import Runner
from tests.fakevm import FakeVmPool
from tests.integration.conftest import CHROOT, Api

pytestmark = pytest.mark.integration


class JobSeen:
    """Keeps the job.json the fake VM was given (read when the build has run)."""

    def __init__(self) -> None:
        self.job: dict[str, Any] = {}
        self.proxy_answered = False

    def __call__(self, out: Path) -> None:
        # The fake VM's job path sits next to its result directory.
        self.job = json.loads((out.parent / Path(jobs.JOB_PATH).name).read_text())
        if self.job["proxy"]:
            # While the build runs, its proxy URL leads somewhere (the fake VM is the host).
            host, port = self.job["proxy"].removeprefix("http://").split(":")
            with socket.create_connection((host, int(port))):
                self.proxy_answered = True


class WatchedProxy(EgressProxy):
    """The real proxy, keeping every session it opened for the test to look at."""

    def __init__(self) -> None:
        super().__init__(address_policy(NetworkConfig()))
        self.opened: list[tuple[ProxySession, tuple[str, int]]] = []

    async def open_session(self, label: str) -> ProxySession:
        session = await super().open_session(label)
        self.opened.append((session, session.address))
        return session


async def refuses(address: tuple[str, int]) -> bool:
    try:
        _, writer = await asyncio.open_connection(*address)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


def closed(session: ProxySession) -> bool:
    try:
        _ = session.address
    except InfrastructureError:
        return True
    return False


@asynccontextmanager
async def egress_proxy() -> AsyncIterator[WatchedProxy]:
    proxy = WatchedProxy()
    try:
        yield proxy
    finally:
        await proxy.close()


async def build(
    api: Api, srpm: Path, name: str, **project: Any
) -> tuple[int, Callable[..., Runner]]:
    body = {"name": name, "chroots": [CHROOT], "description": "d", **project}
    status, answer = await api.call(
        "POST", "/api_3/project/add/alice?ownername=alice&exist_ok=False", "alice", json=body
    )
    assert status == 200, answer
    status, answer = await api.upload(
        "alice", srpm, {"ownername": "alice", "projectname": name, "chroots": [CHROOT]}
    )
    assert status == 200, answer
    k = api.kopers

    def runner(pool: FakeVmPool, proxy: EgressProxy | None = None) -> Runner:
        return Runner(k.config, k.paths, k.store, k.hub, k.publisher, pool, proxy)  # type: ignore[arg-type]

    return int(answer["id"]), runner


async def outcome(api: Api, build_id: int) -> tuple[BuildState, str, str]:
    [task] = (await api.kopers.store.get_build(build_id)).tasks
    log = api.kopers.paths.live_logs / f"{build_id:08d}" / CHROOT / "builder-live.log"
    return task.state, task.reason or "", log.read_text()


async def run(runner: Runner, build_id: int) -> BuildState:
    async with asyncio.timeout(120):  # a hang must fail the test
        return await runner.run(TaskKey(build_id, CHROOT))


async def test_a_user_repository_on_a_host_only_address_is_left_out(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    repos = ["http://127.0.0.1:8080/results/bob/secret/$chroot/", "http://169.254.169.254/r/"]
    build_id, runner = await build(
        api, make_srpm("kopers-repos", "1"), "repos", additional_repos=repos
    )
    seen = JobSeen()
    assert await run(runner(FakeVmPool(tmp_path, tamper=seen)), build_id) == BuildState.SUCCEEDED
    _, _, log = await outcome(api, build_id)
    own = f"/results/alice/repos/{CHROOT}/"
    assert [r["baseurl"].split("/", 3)[3] for r in seen.job["repos"]] == [own.lstrip("/")]
    assert (
        f"repository {repos[0]} left out: 127.0.0.1 is refused by the address policy (loopback)"
        in log
    )
    assert (
        f"repository {repos[1]} left out: 169.254.169.254 is refused by the address policy "
        "(link-local)" in log
    )
    assert seen.job["enable_net"] is False and seen.job["proxy"] is None


async def test_a_network_enabled_build_gets_a_proxy_session_of_its_own(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build_id, runner = await build(api, make_srpm("kopers-net", "1"), "net", enable_net=True)
    seen = JobSeen()
    async with egress_proxy() as proxy:
        pool = FakeVmPool(tmp_path, tamper=seen)
        assert await run(runner(pool, proxy), build_id) == BuildState.SUCCEEDED
        [(session, (host, port))] = proxy.opened
        assert session.label == f"build {build_id}/{CHROOT}"
        # The fake VM is the host, so the forwarded port is the session's own;
        # it answered during the build and not after.
        assert (seen.job["enable_net"], seen.job["proxy"]) == (True, f"http://{host}:{port}")
        assert seen.proxy_answered
        assert closed(session) and await refuses((host, port))
    _, _, log = await outcome(api, build_id)
    assert "network access goes through Kopers' egress proxy" in log


async def test_a_failed_network_enabled_build_closes_its_proxy_session(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    srpm = make_srpm("kopers-netfail", "1", build="exit 1")
    build_id, runner = await build(api, srpm, "netfail", enable_net=True)
    async with egress_proxy() as proxy:
        assert await run(runner(FakeVmPool(tmp_path), proxy), build_id) == BuildState.FAILED
        [(session, address)] = proxy.opened
        assert closed(session) and await refuses(address)


async def test_a_network_enabled_build_cannot_run_without_a_proxy(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    build_id, runner = await build(api, make_srpm("kopers-noproxy", "1"), "np", enable_net=True)
    pool = FakeVmPool(tmp_path)
    assert await run(runner(pool), build_id) == BuildState.FAILED
    state, reason, _ = await outcome(api, build_id)
    assert state == BuildState.FAILED
    assert "network access" in reason and "no egress proxy" in reason
    assert pool.started == []  # refused before any VM was taken
