"""Kopers installed from its wheel, with no checkout around it.

A wheel is built from the repository (into a temporary folder) and installed
into a fresh virtualenv. That venv's `kopers serve` then runs from a folder
outside the checkout, with no kopers.toml and nothing of the checkout on
PYTHONPATH: the SQL, the pages' static files and the builder templates must
all come from the installed package. The template's recipe hash must be the
checkout's, so the shared cached image serves the installed server too. One
build of a trivial SRPM through copr-cli: one VM boot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kopers.vm.template import recipe_hash
from tests.conftest import service_dir
from tests.e2e.server import CHROOT, REPO, Server, keep_log
from tests.e2e.vmhelp import build_id_of

pytestmark = pytest.mark.e2e
USER, PROJECT = "wilma", "wheel"
RESOURCE_DIRS = ("sql", "static", "vm_templates")
# What the installed interpreter reports about the kopers it imports.
PROBE = """
import json, kopers, kopers.resources as r
from kopers.vm.template import default_templates_root, recipe_hash
root = default_templates_root()
print(json.dumps({
    "file": kopers.__file__,
    "root": str(r.root()),
    "dirs": {k: str(v) for k, v in r.directories().items()},
    "hashes": {d.name: recipe_hash(d) for d in sorted(root.iterdir()) if d.is_dir()},
}))
"""


@dataclass(frozen=True, slots=True)
class Install:
    wheel: Path
    venv: Path
    base: Path  # outside the checkout: the venv, the server's data and working directory


def run(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def checkout_files(top: str) -> list[str]:
    """The files below a top-level folder of the checkout, as paths relative to the repository."""
    files = []
    for root, dirs, names in os.walk(REPO / top):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        files += [(Path(root) / n).relative_to(REPO).as_posix() for n in names]
    return sorted(files)


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    # Not below pytest's temporary root: the embedded Postgres runs from the venv.
    with service_dir("kopers-wheel-") as base:
        dist = tmp_path_factory.mktemp("dist")
        untouched = {name: (REPO / name).exists() for name in ("build", "dist")}
        started = time.monotonic()
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO, cwd=dist)
        built = time.monotonic()
        # Building the wheel writes nothing into the checkout.
        assert {name: (REPO / name).exists() for name in untouched} == untouched
        [wheel] = dist.glob("kopers-*.whl")
        venv = base / "venv"
        run(sys.executable, "-m", "venv", venv, cwd=base)
        run(venv / "bin" / "pip", "install", "-q", wheel, cwd=base)
        print(
            f"wheel built in {built - started:.1f} s, "
            f"installed with its dependencies in {time.monotonic() - built:.1f} s",
            file=sys.stderr,
        )
        yield Install(wheel=wheel, venv=venv, base=base)


@pytest.fixture(scope="module")
def installed(install: Install, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server.create(install.base, bin_dir=install.venv / "bin", checkout=False)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        keep_log(srv.log_path, tmp_path_factory, "wheel-server")


def test_the_wheel_carries_every_file_of_sql_static_and_vm_templates(install: Install) -> None:
    names = set(zipfile.ZipFile(install.wheel).namelist())
    for top in RESOURCE_DIRS:
        files = checkout_files(top)
        assert files, top
        missing = [f for f in files if f"kopers/_data/{f}" not in names]
        assert not missing, f"not in the wheel: {missing}"
    pages = checkout_files("kopers/templates")
    assert pages and not [f for f in pages if f not in names]


def test_the_installed_kopers_finds_its_own_copies_with_the_checkouts_recipe_hashes(
    install: Install,
) -> None:
    site = next((install.venv / "lib").glob("python3*/site-packages"))
    probe = subprocess.run(
        [str(install.venv / "bin" / "python"), "-c", PROBE],
        cwd=install.base,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(probe.stdout)
    assert Path(found["file"]) == site / "kopers" / "__init__.py"
    assert Path(found["root"]) == site / "kopers" / "_data"
    for path in found["dirs"].values():
        assert Path(path).is_dir() and Path(path).is_relative_to(site), path
    checkout = {
        d.name: recipe_hash(d) for d in sorted((REPO / "vm_templates").iterdir()) if d.is_dir()
    }
    assert found["hashes"] == checkout


def test_the_server_runs_the_venvs_kopers_outside_the_checkout(
    install: Install, installed: Server
) -> None:
    assert installed.proc is not None
    proc = Path("/proc") / str(installed.proc.pid)
    argv = (proc / "cmdline").read_bytes().decode().split("\0")
    assert Path(argv[0]).parent == install.venv / "bin"
    assert argv[1:3] == [str(install.venv / "bin" / "kopers"), "serve"]
    environ = dict(
        line.split("=", 1) for line in (proc / "environ").read_bytes().decode().split("\0") if line
    )
    assert "PYTHONPATH" not in environ and "KOPERS_CONFIG" not in environ
    cwd = (proc / "cwd").resolve()
    assert not cwd.is_relative_to(REPO) and not (cwd / "kopers.toml").exists()
    # The same interpreter, environment and folder import the venv's kopers.
    probe = subprocess.run(
        [str(install.venv / "bin" / "python"), "-c", "import kopers; print(kopers.__file__)"],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = Path(probe.stdout.strip())
    assert imported.is_relative_to(install.venv) and not imported.is_relative_to(REPO)


def test_the_home_page_and_its_static_files(installed: Server) -> None:
    with urllib.request.urlopen(f"{installed.url}/", timeout=30) as resp:
        assert resp.status == 200
        page = resp.read().decode()
    linked = set(re.findall(r'(?:href|src)="/static/([^"?#]+)"', page))
    assert "kopers.css" in linked
    served = sorted(p.name for p in (REPO / "static").iterdir() if p.is_file())
    for name in served:
        with urllib.request.urlopen(f"{installed.url}/static/{name}", timeout=30) as resp:
            assert resp.status == 200
            assert resp.read() == (REPO / "static" / name).read_bytes(), name
    assert linked <= set(served)


def test_a_build_succeeds_on_the_installed_server(
    installed: Server, make_srpm: Callable[..., Path]
) -> None:
    installed.user(USER)
    r = installed.copr(USER, "create", PROJECT, "--chroot", CHROOT)
    assert r.returncode == 0, r.stderr
    r = installed.copr(USER, "build", PROJECT, str(make_srpm("kopers-wheeled", "1.0")))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "succeeded" in r.stdout
    build_id = build_id_of(r.stdout)
    packages = installed.get(f"/api_3/build/built-packages/{build_id}")[CHROOT]["packages"]
    assert {p["name"] for p in packages} == {"kopers-wheeled"}
    assert installed.wait_no_vms()
