"""The Debian builder's source modes, run here: a spec's remote sources, make_srpm, scripts.

Like test_builder_script, the stdlib script runs on the test host against the
host's rpm tools, its directories moved into the test's own; a local HTTP
server stands in for where a spec's sources live.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from kopers.worker.session import BuilderStatus
from tests.rpms import NOARCH_SPEC
from tests.unit.test_builder_script import NEEDS_RPM, load_builder

SPEC_WITH_SOURCE = """\
Name: fetched
Version: 1
Release: 1
Summary: a package whose source is at a URL
License: MIT
BuildArch: noarch
Source0: {url}
%description
x
%prep
%install
mkdir -p %{{buildroot}}/usr/share/fetched
install -m 644 %{{SOURCE0}} %{{buildroot}}/usr/share/fetched/
%files
/usr/share/fetched
"""


@pytest.fixture
def builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_builder()
    monkeypatch.setattr(module, "CGROUP_ROOT", tmp_path / "not-a-cgroup")
    for name in ("TOPDIR", "REPOSDIR", "WORKDIR", "MADEDIR"):
        monkeypatch.setattr(module, name, tmp_path / name.lower())
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ftp_proxy"):
        monkeypatch.delenv(name, raising=False)
    return module


@pytest.fixture
def webroot(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "web"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kw: object) -> None:
            super().__init__(*args, directory=str(root), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_job(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str], job: dict[str, object]
) -> tuple[int, list[str]]:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    status = builder.main(["kopers-builder", str(path)])
    sys.stdout.flush()
    return status, capfd.readouterr().out.splitlines()


def spec_job(tmp_path: Path, spec: Path, **extra: object) -> dict[str, object]:
    return {
        "mode": "srpm",
        "build_id": 1,
        "chroot": "debian-12-x86_64",
        "spec": str(spec),
        "sources": str(spec.parent),
        "result_dir": str(tmp_path / "out"),
        **extra,
    }


@NEEDS_RPM
def test_an_uploaded_spec_gets_its_remote_source_fetched(
    builder: ModuleType,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    webroot: tuple[Path, str],
) -> None:
    root, url = webroot
    (root / "data.txt").write_text("fetched data\n")
    staged = tmp_path / "staged"
    staged.mkdir()
    spec = staged / "fetched.spec"
    spec.write_text(SPEC_WITH_SOURCE.format(url=f"{url}/data.txt"))
    status, lines = run_job(builder, tmp_path, capfd, spec_job(tmp_path, spec, fetch=True))
    assert status == BuilderStatus.BUILT, lines[-5:]
    assert (staged / "data.txt").read_text() == "fetched data\n"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["fetched-1-1.src.rpm"]


@NEEDS_RPM
def test_a_source_url_that_cannot_be_fetched_fails_the_srpm(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    staged = tmp_path / "staged"
    staged.mkdir()
    spec = staged / "fetched.spec"
    spec.write_text(SPEC_WITH_SOURCE.format(url="http://127.0.0.1:9/data.txt"))
    status, lines = run_job(builder, tmp_path, capfd, spec_job(tmp_path, spec, fetch=True))
    assert status == BuilderStatus.SRPM_FAILED
    assert lines[-1].startswith("kopers-builder: fetching http://127.0.0.1:9/data.txt failed")


@NEEDS_RPM
@pytest.mark.parametrize("url", ["http://example.invalid/.hidden", "http://example.invalid/..#/.."])
def test_a_source_url_that_names_no_file_is_refused(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str], url: str
) -> None:
    staged = tmp_path / "staged"
    staged.mkdir()
    spec = staged / "fetched.spec"
    spec.write_text(SPEC_WITH_SOURCE.format(url=url))
    status, lines = run_job(builder, tmp_path, capfd, spec_job(tmp_path, spec, fetch=True))
    assert status == BuilderStatus.SRPM_FAILED
    assert "names no usable file" in lines[-1]


@NEEDS_RPM
def test_make_srpm_runs_the_copr_makefile(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "tree"
    (tree / ".copr").mkdir(parents=True)
    (tree / "made.spec").write_text(
        NOARCH_SPEC.format(name="made", version="2", release=1, requires="")
    )
    (tree / ".copr" / "Makefile").write_text(
        "srpm:\n\techo junk > $(outdir)/notes.txt\n"
        "\trpmbuild -bs --define '_srcrpmdir $(outdir)' --define 'dist %{nil}' $(spec)\n"
    )
    job = spec_job(tmp_path, tree / "made.spec", method="make_srpm")
    job["sources"] = str(tree)
    status, lines = run_job(builder, tmp_path, capfd, job)
    assert status == BuilderStatus.BUILT, lines[-8:]
    # Only the SRPM reaches the result directory, not what else the Makefile left.
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["made-2-1.src.rpm"]


def custom_job(tmp_path: Path, script: str, resultdir: str = "") -> dict[str, object]:
    path = tmp_path / "script"
    path.write_text(script)
    return {
        "mode": "custom",
        "build_id": 1,
        "chroot": "debian-12-x86_64",
        "script": str(path),
        "sources": str(tmp_path),
        "builddeps": [],
        "resultdir": resultdir,
        "repos": [],
        "result_dir": str(tmp_path / "out"),
    }


SPEC_LINE = NOARCH_SPEC.format(name="scripted", version="3", release=1, requires="")


@NEEDS_RPM
def test_a_custom_script_leaves_a_spec_that_becomes_the_srpm(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    script = f"#!/bin/sh\nset -e\nmkdir res\ncat > res/scripted.spec <<'EOF'\n{SPEC_LINE}EOF\n"
    status, lines = run_job(builder, tmp_path, capfd, custom_job(tmp_path, script, "res"))
    assert status == BuilderStatus.BUILT, lines[-8:]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["scripted-3-1.src.rpm"]


@NEEDS_RPM
@pytest.mark.parametrize(
    ("script", "said"),
    [
        ("echo nothing here\n", "must hold one spec; it has none"),
        ("ln -s /etc/passwd x.spec\n", "x.spec is not a regular file"),
        ("touch a.spec b.spec\n", "it has a.spec, b.spec"),
        ("exit 3\n", "failed with exit code 3"),
    ],
)
def test_a_custom_script_without_one_plain_spec_fails(
    builder: ModuleType,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    script: str,
    said: str,
) -> None:
    status, lines = run_job(builder, tmp_path, capfd, custom_job(tmp_path, script))
    assert status == BuilderStatus.SRPM_FAILED
    assert said in lines[-1]
    assert not list((tmp_path / "out").glob("*"))


@NEEDS_RPM
def test_a_result_directory_that_leads_out_is_refused(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    script = f"ln -s /tmp res\ncat > /tmp/x.spec <<'EOF'\n{SPEC_LINE}EOF\n"
    job = custom_job(tmp_path, script, "res")
    status, lines = run_job(builder, tmp_path, capfd, job)
    assert status == BuilderStatus.SRPM_FAILED
    assert "left no result directory" in lines[-1]


@pytest.mark.parametrize("resultdir", ["/abs", "../up", "a/../../b"])
def test_a_custom_job_with_a_result_directory_outside_is_invalid(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str], resultdir: str
) -> None:
    status, _ = run_job(builder, tmp_path, capfd, custom_job(tmp_path, "true\n", resultdir))
    assert status == BuilderStatus.INVALID_JOB


@NEEDS_RPM
def test_a_build_keeps_the_spec_in_its_results(
    builder: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.rpms import rpmbuild

    srpm = rpmbuild(
        NOARCH_SPEC.format(name="kept", version="1", release=1, requires=""), tmp_path / "srpm"
    )[-1]
    job = {
        "build_id": 7,
        "chroot": "debian-12-x86_64",
        "srpm": str(srpm),
        "result_dir": str(tmp_path / "out"),
        "macros": {"dist": ".deb12.kopers", "vendor": "Kopers a/p", "packager": "a via Kopers"},
        "repos": [],
        "enable_net": False,
    }
    status, lines = run_job(builder, tmp_path, capfd, job)
    assert status == BuilderStatus.BUILT, lines[-5:]
    kept = tmp_path / "out" / "package.spec"
    # As the source package holds it: the Release without the forced dist.
    assert "Release: 1\n" in kept.read_text()


# pyp2spec and its libraries installed with `pip install --target DIR pyp2spec`.
PYP2SPEC_HERE = Path(os.environ.get("KOPERS_TEST_PYP2SPEC", "/opt/pyp2spec"))


@NEEDS_RPM
@pytest.mark.skipif(
    not (PYP2SPEC_HERE / "pyp2spec").is_dir(), reason="needs pyp2spec in /opt/pyp2spec"
)
def test_pypi_makes_an_srpm_from_the_configured_index(
    builder: ModuleType,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    webroot: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import pypiindex

    monkeypatch.setattr(builder, "PYP2SPEC", PYP2SPEC_HERE)
    root, url = webroot
    name = pypiindex.publish(root, url)
    job = {
        "mode": "pypi",
        "build_id": 1,
        "chroot": "debian-12-x86_64",
        "package": name,
        "version": "",
        "index_url": url,
        "sources": str(tmp_path),
        "result_dir": str(tmp_path / "out"),
    }
    status, lines = run_job(builder, tmp_path, capfd, job)
    assert status == BuilderStatus.BUILT, lines[-30:]
    assert [p.name for p in (tmp_path / "out").iterdir()] == [
        f"python-{name}-{pypiindex.VERSION}-1.src.rpm"
    ]
