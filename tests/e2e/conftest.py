"""End-to-end fixtures: one real Kopers server for the session.

One server (and so one embedded Postgres and one data directory) serves the
whole e2e session; the builder template image is the shared cached one, so
only the builds themselves boot VMs.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.server import REPO, VENV_BIN, Server, free_port, virsh_domain_names
from tests.e2e.webroot import WebRoot


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    for tool in ("virsh", "rpm", "dnf", "wget"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; run scripts/test.sh")
    base = tmp_path_factory.mktemp("kopers-e2e")
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "KOPERS_CONFIG": str(REPO / "kopers.toml"),
            "KOPERS_DATA_DIR": str(base / "data"),
            "KOPERS_LISTEN": f"127.0.0.1:{port}",
            "KOPERS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
        }
    )
    srv = Server(data_dir=base / "data", port=port, env=env, log_path=base / "server.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        print(f"\nserver log: {srv.log_path}", file=sys.stderr)


@pytest.fixture(scope="session")
def virsh_domains() -> Callable[[], list[str]]:
    return virsh_domain_names


@pytest.fixture(scope="session")
def webroot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRoot]:
    """A plain HTTP server on 127.0.0.1 for SRPM-by-URL builds."""
    web = WebRoot(tmp_path_factory.mktemp("webroot"))
    yield web
    web.close()
