"""The user libvirt runs qemu as, and the directory access that user needs.

For a local qemu:///system URI, qemu runs as an unprivileged user (libvirt-qemu
on Debian) that must be able to traverse every ancestor of the template and
overlay directories. /root is mode 700, so the driver (kopers.vm.libvirt) adds
the POSIX ACL `u:<qemu user>:x` where that access is missing, and logs each
change. The host check (kopers.vm.hosts) asks for the same user, to warn
when /dev/kvm is out of its reach.
"""

from __future__ import annotations

import logging
import pwd
import re
from collections.abc import Iterable
from pathlib import Path

from kopers.hostaccess import ensure_traversable

log = logging.getLogger(__name__)

QEMU_CONF = Path("/etc/libvirt/qemu.conf")
DEFAULT_QEMU_USER = "libvirt-qemu"


def qemu_user(conf: Path) -> str | None:
    """The user libvirt runs qemu as (None when that is root: nothing to grant)."""
    user = DEFAULT_QEMU_USER
    if conf.is_file():
        match = re.search(r'^\s*user\s*=\s*"([^"]+)"', conf.read_text(), re.M)
        if match:
            user = match.group(1)
    if user.startswith("+"):
        try:
            user = pwd.getpwuid(int(user[1:])).pw_name
        except (KeyError, ValueError):
            return None
    return None if user == "root" else user


def ensure_access(dirs: Iterable[Path]) -> None:
    """Let the qemu user traverse every ancestor of `dirs` (blocking)."""
    user = qemu_user(QEMU_CONF)
    if user is None:
        return
    for folder in dirs:
        # Checked on every start, not cached: something else (a tmp cleaner,
        # a chmod) may take the permission away while Kopers runs.
        for changed in ensure_traversable(folder, user, set()):
            log.warning("added ACL u:%s:x to %s so qemu can reach its images", user, changed)
