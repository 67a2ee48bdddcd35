"""End-to-end fixtures: one real Kopers server for the session.

One server (and so one embedded Postgres and one data directory) serves the
whole e2e session; the builder template image is the shared cached one, so
only the builds themselves boot VMs.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import service_dir
from tests.e2e.server import WEBROOT_HOST, Server
from tests.webroot import WebRoot


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    for tool in ("virsh", "rpm", "dnf", "wget"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; run scripts/test.sh")
    with service_dir("kopers-e2e-") as base:
        srv = Server.create(base)
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()
            kept = tmp_path_factory.mktemp("e2e-server") / "server.log"
            shutil.copy2(srv.log_path, kept)
            print(f"\nserver log: {kept}", file=sys.stderr)


@pytest.fixture(scope="session")
def webroot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRoot]:
    """A plain HTTP server, on the one loopback address Kopers may fetch from."""
    web = WebRoot(tmp_path_factory.mktemp("webroot"), WEBROOT_HOST)
    yield web
    web.close()
