"""Chain builds end to end: B builds against A's packages, fetched from the project repository.

Real VMs, real rpmbuild and dnf builddep inside them, real signing and
repodata, and dnf on the host to install the result. Package B links against
a shared library from package A's -devel subpackage, so B's build needs A
published first, and the installed B really runs A's code.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dnfroot import dnf
from tests.e2e.server import CHROOT, WEBROOT_HOST, Server
from tests.rpms import rpmbuild
from tests.webroot import WebRoot

pytestmark = pytest.mark.e2e

LIB_SPEC = """\
%global debug_package %{nil}
Name:           kopers-liba
Version:        1.0
Release:        1%{?dist}
Summary:        A shared library for the chain test
License:        MIT
BuildRequires:  gcc

%description
Says hello.

%package devel
Summary:        Headers of kopers-liba
Requires:       %{name}%{?_isa} = %{version}-%{release}

%description devel
Headers and the link-time library.

%prep

%build
printf 'const char *kopers_a_greeting(void) { return "hello from liba"; }\\n' > liba.c
gcc -shared -fPIC -Wl,-soname,libkopersa.so.1 -o libkopersa.so.1 liba.c

%install
mkdir -p %{buildroot}%{_libdir} %{buildroot}%{_includedir}
install -m 755 libkopersa.so.1 %{buildroot}%{_libdir}/
ln -s libkopersa.so.1 %{buildroot}%{_libdir}/libkopersa.so
printf 'const char *kopers_a_greeting(void);\\n' > %{buildroot}%{_includedir}/kopersa.h

%files
%{_libdir}/libkopersa.so.1

%files devel
%{_includedir}/kopersa.h
%{_libdir}/libkopersa.so
"""

APP_SPEC = """\
%global debug_package %{nil}
Name:           {name}
Version:        1.0
Release:        1%{?dist}
Summary:        A program linked against kopers-liba
License:        MIT
BuildRequires:  gcc
BuildRequires:  kopers-liba-devel

%description
Prints liba's greeting.

%prep

%build
{network_check}
printf '#include <stdio.h>\\n#include <kopersa.h>\\n' > app.c
printf 'int main(void) {{ puts(kopers_a_greeting()); return 0; }}\\n' >> app.c
gcc -o {name} app.c -lkopersa

%install
install -D -m 755 {name} %{buildroot}%{_bindir}/{name}

%files
%{_bindir}/{name}
"""

# A %build step that must find no way out of the VM: neither the host (where
# Kopers listens) nor the outside world. If any connection succeeds, it fails.
NETWORK_CHECK = """\
python3 - <<'PY'
import socket, sys
for host, port in (("10.0.2.2", {port}), ("1.1.1.1", 80), ("10.0.2.3", 53)):
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        print(f"network check: {{host}}:{{port}} unreachable ({{exc}})")
    else:
        sys.exit(f"network check: {{host}}:{{port}} is reachable from the build")
PY
"""


def srpm(spec_text: str, name: str, workdir: Path) -> Path:
    return rpmbuild(spec_text, workdir / name)[-1]


def app_spec(name: str, network_port: int | None = None) -> str:
    check = NETWORK_CHECK.format(port=network_port) if network_port else ""
    return (
        APP_SPEC.replace("{network_check}", check)
        .replace("{name}", name)
        .replace("{{", "{")
        .replace("}}", "}")
    )


@pytest.fixture(scope="module")
def carol(server: Server) -> Iterator[str]:
    server.user("carol")
    r = server.copr("carol", "create", "chain", "--chroot", CHROOT)
    assert r.returncode == 0, r.stderr
    yield "carol"


def task(server: Server, build_id: int) -> dict[str, Any]:
    items: list[dict[str, Any]] = server.get(f"/api_3/build-chroot/list?build_id={build_id}")[
        "items"
    ]
    return items[0]


def test_chain_b_builds_against_a_from_the_project_repo(
    server: Server, carol: str, webroot: WebRoot, tmp_path: Path
) -> None:
    lib = webroot.add(srpm(LIB_SPEC, "kopers-liba", tmp_path))
    app = webroot.add(srpm(app_spec("kopers-app"), "kopers-app", tmp_path))
    answer = server.post(
        carol, "/api/projects/carol/chain/chains", {"builds": [{"url": lib}, {"url": app}]}
    )
    a_id, b_id = (b["id"] for b in answer["builds"])
    a = server.wait_build(a_id)
    b = server.wait_build(b_id)
    assert (a["state"], b["state"]) == ("succeeded", "succeeded"), (a, b)

    # B started only after A ended, i.e. after A's packages were published.
    assert task(server, b_id)["started_on"] >= task(server, a_id)["ended_on"]
    manifest = server.get(f"/api/builds/{b_id}/buildroot")["chroots"][CHROOT]
    assert "kopers-liba-devel-1.0-1.deb12.kopers.x86_64" in manifest
    assert "kopers-liba-1.0-1.deb12.kopers.x86_64" in manifest

    # Install B from the project repository and run it: it prints A's string.
    root = install(server, "carol", "chain", "kopers-app", tmp_path)
    libdir = root / "usr/lib64"
    out = subprocess.run(
        [str(root / "usr/bin/kopers-app")],
        capture_output=True,
        text=True,
        env={**os.environ, "LD_LIBRARY_PATH": str(libdir)},
        check=True,
    )
    assert out.stdout.strip() == "hello from liba"


USER_SPEC = """\
Name:           kopers-app-user
Version:        1.0
Release:        1%{?dist}
Summary:        Keeps what kopers-app printed when it was built
License:        MIT
BuildArch:      noarch
BuildRequires:  kopers-app

%description
Needs kopers-app to build.

%prep

%build
# Debian's loader does not search %{_libdir} (/usr/lib64) on its own.
LD_LIBRARY_PATH=%{_libdir} kopers-app > greeting.txt

%install
install -D -m 644 greeting.txt %{buildroot}%{_datadir}/kopers-app-user/greeting.txt

%files
%{_datadir}/kopers-app-user/greeting.txt
"""


def library_v2() -> str:
    """kopers-liba 2.0: a new soname and a new greeting."""
    return (
        LIB_SPEC.replace("Version:        1.0", "Version:        2.0")
        .replace("libkopersa.so.1", "libkopersa.so.2")
        .replace("hello from liba", "hello from liba 2")
    )


def build_log(server: Server, copr_output: str) -> str:
    """The end of the build.log of the build copr-cli created, to explain a failure."""
    build_id = int(copr_output.rsplit("Created builds:", 1)[1].split()[0])
    url = task(server, build_id)["result_url"]
    try:
        return str(server.get(url.removeprefix(server.url) + "build.log"))[-3000:]
    except OSError as exc:
        return f"(no build.log: {exc})"


def builds_after(server: Server, owner: str, project: str, first: int) -> dict[str, int]:
    """Package name -> id of the builds of the project newer than `first`."""
    items = server.get(f"/api_3/build/list?ownername={owner}&projectname={project}")["items"]
    return {b["source_package"]["name"]: b["id"] for b in items if b["id"] > first}


def test_a_new_library_rebuilds_what_depends_on_it_in_order(
    server: Server, carol: str, tmp_path: Path
) -> None:
    """After the chain test: kopers-app (B) links kopers-liba (A); kopers-app-user (C) runs B.

    With automatic rebuilds on, a build of A 2.0 (a new soname) is followed by
    B, then C, each built against the new results of the one before.
    """
    r = server.copr(carol, "build", "chain", str(srpm(USER_SPEC, "kopers-app-user", tmp_path)))
    assert r.returncode == 0, r.stdout + r.stderr + build_log(server, r.stdout)
    settings = server.post(
        carol, "/api/projects/carol/chain", {"rebuild_dependents": True}, method="PATCH"
    )
    assert settings["rebuild_dependents"] is True
    r = server.copr(carol, "build", "chain", str(srpm(library_v2(), "kopers-liba-2", tmp_path)))
    assert r.returncode == 0, r.stdout + r.stderr + build_log(server, r.stdout)
    a2 = int(r.stdout.rsplit("Created builds:", 1)[1].split()[0])
    deadline = time.monotonic() + 300
    while len(after := builds_after(server, carol, "chain", a2)) < 2:
        assert time.monotonic() < deadline, f"no rebuilds followed build {a2}: {after}"
        time.sleep(1)
    b2, c2 = after["kopers-app"], after["kopers-app-user"]
    assert server.wait_build(b2)["state"] == "succeeded"
    assert server.wait_build(c2)["state"] == "succeeded"
    assert task(server, c2)["started_on"] >= task(server, b2)["ended_on"]
    why = server.get(f"/api/builds/{b2}")["rebuild"]
    assert why["trigger"] == {"build": a2, "package": "kopers-liba"}
    assert why["chain"] == [b2, c2]
    assert {b["package"] for b in why["because"]} == {"kopers-liba"}
    assert "kopers-liba-devel" in why["because"][0]["provides"]

    # B was built against the new A, and C against the new B.
    b_root = server.get(f"/api/builds/{b2}/buildroot")["chroots"][CHROOT]
    assert "kopers-liba-devel-2.0-1.deb12.kopers.x86_64" in b_root
    c_root = server.get(f"/api/builds/{c2}/buildroot")["chroots"][CHROOT]
    assert "kopers-app-1.0-1.deb12.kopers.1.x86_64" in c_root
    assert "kopers-liba-2.0-1.deb12.kopers.x86_64" in c_root

    # dnf upgrades to the rebuilt B (its release is newer), which needs the new A.
    root = install(server, "carol", "chain", "kopers-app", tmp_path)
    query = ["rpm", "--root", str(root), "-q"]
    app = subprocess.run([*query, "kopers-app"], capture_output=True, text=True, check=True)
    assert app.stdout.strip() == "kopers-app-1.0-1.deb12.kopers.1.x86_64"
    requires = subprocess.run(
        [*query, "--requires", "kopers-app"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert "libkopersa.so.2()(64bit)" in requires, requires
    owner = subprocess.run(
        [*query, "--whatprovides", "libkopersa.so.2()(64bit)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert owner.stdout.strip() == "kopers-liba-2.0-1.deb12.kopers.x86_64"
    out = subprocess.run(
        [str(root / "usr/bin/kopers-app")],
        capture_output=True,
        text=True,
        env={**os.environ, "LD_LIBRARY_PATH": str(root / "usr/lib64")},
        check=True,
    )
    assert out.stdout.strip() == "hello from liba 2"
    r = dnf(root, tmp_path / "repos", "install", "kopers-app-user", cachedir=tmp_path / "cache")
    assert r.returncode == 0, r.stdout + r.stderr
    greeting = root / "usr/share/kopers-app-user/greeting.txt"
    assert greeting.read_text().strip() == "hello from liba 2"

    # Off again: the next build of A is followed by nothing (no VM needed to see it:
    # the planner decides when A's build succeeds, and that is shown at the
    # integration tier); leave the project as the next tests expect it.
    settings = server.post(
        carol, "/api/projects/carol/chain", {"rebuild_dependents": False}, method="PATCH"
    )
    assert settings["rebuild_dependents"] is False


def install(server: Server, owner: str, project: str, package: str, tmp_path: Path) -> Path:
    """dnf --installroot from the served .repo file, with gpgcheck=1."""
    root = tmp_path / "root"
    reposdir = tmp_path / "repos"
    reposdir.mkdir()
    (reposdir / "kopers.repo").write_text(
        server.get(f"/coprs/{owner}/{project}/repo/debian-12/dnf.repo?arch=x86_64")
    )
    root.mkdir()
    # dnf -y imports the project key from the .repo file for both signature checks.
    # The host's empty rpm database knows nothing of libc; give it what the
    # builder template provides, as the template does for its own rpmdb.
    provides = system_provides_rpm(tmp_path)
    subprocess.run(["rpm", "--root", str(root), "-i", "--nodeps", str(provides)], check=True)
    r = dnf(root, reposdir, "install", package, cachedir=tmp_path / "cache")
    assert r.returncode == 0, r.stdout + r.stderr
    return root


def system_provides_rpm(tmp_path: Path) -> Path:
    cache = Path(os.environ.get("KOPERS_VM_CACHE_DIR", Path.home() / ".cache/kopers"))
    lists = sorted((cache / "templates").glob("debian-12-*/system-provides.txt"))
    assert lists, "the debian-12 template is not built"
    provides = "\n".join(f"Provides: {p}" for p in lists[-1].read_text().split("\n") if p.strip())
    spec = (
        textwrap.dedent("""\
        Name: host-system-provides
        Version: 1
        Release: 1
        Summary: what the host system provides
        License: MIT
        BuildArch: noarch
        %s

        %%description
        Test helper.

        %%files
        """)
        % provides
    )
    return rpmbuild(spec, tmp_path / "provides", "-bb")[0]


class HeldUrl:
    """An SRPM URL, on the address builds may fetch from, that answers 404 once released."""

    def __init__(self) -> None:
        released = self.released = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                released.wait(600)
                self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((WEBROOT_HOST, 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        port = self.httpd.server_address[1]
        self.url = f"http://{WEBROOT_HOST}:{port}/kopers-chain-gone-1-1.src.rpm"

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_failed_step_skips_the_rest_of_the_chain(
    server: Server, carol: str, make_srpm: Any
) -> None:
    """The first build fails, and the one chained after it, waiting meanwhile, is skipped.

    The first one's SRPM URL answers 404, so it fails in its source step on the
    host, without a VM; the answer is held back until the next build waits on it.
    """
    held = HeldUrl()
    try:
        r = server.copr(carol, "build", "chain", held.url, "--nowait")
        assert r.returncode == 0, r.stderr
        first = int(r.stdout.rsplit("Created builds:", 1)[1].split()[0])
        r = server.copr(
            carol,
            "build",
            "chain",
            str(make_srpm("kopers-chain-next", "1")),
            "--nowait",
            "--after-build-id",
            str(first),
        )
        assert r.returncode == 0, r.stderr
        second = int(r.stdout.rsplit("Created builds:", 1)[1].split()[0])
        assert task(server, second)["state"] == "waiting"
        held.release()
        r = server.copr(carol, "watch-build", str(second))  # copr-cli stops on skipped
    finally:
        held.close()
    assert "skipped" in r.stdout, r.stdout + r.stderr
    assert server.get(f"/api_3/build/{first}")["state"] == "failed"
    assert task(server, second)["state"] == "skipped"
    assert task(server, second)["reason"] == f"dependency build {first} failed on source"


def test_external_copr_repository_and_no_network(
    server: Server, carol: str, webroot: WebRoot, tmp_path: Path
) -> None:
    r = server.copr(carol, "create", "consumer", "--chroot", CHROOT, "--repo", "copr://carol/chain")
    assert r.returncode == 0, r.stderr
    spec = app_spec("kopers-consumer", network_port=server.port)
    r = server.copr(
        carol, "build", "consumer", str(srpm(spec, "kopers-consumer", tmp_path)), "--nowait"
    )
    assert r.returncode == 0, r.stderr
    build_id = int(r.stdout.rsplit("Created builds:", 1)[1].split()[0])
    build = server.wait_build(build_id)
    log = server.get(task(server, build_id)["result_url"].removeprefix(server.url) + "build.log")
    assert build["state"] == "succeeded", log[-3000:]
    assert "network check: 10.0.2.2" in log and "unreachable" in log
    # Built against carol/chain's library (2.0 once the rebuild test has run).
    manifest = server.get(f"/api/builds/{build_id}/buildroot")["chroots"][CHROOT]
    assert any(p.startswith("kopers-liba-devel-") for p in manifest), manifest
