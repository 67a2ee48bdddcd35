#!/usr/bin/python3
"""kopers-builder for the Debian 12 template: rebuild one SRPM with rpmbuild.

Runs inside the builder VM as root, python3 stdlib only:

    kopers-builder JOB.json

Job file (written by the Kopers host; this is the contract):

    {"build_id": 7, "chroot": "debian-12-x86_64",
     "srpm": "/build/in/NAME.src.rpm", "result_dir": "/build/out",
     "macros": {"dist": ".deb12.kopers", "vendor": "Kopers alice/proj",
                "packager": "alice via Kopers"},
     "repos": [{"id": "copr_base", "name": "alice/proj", "baseurl": "http://...",
                "gpgcheck": false, "gpgkey": "optional URL"}],
     "enable_net": false, "proxy": null}

With "enable_net", "proxy" is the URL of Kopers' egress proxy as the VM sees
it (forwarded over the build's SSH connection): the VM has no other way out,
and the build gets it as http_proxy/https_proxy.

Steps: install the SRPM into a fresh topdir; remove Vendor:, Packager: and
%define/%global dist from the spec so the forced macros win, and append
%{?dist} to a Release that would not end in the forced dist; `dnf builddep`
against the job's repos (when there are any, and rpm does not find every
BuildRequires installed already); `rpmbuild -ba`; copy the RPMs and
the rebuilt SRPM to result_dir with manifest.txt (the buildroot's packages).

A job with `"mode": "srpm"` builds a source package instead, from a checkout
the host uploaded (builds from git):

    {"mode": "srpm", "build_id": 7, "chroot": "debian-12-x86_64",
     "spec": "/build/src/pkg.spec", "sources": "/build/src",
     "result_dir": "/build/out"}

Every command and all of its output go to stdout, line-buffered: the host
streams them live as the build log. Nothing a command starts outlives it: each
runs in a cgroup of its own (cgroup v2 at /sys/fs/cgroup; without it, in a
process group of its own) that is killed when the command returns, and the log
says how many processes were left. A daemon that a build's test suite forgot,
or a `sleep 1d &` in %build, can neither hold up the build nor the builder's
output.

Exit status (the contract with the host, kopers/worker/session.py's
BuilderStatus; the host's reason for a failure comes from it alone, never from
the output):

    0  built
    1  the package failed at a step without a status of its own
    2  the job file is invalid
    3  the source package could not be unpacked (rpm -i)
    4  an additional repository's key could not be fetched or imported
    5  the build dependencies could not be installed (dnf builddep)
    6  rpmbuild -ba failed
    7  making the source package failed (rpmbuild -bs, builds from git)

On a failure the last line names the failing command.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

TOPDIR = Path("/build/top")
REPOSDIR = Path("/build/repos.d")
CGROUP_ROOT = Path("/sys/fs/cgroup")
BUILT, FAILED, INVALID_JOB = 0, 1, 2
UNPACK_FAILED, KEY_FAILED, BUILDDEP_FAILED, RPMBUILD_FAILED, SRPM_FAILED = 3, 4, 5, 6, 7
CHUNK = 1 << 16
# Output still in the pipe after a command ended is passed on up to this much:
# a writer that escaped the kill (possible only without cgroups) could go on.
DRAIN_MAX = 1 << 20
KILL_WAIT_S = 10.0  # for killed processes to be gone; only D-state sleepers take long
MACROS = ("dist", "vendor", "packager")
# Lines the packager may not set: they would override the identity Kopers forces.
FORCED_LINE = re.compile(r"^\s*(?:(?:vendor|packager)\s*:|%(?:define|global)\s+dist\s)", re.I)
REPO_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")  # a dependency without a version
RELEASE_LINE = re.compile(r"^(\s*release\s*:\s*)(\S.*?)(\s*)$", re.I)


class JobError(Exception):
    """The job file is unusable: exit 2."""


class StepFailed(Exception):
    """A build step failed: exit with its status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CommandFailed(StepFailed):
    def __init__(self, argv: list[str], code: int, status: int) -> None:
        super().__init__(f"{shlex.join(argv)} failed with exit code {code}", status)


def say(text: str) -> None:
    print(f"kopers-builder: {text}", flush=True)


def run(argv: list[str], status: int) -> None:
    """Run a command, its output going to ours; StepFailed(status) if it fails."""
    print(f"+ {shlex.join(argv)}", flush=True)
    code = contained(argv, write_out)
    if code != 0:
        raise CommandFailed(argv, code, status)


def write_out(data: bytes) -> None:
    sys.stdout.flush()  # what we printed comes first
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


# -- running a command so that nothing it starts outlives it --

_cgroups = itertools.count(1)
_without_cgroups: list[str] = []  # why, once known


def contained(argv: list[str], sink: Callable[[bytes], None], stderr: int | None = None) -> int:
    """Run argv, pass its output (stdout, and stderr unless redirected) to sink; its status.

    The output goes through a pipe of ours rather than straight to our stdout,
    so that not even a process that escaped the kill holds the host's channel.
    """
    cgroup = new_cgroup()
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=subprocess.STDOUT if stderr is None else stderr,
            start_new_session=True,
            # Between fork and exec, so the command starts nothing outside it.
            preexec_fn=None if cgroup is None else lambda: enter_cgroup(cgroup),
        )
    except BaseException:
        os.close(read_fd)
        if cgroup is not None:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        raise
    finally:
        os.close(write_fd)
    try:
        relay(proc, read_fd, sink)
    finally:
        if proc.poll() is None:  # we are being stopped: the command goes too
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        left = kill_cgroup(cgroup) if cgroup is not None else kill_group(proc.pid)
        try:
            drain(read_fd, sink)  # after the kill: the killed hold the pipe no longer
        finally:
            os.close(read_fd)
        if left:
            plural = "process was" if left == 1 else "processes were"
            say(f"{left} {plural} left running by {argv[0]}; killed")
    return proc.returncode


def relay(proc: subprocess.Popen, read_fd: int, sink: Callable[[bytes], None]) -> None:
    """Pass the output on until the command exits (not until its output ends)."""
    exited = os.pidfd_open(proc.pid)  # not reaped yet, so it names our child
    with selectors.DefaultSelector() as selector:
        selector.register(read_fd, selectors.EVENT_READ)
        selector.register(exited, selectors.EVENT_READ)
        try:
            while proc.poll() is None:
                for key, _ in selector.select():
                    if key.fd != read_fd:
                        continue
                    data = os.read(read_fd, CHUNK)
                    if data:
                        sink(data)
                    else:  # every writer closed it; the exit is still to come
                        selector.unregister(read_fd)
        finally:
            os.close(exited)


def drain(read_fd: int, sink: Callable[[bytes], None]) -> None:
    """Pass on what is still in the pipe after the kill, without waiting for more."""
    os.set_blocking(read_fd, False)
    total = 0
    while total < DRAIN_MAX:
        try:
            data = os.read(read_fd, CHUNK)
        except BlockingIOError:
            return  # a writer escaped the kill; what it writes later is not the command's
        if not data:
            return
        sink(data)
        total += len(data)


def new_cgroup() -> Path | None:
    """An empty cgroup for one command; None (said once) where there is no cgroup v2."""
    path = CGROUP_ROOT / f"kopers-build-{os.getpid()}-{next(_cgroups)}"
    try:
        path.mkdir()
        if (path / "cgroup.kill").exists():
            return path
        path.rmdir()
        reason = "no cgroup.kill, which needs Linux 5.14"
    except OSError as exc:
        reason = str(exc)
    if not _without_cgroups:
        _without_cgroups.append(reason)
        say(
            f"no usable cgroup v2 at {CGROUP_ROOT} ({reason}): what a command leaves "
            "running is killed only while it stays in the command's process group"
        )
    return None


def enter_cgroup(cgroup: Path) -> None:
    """In the child: move into the cgroup; whatever it starts from now on is in there too."""
    (cgroup / "cgroup.procs").write_text(str(os.getpid()))


def kill_cgroup(cgroup: Path) -> int:
    """Kill all in the cgroup, wait until it is empty and remove it; how many were left."""
    try:
        left = len((cgroup / "cgroup.procs").read_text().split())
        (cgroup / "cgroup.kill").write_text("1")  # also what forked since we counted
        deadline = time.monotonic() + KILL_WAIT_S
        while "populated 1" in (cgroup / "cgroup.events").read_text():
            if time.monotonic() > deadline:
                say(f"processes in {cgroup} did not end within {KILL_WAIT_S:.0f} s of the kill")
                return left
            time.sleep(0.01)
        cgroup.rmdir()
    except OSError as exc:
        say(f"cannot empty or remove {cgroup}: {exc}")
        return 0
    return left


def kill_group(group: int) -> int:
    """Without cgroups: kill what is left in the command's process group; how many were."""
    left = len(members(group))
    deadline = time.monotonic() + KILL_WAIT_S
    while members(group):
        if time.monotonic() > deadline:
            say(f"processes of group {group} did not end within {KILL_WAIT_S:.0f} s of the kill")
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # again: a member may have forked meanwhile
        time.sleep(0.01)
    return left


def members(group: int) -> list[int]:
    """The live processes (zombies are not) of a process group."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while we looked
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def load_job(path: str) -> dict:
    try:
        job = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise JobError(f"cannot read job file {path}: {exc}") from exc
    if not isinstance(job, dict):
        raise JobError("job must be a JSON object")
    if job.get("mode") == "srpm":
        return load_srpm_job(job)
    expect = {
        "build_id": int, "chroot": str, "srpm": str, "result_dir": str,
        "macros": dict, "repos": list, "enable_net": bool,
    }
    for key, kind in expect.items():
        if not isinstance(job.get(key), kind):
            raise JobError(f"job field {key!r} must be of type {kind.__name__}")
    for name in MACROS:
        value = job["macros"].get(name)
        if not isinstance(value, str) or not value or "\n" in value:
            raise JobError(f"job macro {name!r} must be a one-line string")
    for repo in job["repos"]:
        if not isinstance(repo, dict) or not all(
            isinstance(repo.get(k), str) for k in ("id", "name", "baseurl")
        ):
            raise JobError("every repo needs string fields id, name and baseurl")
        if not REPO_ID.match(repo["id"]) or "\n" in repo["name"] + repo["baseurl"]:
            raise JobError(f"invalid repo {repo.get('id')!r}")
        if not isinstance(repo.get("gpgcheck", False), bool):
            raise JobError(f"repo {repo['id']}: gpgcheck must be a boolean")
    if job["chroot"].count("-") < 2:
        raise JobError(f"chroot {job['chroot']!r} is not of the form distro-version-arch")
    if not Path(job["srpm"]).is_file():
        raise JobError(f"source package {job['srpm']} does not exist")
    return job


def load_srpm_job(job: dict) -> dict:
    for key in ("chroot", "spec", "sources", "result_dir"):
        if not isinstance(job.get(key), str):
            raise JobError(f"job field {key!r} must be a string")
    if not Path(job["spec"]).is_file():
        raise JobError(f"spec file {job['spec']} does not exist")
    if not Path(job["sources"]).is_dir():
        raise JobError(f"source directory {job['sources']} does not exist")
    return job


def build_srpm(job: dict) -> None:
    """rpmbuild -bs from an uploaded checkout; the SRPM goes to result_dir."""
    result_dir = Path(job["result_dir"])
    result_dir.mkdir(parents=True, exist_ok=True)
    say(f"building the source package from {job['spec']}")
    run([
        "rpmbuild", "-bs",
        "--define", f"_topdir {TOPDIR}",
        "--define", f"_sourcedir {job['sources']}",
        "--define", f"_srcrpmdir {result_dir}",
        "--define", "dist %{nil}",
        job["spec"],
    ], SRPM_FAILED)
    for path in sorted(result_dir.glob("*.src.rpm")):
        say(f"result: {path.name}")


def releasever(chroot: str) -> str:
    """`debian-12-x86_64` -> `12`, `fedora-rawhide-x86_64` -> `rawhide`."""
    return chroot.rsplit("-", 2)[1]


def defines(job: dict) -> list[str]:
    args = ["--define", f"_topdir {TOPDIR}"]
    for name in MACROS:
        args += ["--define", f"{name} {job['macros'][name]}"]
    return args


def install_srpm(job: dict) -> Path:
    shutil.rmtree(TOPDIR, ignore_errors=True)
    TOPDIR.mkdir(parents=True)
    # --force-debian: Debian's rpm otherwise warns that packages belong to dpkg.
    argv = ["rpm", "-i", "--force-debian", "--define", f"_topdir {TOPDIR}", job["srpm"]]
    run(argv, UNPACK_FAILED)
    specs = sorted((TOPDIR / "SPECS").glob("*.spec"))
    if len(specs) != 1:
        message = f"the source package holds {len(specs)} spec files, not one"
        raise StepFailed(message, UNPACK_FAILED)
    return specs[0]


def force_identity(spec: Path) -> None:
    kept, dropped = [], []
    for line in spec.read_text(errors="surrogateescape").splitlines(keepends=True):
        (dropped if FORCED_LINE.match(line) else kept).append(line)
    spec.write_text("".join(kept), errors="surrogateescape")
    for line in dropped:
        say(f"removed from {spec.name}: {line.strip()}")


def force_dist(job: dict, spec: Path) -> None:
    """Make the Release carry the forced dist even when the spec leaves out %{?dist}."""
    dist = job["macros"]["dist"]
    if not dist or spec_release(job, spec).endswith(dist):
        return
    lines = spec.read_text(errors="surrogateescape").splitlines(keepends=True)
    for i, line in enumerate(lines):
        match = RELEASE_LINE.match(line)
        if match:
            head, value, tail = match.groups()
            lines[i] = f"{head}{value}%{{?dist}}{tail or chr(10)}"
            spec.write_text("".join(lines), errors="surrogateescape")
            say(f"{spec.name}: Release {value!r} lacks %{{?dist}}; it gets {dist}")
            return
    say(f"{spec.name} has no Release line to add {dist} to")


def spec_release(job: dict, spec: Path) -> str:
    """The Release the spec gives with the forced macros ('' if rpmspec cannot tell)."""
    # Parsing the spec runs its %(...) macros: contained like every build command.
    argv = ["rpmspec", "-q", "--srpm", "--queryformat", "%{release}\n", *defines(job), str(spec)]
    out = bytearray()
    code = contained(argv, out.extend, stderr=subprocess.DEVNULL)
    text = out.decode(errors="replace").strip()
    return text.splitlines()[0] if code == 0 and text else ""


def write_repos(job: dict) -> None:
    shutil.rmtree(REPOSDIR, ignore_errors=True)
    REPOSDIR.mkdir(parents=True)
    lines = []
    for repo in job["repos"]:
        lines += [
            f"[{repo['id']}]",
            f"name={repo['name']}",
            f"baseurl={repo['baseurl']}",
            f"gpgcheck={int(repo.get('gpgcheck', False))}",
            "enabled=1",
            "skip_if_unavailable=0",
            "metadata_expire=0",
        ]
        if repo.get("gpgkey"):
            # Import the key up front: dnf will not import one without asking.
            key = REPOSDIR / f"{repo['id']}.gpg"
            print(f"+ fetch {repo['gpgkey']} > {key}", flush=True)
            try:
                urllib.request.urlretrieve(repo["gpgkey"], key)
            except (OSError, ValueError) as exc:
                raise StepFailed(f"fetching {repo['gpgkey']} failed: {exc}", KEY_FAILED) from exc
            run(["rpm", "--import", str(key)], KEY_FAILED)
            lines.append(f"gpgkey=file://{key}")
        lines.append("")
    (REPOSDIR / "kopers.repo").write_text("\n".join(lines))
    print(f"+ cat {REPOSDIR}/kopers.repo", flush=True)
    print("\n".join(lines), flush=True)


def builddep(job: dict, spec: Path) -> None:
    if deps_installed(job, spec):
        say("every BuildRequires is installed already (rpm says so): no dnf builddep")
        return
    argv = [
        "dnf", "builddep", "-y",
        f"--setopt=reposdir={REPOSDIR}",
        f"--releasever={releasever(job['chroot'])}",
        "--setopt=install_weak_deps=False",
    ]
    for name in MACROS:
        argv += ["--define", f"{name} {job['macros'][name]}"]
    run([*argv, str(spec)], BUILDDEP_FAILED)


def deps_installed(job: dict, spec: Path) -> bool:
    """True if the spec's BuildRequires are plain names rpm finds installed (none at all
    counts); anything else (versions, rich or generated dependencies) is dnf's to judge."""
    if "%generate_buildrequires" in spec.read_text(errors="replace"):
        return False
    argv = ["rpmspec", "-q", "--buildrequires", *defines(job), str(spec)]
    out = bytearray()
    if contained(argv, out.extend, stderr=subprocess.DEVNULL) != 0:
        return False
    needs = out.decode(errors="replace").split()
    if not all(PLAIN_NAME.match(n) for n in needs):
        return False
    query = ["rpm", "-q", "--quiet", "--whatprovides", *needs]
    return not needs or contained(query, lambda _: None, stderr=subprocess.DEVNULL) == 0


def write_manifest(result_dir: Path) -> None:
    out = subprocess.run(
        ["rpm", "-qa", "--qf", "%{NEVRA}\\n"], capture_output=True, text=True, check=False
    ).stdout
    names = sorted(line for line in out.splitlines() if line.strip())
    (result_dir / "manifest.txt").write_text("".join(f"{n}\n" for n in names))
    say(f"buildroot manifest: {len(names)} packages")


def collect(result_dir: Path) -> None:
    built = sorted(TOPDIR.glob("RPMS/*/*.rpm")) + sorted(TOPDIR.glob("SRPMS/*.src.rpm"))
    for path in built:
        shutil.copy2(path, result_dir / path.name)
        say(f"result: {path.name}")


def build(job: dict) -> None:
    result_dir = Path(job["result_dir"])
    result_dir.mkdir(parents=True, exist_ok=True)
    network = "on" if job["enable_net"] else "off"
    say(f"build {job['build_id']} for {job['chroot']}, network {network}")
    proxy = job.get("proxy")
    if job["enable_net"] and isinstance(proxy, str) and proxy:
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            os.environ[name] = proxy
        os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    spec = install_srpm(job)
    force_identity(spec)
    force_dist(job, spec)
    if job["repos"]:
        write_repos(job)
        builddep(job, spec)
    # Written before rpmbuild so a failed build still tells what its buildroot held.
    write_manifest(result_dir)
    run(["rpmbuild", "-ba", *defines(job), str(spec)], RPMBUILD_FAILED)
    collect(result_dir)


def main(argv: list[str]) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    os.environ.setdefault("LANG", "C.UTF-8")
    if len(argv) != 2:
        print("usage: kopers-builder JOB.json", flush=True)
        return INVALID_JOB
    try:
        job = load_job(argv[1])
    except JobError as exc:
        say(f"invalid job: {exc}")
        return INVALID_JOB
    try:
        build_srpm(job) if job.get("mode") == "srpm" else build(job)
    except StepFailed as exc:
        say(str(exc))
        return exc.status
    except OSError as exc:
        say(f"build failed: {exc}")
        return FAILED
    say("build succeeded")
    return BUILT


if __name__ == "__main__":
    sys.exit(main(sys.argv))
