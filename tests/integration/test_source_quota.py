"""Stored source packages count toward a project's quota and go with their builds.

Through the real API on a real Postgres, with no VMs: a build's uploaded SRPM
is kept under the data directory's sources/, outside the results tree.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kopers.builds import sweep_orphan_sources
from tests.integration.conftest import Api, create
from tests.rpms import rpmbuild

pytestmark = pytest.mark.integration
OPTS = {"ownername": "alice", "projectname": "p", "chroots": None}


def big_srpm(workdir: Path, name: str, kib: int) -> Path:
    """A source RPM carrying `kib` KiB of random (incompressible) source."""
    top = workdir / name
    (top / "SOURCES").mkdir(parents=True)
    (top / "SOURCES" / "blob.bin").write_bytes(os.urandom(kib << 10))
    spec = (
        f"Name: {name}\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\n"
        "BuildArch: noarch\nSource0: blob.bin\n%description\nd\n%files\n"
    )
    return rpmbuild(spec, top)[-1]


async def upload(api: Api, srpm: Path) -> int:
    status, body = await api.upload("alice", srpm, OPTS)
    assert status == 200, body
    return int(body["id"])


async def cancel_and_delete(api: Api, build_id: int) -> None:
    assert (await api.call("PUT", f"/api_3/build/cancel/{build_id}", "alice"))[0] == 200
    status, body = await api.call(
        "DELETE", "/api_3/build/delete/list", "alice", json={"builds": [build_id]}
    )
    assert status == 200 and body == {"builds": [build_id]}


async def test_sources_count_toward_the_quota_and_leave_with_their_build(
    api: Api, tmp_path: Path
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    srpm = big_srpm(tmp_path, "first", 600)
    first = await upload(api, srpm)
    stored = api.kopers.paths.source_dir(first) / "first-1-1.src.rpm"
    assert stored.stat().st_size == srpm.stat().st_size
    project = await api.kopers.store.get_project("alice", "p")
    usage = await api.kopers.submissions.usage(project)
    assert usage.sources == stored.stat().st_size
    assert usage.total == usage.results + usage.sources
    status, settings = await api.call("GET", "/api/projects/alice/p")
    assert status == 200 and settings["storage_bytes"] == usage.total

    status, _ = await api.call("PATCH", "/api/projects/alice/p", "alice", json={"quota_mib": 1})
    assert status == 200
    status, ok = await api.call("POST", "/api_3/build/check-before-build", "alice", json=OPTS)
    assert status == 200, ok  # there is room left, for a small package
    status, body = await api.upload("alice", big_srpm(tmp_path, "second", 600), OPTS)
    assert status == 400
    assert "would take project alice/p over its storage quota" in body["error"]
    assert await api.count("builds") == 1
    assert list(api.kopers.paths.incoming.iterdir()) == []

    await cancel_and_delete(api, first)
    assert not api.kopers.paths.source_dir(first).exists()
    assert (await api.kopers.submissions.usage(project)).sources == 0
    second = await upload(api, big_srpm(tmp_path, "third", 600))
    assert api.kopers.paths.source_dir(second).is_dir()


async def test_a_project_at_its_quota_takes_no_build_of_unknown_size(
    api: Api, tmp_path: Path
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    await upload(api, big_srpm(tmp_path, "large", 1100))
    status, _ = await api.call("PATCH", "/api/projects/alice/p", "alice", json={"quota_mib": 1})
    assert status == 200
    status, body = await api.call("POST", "/api_3/build/check-before-build", "alice", json=OPTS)
    assert status == 400 and "over its storage quota" in body["error"]
    status, body = await api.call(
        "POST",
        "/api_3/build/create/url",
        "alice",
        json={**OPTS, "pkgs": ["https://example.org/x.src.rpm"]},
    )
    assert status == 400 and "over its storage quota" in body["error"]
    assert await api.count("builds") == 1


async def test_deleting_a_project_removes_its_builds_sources(api: Api, tmp_path: Path) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    assert (await create(api, "alice", "alice", "other"))[0] == 200
    doomed = [await upload(api, big_srpm(tmp_path, f"d{i}", 4)) for i in range(2)]
    status, body = await api.upload(
        "alice", big_srpm(tmp_path, "kept", 4), {**OPTS, "projectname": "other"}
    )
    assert status == 200, body
    status, _ = await api.call("DELETE", "/api_3/project/delete/alice/p", "alice")
    assert status == 200
    for build_id in doomed:
        assert not api.kopers.paths.source_dir(build_id).exists()
    assert api.kopers.paths.source_dir(body["id"]).is_dir()


async def test_sources_no_build_owns_are_swept(api: Api, tmp_path: Path) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    live = await upload(api, big_srpm(tmp_path, "live", 4))
    paths = api.kopers.paths
    orphan = paths.source_dir(live + 100)
    orphan.mkdir()
    (orphan / "gone-1-1.src.rpm").write_bytes(b"x")
    stranger = paths.sources / "notes"
    stranger.mkdir()
    assert await sweep_orphan_sources(api.kopers.store, paths) == [live + 100]
    assert not orphan.exists()
    assert paths.source_dir(live).is_dir() and stranger.is_dir()
    assert await sweep_orphan_sources(api.kopers.store, paths) == []


async def test_a_resubmit_counts_like_a_new_build(api: Api, tmp_path: Path) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    status, body = await api.call(
        "POST",
        "/api_3/build/create/url",
        "alice",
        json={**OPTS, "pkgs": ["https://example.org/x.src.rpm"]},
    )
    assert status == 200, body
    by_url = int(body["items"][0]["id"])
    scm = {**OPTS, "clone_url": "https://example.org/pkg.git", "committish": "v1"}
    status, body = await api.call("POST", "/api_3/build/create/scm", "alice", json=scm)
    assert status == 200, body
    by_git = int(body["id"])
    for build_id in (by_url, by_git):
        assert (await api.call("PUT", f"/api_3/build/cancel/{build_id}", "alice"))[0] == 200

    # A resubmitted git build is a git build again, with the same source.
    status, body = await api.call("POST", f"/api/builds/{by_git}/resubmit", "alice")
    assert status == 200, body
    again = await api.kopers.store.get_build(int(body["id"]))
    assert again.source_type == "scm" and again.source["clone_url"] == scm["clone_url"]
    assert again.source["committish"] == "v1"

    await upload(api, big_srpm(tmp_path, "large", 1100))
    status, _ = await api.call("PATCH", "/api/projects/alice/p", "alice", json={"quota_mib": 1})
    assert status == 200
    before = await api.count("builds")
    status, body = await api.call("POST", f"/api/builds/{by_url}/resubmit", "alice")
    assert status == 400 and "over its storage quota" in body["error"]
    assert await api.count("builds") == before
