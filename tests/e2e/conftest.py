"""End-to-end fixtures: one real Kopers server for the session.

One server (and so one embedded Postgres and one data directory) serves the
whole e2e session; the builder template image is the shared cached one, so
only the builds themselves boot VMs.

Each test's builder VM boots (its fixtures' included) are counted from
libvirt's domain logs, for the domains of the servers started in this
process, and the boot-heaviest files and tests are listed at the end of the
run: boots are what an e2e run's time goes to on a slow machine.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Generator, Iterator

import pytest

from kopers.vm.domain import DOMAIN_PREFIX
from tests import vmboots
from tests.conftest import service_dir
from tests.e2e.server import STARTED_PREFIXES, WEBROOT_HOST, Server, keep_log
from tests.webroot import WebRoot

_BEFORE = pytest.StashKey[dict[str, int]]()
_BOOTS_KEY = "vm_boots"
_boots_by_test: Counter[str] = Counter()


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
            keep_log(srv.log_path, tmp_path_factory, "e2e-server")


@pytest.fixture(scope="session")
def webroot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRoot]:
    """A plain HTTP server, on the one loopback address Kopers may fetch from."""
    web = WebRoot(tmp_path_factory.mktemp("webroot"), WEBROOT_HOST)
    yield web
    web.close()


# Counting boots: the worker that runs a test counts, the process that reports sums.


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_BEFORE] = vmboots.snapshot()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    before = item.stash.get(_BEFORE, None)
    if call.when == "teardown" and before is not None:
        boots = _own_boots_since(before)
        if boots:
            report.user_properties.append((_BOOTS_KEY, boots))
    return report


def _own_boots_since(before: dict[str, int]) -> int:
    """Boots since `before` of this process's servers' domains (not another worker's)."""
    prefixes = tuple(STARTED_PREFIXES)
    count = 0
    for path in vmboots.QEMU_LOGS.glob(f"{DOMAIN_PREFIX}*.log"):
        if prefixes and path.name.startswith(prefixes):
            with open(path, "rb") as handle:
                handle.seek(before.get(path.name, 0))
                count += handle.read().count(vmboots.START_LINE)
    return count


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == _BOOTS_KEY and isinstance(value, int):
            _boots_by_test[report.nodeid] += value


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _boots_by_test:
        return
    by_file: Counter[str] = Counter()
    for nodeid, boots in _boots_by_test.items():
        by_file[nodeid.partition("::")[0]] += boots
    write = terminalreporter.write_line
    terminalreporter.section("builder VM boots of the e2e servers")
    for path, boots in by_file.most_common():
        write(f"{boots:4d}  {path}")
    write(f"{sum(by_file.values()):4d}  in all")
    write("boot-heaviest tests:")
    for nodeid, boots in _boots_by_test.most_common(10):
        write(f"{boots:4d}  {nodeid}")
