"""Errors say what is wrong, not where the server keeps things.

A client learns nothing about the host's file system from an error: not
the data directory, not the spool a rejected upload went to.
"""

from __future__ import annotations

from pathlib import Path

from kopers.redact import scrub
from tests.integration.conftest import Api, create

RPM_LEAD = b"\xed\xab\xee\xdb"


async def test_a_truncated_rpm_is_refused_without_naming_the_spool(
    api: Api, tmp_path: Path
) -> None:
    assert (await create(api, "alice", "alice", "demo"))[0] == 200
    broken = tmp_path / "broken-1.0-1.src.rpm"
    broken.write_bytes(RPM_LEAD + b"\x03\x00" + b"\x00" * 90)  # a lead, then nothing
    status, body = await api.upload("alice", broken, {"ownername": "alice", "projectname": "demo"})
    assert status == 400
    error = body["error"]
    assert "broken-1.0-1.src.rpm" in error  # it still says which file
    data_dir = str(api.kopers.config.data_dir)
    assert data_dir not in error
    assert "/incoming/" not in error
    assert await api.count("builds") == 0


def test_scrub_replaces_host_directories_and_keeps_request_paths() -> None:
    roots = (Path("/var/lib/kopers"), Path("/root/.cache/kopers"))
    message = "package index of /var/lib/kopers/results/a/b: cannot read /root/.cache/kopers/x"
    assert scrub(message, roots) == "package index of <data>/results/a/b: cannot read <data>/x"
    assert scrub("see http://h/var/lib/kopersx/", roots) == "see http://h/var/lib/kopersx/"
    said = "POST /api_3/package/add is not supported by this Kopers server"
    assert scrub(said, roots) == said
