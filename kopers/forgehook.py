"""Deliveries from git forges: who sent them and what they say was pushed. Pure.

A forge (GitHub, GitLab, Bitbucket, Pagure) calls a project's webhook URL
when someone pushes. This module takes the delivery as it arrived (`Delivery`:
the raw body and the few headers that matter) and answers, without I/O:

- is it from the forge the project set up (`authenticate`): GitHub's
  `X-Hub-Signature-256` HMAC of the body, keyed with the project's webhook
  secret, is required; GitLab's `X-Gitlab-Token` must be the secret; a
  Bitbucket signature is checked when there is one (its secrets are
  optional); Pagure signs with a key of its own, so only the URL's secret
  vouches for it. Secrets are compared in constant time;
- what was pushed (`parse`): one `Push` per updated ref, or `Ignored` with
  the reason nothing is to be built (a ping, a deleted branch, an event that
  is not a push). Anything malformed is a BadRequest naming the field
  (kopers.forgepayload reads the fields).

What a push builds is kopers.forgeplan's.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from kopers import forgepayload as fp
from kopers.errors import AuthenticationError, BadRequest, Forbidden
from kopers.forgepayload import RefKind


class Forge(enum.StrEnum):
    """Where a delivery comes from: the path segment of its webhook URL."""

    GITHUB = "github"
    GITLAB = "gitlab"
    BITBUCKET = "bitbucket"
    PAGURE = "pagure"
    CUSTOM = "custom"  # "build this package now", from anything that can POST


PUSH_FORGES = (Forge.GITHUB, Forge.GITLAB, Forge.BITBUCKET, Forge.PAGURE)
MAX_HEADER = 200  # a delivery id or event name kept in the receipt
MAX_CHANGES = 100  # refs one Bitbucket delivery may update
GITHUB_MAX_COMMITS = 2048  # GitHub lists at most this many commits of a push

# -- the delivery -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request from a forge: its raw body and the headers that matter, cleaned."""

    forge: Forge
    body: bytes
    content_type: str = ""  # lower case, without parameters
    event: str = ""  # X-GitHub-Event, X-Gitlab-Event, X-Event-Key, X-Pagure-Topic
    delivery_id: str | None = None  # the forge's id of this delivery, when it sends one
    signature: str | None = None  # X-Hub-Signature-256 (GitHub), X-Hub-Signature (Bitbucket)
    token: str | None = None  # X-Gitlab-Token

    @property
    def digest(self) -> str:
        """SHA-256 of the body: what tells a replayed delivery."""
        return hashlib.sha256(self.body).hexdigest()


# Per forge: (event header, delivery id headers, signature header, token header).
_HEADERS: Mapping[Forge, tuple[str | None, tuple[str, ...], str | None, str | None]] = {
    Forge.GITHUB: ("X-GitHub-Event", ("X-GitHub-Delivery",), "X-Hub-Signature-256", None),
    Forge.GITLAB: (
        "X-Gitlab-Event",
        ("X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"),
        None,
        "X-Gitlab-Token",
    ),
    Forge.BITBUCKET: ("X-Event-Key", ("X-Request-UUID", "X-Hook-UUID"), "X-Hub-Signature", None),
    Forge.PAGURE: ("X-Pagure-Topic", (), None, None),
    Forge.CUSTOM: (None, ("X-Request-Id",), None, None),
}


def delivery_of(forge: Forge, headers: Mapping[str, str], body: bytes) -> Delivery:
    """A request's body and headers (a case-insensitive mapping) -> Delivery."""
    event_h, id_hs, signature_h, token_h = _HEADERS[forge]
    ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    ids = (_header_text(headers.get(h)) for h in id_hs)
    return Delivery(
        forge=forge,
        body=body,
        content_type=_header_text(ctype) or "",
        event=(_header_text(headers.get(event_h)) or "") if event_h else "",
        delivery_id=next((i for i in ids if i), None),
        # Secrets are compared whole: a long one is simply wrong, not cut.
        signature=headers.get(signature_h) if signature_h else None,
        token=headers.get(token_h) if token_h else None,
    )


def _header_text(value: str | None) -> str | None:
    """A header worth keeping: printable ASCII, at most MAX_HEADER characters; else None."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_HEADER or not (value.isascii() and value.isprintable()):
        return None
    return value


# -- who sent it --------------------------------------------------------------------


def signature_of(secret: str, body: bytes) -> str:
    """The `sha256=<hex>` HMAC of `body` that GitHub and Bitbucket send, keyed with `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def same_secret(given: str | None, secret: str) -> bool:
    """Whether `given` is `secret`, in time that does not tell how much of it matched."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode())


def authenticate(delivery: Delivery, secret: str) -> None:
    """Refuse a delivery its forge did not sign with the project's webhook secret.

    401: the proof is missing where it is required; 403: it is wrong.
    """
    match delivery.forge:
        case Forge.GITHUB:
            if delivery.signature is None:
                raise AuthenticationError(
                    "X-Hub-Signature-256 is missing: set the webhook's secret to the "
                    "project's webhook secret"
                )
            _check_signature(delivery, secret)
        case Forge.GITLAB:
            if delivery.token is None:
                raise AuthenticationError(
                    "X-Gitlab-Token is missing: set the webhook's secret token to the "
                    "project's webhook secret"
                )
            if not same_secret(delivery.token, secret):
                raise Forbidden("X-Gitlab-Token is not this project's webhook secret")
        case Forge.BITBUCKET:
            if delivery.signature is not None:
                _check_signature(delivery, secret)
        case Forge.PAGURE | Forge.CUSTOM:
            pass  # the secret in the URL is the proof


def _check_signature(delivery: Delivery, secret: str) -> None:
    if not same_secret(delivery.signature, signature_of(secret, delivery.body)):
        raise Forbidden(
            "the body's signature does not match: is the webhook's secret the project's "
            "webhook secret?"
        )


# -- what was pushed ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Push:
    """One ref a forge says was updated, and the commit to build."""

    forge: Forge
    repo_urls: tuple[str, ...]  # every URL the payload names the repository by
    ref_kind: RefKind
    ref: str  # the branch or tag name, without refs/heads/ or refs/tags/
    commit: str  # what the builds check out: the pushed commit (a tag name if none is given)
    changed_paths: tuple[str, ...] | None  # None: the payload does not list them all


@dataclass(frozen=True, slots=True)
class Ignored:
    """A delivery that asks for no build, and why (answered 200)."""

    reason: str


def parse(delivery: Delivery) -> tuple[Push, ...] | Ignored:
    """The pushes a delivery announces, or why there is nothing to build; 400 if malformed."""
    match delivery.forge:
        case Forge.GITHUB:
            return _github(delivery)
        case Forge.GITLAB:
            return _gitlab(delivery)
        case Forge.BITBUCKET:
            return _bitbucket(delivery)
        case Forge.PAGURE:
            return _pagure(delivery)
        case Forge.CUSTOM:
            raise BadRequest("a custom webhook names its package; it carries no push")


def _github(delivery: Delivery) -> tuple[Push, ...] | Ignored:
    event = delivery.event
    if event == "ping":
        return Ignored("ping: the webhook works; pushes will build")
    if event == "create":
        # A new tag or branch also arrives as a push, which names its commit: that
        # push builds. Building on both would build every new tag twice.
        return Ignored("a new tag or branch: its push event builds, if anything")
    if event != "push":
        return Ignored(f"event {event or '(none)'!r} is not a push: nothing to build")
    data = fp.payload_of(delivery.body, delivery.content_type)
    repo = fp.obj(data, "repository")
    urls = fp.urls(repo, "repository", ("clone_url", "git_url", "ssh_url", "html_url", "url"))
    kind, name = fp.ref(fp.text(data, "ref"))
    after = fp.commit(data, "after")
    if fp.optional(data, "deleted", bool) or after is None:
        return Ignored(f"{kind} {name} was deleted: nothing to build")
    commits = fp.optional(data, "commits", list)
    # Past GitHub's limit the paths are not all known.
    paths = fp.changed_paths(commits) if commits and len(commits) < GITHUB_MAX_COMMITS else None
    return (Push(delivery.forge, urls, kind, name, after, paths),)


def _gitlab(delivery: Delivery) -> tuple[Push, ...] | Ignored:
    if delivery.event not in ("Push Hook", "Tag Push Hook"):
        return Ignored(f"event {delivery.event or '(none)'!r} is not a push: nothing to build")
    data = fp.payload_of(delivery.body, delivery.content_type)
    project = fp.optional(data, "project", dict) or {}
    repository = fp.optional(data, "repository", dict) or {}
    urls = fp.urls(
        project,
        "project",
        ("git_http_url", "git_ssh_url", "http_url", "ssh_url", "web_url", "homepage", "url"),
        required=False,
    ) + fp.urls(
        repository,
        "repository",
        ("git_http_url", "git_ssh_url", "homepage", "url"),
        required=False,
    )
    if not urls:
        raise BadRequest("payload: project.git_http_url is missing")
    kind, name = fp.ref(fp.text(data, "ref"))
    # checkout_sha is the commit a tag points to (after is the tag object); null when deleted.
    commit = fp.commit(data, "checkout_sha", required=False) or fp.commit(data, "after")
    if commit is None:
        return Ignored(f"{kind} {name} was deleted: nothing to build")
    commits = fp.optional(data, "commits", list)
    total = fp.optional(data, "total_commits_count", int)
    # GitLab lists at most 20 commits; the count says whether that was all of them.
    complete = commits is not None and (total is None or total <= len(commits))
    paths = fp.changed_paths(commits) if commits and complete else None
    return (Push(delivery.forge, urls, kind, name, commit, paths),)


def _bitbucket(delivery: Delivery) -> tuple[Push, ...] | Ignored:
    if delivery.event != "repo:push":
        return Ignored(f"event {delivery.event or '(none)'!r} is not a push: nothing to build")
    data = fp.payload_of(delivery.body, delivery.content_type)
    repo = fp.obj(data, "repository")
    html = fp.obj(fp.obj(repo, "links", "repository"), "html", "repository.links")
    urls = fp.urls(html, "repository.links.html", ("href",))
    changes = fp.obj(data, "push").get("changes")
    if not isinstance(changes, list) or not changes:
        raise BadRequest("payload: push.changes is missing or empty")
    if len(changes) > MAX_CHANGES:
        raise BadRequest(f"payload: push.changes has more than {MAX_CHANGES} entries")
    pushes: list[Push] = []
    deleted: list[str] = []
    for i, change in enumerate(changes):
        where = f"push.changes[{i}]"
        if not isinstance(change, dict):
            raise BadRequest(f"payload: {where} is not an object")
        new = change.get("new")
        if new is None:
            old = change.get("old")
            deleted.append(fp.text(old, "name", where + ".old") if isinstance(old, dict) else "?")
            continue
        if not isinstance(new, dict):
            raise BadRequest(f"payload: {where}.new is not an object")
        kinds = {"branch": RefKind.BRANCH, "named_branch": RefKind.BRANCH, "tag": RefKind.TAG}
        kind = kinds.get(fp.text(new, "type", where + ".new"))
        if kind is None:
            continue  # a bookmark or another kind Kopers does not build from
        name = fp.ref_name(fp.text(new, "name", where + ".new"), where + ".new.name")
        commit = fp.commit(
            fp.obj(new, "target", where + ".new"), "hash", where=where + ".new.target"
        )
        if commit is None:
            deleted.append(name)
            continue
        pushes.append(Push(delivery.forge, urls, kind, name, commit, None))
    if not pushes:
        return Ignored(f"{', '.join(deleted) or 'no branch or tag'} deleted: nothing to build")
    return tuple(pushes)


def _pagure(delivery: Delivery) -> tuple[Push, ...] | Ignored:
    data = fp.payload_of(delivery.body, delivery.content_type)
    topic = delivery.event or str(data.get("topic") or "")
    # Pagure sends every event of the project to every webhook: most are not pushes.
    if topic != "git.receive":
        return Ignored(f"topic {topic[:100] or '(none)'!r} is not a push: nothing to build")
    msg = fp.obj(data, "msg")
    repo = fp.obj(msg, "repo", "msg")
    instance = fp.text(msg, "pagure_instance", "msg")
    if urlsplit(instance).scheme not in ("http", "https"):
        raise BadRequest("payload: msg.pagure_instance is not an http(s) URL")
    base = instance.rstrip("/")
    names = [fp.text(repo, "fullname", "msg.repo")]
    if isinstance(repo.get("url_path"), str):
        names.append(repo["url_path"])
    urls = tuple(fp.url(f"{base}/{n.strip('/')}", "msg.repo.fullname") for n in names)
    branch = fp.text(msg, "branch", "msg")
    kind, name = fp.ref(branch if branch.startswith("refs/") else f"refs/heads/{branch}")
    commit = fp.commit(msg, "end_commit", where="msg")
    if commit is None:
        return Ignored(f"{kind} {name} was deleted: nothing to build")
    return (Push(delivery.forge, urls, kind, name, commit, None),)
