"""What a push builds: the project's packages from the pushed repository, filtered. Pure.

A package builds on a push when its source is a git repository, its
`webhook_rebuild` is on, and its clone URL names the pushed repository.
`repo_key` compares URLs the way a person would: the scheme (http, https,
git, ssh), credentials, a default port, and a trailing `.git` or `/` do not
matter, and `git@host:path` is ssh. Forge payloads name a repository by
several URLs (clone, ssh, web page); any of them may match.

Then Copr's filters: a tag builds the packages it names (tito's
`name-version-release` tags, `tag_names`), or every candidate when it names
none of them; a branch builds a package whose committish is empty or that
branch; a package with a subdirectory builds only when a changed path is
under it, when the payload lists the paths. Each build is at the pushed
commit, so what is built is what was pushed, whatever the branch holds by
the time the build starts, and is held to the pushed ref (`Planned.on`):
the clone checks that the commit is on that branch or is that tag's
(kopers.worker.scm), so a delivery cannot name just any commit.

A delivery may update up to 100 refs and a project may hold thousands of
packages: each URL is normalized once per plan, and the packages are
grouped by repository, so planning costs O(packages + URLs + matches).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from kopers.forgehook import Push
from kopers.forgepayload import MAX_URL, RefKind
from kopers.models import Package, ScmPackageSource, ScmType
from kopers.worker.scm import RefPin

_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_SCP = re.compile(r"(?:[^@/]+@)?(?P<host>\[[^\]/]+\]|[^:/\[\]]+):(?P<path>.*)")
_SCHEMES = {"http": 80, "https": 443, "git": 9418, "ssh": 22, "git+ssh": 22, "ssh+git": 22}


def repo_key(url: str) -> str | None:
    """What a clone URL names: `host[:port]/path`, or None if it names nothing clearly.

    The scheme (http, https, git, ssh), credentials, a default port, and a
    trailing `.git` or `/` do not matter; `git@host:path` is ssh. The host is
    lower case, and in ASCII (an IDN is compared by its punycode). A URL with
    a query, a fragment, an empty, `.` or `..` segment (percent-encoded or
    not), controls or spaces names nothing: it matches no other URL.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        return None
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in url):
        return None
    if "://" not in url:
        scp = _SCP.fullmatch(url)
        if scp is None or not scp["path"]:
            return None
        url = f"ssh://{scp['host']}/{scp['path'].lstrip('/')}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES or parts.query or parts.fragment or "?" in url or "#" in url:
        return None
    host = _host(parts.hostname)
    path = _repo_path(parts.path)
    if host is None or path is None:
        return None
    shown_port = "" if port is None or port == _SCHEMES[scheme] else f":{port}"
    return f"{host}{shown_port}/{path}"


def _host(name: str | None) -> str | None:
    """A URL's host in one spelling: lower-case ASCII, an IP address in its short form."""
    if not name:
        return None
    name = name.rstrip(".")
    try:
        return f"[{ipaddress.IPv6Address(name).compressed}]"
    except ValueError:
        pass
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if not _HOST_NAME.fullmatch(ascii_name):
        return None
    return ascii_name


def _repo_path(raw: str) -> str | None:
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in path):
        return None
    segments = path.split("/")
    if segments[0] != "":
        return None
    segments = segments[1:]
    while segments and segments[-1] == "":
        segments.pop()
    if segments and segments[-1].endswith(".git"):
        segments[-1] = segments[-1].removesuffix(".git")
        while segments and segments[-1] == "":
            segments.pop()
    if not segments or any(s in ("", ".", "..") for s in segments):
        return None
    return "/".join(segments)


def under(subdirectory: str, path: str) -> bool:
    """Whether a changed `path` of the repository is in `subdirectory` ("" is all of it)."""
    sub = subdirectory.strip("/")
    sub = posixpath.normpath(sub) if sub else "."
    if sub == ".":
        return True
    if sub == ".." or sub.startswith("../"):
        return False
    changed = posixpath.normpath(path.lstrip("/")) if path.strip("/") else "."
    if changed in (".", "..") or changed.startswith("../"):
        return False
    return changed == sub or changed.startswith(sub + "/")


def tag_names(tag: str, package: str) -> bool:
    """Whether `tag` reads as `package`-version(-release), as Copr reads tito's tags.

    The version (and release) parts hold a digit; `-` or `_` separate them.
    """
    for sep in "-_":
        parts = tag.split(sep)
        for _ in range(2):
            if len(parts) < 2 or not any(c.isdigit() for c in parts[-1]):
                break
            parts.pop()
            if any(s.join(parts) == package for s in "-_"):
                return True
    return False


@dataclass(frozen=True, slots=True)
class Planned:
    """A package to build, at which commit, on which pushed ref, and why."""

    package: Package
    commit: str
    why: str
    on: RefPin | None = None  # the ref the commit must be on; None: any (a custom webhook's)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A package of the pushed repository that this push does not build, and why."""

    package: str
    why: str


@dataclass(frozen=True, slots=True)
class Plan:
    builds: tuple[Planned, ...]
    skipped: tuple[Skipped, ...]
    matched: bool  # some package builds from the pushed repository on push

    @property
    def summary(self) -> str:
        """One line for the receipt and the answer."""
        if self.builds:
            return building(self.builds)
        why = "; ".join(f"{s.package}: {s.why}" for s in self.skipped)
        return f"nothing to build: {why}"


def building(builds: Sequence[Planned]) -> str:
    """`building a at <commit>, b at <commit>`: what a message says is being built."""
    return "building " + ", ".join(f"{b.package.name} at {b.commit[:12]}" for b in builds)


def _keyer() -> Callable[[str], str | None]:
    """repo_key, computed once per URL for as long as the returned function lives."""
    keys: dict[str, str | None] = {}

    def key(url: str) -> str | None:
        if url not in keys:
            keys[url] = repo_key(url)
        return keys[url]

    return key


def _watches(package: Package) -> bool:
    """Whether a push may build `package`: a git package with webhook_rebuild on."""
    return (
        package.webhook_rebuild
        and isinstance(package.source, ScmPackageSource)
        and package.source.scm_type is ScmType.GIT
    )


def _by_repository(
    packages: Sequence[Package], key: Callable[[str], str | None]
) -> dict[str, list[tuple[int, Package]]]:
    """The packages a push may build, by repository key, each with its place in `packages`."""
    groups: dict[str, list[tuple[int, Package]]] = {}
    for i, p in enumerate(packages):
        if _watches(p):
            assert isinstance(p.source, ScmPackageSource)  # _watches keeps only these
            k = key(p.source.clone_url)
            if k:
                groups.setdefault(k, []).append((i, p))
    return groups


def _pool(
    push: Push, groups: dict[str, list[tuple[int, Package]]], key: Callable[[str], str | None]
) -> list[Package]:
    """The candidates of one push, in the order of the project's packages."""
    found = [m for k in dict.fromkeys(map(key, push.repo_urls)) if k for m in groups.get(k, ())]
    return [p for _, p in sorted(found, key=lambda m: m[0])]


def candidates(pushes: Sequence[Push], packages: Sequence[Package]) -> list[Package]:
    """The packages that build from the pushed repository on push (webhook_rebuild, git)."""
    key = _keyer()
    groups = _by_repository(packages, key)
    seen: dict[int, Package] = {}
    for push in pushes:
        seen.update((p.id, p) for p in _pool(push, groups, key))
    return list(seen.values())


def plan(pushes: Sequence[Push], packages: Sequence[Package]) -> Plan:
    """What the pushes build, one build per package at most, each at its push's commit.

    Copr's filters: a tag builds the packages it names (`tag_names`), or every
    candidate when it names none of them; a branch builds a package whose
    committish is empty or that branch; a package with a subdirectory builds
    only when a changed path is under it (when the payload lists them).
    """
    key = _keyer()
    groups = _by_repository(packages, key)
    chosen: dict[int, Planned] = {}
    skipped: dict[int, Skipped] = {}
    matched = False
    for push in pushes:
        pool = _pool(push, groups, key)
        matched = matched or bool(pool)
        named = {p.id for p in pool if push.ref_kind is RefKind.TAG and tag_names(push.ref, p.name)}
        what = f"{push.ref_kind} {push.ref} pushed to {shown(push, key)}"
        on = RefPin(push.ref_kind, push.ref)
        for package in pool:
            if package.id in chosen:
                continue
            why = _refusal(push, package, named)
            if why is None:
                chosen[package.id] = Planned(package, push.commit, what, on)
                skipped.pop(package.id, None)
            else:
                skipped.setdefault(package.id, Skipped(package.name, why))
    return Plan(builds=tuple(chosen.values()), skipped=tuple(skipped.values()), matched=matched)


def _refusal(push: Push, package: Package, named: set[int]) -> str | None:
    """Why `push` does not build `package` (a candidate), or None if it does."""
    source = package.source
    assert isinstance(source, ScmPackageSource)  # candidates() keeps only these
    if push.ref_kind is RefKind.TAG:
        if named and package.id not in named:
            return f"tag {push.ref} names another package"
        return None
    follows = source.committish.removeprefix("refs/heads/")
    if follows and follows != push.ref:
        return f"it follows {follows}, not {push.ref}"
    # When the payload lists what changed, a subdirectory builds only if some of it is its.
    paths = push.changed_paths
    if (
        source.subdirectory.strip("/")
        and paths is not None
        and not any(under(source.subdirectory, p) for p in paths)
    ):
        return f"no change under {source.subdirectory}"
    return None


def shown(push: Push, key: Callable[[str], str | None] | None = None) -> str:
    """The pushed repository as messages name it: its key, or its first URL, cut short."""
    keys = map(key or repo_key, push.repo_urls)
    return next((k for k in keys if k), push.repo_urls[0][:200])
