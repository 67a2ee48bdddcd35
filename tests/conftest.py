"""Shared fixtures: a real Postgres, source RPMs made with rpmbuild, a Kopers config."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from kopers.db.database import embedded_dsn
from tests import vmboots
from tests.rpms import rpmbuild

REPO = Path(__file__).resolve().parents[1]
_BOOTS = pytest.StashKey[dict[str, int]]()


@contextlib.contextmanager
def service_dir(prefix: str) -> Iterator[Path]:
    """A scratch directory for long-running services (Postgres, libvirt's qemu).

    Not below pytest's own temporary root: each pytest session resets that
    root to mode 700, which cuts off the service accounts of any other session
    still running on the machine.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One embedded PostgreSQL for the whole session; yields its admin DSN."""
    with service_dir("kopers-test-pg-") as base:
        uri, server = embedded_dsn(base)
        yield uri
        server.cleanup()


@pytest.fixture
async def dsn(pg_server: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    name = "t_" + secrets.token_hex(6)
    admin = await asyncpg.connect(pg_server)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield pg_server.replace("/postgres?", f"/{name}?")
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


SPEC = """\
Name:           {name}
Version:        {version}
Release:        1%{{?dist}}
Summary:        Test package {name}
License:        MIT
BuildArch:      {arch}
Vendor:         Somebody Else
{requires}

%description
A package made by the Kopers tests.

%prep

%build
{build}

%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo "{name} {version}" > %{{buildroot}}/usr/share/{name}/hello.txt
{install}

%files
/usr/share/{name}
{files}
"""


@pytest.fixture(scope="session")
def make_srpm(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build a source RPM with rpmbuild -bs from a generated spec."""
    if shutil.which("rpmbuild") is None:
        pytest.skip("rpmbuild is not installed")
    base = tmp_path_factory.mktemp("srpms")

    def make(
        name: str = "hello",
        version: str = "1.0",
        *,
        build: str = "echo building",
        install: str = "",
        files: str = "",
        requires: str = "",
        arch: str = "noarch",
    ) -> Path:
        spec = SPEC.format(
            name=name,
            version=version,
            build=textwrap.dedent(build),
            install=install,
            files=files,
            requires=requires,
            arch=arch,
        )
        return rpmbuild(spec, base / f"{name}-{version}-{secrets.token_hex(3)}")[-1]

    return make


def pytest_configure(config: pytest.Config) -> None:
    # Only the process that reports (not an xdist worker) counts the boots.
    if not hasattr(config, "workerinput"):
        config.stash[_BOOTS] = vmboots.snapshot()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    before = terminalreporter.config.stash.get(_BOOTS, None)
    if before is not None:
        count = vmboots.boots_since(before)
        terminalreporter.write_line(f"builder VM boots in this run: {count}")
