"""/api/docs in a real browser: headless Chromium shows every operation of the live app.

Chromium's DOM after loading (`--dump-dom`) must hold one section per
operation of /api/openapi.json, with its method and path, under the page's
title: the HTML is whole enough for a browser to build the same page the
server meant, with nothing fetched from elsewhere. Without /usr/bin/chromium
the test is skipped, except under CI, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.integration.conftest import Api
from tests.integration.test_openapi import Sections, documented, fetch_document

pytestmark = pytest.mark.integration
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> Path:
    if CHROMIUM.is_file():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing, and CI needs it (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is not installed")


async def dump_dom(url: str, profile: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(chromium()),
        *FLAGS,
        f"--user-data-dir={profile}",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 180)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_chromium_renders_every_operation(api: Api, tmp_path: Path) -> None:
    doc = await fetch_document(api)
    dom = await dump_dom(str(api.client.make_url("/api/docs")), tmp_path / "profile")
    assert "<title>Kopers API</title>" in dom
    parser = Sections()
    parser.feed(dom)
    assert set(parser.sections) == documented(doc)
    for (method, path), chunks in parser.sections.items():
        heading = " ".join(" ".join(chunks).split())
        assert heading.startswith(f"{method} {path}"), heading[:200]
