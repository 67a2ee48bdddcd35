"""`dnf copr enable` against this server: the hub file its plugin reads, and the commands to type.

The dnf copr plugin (dnf-plugins-core 4) turns `dnf copr enable HUB/owner/project
CHROOT` into a request for `https://HUB/coprs/...`: it assumes https. For a
plain-HTTP server it first needs a hub file in `/etc/dnf/plugins/copr.d/`, a
section named HUB with `hostname`, `protocol` and `port` (docs/copr-api-v3.md,
section 7.1). Kopers serves that file at `/dnf-copr-hub.conf`, with HUB the
`host[:port]` of its public URL, so that once the file is in place the form
users type, `dnf copr enable 127.0.0.1:8080/owner/project CHROOT`, works
unchanged. With an https:// public URL the short form needs no hub file. A
public URL with a path (`https://host/kopers`) cannot be a hub at all: the
plugin puts `/coprs/` right after the host, so the page offers the .repo file
instead.

The plugin never guesses a Debian host's chroot right (`epel-12-x86_64`), so
every command names the project's chroot. Pure, but for the route.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from kopers.api.keys import KOPERS
from kopers.errors import NotFound
from kopers.models import Project
from kopers.publish.layout import Layout
from kopers.publish.repofile import repo_id

routes = web.RouteTableDef()
HUB_CONF_PATH = "/dnf-copr-hub.conf"
PLUGIN_DIR = "/etc/dnf/plugins/copr.d"
REPOS_DIR = "/etc/yum.repos.d"


@dataclass(frozen=True, slots=True)
class Hub:
    """What the dnf copr plugin needs to reach this server."""

    name: str  # what users type before /owner/project: the public URL's host[:port]
    hostname: str
    protocol: str
    port: int

    @property
    def needs_file(self) -> bool:
        """Whether the plugin needs the hub file: it assumes https (on any port)."""
        return self.protocol != "https"

    @property
    def file_name(self) -> str:
        return "kopers-" + re.sub(r"[^A-Za-z0-9.-]+", "-", self.name).strip("-") + ".conf"


def hub_of(public_url: str) -> Hub | None:
    """The hub a public URL makes; None when it has a path, which no hub can have."""
    parts = urlsplit(public_url)
    if parts.path.strip("/") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    host = parts.netloc.rpartition("@")[2]
    hostname = host if parts.port is None else host.rsplit(":", 1)[0]
    return Hub(name=host, hostname=hostname, protocol=parts.scheme, port=port)


def render_hub_conf(hub: Hub, public_url: str) -> str:
    """The hub file: one INI section the plugin reads, and how to use it in comments."""
    return (
        f"# The dnf copr hub of the Kopers server at {public_url}\n"
        f"# Save as {PLUGIN_DIR}/{hub.file_name}, then, as root:\n"
        f"#   dnf copr enable {hub.name}/OWNER/PROJECT CHROOT\n"
        f"[{hub.name}]\n"
        f"hostname = {hub.hostname}\n"
        f"protocol = {hub.protocol}\n"
        f"port = {hub.port}\n"
    )


@dataclass(frozen=True, slots=True)
class ChrootCommand:
    chroot: str
    command: str  # one line, for a root shell
    repo_file_url: str  # the .repo file the plugin downloads for this chroot


@dataclass(frozen=True, slots=True)
class Instructions:
    """How to enable a project's repository, per chroot, as the project page shows it."""

    commands: tuple[ChrootCommand, ...]
    hub_conf_url: str | None  # the hub file, when the plugin needs it
    key_url: str


def repo_file_url(public_url: str, project: Project, chroot: str) -> str:
    """The .repo file of one chroot, at the URL the dnf copr plugin asks for."""
    os_version, _, arch = chroot.rpartition("-")
    owner = f"g/{project.owner[1:]}" if project.owner.startswith("@") else project.owner
    return f"{public_url}/coprs/{owner}/{project.name}/repo/{os_version}/dnf.repo?arch={arch}"


def instructions(public_url: str, project: Project, layout: Layout) -> Instructions:
    """The one-line command for each of the project's chroots."""
    hub = hub_of(public_url)
    conf_url = f"{public_url}{HUB_CONF_PATH}" if hub is not None and hub.needs_file else None
    commands = []
    for chroot in project.chroots:
        repo_url = repo_file_url(public_url, project, chroot)
        if hub is None:
            # No hub: the .repo file by hand, under the name the plugin would give it.
            name = "_" + repo_id(public_url, project.owner, project.name) + ".repo"
            line = shlex.join(["curl", "-fsS", "-o", f"{REPOS_DIR}/{name}", repo_url])
        else:
            enable = shlex.join(
                ["dnf", "copr", "enable", f"{hub.name}/{project.full_name}", chroot]
            )
            line = enable
            if conf_url is not None:
                target = f"{PLUGIN_DIR}/{hub.file_name}"
                fetch = shlex.join(["curl", "-fsS", "--create-dirs", "-o", target, conf_url])
                line = f"{fetch} && {enable}"
        commands.append(ChrootCommand(chroot, line, repo_url))
    return Instructions(tuple(commands), conf_url, layout.pubkey_url(project.owner, project.name))


@routes.get(HUB_CONF_PATH)
async def hub_conf(request: web.Request) -> web.Response:
    public_url = request.app[KOPERS].config.server.public_url
    hub = hub_of(public_url)
    if hub is None:
        raise NotFound(
            f"the public URL {public_url} has a path, which the dnf copr plugin cannot use;"
            " download a project's .repo file instead"
        )
    return web.Response(text=render_hub_conf(hub, public_url), content_type="text/plain")


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
