"""The source kinds, pure: what a client may ask for, and the job each becomes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kopers.errors import BadRequest, BuildFailed
from kopers.models import Build, BuildState, SourceType
from kopers.sourcekinds import CustomSource, PypiSource, check_spec_text, scm_method
from kopers.worker.scm import locate_make_srpm
from kopers.worker.srpmjob import srpm_job


def build(kind: SourceType, source: dict[str, object]) -> Build:
    return Build(
        id=3,
        project_id=1,
        owner="alice",
        project="demo",
        submitter="alice",
        source_type=kind,
        source=source,
        package_name=None,
        package_version=None,
        srpm_name=None,
        source_state=BuildState.PENDING,
        canceled=False,
        timeout=60,
        submitted_on=datetime.now(UTC),
        started_on=None,
        ended_on=None,
    )


def test_each_kind_becomes_its_builder_mode() -> None:
    spec = srpm_job(build(SourceType.SPEC, {"filename": "x.spec"}), "c-1-x", "x.spec", None)
    assert (spec["mode"], spec["method"], spec["fetch"]) == ("srpm", "rpmbuild", True)
    assert spec["spec"] == "/build/src/x.spec"
    scm = srpm_job(
        build(SourceType.SCM, {"source_build_method": "make_srpm"}), "c-1-x", "", "http://p:1"
    )
    assert (scm["mode"], scm["method"], scm["fetch"], scm["proxy"]) == (
        "srpm",
        "make_srpm",
        False,
        "http://p:1",
    )
    custom = CustomSource("echo", None, ("make",), "out", ("http://r/",)).as_source()
    job = srpm_job(build(SourceType.CUSTOM, custom), "c-1-x", "", None)
    assert (job["mode"], job["builddeps"], job["resultdir"], job["repos"]) == (
        "custom",
        ["make"],
        "out",
        ["http://r/"],
    )
    pypi = PypiSource("six", "1.0").as_source()
    job = srpm_job(build(SourceType.PYPI, pypi), "c-1-x", "", None, "https://index")
    assert (job["mode"], job["package"], job["version"], job["index_url"]) == (
        "pypi",
        "six",
        "1.0",
        "https://index",
    )


def test_only_vm_made_sources_take_a_vm() -> None:
    vm = {t for t in SourceType if t.in_vm}
    assert vm == {SourceType.SCM, SourceType.SPEC, SourceType.CUSTOM, SourceType.PYPI}


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("tito", "tito is not supported"),
        ("tito_test", "tito_test is not supported"),
        ("rpkg2", "must be one of rpkg, make_srpm"),
    ],
)
def test_scm_methods_kopers_does_not_run_are_refused(value: str, said: str) -> None:
    with pytest.raises(BadRequest, match=said):
        scm_method(value)


def test_the_default_scm_method_is_rpkg() -> None:
    assert scm_method(None) == "rpkg" and scm_method("") == "rpkg"


@pytest.mark.parametrize(
    "name", ["../x", "/etc/passwd", "https://evil/x", "a b", "-x", "x-", "a/b", "", "x" * 201]
)
def test_a_pypi_name_is_a_name_never_a_path_or_url(name: str) -> None:
    with pytest.raises(BadRequest, match="pypi_package_name"):
        PypiSource(name)


@pytest.mark.parametrize("text", [b"", b"\xed\xab\xee\xdbrpm", b"a\0b", b"x" * ((1 << 20) + 1)])
def test_an_uploaded_spec_must_be_text(text: bytes) -> None:
    with pytest.raises(BadRequest):
        check_spec_text(text)


def test_make_srpm_needs_its_makefile_inside_the_repository(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(BuildFailed, match=r"needs \.copr/Makefile"):
        locate_make_srpm(tree, "", "")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Makefile").write_text("srpm:\n")
    (tree / ".copr").symlink_to(outside)
    with pytest.raises(BuildFailed, match="leads out"):
        locate_make_srpm(tree, "", "")
    (tree / ".copr").unlink()
    (tree / ".copr").mkdir()
    (tree / ".copr" / "Makefile").write_text("srpm:\n")
    assert locate_make_srpm(tree, "", "") == (tree.resolve(), "")
    (tree / "a.spec").write_text("")
    assert locate_make_srpm(tree, "", "")[1] == "a.spec"
