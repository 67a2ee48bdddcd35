"""The repositories a build's buildroot may install from, and how the VM reaches them.

Builder VMs have no network (QEMU user networking with restrict=on). Each
repository a job lists is reached through the build's SSH connection: a
remote port forward from 127.0.0.1:<port> inside the VM to the server that
hosts it, and the job's baseurl is rewritten to that forwarded port. Kopers'
own repositories (the project's, and other projects named `copr://owner/name`)
are served by Kopers itself; a plain `http://host:port/...` repository gets a
forward of its own. HTTPS repositories cannot be rewritten this way (the
certificate names the real host): they need the project to allow network
access, and are left out otherwise, with a note in the build log.

A user's `http://` repository is a place the host connects to on the user's
behalf, so it obeys the address policy (kopers.net.policy): its host is
resolved once when the forward is opened, the forward targets the checked
address, and a refused one is left out with a note. Kopers' own repositories
are internal and exempt (they are served by this host, on loopback).

`plan_repos` is pure; `forward_repos` does the resolving and forwarding.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from kopers.errors import KopersError
from kopers.models import Project
from kopers.worker.job import RepoRef

_COPR = re.compile(r"^copr://(@?[A-Za-z0-9_.-]+)/([A-Za-z0-9_.+-]+)/?$")


@dataclass(frozen=True, slots=True)
class RepoPlan:
    """A repository to offer the buildroot: where it lives and what the VM sees."""

    id: str
    name: str
    host: str
    port: int
    path: str  # URL path (and query) below host:port
    gpgkey_path: str | None = None  # on the same host; set for Kopers' signed repositories
    internal: bool = False  # served by Kopers itself: not subject to the address policy
    url: str = ""  # as the user wrote it, for notes


@dataclass(frozen=True, slots=True)
class RepoNote:
    """A repository left out, and why (goes into the build log)."""

    url: str
    reason: str


def _kopers_repo(owner: str, project: str, chroot: str, host: str, port: int) -> RepoPlan:
    ident = re.sub(r"[^A-Za-z0-9_.-]", "_", f"kopers-{owner}-{project}")
    return RepoPlan(
        id=ident,
        name=f"Kopers {owner}/{project} {chroot}",
        host=host,
        port=port,
        path=f"/results/{owner}/{project}/{chroot}/",
        gpgkey_path=f"/results/{owner}/{project}/pubkey.gpg",
        internal=True,
    )


def plan_repos(
    project: Project, chroot: str, server: tuple[str, int], extra: Sequence[str] = ()
) -> tuple[list[RepoPlan], list[RepoNote]]:
    """The project's own repository for `chroot`, then its additional repositories."""
    host, port = server
    plans = [_kopers_repo(project.owner, project.name, chroot, host, port)]
    notes: list[RepoNote] = []
    for index, raw in enumerate([*project.additional_repos, *extra], 1):
        url = raw.replace("$chroot", chroot)
        copr = _COPR.match(url)
        if copr:
            plans.append(_kopers_repo(copr.group(1), copr.group(2), chroot, host, port))
            continue
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            notes.append(
                RepoNote(
                    raw,
                    "only http:// and copr:// repositories can reach a build "
                    "without network access",
                )
            )
            continue
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        plans.append(
            RepoPlan(
                id=f"kopers-extra-{index}",
                name=f"additional repository {raw}",
                host=parts.hostname,
                port=parts.port or 80,
                path=path,
                url=raw,
            )
        )
    return plans, notes


Forward = Callable[[str, int], Awaitable[int]]
# Resolve a user repository's host once and check it: the address to connect to,
# or a KopersError (refused by the policy) / OSError (does not resolve).
Resolve = Callable[[str, int], Awaitable[str]]


async def forward_repos(
    plans: Sequence[RepoPlan], forward: Forward, resolve: Resolve
) -> tuple[tuple[RepoRef, ...], list[RepoNote]]:
    """Open one forward per distinct server and rewrite each baseurl onto it.

    `forward(host, port)` opens a remote forward and returns the port inside
    the VM. A user repository whose host the policy refuses, or that does not
    resolve, is left out with a note, and the build goes on without it.
    """
    ports: dict[tuple[str, int], int] = {}
    refs = []
    notes = []
    for plan in plans:
        host = plan.host
        if not plan.internal:
            try:
                host = await resolve(plan.host, plan.port)
            except KopersError as exc:
                notes.append(RepoNote(plan.url, exc.message))
                continue
            except OSError:
                notes.append(RepoNote(plan.url, f"{plan.host} does not resolve"))
                continue
        target = (host, plan.port)
        if target not in ports:
            ports[target] = await forward(*target)
        base = f"http://127.0.0.1:{ports[target]}"
        refs.append(
            RepoRef(
                id=plan.id,
                name=plan.name,
                baseurl=base + plan.path,
                gpgcheck=plan.gpgkey_path is not None,
                gpgkey=base + plan.gpgkey_path if plan.gpgkey_path else None,
            )
        )
    return tuple(refs), notes
