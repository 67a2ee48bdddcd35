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
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

import jinja2

from kopers.errors import BadRequest
from kopers.publish.layout import validate_owner, validate_project


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


def render_repo_file(hub_url: str, owner: str, project: str, baseurl: str, gpgkey_url: str) -> str:
    """The .repo file for one project chroot; LF line endings, trailing newline."""
    for label, value in (("baseurl", baseurl), ("gpgkey", gpgkey_url), ("hub", hub_url)):
        # A line break would let a value inject its own keys or sections.
        if not value or any(ch in value for ch in "\r\n\0"):
            raise BadRequest(f"invalid {label} for a .repo file: {value!r}")
    return _template().render(
        repo_id=repo_id(hub_url, owner, project),
        owner=owner,
        project=project,
        baseurl=baseurl,
        gpgkey_url=gpgkey_url,
    )
