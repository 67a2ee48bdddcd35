"""The `.repo` file that `dnf copr enable` downloads, rendered from repo.j2.

Pure apart from loading the template once. The dnf copr plugin writes the
file verbatim and then looks up the repo id `copr:<hub host>:<owner'>:<project>`
in it, crashing if the id is missing, so the first line must be exactly that
id: the hub's host name without any port, and the owner with a group's `@`
replaced by `group_`. See docs/copr-api-v3.md, section 7.2.

The plugin derives `<hub host>` from what the *user* typed after `--hub`, so
the API should pass the URL the request arrived at, not just the configured
public URL, when the two can differ.

Both checks are on: `gpgcheck=1` (each package's signature) and
`repo_gpgcheck=1` (the detached `repomd.xml.asc` the publisher writes). One
key, the project's `pubkey.gpg` named by `gpgkey=`, serves both. dnf 4.14
imports it for each purpose on first use after asking; with `-y` it imports
it unasked, and without `-y` and without a terminal the answer is "no" and
the refresh fails ("Bad GPG signature"). Importing it beforehand into the
rpm database (`rpm --import`) covers only packages, not repo metadata.

A project's options add `module_hotfixes=1` and `priority=N` to its section,
and its runtime dependencies follow as `[coprdep:...]` sections, which the
plugin offers to keep enabled: another Kopers project
(`copr://owner/project`) as `coprdep:<hub host>:<owner'>:<project>`, signed
as its own section is; an external URL as `coprdep:<the URL as a name>`,
unsigned, with `$chroot` and `$distname` filled in. A `copr://` dependency
that no longer exists becomes a comment.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import jinja2

from kopers.errors import BadRequest
from kopers.publish.layout import validate_owner, validate_project

# copr://owner/project (owner may be @group), as a runtime dependency or repository.
_COPR_REPO = re.compile(r"^copr://(@?[A-Za-z0-9_.-]+)/([A-Za-z0-9_.+-]+)/?$")


def copr_repo(url: str) -> tuple[str, str] | None:
    """`copr://owner/project` -> (owner, project); None for any other URL. Pure."""
    match = _COPR_REPO.match(url)
    return (match.group(1), match.group(2)) if match else None


@dataclass(frozen=True, slots=True)
class RepoOptions:
    """What a project's options add to its section of a .repo file."""

    module_hotfixes: bool = False
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class CoprDep:
    """A runtime dependency on another project of this server, found or not."""

    url: str  # copr://owner/project, as the user wrote it
    owner: str
    project: str
    baseurl: str | None = None  # None: the project does not exist (any more)
    gpgkey_url: str = ""
    options: RepoOptions = RepoOptions()


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kopers", "templates"),
        autoescape=False,  # a plain-text ini file, not HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("repo.j2")


def hub_hostname(hub_url: str) -> str:
    """`https://user@copr.example:8443/x` -> `copr.example`, as the dnf plugin sees it."""
    netloc = urlsplit(hub_url).netloc if "://" in hub_url else hub_url.split("/", 1)[0]
    host = netloc.rpartition("@")[2]
    if host.startswith("["):  # IPv6 literal: the port follows the bracket
        host = host[: host.find("]") + 1] if "]" in host else host
    else:
        host = host.split(":", 1)[0]
    if not host:
        raise BadRequest(f"hub URL has no host name: {hub_url!r}")
    return host


def repo_id(hub_url: str, owner: str, project: str) -> str:
    """`copr:<host>:<owner with @ -> group_>:<project>`."""
    owner = validate_owner(owner)
    project = validate_project(project)
    return f"copr:{hub_hostname(hub_url)}:{owner.replace('@', 'group_', 1)}:{project}"


def _check(label: str, value: str) -> None:
    # A line break would let a value inject its own keys or sections.
    if not value or any(ch in value for ch in "\r\n\0"):
        raise BadRequest(f"invalid {label} for a .repo file: {value!r}")


def external_repo_name(url: str) -> str:
    """A URL as a repo id part, as Copr makes it: runs of other characters become one `_`."""
    return re.sub(r"_+", "_", re.sub(r"[^a-zA-Z0-9]", "_", url)).strip("_")


def expand_chroot(url: str, chroot: str) -> str:
    """`$chroot` -> the chroot, `$distname` -> its name without version and arch."""
    return url.replace("$chroot", chroot).replace("$distname", chroot.rsplit("-", 2)[0])


def render_repo_file(
    hub_url: str,
    owner: str,
    project: str,
    baseurl: str,
    gpgkey_url: str,
    options: RepoOptions = RepoOptions(),
    copr_deps: Sequence[CoprDep] = (),
    external_deps: Sequence[str] = (),
) -> str:
    """The .repo file for one project chroot; LF line endings, trailing newline.

    `copr_deps` and `external_deps` (URLs with `$chroot` already filled in)
    are the project's runtime dependencies, in order.
    """
    _check("hub", hub_url)
    text = _section(repo_id(hub_url, owner, project), owner, project, baseurl, gpgkey_url, options)
    for dep in copr_deps:
        if dep.baseurl is None:
            text += (
                "\n# This repository is configured to have a runtime dependency on a Copr "
                f"project {dep.owner}/{dep.project} but that doesn't exist.\n"
            )
            continue
        dep_id = "coprdep:" + repo_id(hub_url, dep.owner, dep.project).split(":", 1)[1]
        text += "\n" + _section(
            dep_id, dep.owner, dep.project, dep.baseurl, dep.gpgkey_url, dep.options
        )
    host = hub_hostname(hub_url)
    for index, url in enumerate(external_deps, 1):
        _check("runtime dependency", url)
        name = external_repo_name(url)
        text += (
            f"\n[coprdep:{name}]\n"
            f"name=Copr {host}/{owner}/{project} external runtime dependency #{index} - {name}\n"
            f"baseurl={url}\n"
            "type=rpm-md\n"
            "skip_if_unavailable=True\n"
            "gpgcheck=0\n"
            "repo_gpgcheck=0\n"
            "enabled=1\n"
            "enabled_metadata=1\n"
        )
    return text


def _section(
    section_id: str, owner: str, project: str, baseurl: str, gpgkey_url: str, options: RepoOptions
) -> str:
    """One signed Kopers repository's section, with what its project's options add."""
    for label, value in (("baseurl", baseurl), ("gpgkey", gpgkey_url)):
        _check(label, value)
    text = _template().render(
        repo_id=section_id,
        owner=owner,
        project=project,
        baseurl=baseurl,
        gpgkey_url=gpgkey_url,
    )
    if options.module_hotfixes:
        text += "module_hotfixes=1\n"
    if options.priority is not None:
        text += f"priority={int(options.priority)}\n"
    return text
