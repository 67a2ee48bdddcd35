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
# Permission bits in the "other" position; _allows shifts them for owner and group.
SEARCH = stat.S_IXOTH
READ_WRITE = stat.S_IROTH | stat.S_IWOTH


def ensure_traversable(folder: Path, user: str, done: set[Path]) -> list[Path]:
    """Give `user` search (x) permission on folder and its ancestors where it lacks it.

    Returns the directories that were changed. `done` caches checked folders.
    """
    identity = _identity(user)
    if identity is None:
        log.warning("user %s does not exist; not adjusting permissions", user)
        return []
    uid, groups = identity
    changed = []
    folder = folder.absolute()
    for path in [*reversed(folder.parents), folder]:
        if path in done:
            continue
        st = path.stat()
        if not _allows(st, uid, groups, SEARCH) and not _acl_grants(path, user):
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


def may_read_write(path: Path, user: str) -> bool | None:
    """Whether `user`'s mode bits let it open `path` for reading and writing.

    None when the user or the path does not exist. ACLs are not consulted.
    """
    identity = _identity(user)
    try:
        st = path.stat()
    except OSError:
        return None
    if identity is None:
        return None
    return _allows(st, *identity, READ_WRITE)


def _identity(user: str) -> tuple[int, set[int]] | None:
    """The user's uid and all its group ids, or None if there is no such user."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}


def _allows(st: os.stat_result, uid: int, groups: set[int], want: int) -> bool:
    """Whether the owner, group or other bits that apply to uid/groups hold all of `want`."""
    if st.st_uid == uid:
        shift = 6
    elif st.st_gid in groups:
        # With an ACL the group bits are the mask; a named-user entry may still help.
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & want == want


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
