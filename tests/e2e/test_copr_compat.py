"""Every copr-cli subcommand and python-copr method against a live Kopers, as users run them.

Each row of tests/copr_compat.py is exercised here: a command the table says
works must do what it says, checked with a second read (not the exit code
alone); a command it says is not supported must get the server's 501 message,
never "Not Found". The last test checks that every row was exercised.

VM boots are few on purpose: two real builds of a git package (source step and
chroot build each; the second at another branch's commit, whose SRPM the
branch's .copr/Makefile makes), which the download, monitor and fork checks
then reuse. Every other submission is checked as a stored request and
canceled while the first of those builds holds the server's one VM slot, so
none of them boots a VM; the builds from those sources are run for real in
test_sources.py.
"""

from __future__ import annotations

import configparser
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from copr.v3 import Client
from copr.v3.exceptions import CoprException

from tests import copr_compat as cc
from tests.dnfroot import install_from
from tests.e2e.gitdaemon import GitRepo, git_daemon
from tests.e2e.server import CHROOT, VENV_BIN, Server

pytestmark = pytest.mark.e2e

OWNER, OTHER, ADMIN = "cora", "dmitri", "rootie"
PROJECT = "compat"
KINDS = "compat-kinds"  # where the builds of every source kind are submitted
UNSUPPORTED = "is not supported by this Kopers server"
# What each test exercised: the last test compares it with the table.
CLI_SEEN: dict[str, str] = {}
PY_SEEN: dict[str, str] = {}

SPEC = """\
Name:           kopers-compat
Version:        {version}
Release:        1%{{?dist}}
Summary:        Built from a git package
License:        MIT
BuildArch:      noarch
Source0:        note.txt

%description
A package of the compatibility test.

%prep

%build

%install
install -D -m 644 %{{SOURCE0}} %{{buildroot}}/usr/share/kopers-compat/note.txt

%files
/usr/share/kopers-compat/note.txt
"""

# The next branch's SRPM is made by `make srpm` (Copr's make_srpm method).
MAKEFILE = """\
srpm:
\techo "second, written by .copr/Makefile" > note.txt
\trpmbuild -bs --define "_sourcedir $(CURDIR)" --define "_srcrpmdir $(outdir)" $(spec)
"""
MAKEFILE_NOTE = "second, written by .copr/Makefile\n"


def cli(
    server: Server, user: str, *args: str, stdin: str = "", config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run copr-cli as `user` and remember which subcommand ran."""
    conf = config or server.configs[user]
    command = args[0]
    r = subprocess.run(
        [str(VENV_BIN / "copr-cli"), "--config", str(conf), *args],
        input=stdin,
        text=True,
        capture_output=True,
        timeout=1200,
        env=server.env,
    )
    outcome = r.stdout + r.stderr
    assert "Not Found" not in outcome, (args, outcome)
    CLI_SEEN[command] = outcome
    return r


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def unsupported(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode != 0, r.stdout
    assert UNSUPPORTED in r.stderr or "not supported" in r.stderr, r.stderr


def created(output: str) -> int:
    match = re.search(r"Created builds: (\d+)", output)
    assert match, output
    return int(match.group(1))


class Py:
    """python-copr's Client for one user; every call is remembered by its table name."""

    def __init__(self, server: Server, user: str) -> None:
        self.client = Client.create_from_config_file(str(server.configs[user]))

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        proxy, _, method = name.rpartition(".")
        target = getattr(self.client, f"{proxy or 'base'}_proxy")
        try:
            result = getattr(target, method)(*args, **kwargs)
        except CoprException as exc:
            PY_SEEN[name] = f"error: {exc}"
            raise
        PY_SEEN[name] = "ok"
        return result


@pytest.fixture(scope="module")
def users(server: Server) -> dict[str, Py]:
    server.user(OWNER)
    server.user(OTHER)
    server.user(ADMIN, admin=True)
    return {u: Py(server, u) for u in (OWNER, OTHER, ADMIN)}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitRepo]:
    base = tmp_path_factory.mktemp("compat-git")
    files = {"pkg/kopers-compat.spec": SPEC.format(version="1.0"), "pkg/note.txt": "first\n"}
    with git_daemon(base, "compat.git", files) as served:
        yield served


@pytest.fixture(scope="module")
def first_build(server: Server, users: dict[str, Py], repo: GitRepo) -> int:
    """The git package, added with add-package-scm, and its first build, left running.

    The session server has one VM slot, and a build of the same owner with a
    lower id runs first: while this build's source step and chroot build hold
    the slot, what is submitted after it waits, and is canceled before it boots.
    """
    ok(
        cli(
            server,
            OWNER,
            "add-package-scm",
            PROJECT,
            "--name",
            "kopers-compat",
            "--clone-url",
            repo.url,
            "--subdir",
            "pkg",
            "--spec",
            "kopers-compat.spec",
            "--max-builds",
            "5",
        )
    )
    return created(
        ok(cli(server, OWNER, "build-package", PROJECT, "--name", "kopers-compat", "--nowait"))
    )


def test_account_and_server_commands(server: Server, users: dict[str, Py]) -> None:
    assert ok(cli(server, OWNER, "whoami")).strip() == OWNER
    assert CHROOT in ok(cli(server, OWNER, "list-chroots"))
    py = users[OWNER]
    assert py("home").version == 3
    assert py("auth_check").name == OWNER
    assert py("auth_username") == OWNER
    assert CHROOT in py("mock_chroot.get_list")


def test_create_with_every_option_then_get_list_search_modify(
    server: Server, users: dict[str, Py]
) -> None:
    r = cli(
        server,
        OWNER,
        "create",
        PROJECT,
        "--chroot",
        CHROOT,
        "--description",
        "compat project",
        "--instructions",
        "dnf install kopers-compat",
        "--repo",
        "https://example.org/extra/",
        "--runtime-repo-dependency",
        "https://example.org/runtime/",
        "--unlisted-on-hp",
        "on",
        "--module-hotfixes",
        "on",
        "--repo-priority",
        "7",
        "--follow-fedora-branching",
        "off",
        "--delete-after-days",
        "30",
        "--enable-net",
        "off",
    )
    assert f"/coprs/{OWNER}/{PROJECT}/" in ok(r)
    got = users[OWNER]("project.get", OWNER, PROJECT)
    assert got.description == "compat project"
    assert got.unlisted_on_hp is True and got.auto_prune is True
    assert got.module_hotfixes is True and int(got.repo_priority) == 7
    assert got.follow_fedora_branching is False
    assert "https://example.org/extra/" in got.additional_repos
    repo_file = server.get(f"/coprs/{OWNER}/{PROJECT}/repo/debian-12/dnf.repo?arch=x86_64")
    assert "priority=7" in repo_file and "module_hotfixes=1" in repo_file
    assert "https://example.org/runtime/" in repo_file
    # Unlisted: not on the home page, still reachable.
    assert f"/coprs/{OWNER}/{PROJECT}/" not in server.get("/")
    assert "compat project" in ok(cli(server, OWNER, "get", f"{OWNER}/{PROJECT}"))
    assert f"Name: {PROJECT}" in ok(cli(server, OWNER, "list", OWNER))
    listed = users[OWNER]("project.get_list", ownername=OWNER)
    assert PROJECT in [p.name for p in listed]
    found = users[OWNER]("project.search", "compat")
    assert f"{OWNER}/{PROJECT}" in [p.full_name for p in found]

    # Something the Debian builder cannot honour is refused, naming the option.
    r = cli(server, OWNER, "create", "nope", "--chroot", CHROOT, "--isolation", "nspawn")
    assert r.returncode == 1 and "isolation" in r.stderr, r.stderr
    assert server.get(f"/api_3/project/list?ownername={OWNER}")["items"][0]["name"] == PROJECT

    ok(cli(server, OWNER, "modify", PROJECT, "--description", "changed", "--repo-priority", "3"))
    got = users[OWNER]("project.get", OWNER, PROJECT)
    assert got.description == "changed" and int(got.repo_priority) == 3
    users[OWNER]("project.edit", OWNER, PROJECT, instructions="read me", unlisted_on_hp=False)
    got = users[OWNER]("project.get", OWNER, PROJECT)
    assert got.instructions == "read me" and got.unlisted_on_hp is False
    assert f"/coprs/{OWNER}/{PROJECT}/" in server.get("/")
    ok(cli(server, OWNER, "regenerate-repos", PROJECT))
    users[OWNER]("project.regenerate_repos", OWNER, PROJECT)


def test_chroot_commands(server: Server, users: dict[str, Py]) -> None:
    where = f"{PROJECT}/{CHROOT}"
    ok(cli(server, OWNER, "edit-chroot", where, "--repos", "https://example.org/chroot/"))
    assert "https://example.org/chroot/" in ok(cli(server, OWNER, "get-chroot", where))
    got = users[OWNER]("project_chroot.get", OWNER, PROJECT, CHROOT)
    assert got.additional_repos == ["https://example.org/chroot/"]
    users[OWNER]("project_chroot.edit", OWNER, PROJECT, CHROOT, additional_repos=[])
    assert users[OWNER]("project_chroot.get", OWNER, PROJECT, CHROOT).additional_repos == []
    r = cli(server, OWNER, "edit-chroot", where, "--isolation", "nspawn")
    assert r.returncode == 1 and "isolation" in r.stderr, r.stderr
    r = cli(server, OWNER, "edit-chroot", where, "--reset", "nonexisting")
    assert r.returncode == 1 and "nonexisting" in r.stderr, r.stderr
    config = ok(cli(server, OWNER, "mock-config", f"{OWNER}/{PROJECT}", CHROOT))
    assert f"include('/etc/mock/{CHROOT}.cfg')" in config and "priority=3" in config
    conf = users[OWNER]("project_chroot.get_build_config", OWNER, PROJECT, CHROOT)
    assert conf.chroot == CHROOT


def test_permissions_and_can_build_in(server: Server, users: dict[str, Py]) -> None:
    assert users[OWNER]("project.can_build_in", OTHER, OWNER, PROJECT) is False
    ok(cli(server, OTHER, "request-permissions", f"{OWNER}/{PROJECT}", "--builder"))
    listed = ok(cli(server, OWNER, "list-permissions", PROJECT))
    assert OTHER in listed and "request" in listed
    ok(cli(server, OWNER, "edit-permissions", PROJECT, "--builder", OTHER))
    perms = users[OWNER]("project.get_permissions", OWNER, PROJECT)
    assert perms.permissions[OTHER]["builder"] == "approved"
    assert users[OWNER]("project.can_build_in", OTHER, OWNER, PROJECT) is True
    users[OTHER]("project.request_permissions", OWNER, PROJECT, {"admin": True})
    users[OWNER]("project.set_permissions", OWNER, PROJECT, {OTHER: {"admin": "nothing"}})
    perms = users[OWNER]("project.get_permissions", OWNER, PROJECT)
    assert perms.permissions[OTHER]["admin"] == "nothing"


def test_webhook_secret_rotates(server: Server, users: dict[str, Py]) -> None:
    first = re.search(
        r"Generated new token: (\S+)",
        ok(cli(server, OWNER, "new-webhook-secret", PROJECT, stdin="y\n")),
    )
    assert first, CLI_SEEN["new-webhook-secret"]
    second = users[OWNER]("webhook.generate", OWNER, PROJECT).webhook_secret
    assert second and second != first.group(1)


def submitted_then_canceled(server: Server, output: str, source_type: str) -> dict[str, Any]:
    """A build that was stored as asked; canceled, since test_sources.py runs these for real.

    It waits behind `first_build` for the VM slot, so the cancel comes before any VM.
    """
    build_id = created(output)
    cli(server, OWNER, "cancel", str(build_id))
    build = server.get(f"/api/builds/{build_id}")
    assert build["state"] in ("canceled", "succeeded", "failed"), build
    return build


def test_every_source_kind_is_accepted_or_refused_clearly(
    server: Server,
    users: dict[str, Py],
    repo: GitRepo,
    first_build: int,
    make_srpm: Callable[..., Path],
    tmp_path: Path,
) -> None:
    # A project of their own: the git package's project lists its packages and builds.
    ok(cli(server, OWNER, "create", KINDS, "--chroot", CHROOT))
    spec = tmp_path / "kopers-compat.spec"
    spec.write_text(SPEC.format(version="3.0"))
    submitted_then_canceled(
        server, ok(cli(server, OWNER, "build", KINDS, str(spec), "--nowait")), "upload"
    )
    submitted_then_canceled(
        server,
        ok(cli(server, OWNER, "buildpypi", KINDS, "--packagename", "six", "--nowait")),
        "pypi",
    )
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    submitted_then_canceled(
        server,
        ok(cli(server, OWNER, "buildcustom", KINDS, "--script", str(script), "--nowait")),
        "custom",
    )
    submitted_then_canceled(
        server,
        ok(
            cli(
                server,
                OWNER,
                "buildscm",
                KINDS,
                "--clone-url",
                repo.url,
                "--subdir",
                "pkg",
                "--method",
                "make_srpm",
                "--nowait",
            )
        ),
        "scm",
    )
    r = cli(server, OWNER, "buildscm", KINDS, "--clone-url", "file:///etc", "--nowait")
    assert r.returncode == 1 and "clone_url must be" in r.stderr, r.stderr
    r = cli(server, OWNER, "buildscm", KINDS, "--clone-url", repo.url, "--method", "tito")
    assert r.returncode == 1 and "source_build_method tito is not supported" in r.stderr, r.stderr
    unsupported(cli(server, OWNER, "buildgem", KINDS, "--gem", "rake", "--nowait"))
    unsupported(cli(server, OWNER, "build-distgit", KINDS, "--name", "tar", "--nowait"))

    py = users[OWNER]
    srpm = make_srpm("kopers-pyfile", "1")
    # python-copr itself needs buildopts here: it deletes a key from them.
    py("build.check_before_build", OWNER, KINDS, buildopts={"progress_callback": None})
    for name, args in (
        ("build.create_from_file", (str(srpm),)),
        ("build.create_from_url", ("http://127.0.0.2:1/x.src.rpm",)),
        ("build.create_from_urls", (["http://127.0.0.2:1/y.src.rpm"],)),
        ("build.create_from_scm", (repo.url,)),
        ("build.create_from_pypi", ("six",)),
        ("build.create_from_custom", ("#!/bin/sh\nexit 0\n",)),
    ):
        build = py(name, OWNER, KINDS, *args)
        if name.endswith("urls"):
            build = build[0]
        assert build.projectname == KINDS
        if "url" in name:
            # Nothing answers there: the import fails on its own, quickly.
            assert server.wait_build(build.id)["state"] == "failed"
        else:
            py("build.cancel", build.id)
    for name, args in (
        ("build.create_from_rubygems", ("rake",)),
        ("build.create_from_distgit", ("tar",)),
    ):
        with pytest.raises(CoprException, match="not supported"):
            py(name, OWNER, KINDS, *args)

    # A built binary RPM goes straight into the repository, without a VM.
    rpm_dir = tmp_path / "rpms"
    from tests.rpms import noarch_rpm

    rpm, _ = noarch_rpm(rpm_dir, "kopers-uploaded", "4.2")
    build_id = created(ok(cli(server, OWNER, "uploadrpm", KINDS, str(rpm), "--nowait")))
    assert server.wait_build(build_id)["state"] == "succeeded"
    built = server.get(f"/api_3/build/built-packages/{build_id}")
    assert {p["name"] for p in built[CHROOT]["packages"]} == {"kopers-uploaded"}
    build = py("build.create_from_rpm_upload", OWNER, KINDS, str(rpm))
    assert server.wait_build(build.id)["state"] == "succeeded"

    # Builds that are no longer wanted go, one way or the other.
    canceled = [
        b["id"]
        for b in server.get(f"/api_3/build/list?ownername={OWNER}&projectname={KINDS}")["items"]
        if b["state"] == "canceled"
    ]
    assert len(canceled) >= 3
    ok(cli(server, OWNER, "delete-build", str(canceled[0])))
    py("build.delete", canceled[1])
    py("build.delete_list", canceled[2:])
    left = {
        b["id"]
        for b in server.get(f"/api_3/build/list?ownername={OWNER}&projectname={KINDS}")["items"]
    }
    assert not left & set(canceled)


def test_git_package_lifecycle(
    server: Server, users: dict[str, Py], repo: GitRepo, first_build: int, tmp_path: Path
) -> None:
    """add-package-scm, build-package, edit (to make_srpm), build again, and the reads between.

    The first build (see `first_build`) takes the spec from the checkout; the
    second, of the next branch, gets its SRPM from the branch's .copr/Makefile.
    """
    pkg = json.loads(ok(cli(server, OWNER, "get-package", PROJECT, "--name", "kopers-compat")))
    assert pkg["source_type"] == "scm"
    assert pkg["source_dict"]["clone_url"] == repo.url
    assert pkg["source_dict"]["subdirectory"] == "pkg"

    first = first_build
    build = server.wait_build(first)
    assert build["state"] == "succeeded", build
    assert build["source_package"]["version"] == "1.0-1"

    # The next commit, picked through the stored definition's new committish,
    # and made into an SRPM by `make srpm` with the branch's own Makefile.
    repo.commit(
        {
            "pkg/kopers-compat.spec": SPEC.format(version="2.0"),
            "pkg/note.txt": "second\n",
            "pkg/.copr/Makefile": MAKEFILE,
        },
        branch="next",
    )
    ok(
        cli(
            server,
            OWNER,
            "edit-package-scm",
            PROJECT,
            "--name",
            "kopers-compat",
            "--clone-url",
            repo.url,
            "--commit",
            "next",
            "--subdir",
            "pkg",
            "--spec",
            "kopers-compat.spec",
            "--method",
            "make_srpm",
        )
    )
    got = users[OWNER]("package.get", OWNER, PROJECT, "kopers-compat")
    assert got.source_dict["committish"] == "next"
    assert got.source_dict["source_build_method"] == "make_srpm"
    second = users[OWNER]("package.build", OWNER, PROJECT, "kopers-compat").id
    build = server.wait_build(second)
    source_log = server.data_dir / "logs" / f"{second:08d}" / "srpm-build" / "builder-live.log"
    made = source_log.read_text() if source_log.is_file() else ""
    assert build["state"] == "succeeded", (build, made[-3000:])
    assert build["source_package"]["version"] == "2.0-1"
    assert "+ make -f /build/src/.copr/Makefile srpm" in made, made[-3000:]
    # What the Makefile wrote is what the built package installs.
    repo_text = server.get(f"/coprs/{OWNER}/{PROJECT}/repo/debian-12/dnf.repo?arch=x86_64")
    root = install_from(repo_text, "kopers-compat", tmp_path)
    assert (root / "usr/share/kopers-compat/note.txt").read_text() == MAKEFILE_NOTE

    got = users[OWNER](
        "package.get",
        OWNER,
        PROJECT,
        "kopers-compat",
        with_latest_build=True,
        with_latest_succeeded_build=True,
    )
    assert got.builds["latest"]["id"] == second
    assert got.builds["latest_succeeded"]["id"] == second
    listed = json.loads(ok(cli(server, OWNER, "list-packages", PROJECT, "--with-latest-build")))
    assert [p["name"] for p in listed] == ["kopers-compat"]
    assert listed[0]["latest_build"]["id"] == second
    assert ok(cli(server, OWNER, "list-package-names", PROJECT)).split() == ["kopers-compat"]
    assert [p.name for p in users[OWNER]("package.get_list", OWNER, PROJECT)] == ["kopers-compat"]

    # The reads about the finished build.
    assert ok(cli(server, OWNER, "status", str(second))).strip() == "succeeded"
    assert "succeeded" in ok(cli(server, OWNER, "watch-build", str(second)))
    builds = ok(cli(server, OWNER, "list-builds", PROJECT))
    assert re.search(rf"{second}\s+kopers-compat\s+succeeded", builds), builds
    dest = tmp_path / "spec"
    ok(cli(server, OWNER, "download-build", str(second), "--spec", "-d", str(dest)))
    specs = list(dest.rglob("*.spec"))
    assert [p.name for p in specs] == ["kopers-compat.spec"]
    assert "Version:        2.0" in specs[0].read_text()
    assert users[OWNER]("build.get", second).state == "succeeded"
    assert second in [b.id for b in users[OWNER]("build.get_list", OWNER, PROJECT)]
    built = users[OWNER]("build.get_built_packages", second)
    assert {(p["name"], p["arch"]) for p in built[CHROOT]["packages"]} >= {
        ("kopers-compat", "noarch")
    }
    per_chroot = users[OWNER]("build_chroot.get_built_packages", second, CHROOT)
    assert per_chroot["packages"] == built[CHROOT]["packages"]
    assert users[OWNER]("build_chroot.get", second, CHROOT).state == "succeeded"
    assert [c.name for c in users[OWNER]("build_chroot.get_list", second)] == [CHROOT]
    assert users[OWNER]("build_chroot.get_build_config", second, CHROOT).chroot == CHROOT
    source = users[OWNER]("build.get_source_chroot", second)
    assert source.state == "succeeded"
    assert users[OWNER]("build.get_source_build_config", second) is not None

    monitor = json.loads(ok(cli(server, OWNER, "monitor", PROJECT, "--output-format", "json")))
    row = [m for m in monitor if m["name"] == "kopers-compat" and m["chroot"] == CHROOT]
    assert row and row[0]["build_id"] == second and row[0]["state"] == "succeeded", monitor
    watched = users[OWNER]("monitor.monitor", OWNER, PROJECT)
    assert watched.packages[0]["chroots"][CHROOT]["build_id"] == second


def test_packages_of_every_source_type_store_their_definition(
    server: Server, users: dict[str, Py], tmp_path: Path
) -> None:
    script = tmp_path / "make-sources.sh"
    script.write_text("#!/bin/sh\necho custom\n")
    adds = {
        "pypi": ["add-package-pypi", "--name", "python-six", "--packagename", "six"],
        "custom": ["add-package-custom", "--name", "from-script", "--script", str(script)],
        "rubygems": ["add-package-rubygems", "--name", "rubygem-rake", "--gem", "rake"],
        "distgit": ["add-package-distgit", "--name", "tar", "--distgit", "fedora"],
    }
    for source_type, args in adds.items():
        ok(cli(server, OWNER, args[0], PROJECT, *args[1:]))
        name = args[args.index("--name") + 1]
        pkg = json.loads(ok(cli(server, OWNER, "get-package", PROJECT, "--name", name)))
        assert pkg["source_type"] == source_type, pkg
    ok(
        cli(
            server,
            OWNER,
            "edit-package-pypi",
            PROJECT,
            "--name",
            "python-six",
            "--packagename",
            "six",
            "--packageversion",
            "1.16.0",
        )
    )
    assert (
        json.loads(ok(cli(server, OWNER, "get-package", PROJECT, "--name", "python-six")))[
            "source_dict"
        ]["pypi_package_version"]
        == "1.16.0"
    )
    ok(
        cli(
            server,
            OWNER,
            "edit-package-custom",
            PROJECT,
            "--name",
            "from-script",
            "--script",
            str(script),
            "--script-builddeps",
            "make",
        )
    )
    assert "make" in str(
        json.loads(ok(cli(server, OWNER, "get-package", PROJECT, "--name", "from-script")))[
            "source_dict"
        ]
    )
    ok(
        cli(
            server,
            OWNER,
            "edit-package-rubygems",
            PROJECT,
            "--name",
            "rubygem-rake",
            "--gem",
            "rake2",
        )
    )
    assert (
        json.loads(ok(cli(server, OWNER, "get-package", PROJECT, "--name", "rubygem-rake")))[
            "source_dict"
        ]["gem_name"]
        == "rake2"
    )
    ok(
        cli(
            server,
            OWNER,
            "edit-package-distgit",
            PROJECT,
            "--name",
            "tar",
            "--distgit",
            "fedora",
            "--commit",
            "f40",
        )
    )
    assert (
        json.loads(ok(cli(server, OWNER, "get-package", PROJECT, "--name", "tar")))["source_dict"][
            "committish"
        ]
        == "f40"
    )
    users[OWNER](
        "package.add", OWNER, PROJECT, "python-requests", "pypi", {"pypi_package_name": "requests"}
    )
    users[OWNER](
        "package.edit",
        OWNER,
        PROJECT,
        "python-requests",
        "pypi",
        {"pypi_package_name": "requests", "pypi_package_version": "2.0"},
    )
    assert (
        users[OWNER]("package.get", OWNER, PROJECT, "python-requests").source_dict[
            "pypi_package_version"
        ]
        == "2.0"
    )

    unsupported(cli(server, OWNER, "build-package", PROJECT, "--name", "rubygem-rake", "--nowait"))
    ok(cli(server, OWNER, "reset-package", PROJECT, "--name", "tar"))
    assert json.loads(ok(cli(server, OWNER, "get-package", PROJECT, "--name", "tar")))[
        "source_dict"
    ] in ({}, None)
    users[OWNER]("package.reset", OWNER, PROJECT, "python-requests")
    ok(cli(server, OWNER, "delete-package", PROJECT, "--name", "tar"))
    users[OWNER]("package.delete", OWNER, PROJECT, "python-requests")
    names = ok(cli(server, OWNER, "list-package-names", PROJECT)).split()
    assert "tar" not in names and "python-requests" not in names and "python-six" in names


def test_fork_installs_with_the_forks_key(
    server: Server, users: dict[str, Py], tmp_path: Path
) -> None:
    out = ok(cli(server, OTHER, "fork", f"{OWNER}/{PROJECT}", "forked"))
    assert f"{OTHER}/forked" in out
    fork = users[OTHER]("project.get", OTHER, "forked")
    assert fork.description == "changed"
    builds = server.get(f"/api_3/build/list?ownername={OTHER}&projectname=forked")["items"]
    for build in builds:
        server.wait_build(build["id"])
    states = {
        b["source_package"]["name"]: server.get(f"/api_3/build/{b['id']}")["state"] for b in builds
    }
    assert states.get("kopers-compat") == "succeeded", states
    source_key = server.get(f"/results/{OWNER}/{PROJECT}/pubkey.gpg")
    fork_key = server.get(f"/results/{OTHER}/forked/pubkey.gpg")
    assert fork_key != source_key
    repo_text = server.get(f"/coprs/{OTHER}/forked/repo/debian-12/dnf.repo?arch=x86_64")
    root = install_from(repo_text, "kopers-compat", tmp_path)
    assert (root / "usr/share/kopers-compat/note.txt").read_text() == MAKEFILE_NOTE
    again = users[OTHER]("project.fork", OWNER, PROJECT, OTHER, "forked", confirm=True)
    assert again.full_name == f"{OTHER}/forked"


def test_persistent_project_and_delete(server: Server, users: dict[str, Py]) -> None:
    # Only a server admin may make a project persistent, as in Copr.
    r = cli(server, OWNER, "create", "keeper", "--chroot", CHROOT, "--persistent")
    assert r.returncode != 0 and "persistent" in r.stderr, r.stderr
    ok(cli(server, ADMIN, "create", f"{OWNER}/keeper", "--chroot", CHROOT, "--persistent"))
    assert users[OWNER]("project.get", OWNER, "keeper").persistent is True
    r = cli(server, OWNER, "delete", "keeper")
    assert r.returncode != 0 and "persistent" in r.stderr, r.stderr
    assert users[OWNER]("project.get", OWNER, "keeper").name == "keeper"
    users[ADMIN]("project.delete", OWNER, "keeper")
    users[OWNER]("project.add", OWNER, "scratch", [CHROOT])
    ok(cli(server, OWNER, "delete", "scratch"))
    assert "scratch" not in [
        p["name"] for p in server.get(f"/api_3/project/list?ownername={OWNER}")["items"]
    ]


def test_new_api_token_replaces_the_old_one(server: Server, users: dict[str, Py]) -> None:
    conf = server.configs[OTHER]
    old = conf.read_text()
    assert "New API token" in ok(cli(server, OTHER, "new-api-token"))
    stale = conf.with_suffix(".stale")
    stale.write_text(old)
    r = cli(server, OTHER, "request-permissions", f"{OWNER}/{PROJECT}", "--admin", config=stale)
    assert r.returncode == 1 and "Login invalid" in r.stderr, r.stderr
    ok(cli(server, OTHER, "request-permissions", f"{OWNER}/{PROJECT}", "--admin"))
    ini = configparser.ConfigParser()
    ini.read(conf)
    fresh = Py(server, OTHER)
    token = fresh("new_api_token")
    assert token.api_token != ini["copr-cli"]["token"]
    conf.write_text(
        conf.read_text()
        .replace(ini["copr-cli"]["token"], token.api_token)
        .replace(ini["copr-cli"]["login"], token.api_login)
    )
    assert Py(server, OTHER)("auth_check").name == OTHER


def test_every_row_of_the_table_was_exercised() -> None:
    for entry in cc.CLI:
        assert entry.name in CLI_SEEN, f"copr-cli {entry.name} was not run"
        if entry.support is cc.Support.UNSUPPORTED:
            assert "not supported" in CLI_SEEN[entry.name], (entry.name, CLI_SEEN[entry.name])
    for entry in cc.PYTHON_COPR:
        assert entry.name in PY_SEEN, f"python-copr {entry.name} was not called"
        if entry.support is cc.Support.UNSUPPORTED:
            assert "not supported" in PY_SEEN[entry.name], (entry.name, PY_SEEN[entry.name])
        else:
            assert PY_SEEN[entry.name] == "ok", (entry.name, PY_SEEN[entry.name])
