"""Hostile sources: refused at the gate, nothing stored.

rpm reports a header Name such as `../00000057/hello` as it is, and Kopers
names stored sources after the header. Every path that reads an SRPM (upload,
URL import, the SRPM made from git, and the built results) goes through
`rpmfile.read_rpm`, whose field validator is what these tests aim at.

A URL import makes the host fetch where the user says: loopback (this server's
own API), link-local (cloud metadata) and private addresses are refused before
any connection, redirects included, and a failed fetch says what failed in
fixed words, never with text the remote end sent. The test web servers listen
on 127.0.0.2, which only the tests that need them allow-list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web as aioweb
from yarl import URL

from kopers.config import NetworkConfig
from kopers.errors import BadRequest, BuildFailed, KopersError
from kopers.models import BuildState
from kopers.net.local import address_policy
from kopers.net.policy import AddressPolicy, AddressRefused
from kopers.sched.graph import SOURCE, TaskKey
from kopers.worker.importer import fetch_srpm
from kopers.worker.runner import Runner
from kopers.worker.scm import checkout, locate_spec
from tests.fakevm import FakeVmPool
from tests.integration.conftest import CHROOT, Api, create
from tests.rpms import srpm_with_header_name
from tests.webroot import WebRoot

pytestmark = pytest.mark.integration
HOSTILE = ["../00000057/hello", "../../../../x", ".kopers", "-rf"]
WEB_HOST = "127.0.0.2"  # test web servers Kopers may fetch from listen here
SECRET = "tripwire-secret-0451"  # what a host-only service would give away


def allow_web() -> AddressPolicy:
    """This host's policy with only the test web servers' address allow-listed."""
    return address_policy(NetworkConfig((ipaddress.ip_network(f"{WEB_HOST}/32"),)))


@dataclass
class Tripwire:
    """An HTTP server that counts every request and answers with a secret."""

    host: str
    port: int = 0
    hits: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@asynccontextmanager
async def tripwire(host: str) -> AsyncIterator[Tripwire]:
    """/redirect?to=URL redirects, /missing* is a 404, /huge* is 2 MiB, the rest a secret."""
    server = Tripwire(host)

    async def answer(request: aioweb.Request) -> aioweb.StreamResponse:
        server.hits.append(request.path)
        if request.path == "/redirect":
            raise aioweb.HTTPFound(request.query["to"])
        if request.path.startswith("/missing"):
            raise aioweb.HTTPNotFound(text=f"{SECRET}: no such file")
        if request.path.startswith("/huge"):
            return aioweb.Response(body=b"x" * (2 << 20))
        return aioweb.Response(text=f"{SECRET}\n", headers={"X-Secret": SECRET})

    app = aioweb.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = aioweb.AppRunner(app, access_log=None)
    await runner.setup()
    await aioweb.TCPSite(runner, host, 0).start()
    server.port = int(runner.addresses[0][1])
    try:
        yield server
    finally:
        await runner.cleanup()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebRoot]:
    (tmp_path / "web").mkdir()
    root = WebRoot(tmp_path / "web", WEB_HOST)
    yield root
    root.close()


@pytest.mark.parametrize("name", HOSTILE)
async def test_an_upload_with_a_hostile_header_name_is_refused(
    api: Api, tmp_path: Path, name: str
) -> None:
    assert (await create(api, "alice", "alice", "tools"))[0] == 200
    srpm = srpm_with_header_name(tmp_path / "srpm", name)
    status, body = await api.upload(
        "alice", srpm, {"ownername": "alice", "projectname": "tools", "chroots": [CHROOT]}
    )
    assert status == 400, body
    message = body["error"]
    assert "name" in message and "\n" not in message
    assert str(api.kopers.paths.root) not in message  # no host path in the answer
    assert await api.count("builds") == 0
    assert files_under(api.kopers.paths.sources) == []
    assert files_under(api.kopers.paths.incoming) == []
    # Nothing landed next to the data directory either.
    assert sorted(p.name for p in api.kopers.paths.root.parent.iterdir()) == ["data", "srpm"]


@pytest.mark.parametrize("name", HOSTILE[:2])
async def test_a_url_import_with_a_hostile_header_name_is_refused(
    web: WebRoot, tmp_path: Path, name: str
) -> None:
    url = web.add(srpm_with_header_name(tmp_path / "srpm", name))
    dest = tmp_path / "sources" / "00000001"
    with pytest.raises(BadRequest, match="name"):
        await fetch_srpm(url, dest, 1 << 20, allow_web())
    assert files_under(tmp_path / "sources") == []


@pytest.mark.parametrize(
    "url",
    [
        "{local}/{SECRET}.src.rpm",
        "http://localhost:{port}/x.src.rpm",
        "http://[::1]:{port}/x.src.rpm",
        "http://[::ffff:127.0.0.1]:{port}/x.src.rpm",
        "http://0.0.0.0:{port}/x.src.rpm",
        "http://169.254.169.254/latest/meta-data/x.src.rpm",
        "http://10.0.2.2:{port}/x.src.rpm",
        "http://192.168.0.1/x.src.rpm",
    ],
)
async def test_a_url_import_of_a_host_only_address_is_refused_before_connecting(
    api: Api, tmp_path: Path, url: str
) -> None:
    """Through the API and the real source step: the build ends, naming the refusal."""
    assert (await create(api, "alice", "alice", "tools"))[0] == 200
    async with tripwire("127.0.0.1") as wire:
        target = url.format(local=wire.url, port=wire.port, SECRET=SECRET)
        body = {"ownername": "alice", "projectname": "tools", "chroots": [CHROOT]}
        status, answer = await api.call(
            "POST", "/api_3/build/create/url", "alice", json=body | {"pkgs": [target]}
        )
        assert status == 200, answer
        build_id = int(answer["items"][0]["id"])
        k = api.kopers
        runner = Runner(k.config, k.paths, k.store, k.hub, k.publisher, FakeVmPool(tmp_path))  # type: ignore[arg-type]
        assert await runner.run(TaskKey(build_id, SOURCE)) == BuildState.FAILED
    build = await k.store.get_build(build_id)
    [task] = build.tasks
    assert task.state == BuildState.SKIPPED
    reason = task.reason or ""
    assert reason.startswith(f"source import failed: cannot fetch {target}: ")
    assert "is refused by the address policy (" in reason and "\n" not in reason
    assert SECRET not in reason.removeprefix(f"source import failed: cannot fetch {target}")
    assert wire.hits == []
    assert files_under(k.paths.sources) == []


async def test_an_allow_listed_server_is_fetched_from(
    web: WebRoot, tmp_path: Path, make_srpm: Callable[..., Path]
) -> None:
    url = web.add(make_srpm("kopers-allowed", "1"))
    path, info = await fetch_srpm(url, tmp_path / "sources", 1 << 20, allow_web())
    assert info.nevra.name == "kopers-allowed" and path.is_file()
    # The same server without the allow-list: refused, nothing fetched.
    with pytest.raises(AddressRefused, match=f"{WEB_HOST} is refused by the address policy"):
        await fetch_srpm(url, tmp_path / "strict", 1 << 20)
    assert files_under(tmp_path / "strict") == []


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/{SECRET}.src.rpm",  # loopback outside the allow-list
        "http://localhost:{port}/x.src.rpm",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.2.2/x.src.rpm",
    ],
)
async def test_a_redirect_to_a_refused_address_is_refused(tmp_path: Path, target: str) -> None:
    async with tripwire("127.0.0.1") as wire, tripwire(WEB_HOST) as allowed:
        hop = target.format(port=wire.port, SECRET=SECRET)
        url = str(URL(allowed.url).with_path("/redirect").with_query(to=hop))
        with pytest.raises(AddressRefused) as caught:
            await fetch_srpm(url, tmp_path / "sources", 1 << 20, allow_web())
    message = caught.value.message
    assert message == f"cannot fetch {url}: it redirects to an address the address policy refuses"
    assert allowed.hits == ["/redirect"]
    assert wire.hits == []
    assert files_under(tmp_path / "sources") == []


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/missing.src.rpm", "HTTP status 404"),
        ("/huge.src.rpm", "too large (over 1048576 bytes)"),
    ],
)
async def test_a_failed_fetch_says_what_failed_in_fixed_words(
    tmp_path: Path, path: str, why: str
) -> None:
    async with tripwire(WEB_HOST) as server:
        url = server.url + path
        with pytest.raises(KopersError) as caught:
            await fetch_srpm(url, tmp_path / "sources", 1 << 20, allow_web())
    assert caught.value.message == f"cannot fetch {url}: {why}"
    assert files_under(tmp_path / "sources") == []


async def test_a_refused_connection_says_so_and_nothing_more(tmp_path: Path) -> None:
    async with tripwire(WEB_HOST) as server:
        url = server.url + "/x.src.rpm"
    # The server is gone: its port refuses connections.
    with pytest.raises(KopersError) as caught:
        await fetch_srpm(url, tmp_path / "sources", 1 << 20, allow_web())
    assert caught.value.message == f"cannot fetch {url}: connection refused"


@pytest.mark.parametrize(
    "committish",
    [
        "--pathspec-from-file=/etc/hostname",
        "-b",
        "main\n--upload-pack=touch /tmp/x",
        "main branch",
        "x" * 300,
    ],
)
async def test_a_committish_that_git_would_read_as_an_option_is_refused(
    api: Api, committish: str
) -> None:
    assert (await create(api, "alice", "alice", "tools"))[0] == 200
    body = {
        "ownername": "alice",
        "projectname": "tools",
        "chroots": [CHROOT],
        "clone_url": "https://git.example.org/pkg.git",
        "committish": committish,
        "scm_type": "git",
    }
    status, answer = await api.call("POST", "/api_3/build/create/scm", "alice", json=body)
    assert status == 400, answer
    assert "committish" in answer["error"] and "\n" not in answer["error"]
    assert await api.count("builds") == 0


async def test_git_is_never_handed_an_option_where_it_expects_a_commit(tmp_path: Path) -> None:
    """Even past the API's check, checkout refuses a committish that starts with '-'."""
    with pytest.raises(BadRequest, match="committish"):
        await checkout("https://git.example.org/pkg.git", "--help", tmp_path / "tree")
    assert not (tmp_path / "tree").exists()


@pytest.mark.parametrize("option", ["with_build_id", "after_build_id"])
async def test_a_batch_cannot_reach_into_another_users_project(
    api: Api, tmp_path: Path, make_srpm: Callable[..., Path], option: str
) -> None:
    assert (await create(api, "alice", "alice", "victim"))[0] == 200
    assert (await create(api, "bob", "bob", "mine"))[0] == 200
    srpm = make_srpm("kopers-batch", "1")
    status, victim = await api.upload(
        "alice", srpm, {"ownername": "alice", "projectname": "victim", "chroots": [CHROOT]}
    )
    assert status == 200, victim
    before = await api.call("GET", f"/api_3/build/{victim['id']}")

    options = {"ownername": "bob", "projectname": "mine", "chroots": [CHROOT]}
    status, answer = await api.upload("bob", srpm, options | {option: victim["id"]})
    assert status == 400, answer
    assert f"build {victim['id']}" in answer["error"] and "alice/victim" in answer["error"]
    assert await api.count("builds") == 1
    assert await api.count("task_deps") == 0
    assert await api.call("GET", f"/api_3/build/{victim['id']}") == before

    # Inside one's own project a batch still works, and so does a missing build's 4xx.
    status, own = await api.upload(
        "alice",
        srpm,
        {"ownername": "alice", "projectname": "victim", "chroots": [CHROOT], option: victim["id"]},
    )
    assert status == 200, own
    status, answer = await api.upload("bob", srpm, options | {option: 999999})
    assert status in (400, 404) and "999999" in answer["error"], answer


@pytest.mark.parametrize(
    "url",
    ["http://" + "a" * 64 + ".example.com/x.src.rpm", "http://a..b.example.com/x.src.rpm"],
)
async def test_a_url_whose_host_is_no_name_ends_the_source_step(
    api: Api, tmp_path: Path, url: str
) -> None:
    """A host name the resolver cannot even encode fails the step; it does not hang it."""
    assert (await create(api, "alice", "alice", "tools"))[0] == 200
    body = {"ownername": "alice", "projectname": "tools", "chroots": [CHROOT], "pkgs": [url]}
    status, answer = await api.call("POST", "/api_3/build/create/url", "alice", json=body)
    assert status == 200, answer
    build_id = int(answer["items"][0]["id"])
    k = api.kopers
    runner = Runner(k.config, k.paths, k.store, k.hub, k.publisher, FakeVmPool(tmp_path))  # type: ignore[arg-type]
    assert await runner.run(TaskKey(build_id, SOURCE)) == BuildState.FAILED
    build = await k.store.get_build(build_id)
    assert build.state.finished, build.state
    assert (build.tasks[0].reason or "").startswith(f"source import failed: cannot fetch {url}")


def test_a_link_in_a_checkout_cannot_lead_the_upload_out_of_it(tmp_path: Path) -> None:
    """`root -> /` in a repository would make any host directory the SRPM's sources."""
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "ok.spec").write_text("Name: ok\n")
    (tree / "root").symlink_to("/")
    (tree / "pkg" / "outside.spec").symlink_to("/etc/hostname")
    (tree / "inner").symlink_to("pkg")
    host_dir = str(tmp_path.relative_to("/"))
    for subdirectory, spec in (
        (f"root/{host_dir}", ""),
        ("root/etc", "hostname"),
        ("pkg", "outside.spec"),
        ("", "root/etc/hostname"),
    ):
        with pytest.raises(BuildFailed, match="leads out of") as caught:
            locate_spec(tree, subdirectory, spec)
        assert "etc" not in caught.value.message and host_dir not in caught.value.message
    # A link that stays inside the checkout is fine.
    sources, spec_path = locate_spec(tree, "inner", "ok.spec")
    assert sources == (tree / "pkg").resolve() and spec_path.name == "ok.spec"
