"""Forge deliveries without a server: URL keys, signatures, payload parsing, what a push builds.

The payload builders at the top (`github_push`, `gitlab_push`, ...) make
bodies shaped the way each forge sends them; the integration tests send the
same ones over HTTP.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from kopers import forgeplan
from kopers.errors import AuthenticationError, BadRequest, BuildFailed, Forbidden
from kopers.forgehook import (
    Delivery,
    Forge,
    Ignored,
    Push,
    authenticate,
    delivery_of,
    parse,
    signature_of,
)
from kopers.forgepayload import RefKind
from kopers.forgeplan import plan, repo_key, tag_names, under
from kopers.models import (
    Package,
    PackageSourceType,
    PypiPackageSource,
    ScmPackageSource,
    ScmType,
)
from kopers.redact import redact_path
from kopers.submission import ScmSource
from kopers.worker.scm import RefPin, pin_of

SHA = "a" * 40
SHA2 = "b" * 40
ZERO = "0" * 40
SECRET = "6f1c9a7e-2b44-4c8e-9d3b-0a5e7c1d2f30"
REPO = "https://github.com/octo/hello"

# -- payloads as forges send them -----------------------------------------------------


def github_push(
    repo: str = REPO,
    ref: str = "refs/heads/main",
    after: str = SHA,
    paths: list[str] | None = None,
    deleted: bool = False,
) -> dict[str, Any]:
    owner_repo = repo.split("github.com/", 1)[-1]
    return {
        "ref": ref,
        "before": SHA2,
        "after": after,
        "created": False,
        "deleted": deleted,
        "repository": {
            "full_name": owner_repo,
            "html_url": repo,
            "clone_url": repo + ".git",
            "git_url": repo.replace("https://", "git://") + ".git",
            "ssh_url": f"git@github.com:{owner_repo}.git",
            "url": repo,
        },
        "commits": [] if paths is None else [{"added": paths, "modified": [], "removed": []}],
        "sender": {"login": "octo"},
    }


def gitlab_push(
    repo: str = "https://gitlab.com/grp/hello",
    ref: str = "refs/heads/main",
    after: str = SHA,
    paths: list[str] | None = None,
    tag: bool = False,
) -> dict[str, Any]:
    host_path = repo.split("://", 1)[1]
    host, path = host_path.split("/", 1)
    return {
        "object_kind": "tag_push" if tag else "push",
        "ref": ref,
        "before": SHA2,
        "after": after,
        "checkout_sha": None if after == ZERO else after,
        "project": {
            "git_http_url": repo + ".git",
            "git_ssh_url": f"git@{host}:{path}.git",
            "web_url": repo,
            "homepage": repo,
        },
        "commits": [] if paths is None else [{"added": [], "modified": paths, "removed": []}],
        "total_commits_count": 0 if paths is None else 1,
    }


def bitbucket_push(
    repo: str = "https://bitbucket.org/team/hello",
    changes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    branch = {"type": "branch", "name": "main", "target": {"hash": SHA}}
    return {
        "actor": {"display_name": "someone"},
        "repository": {
            "full_name": repo.split("bitbucket.org/", 1)[-1],
            "links": {"html": {"href": repo}},
        },
        "push": {"changes": changes if changes is not None else [{"new": branch, "old": None}]},
    }


def pagure_push(
    instance: str = "https://pagure.io/",
    fullname: str = "hello",
    branch: str = "main",
    end: str = SHA,
) -> dict[str, Any]:
    return {
        "topic": "git.receive",
        "msg": {
            "agent": "someone",
            "branch": branch,
            "start_commit": SHA2,
            "end_commit": end,
            "total_commits": 1,
            "repo": {"fullname": fullname, "url_path": fullname, "name": fullname},
            "pagure_instance": instance,
            "project_fullname": fullname,
        },
        "msg_id": "2024-1",
        "timestamp": 1,
    }


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def delivery(forge: Forge, data: Any, event: str, **kw: Any) -> Delivery:
    raw = data if isinstance(data, bytes) else body(data)
    return Delivery(forge, raw, kw.pop("content_type", "application/json"), event, **kw)


def package(
    name: str,
    clone_url: str = REPO + ".git",
    committish: str = "",
    subdirectory: str = "",
    webhook_rebuild: bool = True,
    pid: int | None = None,
    scm_type: ScmType = ScmType.GIT,
) -> Package:
    return Package(
        id=pid if pid is not None else abs(hash(name)) % 10**6,
        project_id=1,
        owner="alice",
        project="p",
        name=name,
        source_type=PackageSourceType.SCM,
        source=ScmPackageSource(clone_url, committish, subdirectory, scm_type=scm_type),
        webhook_rebuild=webhook_rebuild,
    )


def push(
    ref: str = "main",
    kind: RefKind = RefKind.BRANCH,
    paths: tuple[str, ...] | None = None,
    urls: tuple[str, ...] = (REPO + ".git",),
) -> Push:
    return Push(Forge.GITHUB, urls, kind, ref, SHA, paths)


# -- URL keys ---------------------------------------------------------------------------

SAME_REPO = [
    ("https://user:pass@Host:443/a/b.git/", "host/a/b"),
    ("git@host:a/b", "host/a/b"),
    ("git@github.com:octo/hello.git", "github.com/octo/hello"),
    ("ssh://git@github.com:22/octo/hello.git", "github.com/octo/hello"),
    ("git://github.com/octo/hello", "github.com/octo/hello"),
    ("git+ssh://git@github.com/octo/hello", "github.com/octo/hello"),
    ("HTTP://GitHub.COM:80/octo/hello/", "github.com/octo/hello"),
    ("https://github.com./octo/hello", "github.com/octo/hello"),
    ("https://gitlab.example.com:8443/a/b", "gitlab.example.com:8443/a/b"),
    ("https://[::1]:8080/a/b.git", "[::1]:8080/a/b"),
    ("https://bücher.example/o/r", "xn--bcher-kva.example/o/r"),
    ("https://xn--bcher-kva.example/o/r.git", "xn--bcher-kva.example/o/r"),
    ("https://github.com/octo/%68ello", "github.com/octo/hello"),
    ("https://github.com/octo/hello.git.git", "github.com/octo/hello.git"),
    ("ssh://host/~user/repo.git", "host/~user/repo"),
]

NAMES_NOTHING = [
    "",
    "hello",
    "/srv/git/hello.git",
    "file:///srv/git/hello.git",
    "ftp://github.com/octo/hello",
    "https:///octo/hello",
    "https://github.com",
    "https://github.com/",
    "https://github.com/.git",
    "https://github.com/octo/../victim/repo",
    "https://github.com/octo/%2e%2e/victim/repo",
    "https://github.com/octo/./hello",
    "https://github.com//octo/hello",
    "https://github.com/octo/hello?ref=main",
    "https://github.com/octo/hello#main",
    "https://github.com:99999/octo/hello",
    "https://github.com:port/octo/hello",
    "https://github.com/octo/hello\n",
    "https://github.com/oc to/hello",
    "https://github.com/octo/hel\x00lo",
    "https://github.com/octo\\hello",
    "https://%67ithub.com/octo/hello",
    "https://git_hub..com/octo/hello",
    "https://github.com/octo/%FF",
    "https://" + "a" * 64 + ".com/x/y",
    "https://github.com/" + "x" * 5000,
]


@pytest.mark.parametrize(("url", "key"), SAME_REPO)
def test_urls_of_one_repository_have_one_key(url: str, key: str) -> None:
    assert repo_key(url) == key


@pytest.mark.parametrize("url", NAMES_NOTHING)
def test_a_hostile_or_odd_url_names_no_repository(url: str) -> None:
    assert repo_key(url) is None


def test_every_url_a_github_payload_gives_names_the_same_repository() -> None:
    repo = github_push()["repository"]
    keys = {repo_key(repo[k]) for k in ("clone_url", "git_url", "ssh_url", "html_url")}
    assert keys == {"github.com/octo/hello"}


def test_lookalike_hosts_and_other_owners_stay_apart() -> None:
    cyrillic_i = "\u0456"
    assert repo_key(f"https://g{cyrillic_i}thub.com/octo/hello") != repo_key(REPO)
    assert repo_key("https://github.com/Octo/hello") != repo_key(REPO)  # paths keep case
    assert repo_key("https://github.com.evil.example/octo/hello") != repo_key(REPO)
    assert repo_key("https://github.com@evil.example/octo/hello") == "evil.example/octo/hello"


# -- who sent it ---------------------------------------------------------------------------


def test_github_needs_a_signature_of_the_body_keyed_with_the_secret() -> None:
    raw = body(github_push())
    good = Delivery(
        Forge.GITHUB, raw, "application/json", "push", signature=signature_of(SECRET, raw)
    )
    authenticate(good, SECRET)
    with pytest.raises(AuthenticationError, match="X-Hub-Signature-256"):
        authenticate(Delivery(Forge.GITHUB, raw, event="push"), SECRET)
    for wrong in (
        signature_of("another secret", raw),
        signature_of(SECRET, raw + b" "),
        signature_of(SECRET, raw).replace("sha256=", "sha1="),
        "sha256=",
        "sha256=" + "é" * 64,  # not ASCII: still just wrong, not a crash
        signature_of(SECRET, raw) + "0",
    ):
        with pytest.raises(Forbidden, match="signature"):
            authenticate(Delivery(Forge.GITHUB, raw, event="push", signature=wrong), SECRET)


def test_gitlab_token_must_be_the_secret() -> None:
    d = delivery(Forge.GITLAB, gitlab_push(), "Push Hook", token=SECRET)
    authenticate(d, SECRET)
    with pytest.raises(AuthenticationError, match="X-Gitlab-Token"):
        authenticate(delivery(Forge.GITLAB, gitlab_push(), "Push Hook"), SECRET)
    for wrong in (SECRET.upper(), SECRET[:-1], SECRET + " ", "", "ü"):
        with pytest.raises(Forbidden):
            authenticate(delivery(Forge.GITLAB, gitlab_push(), "Push Hook", token=wrong), SECRET)


def test_bitbucket_signature_is_checked_when_there_is_one() -> None:
    raw = body(bitbucket_push())
    authenticate(Delivery(Forge.BITBUCKET, raw, event="repo:push"), SECRET)  # unsigned
    signed = Delivery(Forge.BITBUCKET, raw, event="repo:push", signature=signature_of(SECRET, raw))
    authenticate(signed, SECRET)
    bad = Delivery(Forge.BITBUCKET, raw, event="repo:push", signature=signature_of("x", raw))
    with pytest.raises(Forbidden):
        authenticate(bad, SECRET)


def test_headers_are_read_per_forge_and_cleaned() -> None:
    headers = {
        "Content-Type": "Application/JSON; charset=utf-8",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": "sha256=00",
        "X-Gitlab-Token": "not for github",
    }
    d = delivery_of(Forge.GITHUB, headers, b"{}")
    assert (d.content_type, d.event, d.signature, d.token) == (
        "application/json",
        "push",
        "sha256=00",
        None,
    )
    assert d.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    odd = delivery_of(
        Forge.GITLAB, {"X-Gitlab-Event-UUID": "x" * 201, "X-Gitlab-Event": "\x01"}, b""
    )
    assert odd.delivery_id is None and odd.event == ""
    assert len(d.digest) == 64 and d.digest != odd.digest


# -- what was pushed --------------------------------------------------------------------


def test_a_github_push_is_parsed_with_every_url_and_its_paths() -> None:
    [p] = parse(delivery(Forge.GITHUB, github_push(paths=["pkg/a.spec"]), "push"))  # type: ignore[misc]
    assert (p.ref_kind, p.ref, p.commit, p.changed_paths) == (
        RefKind.BRANCH,
        "main",
        SHA,
        ("pkg/a.spec",),
    )
    assert len(p.repo_urls) == 5
    [tag] = parse(delivery(Forge.GITHUB, github_push(ref="refs/tags/v1.0"), "push"))  # type: ignore[misc]
    assert (tag.ref_kind, tag.ref, tag.commit, tag.changed_paths) == (
        RefKind.TAG,
        "v1.0",
        SHA,
        None,
    )


def test_github_ping_deletions_and_other_events_build_nothing() -> None:
    assert isinstance(parse(delivery(Forge.GITHUB, {"zen": "x"}, "ping")), Ignored)
    assert isinstance(parse(delivery(Forge.GITHUB, {}, "issues")), Ignored)
    gone = parse(delivery(Forge.GITHUB, github_push(after=ZERO, deleted=True), "push"))
    assert isinstance(gone, Ignored) and "deleted" in gone.reason
    # All-zero after alone says deleted too.
    assert isinstance(parse(delivery(Forge.GITHUB, github_push(after=ZERO), "push")), Ignored)
    branch = {"ref": "feature", "ref_type": "branch", "repository": {"clone_url": REPO}}
    assert isinstance(parse(delivery(Forge.GITHUB, branch, "create")), Ignored)


def test_a_github_tag_creation_builds_once_through_its_push() -> None:
    created = {"ref": "v2.0", "ref_type": "tag", "repository": {"clone_url": REPO}}
    assert isinstance(parse(delivery(Forge.GITHUB, created, "create")), Ignored)
    [p] = parse(delivery(Forge.GITHUB, github_push(ref="refs/tags/v2.0"), "push"))  # type: ignore[misc]
    assert (p.ref_kind, p.ref) == (RefKind.TAG, "v2.0")
    with pytest.raises(BadRequest, match="ref"):
        parse(delivery(Forge.GITHUB, github_push(ref="refs/tags/--upload-pack=x"), "push"))


def test_a_github_form_body_carries_the_payload() -> None:
    from urllib.parse import urlencode

    raw = urlencode({"payload": json.dumps(github_push())}).encode()
    form = "application/x-www-form-urlencoded"
    [p] = parse(delivery(Forge.GITHUB, raw, "push", content_type=form))  # type: ignore[misc]
    assert p.commit == SHA
    with pytest.raises(BadRequest, match="payload"):
        parse(delivery(Forge.GITHUB, b"payload=1&payload=2", "push", content_type=form))
    with pytest.raises(BadRequest, match="fields"):
        parse(delivery(Forge.GITHUB, b"&".join([b"a=1"] * 200), "push", content_type=form))


MALFORMED: list[tuple[Any, str]] = [
    (b"", "JSON"),
    (b"{not json", "JSON"),
    (b"\xff\xfe{}", "JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    (b'{"after": NaN}', "JSON"),
    (b"[]", "object"),
    (b'"push"', "object"),
    ({**github_push(), "repository": "github.com/octo/hello"}, "repository"),
    ({**github_push(), "repository": {"clone_url": 42}}, "clone_url"),
    ({**github_push(), "repository": {}}, "clone_url"),
    ({**github_push(), "ref": "main"}, "ref"),
    ({**github_push(), "ref": ["refs/heads/main"]}, "ref"),
    ({**github_push(), "ref": "refs/heads/-x"}, "ref"),
    ({**github_push(), "ref": "refs/heads/a b"}, "ref"),
    ({**github_push(), "after": "HEAD"}, "after"),
    ({**github_push(), "after": "a" * 39}, "after"),
    ({**github_push(), "after": None}, "after"),
    ({**github_push(), "deleted": "no"}, "deleted"),
    ({**github_push(), "commits": {"added": []}}, "commits"),
    ({**github_push(), "commits": [{"added": "a.spec"}]}, "added"),
    ({**github_push(), "commits": [{"added": [1]}]}, "added"),
    ({**github_push(), "commits": ["x"]}, "commits"),
]


@pytest.mark.parametrize(("data", "word"), MALFORMED)
def test_a_malformed_github_payload_is_a_400_naming_what(data: Any, word: str) -> None:
    with pytest.raises(BadRequest, match=word) as info:
        parse(delivery(Forge.GITHUB, data, "push"))
    assert "\n" not in info.value.message and len(info.value.message) < 300


def test_gitlab_pushes_tags_and_deletions() -> None:
    [p] = parse(delivery(Forge.GITLAB, gitlab_push(paths=["a/b"]), "Push Hook"))  # type: ignore[misc]
    assert (p.ref, p.commit, p.changed_paths) == ("main", SHA, ("a/b",))
    assert repo_key(p.repo_urls[1]) == "gitlab.com/grp/hello"
    tagged = gitlab_push(ref="refs/tags/v1", tag=True)
    tagged["after"] = SHA2  # the tag object; checkout_sha is the commit
    [t] = parse(delivery(Forge.GITLAB, tagged, "Tag Push Hook"))  # type: ignore[misc]
    assert (t.ref_kind, t.commit) == (RefKind.TAG, SHA)
    assert isinstance(parse(delivery(Forge.GITLAB, gitlab_push(after=ZERO), "Push Hook")), Ignored)
    assert isinstance(parse(delivery(Forge.GITLAB, gitlab_push(), "Issue Hook")), Ignored)
    # 20 commits listed of 30 pushed: the paths are not all known, so none count.
    many = {**gitlab_push(paths=["a/b"]), "total_commits_count": 30}
    [m] = parse(delivery(Forge.GITLAB, many, "Push Hook"))  # type: ignore[misc]
    assert m.changed_paths is None
    with pytest.raises(BadRequest, match="git_http_url"):
        parse(delivery(Forge.GITLAB, {**gitlab_push(), "project": {}}, "Push Hook"))
    with pytest.raises(BadRequest, match="total_commits_count"):
        parse(delivery(Forge.GITLAB, {**gitlab_push(), "total_commits_count": True}, "Push Hook"))


def test_bitbucket_changes_each_push_deleted_ones_do_not() -> None:
    tag = {"type": "tag", "name": "v1", "target": {"hash": SHA2}}
    data = bitbucket_push(
        changes=[
            {"new": {"type": "branch", "name": "main", "target": {"hash": SHA}}},
            {"new": None, "old": {"type": "branch", "name": "gone"}},
            {"new": tag},
        ]
    )
    pushes = parse(delivery(Forge.BITBUCKET, data, "repo:push"))
    assert isinstance(pushes, tuple)
    assert [(p.ref_kind, p.ref, p.commit) for p in pushes] == [
        (RefKind.BRANCH, "main", SHA),
        (RefKind.TAG, "v1", SHA2),
    ]
    only_gone = bitbucket_push(changes=[{"new": None, "old": {"name": "gone"}}])
    assert isinstance(parse(delivery(Forge.BITBUCKET, only_gone, "repo:push")), Ignored)
    with pytest.raises(BadRequest, match="changes"):
        parse(delivery(Forge.BITBUCKET, bitbucket_push(changes=[]), "repo:push"))
    with pytest.raises(BadRequest, match="changes"):
        many = bitbucket_push(changes=[{"new": None}] * 101)
        parse(delivery(Forge.BITBUCKET, many, "repo:push"))
    with pytest.raises(BadRequest, match="hash"):
        bad = bitbucket_push(changes=[{"new": {"type": "branch", "name": "m", "target": {}}}])
        parse(delivery(Forge.BITBUCKET, bad, "repo:push"))


def test_pagure_push_from_its_json_or_its_form() -> None:
    [p] = parse(delivery(Forge.PAGURE, pagure_push(fullname="ns/hello"), "git.receive"))  # type: ignore[misc]
    assert repo_key(p.repo_urls[0]) == "pagure.io/ns/hello" and p.commit == SHA
    from urllib.parse import urlencode

    raw = urlencode({"payload": json.dumps(pagure_push())}).encode()
    form = "application/x-www-form-urlencoded"
    [f] = parse(delivery(Forge.PAGURE, raw, "", content_type=form))  # type: ignore[misc]
    assert f.ref == "main"  # the topic came from the body
    issue = {**pagure_push(), "topic": "issue.new"}
    assert isinstance(parse(delivery(Forge.PAGURE, issue, "issue.new")), Ignored)
    with pytest.raises(BadRequest, match="pagure_instance"):
        parse(delivery(Forge.PAGURE, pagure_push(instance="file:///srv"), "git.receive"))


# -- what to build --------------------------------------------------------------------------


def test_a_push_builds_each_package_of_its_repository_at_its_commit() -> None:
    a = package("a", "git@github.com:octo/hello.git", pid=1)
    b = package("b", "https://github.com/octo/hello", pid=2)
    other = package("c", "https://github.com/octo/other", pid=3)
    off = package("d", REPO, webhook_rebuild=False, pid=4)
    svn = package("e", REPO, scm_type=ScmType.SVN, pid=5)
    pypi = Package(6, 1, "alice", "p", "f", PackageSourceType.PYPI, PypiPackageSource("f"), True)
    result = plan(
        [push(urls=(REPO + ".git", "git@github.com:octo/hello.git"))],
        [a, b, other, off, svn, pypi],
    )
    assert [(x.package.name, x.commit) for x in result.builds] == [("a", SHA), ("b", SHA)]
    assert result.matched and "a at aaaaaaaaaaaa" in result.summary


def test_no_package_of_the_repository_is_no_match() -> None:
    result = plan([push()], [package("x", "https://github.com/octo/other")])
    assert not result.matched and result.builds == ()
    off = plan([push()], [package("x", webhook_rebuild=False)])
    assert not off.matched


def test_a_branch_builds_packages_that_follow_it_or_no_branch() -> None:
    pkgs = [
        package("any", pid=1),
        package("main", committish="main", pid=2),
        package("heads", committish="refs/heads/main", pid=3),
        package("dev", committish="devel", pid=4),
        package("sha", committish=SHA2, pid=5),
    ]
    result = plan([push("main")], pkgs)
    assert sorted(x.package.name for x in result.builds) == ["any", "heads", "main"]
    assert {s.package: s.why for s in result.skipped} == {
        "dev": "it follows devel, not main",
        "sha": f"it follows {SHA2}, not main",
    }
    assert result.summary.startswith("building ")
    nothing = plan([push("feature")], [package("dev", committish="devel")])
    assert nothing.matched and not nothing.builds
    assert nothing.summary == "nothing to build: dev: it follows devel, not feature"


def test_a_subdirectory_builds_only_when_a_change_is_under_it() -> None:
    pkg = package("sub", subdirectory="pkgs/sub")
    assert plan([push(paths=("pkgs/sub/sub.spec",))], [pkg]).builds
    assert plan([push(paths=None)], [pkg]).builds  # the payload does not say: build
    for paths in (
        ("pkgs/subway/x",),
        ("pkgs/other/x", "README"),
        ("pkgs/sub/../other/x",),
        ("../pkgs/sub/x",),
        (),
    ):
        assert not plan([push(paths=paths)], [pkg]).builds, paths
    assert plan([push(paths=("README",))], [package("root")]).builds


@pytest.mark.parametrize(
    ("subdirectory", "path", "inside"),
    [
        ("", "anything", True),
        ("/", "x", True),
        ("a", "a/b", True),
        ("a/", "a", True),
        ("a", "/a/b", True),
        ("a/b", "a/b/c", True),
        ("a/./b", "a/b/c", True),
        ("a", "ab/c", False),
        ("a", "a/../b", False),
        ("a", "..", False),
        ("a", "", False),
        ("..", "x", False),
        ("../a", "a/x", False),
    ],
)
def test_under(subdirectory: str, path: str, inside: bool) -> None:
    assert under(subdirectory, path) is inside


def test_a_tag_builds_the_packages_it_names_or_all_when_it_names_none() -> None:
    pkgs = [
        package("foo", pid=1),
        package("foo-libs", pid=2),
        package("bar", pid=3, committish="x"),
    ]
    named = plan([push("foo-1.2-1", RefKind.TAG)], pkgs)
    assert [x.package.name for x in named.builds] == ["foo"]
    plain = plan([push("v1.2", RefKind.TAG)], pkgs)
    assert sorted(x.package.name for x in plain.builds) == ["bar", "foo", "foo-libs"]


@pytest.mark.parametrize(
    ("tag", "name", "names"),
    [
        ("foo-1.0-1", "foo", True),
        ("foo-1.0", "foo", True),
        ("foo_1.0", "foo", True),
        ("foo-libs-2.3-4.fc40", "foo-libs", True),
        ("foo-bar-1.0", "foo_bar", True),
        ("foo-1.0-1", "foo-1.0", True),
        ("v1.0", "foo", False),
        ("foo", "foo", False),
        ("foo-beta", "foo", False),
        ("foobar-1.0", "foo", False),
    ],
)
def test_tag_names(tag: str, name: str, names: bool) -> None:
    assert tag_names(tag, name) is names


def test_one_build_per_package_when_a_delivery_pushes_several_refs() -> None:
    pkg = package("any")
    two = [push("main"), Push(Forge.BITBUCKET, (REPO,), RefKind.BRANCH, "dev", SHA2, None)]
    result = plan(two, [pkg])
    assert [(x.package.name, x.commit) for x in result.builds] == [("any", SHA)]


# -- the ref a build is held to -------------------------------------------------------------

NOT_REF_NAMES = [
    "../../x",
    "a..b",
    "a~1",
    "a^{}",
    "a~1^{}:@{-1}",
    "x:y",
    "a@{-1}",
    "@",
    "x.lock",
    "a/x.lock/b",
    ".hidden",
    "a/.b",
    "a//b",
    "a/",
    "/a",
    "end.",
    "a?b",
    "a*b",
    "a[b",
    "a\\b",
    "a\x7fb",
    "x" * 256,
]


@pytest.mark.parametrize("name", NOT_REF_NAMES)
def test_a_name_git_would_not_take_for_a_branch_or_tag_is_a_400(name: str) -> None:
    for ref in (f"refs/heads/{name}", f"refs/tags/{name}"):
        with pytest.raises(BadRequest, match="ref") as info:
            parse(delivery(Forge.GITHUB, github_push(ref=ref), "push"))
        assert "\n" not in info.value.message
    change = {"new": {"type": "branch", "name": name, "target": {"hash": SHA}}}
    with pytest.raises(BadRequest, match="name"):
        parse(delivery(Forge.BITBUCKET, bitbucket_push(changes=[change]), "repo:push"))


@pytest.mark.parametrize(
    "name", ["main", "release/1.0", "v1.0-rc1", "foo-1.0-1", "feature/ü", "a.b"]
)
def test_ordinary_branch_and_tag_names_are_read(name: str) -> None:
    [p] = parse(delivery(Forge.GITHUB, github_push(ref=f"refs/heads/{name}"), "push"))  # type: ignore[misc]
    assert p.ref == name
    assert RefPin(RefKind.TAG, name).full == f"refs/tags/{name}"


def test_each_planned_build_is_held_to_the_ref_it_was_pushed_to() -> None:
    pkg = package("any")
    [built] = plan([push("main")], [pkg]).builds
    assert (built.commit, built.on) == (SHA, RefPin(RefKind.BRANCH, "main"))
    [tagged] = plan([push("v1.0", RefKind.TAG)], [pkg]).builds
    assert tagged.on == RefPin(RefKind.TAG, "v1.0")
    assert str(tagged.on) == "tag v1.0"


def test_the_pushed_ref_travels_with_the_commit_in_the_build_source() -> None:
    on = RefPin(RefKind.BRANCH, "main")
    source = ScmSource(REPO, SHA, on=on).as_source()
    assert (source["committish"], source["ref"]) == (SHA, "refs/heads/main")
    assert pin_of(source) == on
    assert pin_of(ScmSource(REPO, SHA, on=RefPin(RefKind.TAG, "v1")).as_source()) == RefPin(
        RefKind.TAG, "v1"
    )
    # A build without a pushed ref (any manual one) carries none, as before.
    manual = ScmSource(REPO, "main").as_source()
    assert "ref" not in manual and pin_of(manual) is None
    for bad in ("main", "refs/remotes/origin/main", "refs/heads/-x", "refs/heads/a..b", 5, ""):
        with pytest.raises(BuildFailed, match="ref"):
            pin_of({"ref": bad})
    with pytest.raises(BadRequest):
        RefPin(RefKind.BRANCH, "--upload-pack=x")


def test_planning_normalizes_each_url_once_however_many_refs_and_packages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """100 refs of one delivery against 2000 packages: O(packages + URLs) normalizations."""
    calls: Counter[str] = Counter()
    real = forgeplan.repo_key

    def counting(url: str) -> str | None:
        calls[url] += 1
        return real(url)

    monkeypatch.setattr(forgeplan, "repo_key", counting)
    packages = [
        package(f"pkg{i}", f"https://bitbucket.org/team/repo{i % 3}", pid=i) for i in range(2000)
    ]
    urls = ("https://bitbucket.org/team/repo0", "https://bitbucket.org/team/repo0")
    pushes = [Push(Forge.BITBUCKET, urls, RefKind.TAG, f"t{i}", SHA, None) for i in range(100)]
    result = forgeplan.plan(pushes, packages)
    assert sum(calls.values()) <= len(packages) + len(set(urls))
    assert max(calls.values()) == 1
    assert len(result.builds) == len([p for p in packages if p.id % 3 == 0])
    assert result.matched and {b.on for b in result.builds} == {RefPin(RefKind.TAG, "t0")}


# -- the secret in a webhook's address ------------------------------------------------------


def test_the_secret_of_a_webhook_path_is_left_out_of_what_is_logged() -> None:
    for forge in ("github", "gitlab", "bitbucket", "pagure"):
        for tail in ("/", ""):
            shown = redact_path(f"/webhooks/{forge}/12/{SECRET}{tail}")
            assert shown == f"/webhooks/{forge}/12/<secret>{tail}"
    assert (
        redact_path(f"/webhooks/custom/12/{SECRET}/hello/") == "/webhooks/custom/12/<secret>/hello/"
    )
    assert SECRET not in redact_path(f"//webhooks//github/12/{SECRET}/")
    assert SECRET not in redact_path(f"/webhooks/github/x/{SECRET}/../..")
    for path in ("/api_3/project/list", "/webhooks/github/12", "/webhooks/", "/"):
        assert redact_path(path) == path
