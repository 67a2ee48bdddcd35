"""Regenerate, retention settings, quotas and temporary projects through the API.

Real Postgres, gpg and repodata; no VMs: results are published by the real
publisher from RPMs built on the host, as the runner would.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import createrepo_c as cr
import pytest

from tests.integration.conftest import CHROOT, Api, create

pytestmark = pytest.mark.integration


def binary_rpm(srpm: Path, out: Path) -> Path:
    subprocess.run(
        ["rpmbuild", "--rebuild", "--define", f"_topdir {out}", str(srpm)],
        check=True,
        capture_output=True,
    )
    return next((out / "RPMS").rglob("*.rpm"))


def names_in_repo(repo: Path) -> list[str]:
    md = cr.Repomd(str(repo / "repodata" / "repomd.xml"))
    primary = next(r for r in md.records if r.type == "primary")
    found: list[str] = []
    cr.xml_parse_primary(
        str(repo / primary.location_href),
        pkgcb=lambda p: found.append(p.name) or True,
        do_files=False,
    )
    return sorted(found)


async def test_settings_quota_retention_and_regenerate(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    pub = api.kopers.publisher
    for build_id in (1, 2, 3):
        rpm = binary_rpm(make_srpm("kept", f"1.{build_id}"), tmp_path / str(build_id))
        await pub.publish("alice", "p", CHROOT, build_id, "kept", [rpm])
    repo = api.kopers.paths.results / "alice" / "p" / CHROOT

    status, settings = await api.call("GET", "/api/projects/alice/p")
    assert status == 200 and settings["storage_bytes"] > 3 * 1000
    assert settings["keep_builds"] is None

    status, body = await api.call("PATCH", "/api/projects/alice/p", "bob", json={"keep_builds": 1})
    assert status == 403
    status, body = await api.call(
        "PATCH", "/api/projects/alice/p", "alice", json={"keep_builds": 0}
    )
    assert status == 400 and "positive" in body["error"]
    status, settings = await api.call(
        "PATCH", "/api/projects/alice/p", "alice", json={"keep_builds": 1}
    )
    assert status == 200 and settings["keep_builds"] == 1
    assert sorted(p.name for p in repo.iterdir() if not p.name.startswith(".")) == [
        "00000003-kept",
        "repodata",
    ]

    # Regenerate from disk after the metadata went missing.
    for f in (repo / "repodata").iterdir():
        f.unlink()
    status, body = await api.call("PUT", "/api_3/project/regenerate-repos/alice/p", "alice")
    assert status == 200 and body["full_name"] == "alice/p"
    assert names_in_repo(repo) == ["kept"]

    # A quota the project already exceeds refuses new builds at once, with a clear error.
    big = repo / "00000003-kept" / "big.bin"
    big.write_bytes(b"\0" * (2 << 20))
    await pub.regenerate("alice", "p", CHROOT)  # the publisher learns of the change
    status, settings = await api.call(
        "PATCH", "/api/projects/alice/p", "alice", json={"quota_mib": 1}
    )
    assert status == 200 and settings["quota_mib"] == 1
    opts = {"ownername": "alice", "projectname": "p", "chroots": None}
    status, body = await api.upload("alice", make_srpm("refused", "1"), opts)
    assert status == 400 and "over its storage quota" in body["error"]
    status, body = await api.call("POST", "/api_3/build/check-before-build", "alice", json=opts)
    assert status == 400 and "quota" in body["error"]
    assert await api.count("builds") == 0


async def test_temporary_project_is_deleted_when_it_expires(api: Api) -> None:
    body = {"name": "tmp", "chroots": [CHROOT], "delete_after_days": "2"}
    status, _ = await api.call("POST", "/api_3/project/add/alice", "alice", json=body)
    assert status == 200
    status, settings = await api.call("GET", "/api/projects/alice/tmp")
    assert settings["delete_after"] is not None
    assert await api.kopers.reap_expired_once() == []
    await api.kopers.store.pool.execute(
        "UPDATE projects SET delete_after = now() - interval '1 minute' WHERE name = 'tmp'"
    )
    assert await api.kopers.reap_expired_once() == ["alice/tmp"]
    status, _ = await api.call("GET", "/api_3/project?ownername=alice&projectname=tmp")
    assert status == 404
    assert not (api.kopers.paths.results / "alice" / "tmp").exists()


async def test_project_default_timeout_applies_unless_the_build_overrides_it(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    status, body = await api.call(
        "PATCH", "/api/projects/alice/p", "alice", json={"build_timeout": 5}
    )
    assert status == 400 and "between 60" in body["error"]
    status, settings = await api.call(
        "PATCH", "/api/projects/alice/p", "alice", json={"build_timeout": "900"}
    )
    assert status == 200 and settings["build_timeout"] == 900
    opts = {"ownername": "alice", "projectname": "p", "chroots": None}
    _, first = await api.upload("alice", make_srpm("t1", "1"), opts)
    _, second = await api.upload("alice", make_srpm("t2", "1"), {**opts, "timeout": "3600"})
    assert (await api.kopers.store.get_build(first["id"])).timeout == 900
    assert (await api.kopers.store.get_build(second["id"])).timeout == 3600
