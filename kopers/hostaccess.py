"""Letting a service account reach files below directories it cannot enter.

Two helpers run as their own users when Kopers runs as root: libvirt's qemu
(libvirt-qemu on Debian) must read template images and overlays, and the
embedded Postgres (pgserver) must reach its data directory. Both may live
below a mode-700 directory such as /root or pytest's temporary folders.
Rather than opening those directories to everybody, Kopers adds one POSIX
ACL entry granting only search (x) permission to that one user, and only
where it is missing.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from kopers.errors import InfrastructureError

log = logging.getLogger(__name__)


def ensure_traversable(folder: Path, user: str, done: set[Path]) -> list[Path]:
    """Give `user` search (x) permission on folder and its ancestors where it lacks it.

    Returns the directories that were changed. `done` caches checked folders.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        log.warning("user %s does not exist; not adjusting permissions", user)
        return []
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    changed = []
    folder = folder.absolute()
    for path in [*reversed(folder.parents), folder]:
        if path in done:
            continue
        st = path.stat()
        if not _can_traverse(st, entry.pw_uid, groups) and not _acl_grants(path, user):
            if shutil.which("setfacl") is None:
                raise InfrastructureError(
                    f"{user} cannot reach {path} and setfacl is missing (apt install acl)"
                )
            result = subprocess.run(
                ["setfacl", "-m", f"u:{user}:x", str(path)], capture_output=True, text=True
            )
            if result.returncode != 0:
                raise InfrastructureError(
                    f"cannot grant {user} access to {path}: {result.stderr.strip()}"
                )
            changed.append(path)
        done.add(path)
    return changed


def _can_traverse(st: os.stat_result, uid: int, groups: set[int]) -> bool:
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in groups:
        # With an ACL the group bits are the mask; a named-user entry may still help.
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _acl_grants(path: Path, user: str) -> bool:
    if shutil.which("getfacl") is None:
        return False
    result = subprocess.run(
        ["getfacl", "--absolute-names", "--omit-header", str(path)],
        capture_output=True,
        text=True,
    )
    for line in result.stdout.splitlines():
        # "user:libvirt-qemu:--x", or "user:libvirt-qemu:--x\t#effective:---" when
        # the mask takes the right away again (a later chmod 700 does that).
        entry, _, comment = line.partition("#")
        if not entry.strip().startswith(f"user:{user}:"):
            continue
        perms = comment.split(":", 1)[1] if comment.startswith("effective:") else entry
        return perms.strip().endswith("x")
    return False


