"""Builds from git: clone on the host, find the spec, hand the tree to a builder VM.

Kopers clones the repository itself (the builder VM has no network) and
uploads the chosen subdirectory, without .git, to the VM, which makes the
SRPM there with the template's builder (`rpmbuild -bs`, or `mock --buildsrpm`).
Accepted URLs are http(s), git and ssh: a `file://` URL would let any user
read repositories on the Kopers host. User text reaches git only as data: a
committish must not look like an option (`--pathspec-from-file=...` would make
git read a host file as root), and a URL comes after `--`.

A build a forge's push asked for is held to the pushed ref (`RefPin`, kept in
the build's source as `ref`): after the clone, its commit must be on that
branch, or be what that tag points to, or nothing is checked out.

The clone goes through the address policy like every other fetch made for a
user (kopers/net/policy.py): the URL's host is resolved once and checked, and
git is pinned to the checked address (http.curloptResolve for http(s); the
address itself in a git:// or ssh:// URL), so a second lookup cannot point
it elsewhere. A failed clone says so without echoing what the remote said.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from kopers.errors import BadRequest, BuildFailed
from kopers.forgepayload import RefKind, is_ref_name
from kopers.net.connect import resolve_checked
from kopers.net.policy import AddressPolicy

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("https", "http", "git", "ssh")
DEFAULT_PORTS = {"https": 443, "http": 80, "git": 9418, "ssh": 22}
CLONE_TIMEOUT = 600
MAX_COMMITTISH = 255
SOURCE_REF = "ref"  # the key of a build's source naming the ref its commit must be on
_REF_PREFIXES = {RefKind.BRANCH: "refs/heads/", RefKind.TAG: "refs/tags/"}


@dataclass(frozen=True, slots=True)
class RefPin:
    """The branch or tag a build's commit must be on: where a forge said it was pushed.

    A forge's delivery names both a ref and a commit; nothing but this check
    ties the two together, so a delivery cannot have any commit of the
    repository built (an unreviewed branch's) under the name of a branch the
    package follows.
    """

    kind: RefKind
    name: str

    def __post_init__(self) -> None:
        if not is_ref_name(self.name):
            raise BadRequest(f"{self.name[:100]!r} is not a branch or tag name")

    @property
    def full(self) -> str:
        """`refs/heads/<name>` or `refs/tags/<name>`."""
        return _REF_PREFIXES[self.kind] + self.name

    @classmethod
    def of(cls, full: str) -> RefPin:
        """`refs/heads/x` or `refs/tags/x` -> RefPin; BadRequest for anything else."""
        for kind, prefix in _REF_PREFIXES.items():
            if full.startswith(prefix):
                return cls(kind, full.removeprefix(prefix))
        raise BadRequest(f"{full[:100]!r} is neither refs/heads/... nor refs/tags/...")

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def pin_of(source: Mapping[str, Any]) -> RefPin | None:
    """The ref a build's stored source holds its commit to, or None (a build without one).

    A malformed value fails the source step: Kopers stored it, so it is not
    a client's to correct.
    """
    value = source.get(SOURCE_REF)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise BadRequest("not a string")
        return RefPin.of(value)
    except BadRequest:
        raise BuildFailed("the build's source names no valid branch or tag as its ref") from None


def check_clone_url(url: str) -> str:
    """Reject URLs Kopers will not clone. Pure."""
    scheme = urlsplit(url).scheme
    if scheme not in ALLOWED_SCHEMES:
        raise BadRequest(f"clone_url must be a {', '.join(ALLOWED_SCHEMES)} URL, got {url!r}")
    return url


def check_committish(committish: str) -> str:
    """Reject a branch, tag or commit that git could read as anything else. Pure."""
    if len(committish) > MAX_COMMITTISH:
        raise BadRequest(f"committish is longer than {MAX_COMMITTISH} characters")
    if committish.startswith("-"):
        raise BadRequest("committish must not start with '-'")
    if any(c.isspace() or not c.isprintable() for c in committish):
        raise BadRequest("committish must not contain spaces or control characters")
    return committish


def relative(path: str, what: str) -> PurePosixPath:
    """A path inside the checkout; never absolute, never escaping it. Pure."""
    p = PurePosixPath(path or ".")
    if p.is_absolute() or ".." in p.parts:
        raise BadRequest(f"{what} must be a relative path inside the repository: {path!r}")
    return p


def locate_make_srpm(tree: Path, subdirectory: str, spec: str) -> tuple[Path, str]:
    """(source directory, spec path in it or "") for make_srpm, links resolved.

    The Makefile finds the spec itself when none is named and none is alone
    in the directory; `.copr/Makefile` must be there.
    """
    root = tree.resolve()
    sub = _inside(root, tree / relative(subdirectory, "subdirectory"), "subdirectory")
    if not sub.is_dir():
        raise BuildFailed(f"subdirectory {subdirectory!r} is not in the repository")
    makefile = sub / ".copr" / "Makefile"
    if not makefile.is_file():
        raise BuildFailed(f"make_srpm needs .copr/Makefile in {subdirectory or 'the repository'}")
    _inside(sub, makefile, ".copr/Makefile")
    if spec:
        return sub, str(_inside(sub, sub / relative(spec, "spec"), "spec file").relative_to(sub))
    specs = sorted(sub.glob("*.spec"))
    return sub, specs[0].name if len(specs) == 1 else ""


def locate_spec(tree: Path, subdirectory: str, spec: str) -> tuple[Path, Path]:
    """(source directory, spec file) inside the checkout `tree`, links resolved.

    The repository is the user's: a link in it (`root -> /`) would otherwise
    make the subdirectory, and so the upload to the VM, any host directory.
    Both paths are resolved and must stay inside the tree; nothing is looked
    at outside it, so no answer tells what the host holds.
    """
    root = tree.resolve()
    sub = _inside(root, tree / relative(subdirectory, "subdirectory"), "subdirectory")
    if not sub.is_dir():
        raise BuildFailed(f"subdirectory {subdirectory!r} is not in the repository")
    if spec:
        path = _inside(sub, sub / relative(spec, "spec"), "spec file")
        if not path.is_file():
            raise BuildFailed(f"spec file {spec!r} is not in {subdirectory or 'the repository'}")
        return sub, path
    specs = sorted(sub.glob("*.spec"))
    if len(specs) != 1:
        found = ", ".join(p.name for p in specs) or "none"
        raise BuildFailed(f"name the spec file: {subdirectory or 'the top directory'} has {found}")
    return sub, _inside(sub, specs[0], "spec file")


def _inside(root: Path, path: Path, what: str) -> Path:
    real = path.resolve()
    if real != root and not real.is_relative_to(root):
        raise BuildFailed(f"the {what} leads out of its directory in the repository (a link)")
    return real


async def pinned(url: str, policy: AddressPolicy) -> tuple[str, list[str]]:
    """(URL, git -c options) that reach only the address the policy checked."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise BadRequest("clone_url has no host")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise BadRequest("clone_url has an invalid port") from None
    try:
        address = (await resolve_checked(host, port, policy))[0]
    except OSError:
        raise BuildFailed(f"cannot clone {url}: the name {host} does not resolve") from None
    if parts.scheme in ("http", "https"):
        shown = f"[{address}]" if address.version == 6 else str(address)
        return url, ["-c", f"http.curloptResolve={host}:{port}:{shown}"]
    literal = f"[{address}]" if address.version == 6 else str(address)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (
        (f"{userinfo}@" if userinfo else "") + literal + (f":{parts.port}" if parts.port else "")
    )
    return urlunsplit(parts._replace(netloc=netloc)), []


async def _git(*args: str, cwd: Path | None = None) -> str:
    code, text = await _run_git(*args, cwd=cwd)
    if code != 0:
        _failed(args, code, text)
    return text


def _failed(args: tuple[str, ...], code: int | None, text: str) -> NoReturn:
    # The remote (or the repository) wrote this text: it goes to the server
    # log only, never into the public reason.
    log.info("git %s failed (exit %s): %s", _verb(args), code, text[-2000:])
    raise BuildFailed(f"git {_verb(args)} failed (exit status {code})")


async def _run_git(*args: str, cwd: Path | None = None) -> tuple[int | None, str]:
    """git's exit status and output (stdout and stderr together)."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
    )
    try:
        async with asyncio.timeout(CLONE_TIMEOUT):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        raise BuildFailed(f"git {_verb(args)} took longer than {CLONE_TIMEOUT} s") from None
    return proc.returncode, out.decode(errors="replace")


def _verb(args: tuple[str, ...]) -> str:
    """The git subcommand, skipping `-c name=value` options."""
    rest = list(args)
    while rest[:1] == ["-c"]:
        rest = rest[2:]
    return rest[0] if rest else "git"


async def _commit_of(tree: Path, revision: str) -> str | None:
    """The commit `revision` names in the clone, or None if it names none.

    Every caller's revision starts with a checked committish, a commit id or
    `refs/`: never with `-`, so git cannot read it as an option.
    """
    if revision.startswith("-"):
        raise BadRequest("a revision must not start with '-'")
    code, out = await _run_git("rev-parse", "--verify", "--quiet", revision, cwd=tree)
    if code == 0:
        return out.strip()
    if code != 1:
        _failed(("rev-parse",), code, out)
    return None


async def check_on(tree: Path, committish: str, on: RefPin) -> str:
    """The commit `committish` names in the clone `tree`, if it is on `on`; else BuildFailed.

    On a branch: reachable from the branch as cloned (an older commit of the
    branch is on it; another branch's is not). On a tag: the commit the tag
    points to. Each refusal is one line naming the commit and the ref.
    """
    commit = await _commit_of(tree, f"{committish or 'HEAD'}^{{commit}}")
    if commit is None:
        raise BuildFailed(f"commit {committish} is not in the repository, so not on {on}")
    if on.kind is RefKind.BRANCH:
        tip = await _commit_of(tree, f"refs/remotes/origin/{on.name}^{{commit}}")
    else:
        tip = await _commit_of(tree, f"refs/tags/{on.name}^{{commit}}")
    if tip is None:
        raise BuildFailed(f"{on} is not in the repository, so commit {commit} is not on it")
    if on.kind is RefKind.TAG:
        if tip != commit:
            raise BuildFailed(f"{on} does not point to commit {commit}")
        return commit
    # Both are commit ids (hex) here: neither can read as an option.
    code, out = await _run_git("merge-base", "--is-ancestor", commit, tip, cwd=tree)
    if code == 1:
        raise BuildFailed(f"commit {commit} is not on {on}")
    if code != 0:
        _failed(("merge-base",), code, out)
    return commit


async def checkout(
    url: str,
    committish: str,
    dest: Path,
    policy: AddressPolicy | None = None,
    *,
    on: RefPin | None = None,
) -> str:
    """Clone `url` at `committish` into dest (without .git); return the commit id.

    Without a policy, the strict one applies (nothing allow-listed). With
    `on` (a build a forge's push asked for), the commit must be on that
    branch or tag (`check_on`), or nothing is checked out.
    """
    check_clone_url(url)
    check_committish(committish)
    target, options = await pinned(url, policy or AddressPolicy())
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Redirects could lead to another host, which the pin does not cover. The
    # remote is named `origin` whatever the host's git config says: check_on
    # reads its branches.
    await _git(
        *options,
        "-c",
        "http.followRedirects=false",
        "clone",
        "--quiet",
        "--origin",
        "origin",
        "--",
        target,
        str(dest),
    )
    if on is not None:
        try:
            await check_on(dest, committish, on)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    if committish:
        # check_committish keeps it from reading as an option; "--" ends the paths.
        await _git("checkout", "--quiet", committish, "--", cwd=dest)
    commit = (await _git("rev-parse", "HEAD", cwd=dest)).strip()
    shutil.rmtree(dest / ".git")
    return commit
