"""Project options, pure parts: the bodies of create and modify, and the .repo file they shape."""

from __future__ import annotations

import configparser
from typing import Any

import pytest

from kopers.api import bodies
from kopers.errors import BadRequest
from kopers.projects import NO_EXPIRY, ProjectInput
from kopers.publish.repofile import (
    CoprDep,
    RepoOptions,
    copr_repo,
    expand_chroot,
    external_repo_name,
    render_repo_file,
)

HUB = "http://kopers.example:8080"
BASE = "http://kopers.example:8080/results/alice/p/debian-12-x86_64/"
KEY = "http://kopers.example:8080/results/alice/p/pubkey.gpg"


def test_modify_body_null_is_not_given_and_empty_expiry_clears() -> None:
    given = bodies.project_edit({"bootstrap": "default", "chroots": None, "repos": None}, 100)
    assert given == ProjectInput()
    assert given.details() == {}
    assert bodies.project_edit({"delete_after_days": ""}, 100).delete_after_days == NO_EXPIRY
    edit = bodies.project_edit({"additional_repos": "http://a/ http://b/"}, 100)
    assert edit.additional_repos == ("http://a/", "http://b/")
    assert bodies.project_edit({"repos": []}, 100).additional_repos == ()


def test_create_body_keeps_its_legacy_keys_and_adds_the_options() -> None:
    made = bodies.new_project(
        {
            "name": "p",
            "chroots": ["c-1-x"],
            "repo_priority": "7",
            "packit_forge_projects_allowed": "https://github.com/a/b gitlab.com/c/d",
            "runtime_dependencies": "copr://@grp/base http://h/$chroot/",
        },
        100,
    )
    assert made["name"] == "p" and made["chroots"] == ["c-1-x"]
    assert made["additional_repos"] == [] and made["enable_net"] is False
    assert made["repo_priority"] == 7
    assert made["packit_forge_projects_allowed"] == ["github.com/a/b", "gitlab.com/c/d"]
    given = ProjectInput.of(made)
    assert given.runtime_dependencies == ("copr://@grp/base", "http://h/$chroot/")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"storage": "pulp"}, "storage"),
        ({"multilib": "on"}, "multilib"),
        ({"bootstrap": "off"}, "bootstrap"),
        ({"isolation": "simple"}, "isolation"),
        ({"bootstrap_image": "x"}, "bootstrap_image"),
        ({"repo_priority": True}, "repo_priority"),
        ({"delete_after_days": 0}, "delete_after_days"),
        ({"runtime_dependencies": ["copr://a/b/c"]}, "runtime_dependencies"),
        ({"packit_forge_projects_allowed": ["a b"]}, "packit_forge_projects_allowed"),
    ],
)
def test_bodies_refuse(body: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest, match=field):
        bodies.new_project({"name": "p", "chroots": ["c-1-x"], **body}, 100)
    if field != "storage":
        with pytest.raises(BadRequest, match=field):
            bodies.project_edit(body, 100)


def test_chroot_edit_reset_fields_are_get_chroots() -> None:
    assert bodies.chroot_edit({"reset_fields": ["isolation", "with_opts"]}).additional_repos is None
    with pytest.raises(BadRequest, match="ownername"):
        bodies.chroot_edit({"reset_fields": ["ownername"]})


def test_copr_repo_and_expansion() -> None:
    assert copr_repo("copr://@grp/base") == ("@grp", "base")
    assert copr_repo("copr://alice/p/") == ("alice", "p")
    assert copr_repo("copr://alice") is None and copr_repo("http://a/b") is None
    assert expand_chroot("http://h/$chroot/$distname/", "fedora-40-x86_64") == (
        "http://h/fedora-40-x86_64/fedora/"
    )
    assert external_repo_name("https://h.example/r/$x/") == "https_h_example_r_x"


def test_repo_file_with_options_and_dependencies() -> None:
    deps = [
        CoprDep(
            "copr://bob/base",
            "bob",
            "base",
            BASE.replace("alice/p", "bob/base"),
            KEY,
            RepoOptions(True, 3),
        ),
        CoprDep("copr://bob/gone", "bob", "gone"),
    ]
    text = render_repo_file(
        HUB, "alice", "p", BASE, KEY, RepoOptions(False, 10), deps, ["http://h.example/r/"]
    )
    ini = configparser.RawConfigParser()
    ini.read_string(text)
    assert ini.sections() == [
        "copr:kopers.example:alice:p",
        "coprdep:kopers.example:bob:base",
        "coprdep:http_h_example_r",
    ]
    assert ini.get("copr:kopers.example:alice:p", "priority") == "10"
    assert not ini.has_option("copr:kopers.example:alice:p", "module_hotfixes")
    assert ini.get("coprdep:kopers.example:bob:base", "module_hotfixes") == "1"
    assert ini.get("coprdep:http_h_example_r", "gpgcheck") == "0"
    assert "runtime dependency on a Copr project bob/gone" in text
    with pytest.raises(BadRequest):
        render_repo_file(HUB, "alice", "p", BASE, KEY, external_deps=["http://h/\n[evil]"])
