"""Shared fixtures: a real Postgres, source RPMs made with rpmbuild, a Kopers config."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

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


# An external PostgreSQL server (Debian's, started by scripts/test.sh) instead
# of the embedded one: its superuser's DSN, and the plain role that owns each
# test's database, as "name:password". Kopers then runs as a database owner
# without superuser rights, as it does on an operator's server.
EXTERNAL_PG = os.environ.get("KOPERS_TEST_PG_DSN", "")
EXTERNAL_PG_OWNER = os.environ.get("KOPERS_TEST_PG_OWNER", "")
# Only the tests that reach Postgres (through the pg_server fixture): for the
# second pass on another server, since the rest do not depend on which server
# it is and ran in the first pass.
PG_ONLY = os.environ.get("KOPERS_TEST_PG_ONLY") == "1"


@dataclass(frozen=True)
class PgServer:
    admin_dsn: str
    owner: str  # "role:password" owning each test database; empty: the admin

    def database_dsn(self, name: str) -> str:
        """The DSN of database `name` on this server, as its owner."""
        parts = urlsplit(self.admin_dsn)
        netloc = parts.netloc
        if self.owner:
            role, _, password = self.owner.partition(":")
            netloc = f"{quote(role)}:{quote(password)}@{netloc.rpartition('@')[2]}"
        return urlunsplit(parts._replace(netloc=netloc, path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL for the whole session: the external one if given, else embedded."""
    if EXTERNAL_PG:
        yield PgServer(EXTERNAL_PG, EXTERNAL_PG_OWNER)
        return
    with service_dir("kopers-test-pg-") as base:
        uri, server = embedded_dsn(base)
        yield PgServer(uri, "")
        server.cleanup()


@contextlib.asynccontextmanager
async def fresh_database(pg_server: PgServer) -> AsyncIterator[str]:
    """A new, empty database on `pg_server`, dropped on exit; yields its DSN."""
    name = "t_" + secrets.token_hex(6)
    admin = await asyncpg.connect(pg_server.admin_dsn)
    owner = pg_server.owner.partition(":")[0]
    await admin.execute(f"CREATE DATABASE {name}" + (f" OWNER {owner}" if owner else ""))
    try:
        yield pg_server.database_dsn(name)
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
async def dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    async with fresh_database(pg_server) as url:
        yield url


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not PG_ONLY:
        return
    keep, drop = [], []
    for item in items:
        (keep if "pg_server" in getattr(item, "fixturenames", ()) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    before = terminalreporter.config.stash.get(_BOOTS, None)
    if before is not None:
        count = vmboots.boots_since(before)
        terminalreporter.write_line(f"builder VM boots in this run: {count}")
