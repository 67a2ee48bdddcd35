"""Kopers' own /results/ answers only what the publisher put there as plain files.

Hidden names (a publisher's index and temporary files) and symbolic links are
no part of the published tree, even when a link stays inside it: nothing is
served through them, and listings do not show them.
"""

from __future__ import annotations

import os

import pytest

from tests.integration.conftest import Api

pytestmark = pytest.mark.integration


def tree(api: Api) -> None:
    root = api.kopers.paths.results
    chroot = root / "alice" / "p" / "debian-12-x86_64"
    (chroot / "00000001-hello").mkdir(parents=True)
    (chroot / "00000001-hello" / "hello-1.0-1.noarch.rpm").write_bytes(b"rpm")
    (chroot / ".kopers-index").mkdir()
    (chroot / ".kopers-index" / "state.json").write_text("{}")
    (chroot / ".repodata.tmp").write_text("half")
    os.symlink("00000001-hello/hello-1.0-1.noarch.rpm", chroot / "alias.rpm")
    os.symlink("00000001-hello", chroot / "alias-dir")


async def test_plain_files_are_served(api: Api) -> None:
    tree(api)
    status, body = await api.call(
        "GET", "/results/alice/p/debian-12-x86_64/00000001-hello/hello-1.0-1.noarch.rpm"
    )
    assert (status, body) == (200, "rpm")


@pytest.mark.parametrize(
    "path",
    [
        ".kopers-index/state.json",
        ".kopers-index/",
        ".repodata.tmp",
        "alias.rpm",
        "alias-dir/",
        "alias-dir/hello-1.0-1.noarch.rpm",
    ],
)
async def test_hidden_names_and_links_are_not_served(api: Api, path: str) -> None:
    tree(api)
    status, _ = await api.call("GET", f"/results/alice/p/debian-12-x86_64/{path}")
    assert status == 404


async def test_listings_leave_out_hidden_names_and_links(api: Api) -> None:
    tree(api)
    status, page = await api.call("GET", "/results/alice/p/debian-12-x86_64/")
    assert status == 200
    assert "00000001-hello/" in page
    for name in (".kopers-index", ".repodata.tmp", "alias.rpm", "alias-dir"):
        assert name not in page
