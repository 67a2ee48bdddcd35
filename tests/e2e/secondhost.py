"""A second libvirt host for end-to-end tests, reached over SSH like a remote one.

It is a separate libvirt daemon on this machine: the `qemu:///session` of a
dedicated system user (HOST_USER, created if missing), reached as
`qemu+ssh://HOST_USER@127.0.0.3:PORT/session` through an sshd of its own
(its own config, host key and authorized key, bound to 127.0.0.3 on a free
port; no systemd needed). libvirt's ssh transport starts the user's session
daemon on demand (virt-ssh-helper), and every qemu it runs is that user's.

The host has what docs/hosts.md asks of a remote host: its own template cache
(a copy of this machine's image folder in the user's ~/.cache/kopers, kept
between runs), its own overlay directory, the client key in `keyfile=` and
the host key in a known_hosts file of its own, for libvirt's ssh (through a
small wrapper named in the URI's `command=`) and for Kopers' tunnel alike:
nothing is read from or written to root's ~/.ssh.

`stop()` ends everything it started: the user's processes (the session
daemon and its qemu), sshd, and the run's files. Needs root. To try Kopers
against it by hand: `.venv/bin/python -m tests.e2e.secondhost` prints the
[[vm.hosts]] entry and keeps the host up until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from kopers.vm.template import TemplateImage, image_dir
from kopers.vm.templatecopy import NEEDED
from tests import vmboots

HOST_USER = "kopers-host2"
HOST_ADDRESS = "127.0.0.3"
SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT_S = 30.0


@dataclass
class SecondHost:
    user: str
    home: Path
    base: Path  # this run's files on the Kopers side: keys, sshd config, logs
    run_dir: Path  # this run's files on the host's side (its overlays)
    port: int
    sshd: subprocess.Popen[bytes]
    boots_before: dict[str, int]

    @property
    def cache_dir(self) -> Path:
        """The host's own template cache (what [[vm.hosts]] cache_dir names)."""
        return self.home / ".cache" / "kopers"

    @property
    def overlay_dir(self) -> Path:
        return self.run_dir / "overlays"

    @property
    def client_key(self) -> Path:
        return self.base / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.base / "known_hosts"

    @property
    def uri(self) -> str:
        """libvirt's URI: the key in keyfile=, the host key checked by the wrapper's ssh."""
        query = f"keyfile={quote(str(self.client_key))}&command={quote(str(self.base / 'ssh'))}"
        return f"qemu+ssh://{self.user}@{HOST_ADDRESS}:{self.port}/session?{query}"

    def host_table(self, name: str, slots: int) -> str:
        """The [[vm.hosts]] entry for this host (the tunnel's key comes from keyfile=)."""
        return (
            "[[vm.hosts]]\n"
            f'name = "{name}"\n'
            f'uri = "{self.uri}"\n'
            f"slots = {slots}\n"
            f'overlay_dir = "{self.overlay_dir}"\n'
            f'cache_dir = "{self.cache_dir}"\n'
            f'known_hosts = "{self.known_hosts}"\n'
        )

    def virsh(self, *args: str) -> str:
        """virsh against the host, as Kopers reaches it."""
        out = subprocess.run(
            ["virsh", "-c", self.uri, *args], capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def pids(self) -> dict[int, str]:
        """The host user's live processes: pid -> command name (read from /proc)."""
        uid = str(pwd.getpwnam(self.user).pw_uid)
        found = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                # Not the folder's owner: that is root for a process that made
                # itself undumpable, as sshd and libvirtd do.
                with contextlib.suppress(OSError):
                    status = dict(
                        line.split(":", 1) for line in (entry / "status").read_text().splitlines()
                    )
                    zombie = status.get("State", "").split()[:1] == ["Z"]
                    if uid in status.get("Uid", "").split()[:2] and not zombie:
                        found[int(entry.name)] = status.get("Name", "?").strip()
        return found

    def kill(self) -> list[str]:
        """The host dies: its libvirt daemon, every qemu and SSH session of it, at once.

        Returns the names of the processes killed. sshd itself stays up, as
        after a crash of libvirt, so libvirt can be reached again (a new
        session daemon starts on demand).
        """
        victims = self.pids()
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_for(
            lambda: not any(_running(pid) for pid in victims),
            30,
            f"the processes of {self.user} to end",
        )
        return sorted(victims.values())

    def boots(self) -> int:
        """Kopers domains the host's libvirt started since this run began."""
        return vmboots.boots_since(self.boots_before, self.qemu_logs)

    @property
    def qemu_logs(self) -> Path:
        return self.home / ".cache" / "libvirt" / "qemu" / "log"

    def stop(self) -> None:
        if self.sshd.poll() is None:
            self.sshd.send_signal(signal.SIGTERM)
            try:
                self.sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait()
        # With sshd gone nothing starts anew: every process of the user ends.
        self.kill()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def second_host(image: TemplateImage) -> Iterator[SecondHost]:
    """A started second host holding a copy of `image`; everything stopped on exit."""
    if os.geteuid() != 0:
        raise RuntimeError("the second libvirt host needs root (a system user and an sshd)")
    if not SSHD.is_file():
        raise RuntimeError(f"{SSHD} is missing: apt-get install openssh-server")
    account = _ensure_user(HOST_USER)
    home = Path(account.pw_dir)
    copy_template(image, home / ".cache" / "kopers", account)
    base = Path(tempfile.mkdtemp(prefix="kopers-host2-", dir="/var/tmp"))
    # sshd reads the authorized keys as the user: it must reach them.
    base.chmod(0o755)
    for stale in home.glob("run-kopers-host2-*"):
        if not (base.parent / stale.name.removeprefix("run-")).exists():
            shutil.rmtree(stale, ignore_errors=True)  # a run that could not clean up
    run_dir = home / f"run-{base.name}"
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, account.pw_uid, account.pw_gid)
    qemu_logs = home / ".cache" / "libvirt" / "qemu" / "log"
    host: SecondHost | None = None
    try:
        port = _free_port(HOST_ADDRESS)
        _write_ssh_files(base, account.pw_name, port)
        sshd = _start_sshd(base, port)
        host = SecondHost(
            account.pw_name, home, base, run_dir, port, sshd, vmboots.snapshot(qemu_logs)
        )
        host.virsh("version")  # the session daemon starts, and the URI works
        yield host
    finally:
        if host is not None:
            host.stop()
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(base, ignore_errors=True)


def copy_template(image: TemplateImage, cache_dir: Path, owner: pwd.struct_passwd) -> Path:
    """Copy the image folder into the host's cache, as an operator would; kept between runs.

    The private key stays here: the host needs the image, not the key to log in.
    """
    target = image_dir(image.name, image.recipe_hash, cache_dir)
    names = [*NEEDED, *(n for n in ("cmdline",) if (image.dir / n).is_file())]
    if all(_same_file(image.dir / n, target / n) for n in names):
        return target
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob(f"{image.name}-*"):
        shutil.rmtree(old, ignore_errors=True)  # other recipes' copies, half-done copies
    partial = parent / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for name in names:
        shutil.copyfile(image.dir / name, partial / name)
    partial.rename(target)
    for path in [cache_dir.parent, cache_dir, parent, target, *target.iterdir()]:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return target


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and (
            a.stat().st_size > 4096 or a.read_bytes() == b.read_bytes()
        )
    except OSError:
        return False


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--create-home", "--shell", "/bin/sh", name],
            check=True,
            capture_output=True,
        )
        account = pwd.getpwnam(name)
    # A new account's password is "!", which sshd (without PAM) takes for a
    # locked account and refuses even a key; "*" has no password and no lock.
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    return account


def _write_ssh_files(base: Path, user: str, port: int) -> None:
    for key in ("host_key", "id_ed25519"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key, "-f", str(base / key)],
            check=True,
        )
    client = (base / "id_ed25519.pub").read_text().strip()
    # What docs/hosts.md advises: libvirt's transport runs a command, the
    # tunnel opens connections to builders on the host's loopback, nothing more.
    options = 'restrict,port-forwarding,permitopen="127.0.0.1:*"'
    (base / "authorized_keys").write_text(f"{options} {client}\n")
    (base / "authorized_keys").chmod(0o644)
    host_key = (base / "host_key.pub").read_text().split()
    (base / "known_hosts").write_text(f"[{HOST_ADDRESS}]:{port} {host_key[0]} {host_key[1]}\n")
    (base / "ssh").write_text(
        "#!/bin/sh\n"
        "# libvirt's ssh transport, with this host's known_hosts and nothing of ~/.ssh.\n"
        f"exec ssh -F none -o UserKnownHostsFile={base / 'known_hosts'}"
        " -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"
        " -o BatchMode=yes -o ConnectTimeout=10"
        ' -o ServerAliveInterval=10 -o ServerAliveCountMax=3 "$@"\n'
    )
    (base / "ssh").chmod(0o755)
    (base / "sshd_config").write_text(
        f"ListenAddress {HOST_ADDRESS}:{port}\n"
        f"HostKey {base / 'host_key'}\n"
        f"PidFile {base / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\n"
        f"AllowUsers {user}\n"
        "PermitRootLogin no\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        # The keys live below /var/tmp, which any user may write to.
        "StrictModes no\n"
        "AllowTcpForwarding yes\n"
        "X11Forwarding no\n"
        "PrintMotd no\n"
    )


def _start_sshd(base: Path, port: int) -> subprocess.Popen[bytes]:
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    config = str(base / "sshd_config")
    check = subprocess.run([str(SSHD), "-t", "-f", config], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"sshd refuses its config: {check.stderr.strip()}")
    log = open(base / "sshd.log", "ab")  # noqa: SIM115 - sshd writes to it until stopped
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", config], stdout=log, stderr=log)
    log.close()

    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(base / 'sshd.log').read_text()[-2000:]}")
        with socket.socket() as sock:
            return sock.connect_ex((HOST_ADDRESS, port)) == 0

    try:
        _wait_for(listening, START_TIMEOUT_S, "sshd to listen")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def _running(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def main() -> None:
    """Run a second host by hand: print its [[vm.hosts]] entry, stop on Ctrl-C."""
    from kopers import config
    from kopers.vm.template import cached_image, default_templates_root

    cfg = config.load()
    image = cached_image("debian-12", default_templates_root(), cfg.vm.cache_dir)
    if image is None:
        raise SystemExit("the debian-12 template is not built: kopers template build debian-12")
    with second_host(image) as host:
        print(host.host_table("host2", 1), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
