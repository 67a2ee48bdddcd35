"""The build sources beyond SRPMs, end to end, with the unmodified copr-cli.

One server for the file, whose Python package index is a local one on the
test web root (the one loopback address builds may reach). Each source made
in a VM costs two boots (the source step, then the chroot's build); an
uploaded RPM costs none. The tests run in order and share one project. A git
checkout whose SRPM .copr/Makefile makes (make_srpm) is built in
test_copr_compat.py, as the second build of its git package.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pypiindex
from tests.conftest import service_dir
from tests.dnfroot import install_from
from tests.e2e.server import CHROOT, WEBROOT_HOST, Server, keep_log
from tests.rpms import noarch_rpm
from tests.webroot import WebRoot

pytestmark = pytest.mark.e2e
PROJECT = "sources"
USER = "sam"

SPEC = """\
Name:           kopers-specup
Version:        1.2
Release:        1%{{?dist}}
Summary:        Built from an uploaded spec
License:        MIT
BuildArch:      noarch
Source0:        {source}

%description
A package whose spec was uploaded alone; its source is at a URL.

%prep

%build

%install
install -D -m 644 %{{SOURCE0}} %{{buildroot}}/usr/share/kopers-specup/greeting.txt

%files
/usr/share/kopers-specup/greeting.txt
"""

CUSTOM_SCRIPT = """\
#!/bin/sh
set -e
mkdir -p result
cd result
echo "made by a custom script" > made.txt
cat > kopers-custom.spec <<'END'
Name:           kopers-custom
Version:        0.3
Release:        1%{?dist}
Summary:        Made by a custom script
License:        MIT
BuildArch:      noarch
Source0:        made.txt

%description
A package whose spec and source a script wrote.

%prep

%build

%install
install -D -m 644 %{SOURCE0} %{buildroot}/usr/share/kopers-custom/made.txt

%files
/usr/share/kopers-custom/made.txt
END
"""


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRoot]:
    root = WebRoot(tmp_path_factory.mktemp("sources-web"), WEBROOT_HOST)
    (root.root / "greeting.txt").write_text("hello from the web root\n")
    pypiindex.publish(root.root, root.url)
    yield root
    root.close()


@pytest.fixture(scope="module")
def srv(web: WebRoot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with service_dir("kopers-e2e-sources-") as base:
        server = Server.create(base, KOPERS_SOURCES_PYPI_URL=web.url)
        server.start()
        try:
            server.user(USER)
            r = server.copr(USER, "create", PROJECT, "--chroot", CHROOT)
            assert r.returncode == 0, r.stderr
            yield server
        finally:
            server.stop()
            keep_log(server.log_path, tmp_path_factory, "e2e-sources")


def build_id_of(output: str) -> int:
    match = re.search(r"Created builds: (\d+)", output)
    assert match, output
    return int(match.group(1))


def source_log(srv: Server, build_id: int) -> str:
    path = srv.data_dir / "logs" / f"{build_id:08d}" / "srpm-build" / "builder-live.log"
    return path.read_text() if path.is_file() else ""


def install(srv: Server, tmp_path: Path, package: str) -> Path:
    """dnf install `package` from the project's repository (gpgcheck on); the root."""
    text = srv.get(f"/coprs/{USER}/{PROJECT}/repo/debian-12/dnf.repo?arch=x86_64")
    return install_from(text, package, tmp_path)


def submitted(r: subprocess.CompletedProcess[str]) -> int:
    assert r.returncode == 0, r.stdout + r.stderr
    return build_id_of(r.stdout)


def test_a_spec_upload_fetches_its_source_builds_and_installs(
    srv: Server, web: WebRoot, tmp_path: Path
) -> None:
    spec = tmp_path / "kopers-specup.spec"
    spec.write_text(SPEC.format(source=f"{web.url}/greeting.txt"))
    build_id = submitted(srv.copr(USER, "build", PROJECT, str(spec), "--nowait"))
    build = srv.wait_build(build_id)
    assert build["state"] == "succeeded", (build, source_log(srv, build_id)[-3000:])
    assert build["source_package"]["name"] == "kopers-specup"
    assert "fetched greeting.txt" in source_log(srv, build_id)
    root = install(srv, tmp_path, "kopers-specup")
    greeting = root / "usr/share/kopers-specup/greeting.txt"
    assert greeting.read_text() == "hello from the web root\n"

    # The spec is kept in the results, as the source package holds it.
    dest = tmp_path / "dl"
    r = srv.copr(USER, "download-build", str(build_id), "--spec", "-d", str(dest))
    assert r.returncode == 0, r.stderr
    specs = list((dest / CHROOT).glob("*.spec"))
    assert [p.name for p in specs] == ["kopers-specup.spec"]
    assert specs[0].read_text() == spec.read_text()
    assert not list((dest / CHROOT).glob("*.rpm"))


def test_a_spec_whose_source_is_at_a_refused_address_fails(
    srv: Server, web: WebRoot, tmp_path: Path
) -> None:
    # The web root's own port, on this host's loopback, which the policy refuses
    # (private and link-local targets: tests/integration/test_net_proxy.py).
    target = "127.0.0.1"
    port = web.url.rsplit(":", 1)[1]
    spec = tmp_path / "kopers-specup.spec"
    spec.write_text(SPEC.format(source=f"http://{target}:{port}/greeting.txt"))
    build_id = submitted(srv.copr(USER, "build", PROJECT, str(spec), "--nowait"))
    build = srv.wait_build(build_id)
    assert build["state"] == "failed", build
    log = source_log(srv, build_id)
    assert f"fetching http://{target}:{port}/greeting.txt failed" in log, log[-3000:]
    [chroot] = srv.get(f"/api_3/build-chroot/list?build_id={build_id}")["items"]
    assert chroot["state"] == "skipped"


def test_buildcustom_builds_and_installs(srv: Server, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text(CUSTOM_SCRIPT)
    build_id = submitted(
        srv.copr(
            USER,
            "buildcustom",
            PROJECT,
            "--script",
            str(script),
            "--script-resultdir",
            "result",
            "--script-chroot",
            CHROOT,
            "--nowait",
        )
    )
    build = srv.wait_build(build_id)
    assert build["state"] == "succeeded", (build, source_log(srv, build_id)[-3000:])
    root = install(srv, tmp_path, "kopers-custom")
    assert (root / "usr/share/kopers-custom/made.txt").read_text() == "made by a custom script\n"


def test_a_small_timeout_times_the_build_out(srv: Server, tmp_path: Path) -> None:
    script = tmp_path / "slow.sh"
    script.write_text("#!/bin/sh\necho starting\nsleep 600\n")
    started = time.monotonic()
    build_id = submitted(
        srv.copr(
            USER, "buildcustom", PROJECT, "--script", str(script), "--timeout", "5", "--nowait"
        )
    )
    build = srv.wait_build(build_id, timeout=500)
    assert build["state"] == "failed", build
    assert time.monotonic() - started < 500
    log = source_log(srv, build_id)
    assert "the build ran longer than its timeout of 5 s; stopping the build" in log, log[-2000:]


def test_uploadrpm_publishes_an_rpm_that_dnf_installs(srv: Server, tmp_path: Path) -> None:
    rpm, _ = noarch_rpm(tmp_path, "kopers-prebuilt", "5.0")
    build_id = submitted(srv.copr(USER, "uploadrpm", PROJECT, str(rpm)))  # waits for the end
    build = srv.get(f"/api_3/build/{build_id}")
    assert build["state"] == "succeeded", build
    assert build["source_package"]["name"] == "kopers-prebuilt"
    packages = srv.get(f"/api_3/build/built-packages/{build_id}")
    assert [p["name"] for p in packages[CHROOT]["packages"]] == ["kopers-prebuilt"]
    root = install(srv, tmp_path, "kopers-prebuilt")
    assert (root / "usr/share/kopers-prebuilt/hello.txt").is_file()

    _, srpm = noarch_rpm(tmp_path, "kopers-notbinary")
    r = srv.copr(USER, "uploadrpm", PROJECT, str(srpm))
    assert r.returncode == 1 and "is a source RPM" in r.stderr


def test_buildpypi_makes_the_srpm_from_the_local_index(srv: Server) -> None:
    build_id = submitted(
        srv.copr(USER, "buildpypi", PROJECT, "--packagename", pypiindex.NAME, "--nowait")
    )
    build = srv.wait_build(build_id)
    log = source_log(srv, build_id)
    # The source step made the SRPM with pyp2spec from the local index.
    assert build["source_package"]["name"] == f"python-{pypiindex.NAME}", (build, log[-3000:])
    assert build["source_package"]["version"] == f"{pypiindex.VERSION}-1"
    assert f"fetched {pypiindex.MODULE}-{pypiindex.VERSION}.tar.gz" in log
    assert "%pyproject_wheel" in log  # the generated spec, shown in the log
    # Building it needs Fedora's pyproject RPM macros, which the Debian chroot
    # lacks: its build dependency python3-devel is not to be had there.
    [chroot] = srv.get(f"/api_3/build-chroot/list?build_id={build_id}")["items"]
    assert chroot["state"] == "failed", chroot

    r = srv.copr(USER, "buildpypi", PROJECT, "--packagename", "../etc/passwd", "--nowait")
    assert r.returncode == 1 and "must be a Python package name" in r.stderr


def test_buildgem_and_build_distgit_say_they_are_not_offered(srv: Server) -> None:
    r = srv.copr(USER, "buildgem", PROJECT, "--gem", "rake", "--nowait")
    assert r.returncode != 0 and "RubyGems is not supported by this Kopers server" in r.stderr
    r = srv.copr(USER, "build-distgit", PROJECT, "--name", "hello", "--nowait")
    assert r.returncode != 0 and "dist-git is not supported by this Kopers server" in r.stderr
