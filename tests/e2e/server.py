"""A real `kopers serve` process for end-to-end tests, and the real copr-cli against it.

One server (and so one embedded Postgres and one data directory) serves the
whole e2e session; the builder template image is the shared cached one, so
only the builds themselves boot VMs.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kopers.vm.domain import domain_prefix, instance_tag

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CHROOT = "debian-12-x86_64"
WEBROOT_HOST = "127.0.0.2"
# The domain prefix of each server this process started: the boots a test
# caused are told from those of the servers of another xdist worker by it.
STARTED_PREFIXES: set[str] = set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    data_dir: Path
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    configs: dict[str, Path] = field(default_factory=dict)
    bin_dir: Path = VENV_BIN  # where its `kopers` command is
    cwd: Path | None = None  # its working directory (None: the test's)

    @classmethod
    def create(
        cls, base: Path, *, bin_dir: Path = VENV_BIN, checkout: bool = True, **settings: str
    ) -> Server:
        """A server with its own data directory below `base` and a free port on 127.0.0.1.

        `settings` are extra KOPERS_* environment overrides. The warm pool is
        off unless a test turns it on: an idle clone would compete for the
        machine's two cores, and the leak checks expect no VM between builds.
        With `checkout=False` the `kopers` in `bin_dir` runs on its own: no
        kopers.toml, nothing of the checkout on PYTHONPATH, and `base` as its
        working directory.
        """
        port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "KOPERS_CONFIG": str(REPO / "kopers.toml"),
                "KOPERS_DATA_DIR": str(base / "data"),
                "KOPERS_LISTEN": f"127.0.0.1:{port}",
                "KOPERS_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "PATH": f"{bin_dir}:{env.get('PATH', '')}",
                # This checkout's kopers, whichever checkout the venv was installed from.
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
                "KOPERS_VM_WARM": "0",
                # Test web servers that builds may fetch from listen here; every
                # other loopback, private and host address stays refused.
                "KOPERS_NETWORK_ALLOW": WEBROOT_HOST + "/32",
                # Outgoing webhooks to a receiver that was down are tried again soon.
                "KOPERS_WEBHOOKS_RETRY_INITIAL": "1",
                "KOPERS_WEBHOOKS_RETRY_MAX": "3",
                **settings,
            }
        )
        if not checkout:
            del env["KOPERS_CONFIG"], env["PYTHONPATH"]
        return cls(
            data_dir=base / "data",
            port=port,
            env=env,
            log_path=base / "server.log",
            bin_dir=bin_dir,
            cwd=None if checkout else base,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kopers(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / "kopers"), *args],
            env=self.env,
            cwd=self.cwd,
            text=True,
            capture_output=True,
            check=check,
            timeout=600,
            input=stdin,
        )

    def start(self) -> None:
        STARTED_PREFIXES.add(domain_prefix(instance_tag(str(self.data_dir.resolve()))))
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(self.bin_dir / "kopers"), "serve"],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kopers serve exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api_3/", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("kopers serve did not answer in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as resp:
            body = resp.read()
        return json.loads(body) if path.startswith("/api") else body.decode()

    def wait_warm(self, timeout: float = 900) -> None:
        """Until no VM is busy and a warm clone waits (for benchmarks on a warm pool)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            vm = self.get("/api/status")["vm"]
            if vm["warm"] >= 1 and vm["busy"] == 0:
                return
            time.sleep(0.5)
        raise RuntimeError("no warm clone came up")

    def domains(self) -> list[str]:
        """This server's libvirt domains (other Kopers instances may run beside it)."""
        prefix = domain_prefix(instance_tag(str(self.data_dir.resolve())))
        return [d for d in virsh_domain_names() if d.startswith(prefix)]

    def wait_no_vms(self, timeout: float = 180) -> bool:
        """Whether this server's domains and overlays are gone within `timeout`.

        A task ends while its VM is still going down, so right after a build
        ends its VM may be there for a while: on a loaded machine libvirt's
        destroy of a busy TCG guest has taken over a minute. What is left at
        the deadline is printed, for the failure's report.
        """
        deadline = time.monotonic() + timeout
        while True:
            overlays = sorted(p.name for p in (self.data_dir / "overlays").glob("*.qcow2"))
            domains = self.domains()
            if not domains and not overlays:
                return True
            if time.monotonic() > deadline:
                print(f"left after {timeout:.0f} s: domains {domains}, overlays {overlays}")
                print(f"status: {self.get('/api/status')}")
                log = self.log_path.read_text(errors="replace").splitlines()
                print("server log tail:", *log[-60:], sep="\n")
                return False
            time.sleep(0.5)

    def get_as(self, user: str, path: str) -> Any:
        """GET JSON as `user`, with the credentials of its copr-cli config."""
        request = urllib.request.Request(f"{self.url}{path}", headers=self._auth(user))
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.loads(resp.read())

    def _auth(self, user: str) -> dict[str, str]:
        ini = configparser.ConfigParser()
        ini.read(self.configs[user])
        creds = f"{ini['copr-cli']['login']}:{ini['copr-cli']['token']}".encode()
        return {"Authorization": "Basic " + base64.b64encode(creds).decode()}

    def post(self, user: str, path: str, body: dict[str, Any], method: str = "POST") -> Any:
        """POST (or `method`) JSON as `user`, with the credentials of its copr-cli config."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", **self._auth(user)},
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.loads(resp.read())

    def wait_build(self, build_id: int, timeout: float = 900) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            build: dict[str, Any] = self.get(f"/api_3/build/{build_id}")
            if build["state"] in ("succeeded", "failed", "canceled", "skipped"):
                return build
            time.sleep(1)
        raise AssertionError(f"build {build_id} did not finish in {timeout} s")

    def user(self, name: str, admin: bool = False) -> Path:
        """Create a user and a copr-cli config for it."""
        if name not in self.configs:
            self.kopers("user", "add", name, *(["--admin"] if admin else []))
            conf = self.data_dir.parent / f"copr-{name}.conf"
            conf.write_text(self.kopers("token", "create", name).stdout)
            self.configs[name] = conf
        return self.configs[name]

    def copr(
        self, user: str, *args: str, timeout: float = 1200
    ) -> subprocess.CompletedProcess[str]:
        conf = self.configs[user]
        return subprocess.run(
            [str(VENV_BIN / "copr-cli"), "--config", str(conf), *args],
            text=True,
            capture_output=True,
            timeout=timeout,
            env=self.env,
        )


def keep_log(log_path: Path, factory: Any, label: str) -> None:
    """Copy a stopped server's log under pytest's temporary tree (its service
    directory is removed) and print where, so a failure can be read after."""
    if log_path.exists():
        kept = factory.mktemp(label) / "server.log"
        shutil.copy2(log_path, kept)
        print(f"\nserver log: {kept}", file=sys.stderr)


def virsh_domain_names() -> list[str]:
    out = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.split() if line]
