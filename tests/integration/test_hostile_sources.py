"""SRPMs whose header fields are hostile: refused at the gate, nothing stored.

rpm reports a header Name such as `../00000057/hello` as it is, and Kopers
names stored sources after the header. Every path that reads an SRPM (upload,
URL import, the SRPM made from git, and the built results) goes through
`rpmfile.read_rpm`, whose field validator is what these tests aim at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kopers.errors import BadRequest
from kopers.worker.importer import fetch_srpm
from kopers.worker.scm import checkout
from tests.integration.conftest import CHROOT, Api, create
from tests.rpms import srpm_with_header_name
from tests.webroot import WebRoot

pytestmark = pytest.mark.integration
HOSTILE = ["../00000057/hello", "../../../../x", ".kopers", "-rf"]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebRoot]:
    (tmp_path / "web").mkdir()
    root = WebRoot(tmp_path / "web")
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
        await fetch_srpm(url, dest, 1 << 20)
    assert files_under(tmp_path / "sources") == []


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
