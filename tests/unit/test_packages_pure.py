"""Packages without a database: the max_builds policy, edits, the monitor, the body parsers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kopers.api import package_bodies as pb
from kopers.db.packages import PackageSettings
from kopers.errors import BadRequest
from kopers.models import (
    Build,
    BuildState,
    BuildTask,
    CustomPackageSource,
    DistGitPackageSource,
    LinkPackageSource,
    Package,
    PackageSource,
    PackageSourceType,
    PypiPackageSource,
    RubyGemsPackageSource,
    ScmPackageSource,
    ScmType,
    SourceType,
    SpecGenerator,
    SrpmBuildMethod,
    UploadPackageSource,
)
from kopers.package_sources import source_from_json, source_json, source_type_of
from kopers.packages import PackageChanges, apply_changes, monitor_rows, prune_plan

MAX_TEXT = 4096

# -- max_builds ----------------------------------------------------------------


def test_prune_keeps_the_newest_n_and_deletes_older_ended_builds() -> None:
    builds = [(1, True), (2, True), (3, True), (4, True), (5, True)]
    assert prune_plan(builds, 2) == [1, 2, 3]
    assert prune_plan(reversed(builds), 4) == [1]


def test_prune_counts_running_builds_among_the_newest_but_never_deletes_them() -> None:
    builds = [(10, False), (11, True), (12, False), (13, True)]
    # 13 and 12 stay (newest two); of 11 and 10 only the ended 11 goes.
    assert prune_plan(builds, 2) == [11]


def test_prune_does_nothing_without_a_limit_or_within_it() -> None:
    builds = [(1, True), (2, True)]
    assert prune_plan(builds, None) == []
    assert prune_plan(builds, 0) == []
    assert prune_plan(builds, 2) == []
    assert prune_plan([], 1) == []


# -- add and edit --------------------------------------------------------------

SCM = ScmPackageSource("https://example.org/a.git")


def test_an_edit_keeps_what_it_does_not_give_and_zero_clears() -> None:
    old = PackageSettings(SCM, False, 5, 3600, ("epel-*",))
    assert apply_changes(old, PackageChanges(None)) == old
    cleared = apply_changes(old, PackageChanges(None, max_builds=0, timeout=0, chroot_denylist=()))
    assert cleared == PackageSettings(SCM, False, None, None, ())
    gem = RubyGemsPackageSource("rake")
    assert apply_changes(old, PackageChanges(gem, max_builds=7)) == PackageSettings(
        gem, False, 7, 3600, ("epel-*",)
    )


# -- source definitions <-> JSON -----------------------------------------------

SOURCES: list[PackageSource] = [
    ScmPackageSource(
        "git://example.org/x", "v1", "sub", "x.spec", ScmType.SVN, SrpmBuildMethod.TITO
    ),
    PypiPackageSource("requests", "2.0", SpecGenerator.PYP2RPM, "fedora", ("3", "2")),
    RubyGemsPackageSource("rake"),
    CustomPackageSource("#!/bin/sh\n", "fedora-40-x86_64", ("make",), "out", ("https://r/",)),
    DistGitPackageSource("fedora", "@copr/copr", "main"),
    UploadPackageSource("hello-1-1.src.rpm"),
    LinkPackageSource("https://example.org/hello-1-1.src.rpm"),
]


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: type(s).__name__)
def test_every_source_reads_back_as_it_was_written(source: PackageSource) -> None:
    kind = source_type_of(source)
    assert source_from_json(kind, source_json(source)) == source


def test_a_build_s_own_source_json_reads_as_a_package_source() -> None:
    assert source_from_json(PackageSourceType.UPLOAD, {"filename": "a-1-1.src.rpm"}) == (
        UploadPackageSource("a-1-1.src.rpm")
    )
    scm = source_from_json(
        PackageSourceType.SCM,
        {"clone_url": "https://e/x.git", "committish": "", "subdirectory": "", "spec": ""},
    )
    assert scm == ScmPackageSource("https://e/x.git")
    assert source_from_json(PackageSourceType.UNSET, {}) is None


# -- body parsers: bad input first ---------------------------------------------


@pytest.mark.parametrize("name", ["-x", ".x", "a..b", "a b", "a/b", "", "é", "x" * 129])
def test_a_bad_package_name_is_refused_naming_the_field(name: str) -> None:
    with pytest.raises(BadRequest, match="package_name"):
        pb.package_name(name)


def test_an_unknown_or_build_only_source_type_is_refused() -> None:
    for kind in ("foo", "upload", "link", "unset", "SCM"):
        with pytest.raises(BadRequest, match="source_type_text"):
            pb.source_type(kind)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://h/x", "not a url", "http://h:port/x", "", 5]
)
def test_a_bad_clone_url_is_refused_naming_the_field(url: Any) -> None:
    with pytest.raises(BadRequest, match="clone_url"):
        pb.parse_source(PackageSourceType.SCM, {"clone_url": url}, MAX_TEXT)


@pytest.mark.parametrize(
    ("kind", "data", "field"),
    [
        ("scm", {"clone_url": "https://h/x", "committish": "--upload-pack=x"}, "committish"),
        ("scm", {"clone_url": "https://h/x", "subdirectory": "../up"}, "subdirectory"),
        ("scm", {"clone_url": "https://h/x", "spec": "/etc/x.spec"}, "spec"),
        ("scm", {"clone_url": "https://h/x", "scm_type": "hg"}, "scm_type"),
        ("scm", {"clone_url": "https://h/x", "source_build_method": "x"}, "source_build_method"),
        ("pypi", {}, "pypi_package_name"),
        ("pypi", {"pypi_package_name": "a b"}, "pypi_package_name"),
        ("pypi", {"pypi_package_name": "r", "python_versions": [4]}, "python_versions"),
        ("pypi", {"pypi_package_name": "r", "spec_generator": "x"}, "spec_generator"),
        ("pypi", {"pypi_package_name": "r", "spec_template": "x"}, "spec_template"),
        ("rubygems", {"gem_name": "../x"}, "gem_name"),
        ("custom", {"script": ""}, "script"),
        ("custom", {"script": "x\x00"}, "script"),
        ("custom", {"script": "x" * (MAX_TEXT + 1)}, "script"),
        ("custom", {"script": "x", "chroot": "Fedora 40"}, "chroot"),
        ("custom", {"script": "x", "resultdir": "../out"}, "resultdir"),
        ("custom", {"script": "x", "repos": "not\x01url"}, "repos"),
        ("distgit", {"namespace": "a/../b"}, "namespace"),
        ("distgit", {"committish": "-x"}, "committish"),
    ],
)
def test_a_bad_source_field_is_refused_naming_it(
    kind: str, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadRequest, match=field):
        pb.parse_source(PackageSourceType(kind), pb.given_source_fields(data), MAX_TEXT)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"max_builds": "101"}, "max_builds"),
        ({"max_builds": -1}, "max_builds"),
        ({"max_builds": "many"}, "max_builds"),
        ({"timeout": "30"}, "timeout"),
        ({"timeout": 10**9}, "timeout"),
        ({"webhook_rebuild": "maybe"}, "webhook_rebuild"),
        ({"chroot_denylist": "fedora-*, a b"}, "chroot_denylist"),
        ({"chroot_denylist": 5}, "chroot_denylist"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(data: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest, match=field):
        pb.package_options(data)


def test_the_body_s_package_name_must_be_the_path_s() -> None:
    pb.check_body_name({"package_name": "a"}, "a")
    pb.check_body_name({}, "a")
    with pytest.raises(BadRequest, match="package_name"):
        pb.check_body_name({"package_name": "b"}, "a")


# -- body parsers: what the clients send ---------------------------------------


def test_copr_cli_s_custom_keys_and_python_copr_s_are_both_taken() -> None:
    cli = {
        "script": "#!/bin/sh\r\necho hi",
        "script_chroot": "fedora-40-x86_64",
        "script_builddeps": ["make", "gcc"],
        "script_resultdir": "out",
        "script_repos": "https://a/ https://b/",
    }
    lib = {
        "script": "#!/bin/sh\necho hi\n",
        "chroot": "fedora-40-x86_64",
        "builddeps": "make gcc",
        "resultdir": "out",
        "repos": ["https://a/", "https://b/"],
    }
    want = CustomPackageSource(
        "#!/bin/sh\necho hi\n",
        "fedora-40-x86_64",
        ("make", "gcc"),
        "out",
        ("https://a/", "https://b/"),
    )
    for data in (cli, lib):
        got = pb.parse_source(PackageSourceType.CUSTOM, pb.given_source_fields(data), MAX_TEXT)
        assert got == want


def test_copr_cli_s_pypi_body_with_its_defaults() -> None:
    data = {
        "package_name": "python-x",
        "pypi_package_name": "x",
        "pypi_package_version": None,
        "spec_generator": "pyp2spec",
        "spec_template": None,
        "python_versions": [3, 2],
        "max_builds": None,
        "timeout": None,
        "chroot_denylist": None,
        "webhook_rebuild": None,
    }
    got = pb.parse_source(PackageSourceType.PYPI, pb.given_source_fields(data), MAX_TEXT)
    assert got == PypiPackageSource("x", None, SpecGenerator.PYP2SPEC, "", ("3", "2"))
    assert pb.package_options(data) == pb.PackageOptions()
    opts = pb.package_options({"max_builds": "0", "timeout": "7200", "chroot_denylist": "a-*,b"})
    assert opts == pb.PackageOptions(None, 0, 7200, ("a-*", "b"))


# -- the monitor ---------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _build(build_id: int, chroots: dict[str, BuildState]) -> Build:
    return Build(
        id=build_id,
        project_id=1,
        owner="alice",
        project="p",
        submitter="alice",
        source_type=SourceType.UPLOAD,
        source={},
        package_name="hello",
        package_version="1-1",
        srpm_name=None,
        source_state=BuildState.SUCCEEDED,
        canceled=False,
        timeout=60,
        submitted_on=NOW,
        started_on=None,
        ended_on=None,
        tasks=tuple(BuildTask(build_id, c, s) for c, s in chroots.items()),
    )


def test_the_monitor_shows_each_chroot_s_newest_build() -> None:
    package = Package(1, 1, "alice", "p", "hello", PackageSourceType.UNSET, None)
    other = Package(2, 1, "alice", "p", "idle", PackageSourceType.UNSET, None)
    newer = _build(7, {"a-1-x": BuildState.FAILED})
    older = _build(5, {"a-1-x": BuildState.SUCCEEDED, "b-1-x": BuildState.SUCCEEDED})
    rows = monitor_rows([package, other], {1: [newer, older]})
    assert [r.package for r in rows] == ["hello", "idle"]
    cells = {c: (b.id, t.state) for c, (b, t) in rows[0].chroots.items()}
    assert cells == {"a-1-x": (7, BuildState.FAILED), "b-1-x": (5, BuildState.SUCCEEDED)}
    assert rows[1].chroots == {}
