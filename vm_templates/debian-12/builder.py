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

The spec as the source package holds it (before the changes above) goes to
result_dir too, as `<its name>.spec`, so the results show what was built.

A job with `"mode": "srpm"` builds a source package instead, from a directory
the host uploaded (a git checkout, or an uploaded spec alone):

    {"mode": "srpm", "build_id": 7, "chroot": "debian-12-x86_64",
     "spec": "/build/src/pkg.spec", "sources": "/build/src",
     "result_dir": "/build/out", "method": "rpmbuild", "fetch": false,
     "proxy": null}

"method" is "rpmbuild" (`rpmbuild -bs`) or "make_srpm" (`make -f
.copr/Makefile srpm outdir=DIR spec=SPEC` in the sources directory, as Copr
documents it; "spec" may then be the directory itself when none was found).
With "fetch", the spec's Source and Patch URLs (http, https, ftp) that are
not in the sources directory are downloaded first. "proxy" is the egress
proxy (the only way out), for the downloads and whatever the commands fetch.

A job with `"mode": "pypi"` generates the spec with pyp2spec (installed in
/opt/pyp2spec) from a Python package index that serves PyPI's JSON API at
"index_url" (pyp2spec's requests to https://pypi.org/ go there instead),
downloads the release's sdist and makes the SRPM. Where the chroot lacks
Fedora's %pypi_source, %autorelease and %autochangelog (Debian), they are
defined for making the SRPM only; building it needs the pyproject macros:

    {"mode": "pypi", "build_id": 7, "chroot": "debian-12-x86_64",
     "package": "six", "version": "", "index_url": "https://pypi.org",
     "sources": "/build/src", "result_dir": "/build/out", "proxy": null}

A job with `"mode": "custom"` runs a user's script as root, in a fresh
directory, after installing its build dependencies; the spec and sources it
leaves in its result directory (relative to where it ran) become the SRPM:

    {"mode": "custom", "build_id": 7, "chroot": "debian-12-x86_64",
     "script": "/build/src/script", "sources": "/build/src",
     "builddeps": ["make"], "resultdir": "out", "repos": ["http://..."],
     "result_dir": "/build/out", "proxy": null}

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
    7  making the source package failed (rpmbuild -bs, make_srpm, the custom
       script, or fetching the spec's sources)

On a failure the last line names the failing command.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from collections.abc import Callable
from pathlib import Path

TOPDIR = Path("/build/top")
REPOSDIR = Path("/build/repos.d")
RPMDB = Path("/var/lib/rpm/rpmdb.sqlite")  # %_dbpath, set by the template
# The packages rpm knew when the template was made, and the digest of that database.
MANIFEST_RECORD = Path("/usr/local/lib/kopers/manifest.json")
WORKDIR = Path("/build/work")  # where a custom script runs
MADEDIR = Path("/build/made")  # where make_srpm and custom write, before the SRPM is picked
PYP2SPEC = Path("/opt/pyp2spec")  # pyp2spec and its libraries (see customize.sh)
PYPI_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
PYPI_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.!+_-]*$")
# pyp2spec asks https://pypi.org/ only; this sends its requests to the job's index.
PYP2SPEC_RUN = """
import sys
import requests
index, argv = sys.argv[1].rstrip("/"), sys.argv[2:]
request = requests.Session.request
def redirected(self, method, url, *args, **kwargs):
    if isinstance(url, str) and url.startswith("https://pypi.org/"):
        url = index + url[len("https://pypi.org"):]
    return request(self, method, url, *args, **kwargs)
requests.Session.request = redirected
from pyp2spec.pyp2spec import main
main(argv, prog_name="pyp2spec")
"""
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
SOURCE_LINE = re.compile(r"^\s*(?:source|patch)\d*\s*:\s*(\S+)\s*$", re.I)
SAFE_FILE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+~-]{0,200}$")
SPEC_FILE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,200}\.spec$")
MAX_SPEC_BYTES = 1 << 20  # what the host takes of a spec in the results
MAX_FETCH_BYTES = 2 << 30  # one downloaded source file
MAX_KEY_BYTES = 1 << 20  # a repository's public key


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


def run(argv: list[str], status: int, cwd: Path | None = None) -> None:
    """Run a command, its output going to ours; StepFailed(status) if it fails."""
    print(f"+ {shlex.join(argv)}" + (f"  (in {cwd})" if cwd else ""), flush=True)
    code = contained(argv, write_out, cwd=cwd)
    if code != 0:
        raise CommandFailed(argv, code, status)


def write_out(data: bytes) -> None:
    sys.stdout.flush()  # what we printed comes first
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


# -- running a command so that nothing it starts outlives it --

_cgroups = itertools.count(1)
_without_cgroups: list[str] = []  # why, once known


def contained(
    argv: list[str],
    sink: Callable[[bytes], None],
    stderr: int | None = None,
    cwd: Path | None = None,
) -> int:
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
            cwd=cwd,
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
    if job.get("mode") == "custom":
        return load_custom_job(job)
    if job.get("mode") == "pypi":
        return load_pypi_job(job)
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
    method = job.setdefault("method", "rpmbuild")
    if method not in ("rpmbuild", "make_srpm"):
        raise JobError(f"unknown method {method!r}")
    if not isinstance(job.setdefault("fetch", False), bool):
        raise JobError("job field 'fetch' must be a boolean")
    check_proxy(job)
    spec = Path(job["spec"])
    if not (spec.is_file() or (method == "make_srpm" and spec.is_dir())):
        raise JobError(f"spec file {job['spec']} does not exist")
    if not Path(job["sources"]).is_dir():
        raise JobError(f"source directory {job['sources']} does not exist")
    return job


def load_custom_job(job: dict) -> dict:
    for key in ("chroot", "script", "sources", "resultdir", "result_dir"):
        if not isinstance(job.get(key), str):
            raise JobError(f"job field {key!r} must be a string")
    for key in ("builddeps", "repos"):
        value = job.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise JobError(f"job field {key!r} must be a list of strings")
    if any(not PLAIN_NAME.match(dep) for dep in job["builddeps"]):
        raise JobError("builddeps must be package names")
    if any("\n" in url or not url.startswith(("http://", "https://")) for url in job["repos"]):
        raise JobError("repos must be http(s) URLs")
    rel = Path(job["resultdir"] or ".")
    if rel.is_absolute() or ".." in rel.parts:
        raise JobError("resultdir must be a relative path inside the script's directory")
    check_proxy(job)
    if not Path(job["script"]).is_file():
        raise JobError(f"script {job['script']} does not exist")
    return job


def load_pypi_job(job: dict) -> dict:
    for key in ("chroot", "package", "version", "index_url", "sources", "result_dir"):
        if not isinstance(job.get(key), str):
            raise JobError(f"job field {key!r} must be a string")
    if not PYPI_NAME.match(job["package"]):
        raise JobError("package must be a Python package name")
    if job["version"] and not PYPI_VERSION.match(job["version"]):
        raise JobError("version must be a version")
    if not job["index_url"].startswith(("http://", "https://")) or "\n" in job["index_url"]:
        raise JobError("index_url must be an http(s) URL")
    check_proxy(job)
    return job


def check_proxy(job: dict) -> None:
    proxy = job.setdefault("proxy", None)
    if proxy is not None and (not isinstance(proxy, str) or "\n" in proxy):
        raise JobError("job field 'proxy' must be a URL or null")


def use_proxy(job: dict) -> None:
    """The egress proxy, when the job has one, for every command and download from now on."""
    proxy = job.get("proxy")
    if isinstance(proxy, str) and proxy:
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ftp_proxy"):
            os.environ[name] = proxy
        os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
        say("network access goes through the egress proxy")
    else:
        say("no network access")


def build_srpm(job: dict) -> None:
    """The SRPM from an uploaded directory (rpmbuild -bs or make_srpm) into result_dir."""
    result_dir = Path(job["result_dir"])
    result_dir.mkdir(parents=True, exist_ok=True)
    use_proxy(job)
    sources = Path(job["sources"])
    if job["method"] == "make_srpm":
        shutil.rmtree(MADEDIR, ignore_errors=True)
        MADEDIR.mkdir(parents=True)
        say("building the source package with .copr/Makefile (make_srpm)")
        spec = job["spec"] if Path(job["spec"]).is_file() else ""
        argv = ["make", "-f", str(sources / ".copr" / "Makefile"), "srpm", f"outdir={MADEDIR}"]
        run([*argv, f"spec={spec}"], SRPM_FAILED, cwd=sources)
        take_srpm(MADEDIR, result_dir)
        return
    spec = Path(job["spec"])
    if job["fetch"]:
        fetch_sources(job, spec, sources)
    say(f"building the source package from {spec.name}")
    rpmbuild_bs(spec, sources, result_dir)
    for path in sorted(result_dir.glob("*.src.rpm")):
        say(f"result: {path.name}")


def rpmbuild_bs(spec: Path, sources: Path, srpm_dir: Path) -> None:
    run([
        "rpmbuild", "-bs",
        "--define", f"_topdir {TOPDIR}",
        "--define", f"_sourcedir {sources}",
        "--define", f"_srcrpmdir {srpm_dir}",
        "--define", "dist %{nil}",
        str(spec),
    ], SRPM_FAILED)


def take_srpm(made: Path, result_dir: Path) -> None:
    """The one SRPM a Makefile or script made, copied to result_dir (nothing else goes)."""
    srpms = [p for p in sorted(made.glob("*.src.rpm")) if p.is_file() and not p.is_symlink()]
    if len(srpms) != 1:
        raise StepFailed(f"{len(srpms)} source packages were made, not one", SRPM_FAILED)
    shutil.copyfile(srpms[0], result_dir / srpms[0].name)
    say(f"result: {srpms[0].name}")


def spec_sources(spec: Path, sources: Path) -> list[str]:
    """The Source and Patch values of the spec, macros expanded (rpmspec -P, contained)."""
    argv = ["rpmspec", "-P", "--define", f"_topdir {TOPDIR}",
            "--define", f"_sourcedir {sources}", str(spec)]
    out = bytearray()
    code = contained(argv, out.extend, stderr=subprocess.DEVNULL)
    if code != 0:
        run(argv, SRPM_FAILED)  # again, to show rpmspec's complaint in the log
    values = []
    for line in out.decode(errors="replace").splitlines():
        match = SOURCE_LINE.match(line)
        if match:
            values.append(match.group(1))
    return values


def remote_name(url: str) -> str | None:
    """The file name rpmbuild looks for: the URL's last part, or its `#/name` fragment."""
    base, _, fragment = url.partition("#")
    name = (fragment or base).rstrip("/").rsplit("/", 1)[-1]
    return name if SAFE_FILE.match(name) else None


def fetch_sources(job: dict, spec: Path, sources: Path) -> None:
    """Download the spec's remote sources that the sources directory lacks."""
    for value in spec_sources(spec, sources):
        if not value.lower().startswith(("http://", "https://", "ftp://")):
            continue
        name = remote_name(value)
        if name is None:
            raise StepFailed(f"the source URL {value!r} names no usable file", SRPM_FAILED)
        target = sources / name
        if target.exists():
            say(f"{name} is there already; not fetched")
            continue
        fetch_file(value.partition("#")[0], target)


def urlopen(url: str, timeout: float = 300):  # noqa: ANN201 (urllib's response)
    """urllib's urlopen, loaded on first use: importing urllib.request takes about
    half a second in an emulated VM, and most builds download nothing."""
    import urllib.request  # noqa: PLC0415

    return urllib.request.urlopen(url, timeout=timeout)


def fetch_file(url: str, target: Path) -> None:
    """Download url to target (a new file), at most MAX_FETCH_BYTES; StepFailed if not."""
    print(f"+ fetch {url} > {target.name}", flush=True)
    try:
        with urlopen(url) as response, target.open("xb") as out:
            total = 0
            while block := response.read(CHUNK):
                total += len(block)
                if total > MAX_FETCH_BYTES:
                    raise StepFailed(f"{url} is larger than {MAX_FETCH_BYTES} bytes", SRPM_FAILED)
                out.write(block)
    except (OSError, ValueError) as exc:
        raise StepFailed(f"fetching {url} failed: {exc}", SRPM_FAILED) from exc
    say(f"fetched {target.name}: {total} bytes")


def build_pypi(job: dict) -> None:
    """pyp2spec's spec for a package on the index, its sdist, and the SRPM of both."""
    result_dir = Path(job["result_dir"])
    result_dir.mkdir(parents=True, exist_ok=True)
    use_proxy(job)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    package, version, index = job["package"], job["version"], job["index_url"].rstrip("/")
    spec = WORKDIR / "pypi.spec"
    argv = ["python3", "-c", PYP2SPEC_RUN, index, package, "-o", str(spec),
            "-c", str(WORKDIR / "pypi.conf")]
    if version:
        argv += ["--version", version]
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(PYP2SPEC)
    try:
        run(argv, SRPM_FAILED, cwd=WORKDIR)
    finally:
        if env_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_path
    if not spec.is_file() or spec.is_symlink():
        raise StepFailed("pyp2spec wrote no spec", SRPM_FAILED)
    print(f"+ cat {spec}", flush=True)
    print(spec.read_text(errors="replace"), flush=True)
    sdist = fetch_sdist(index, package, version)
    shutil.rmtree(MADEDIR, ignore_errors=True)
    MADEDIR.mkdir(parents=True)
    say(f"building the source package from {spec.name} and {sdist}")
    run([
        "rpmbuild", "-bs",
        "--define", f"_topdir {TOPDIR}",
        "--define", f"_sourcedir {WORKDIR}",
        "--define", f"_srcrpmdir {MADEDIR}",
        "--define", "dist %{nil}",
        *fedora_stand_ins(sdist),
        str(spec),
    ], SRPM_FAILED)
    take_srpm(MADEDIR, result_dir)


def fetch_sdist(index: str, package: str, version: str) -> str:
    """Download the release's sdist (per the index's JSON API) into WORKDIR; its name."""
    url = f"{index}/pypi/{package}/{version}/json" if version else f"{index}/pypi/{package}/json"
    print(f"+ fetch {url}", flush=True)
    try:
        with urlopen(url) as response:
            data = json.loads(response.read(16 << 20))
        found = [u for u in data.get("urls", []) if u.get("packagetype") == "sdist"]
        if not found:
            raise StepFailed(f"{package} has no sdist on the index", SRPM_FAILED)
        name = remote_name(str(found[0]["url"]))
        if name is None or not str(found[0].get("filename", name)) == name:
            raise StepFailed("the index names an unusable sdist file", SRPM_FAILED)
        fetch_file(str(found[0]["url"]), WORKDIR / name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StepFailed(f"fetching the sdist of {package} failed: {exc}", SRPM_FAILED) from exc
    return name


def fedora_stand_ins(sdist: str) -> list[str]:
    """Defines of Fedora's macros the generated spec uses, for a chroot that lacks them."""
    args = []
    stand_ins = {
        "pypi_source": ("pypi_source()", sdist),
        "autorelease": ("autorelease", "1%{?dist}"),
        "autochangelog": ("autochangelog", "%{nil}"),
    }
    for name, (head, body) in stand_ins.items():
        out = bytearray()
        contained(["rpm", "--eval", f"%{{?{name}:defined}}"], out.extend)
        if out.decode(errors="replace").strip() != "defined":
            say(f"this chroot lacks %{name}: it stands for {body!r} here")
            args += ["--define", f"{head} {body}"]
    return args


def build_custom(job: dict) -> None:
    """Run the script as root; the spec and sources it leaves become the SRPM."""
    result_dir = Path(job["result_dir"])
    result_dir.mkdir(parents=True, exist_ok=True)
    use_proxy(job)
    if job["builddeps"]:
        install_builddeps(job)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    script = Path(job["script"])
    script.chmod(0o755)
    shebang = script.read_bytes()[:2] == b"#!"
    say("running the custom script")
    run([str(script)] if shebang else ["/bin/sh", str(script)], SRPM_FAILED, cwd=WORKDIR)
    made = (WORKDIR / (job["resultdir"] or ".")).resolve()
    if not made.is_dir() or not made.is_relative_to(WORKDIR.resolve()):
        raise StepFailed(f"the script left no result directory {job['resultdir']!r}", SRPM_FAILED)
    spec = script_spec(made)
    fetch_sources(job, spec, made)
    shutil.rmtree(MADEDIR, ignore_errors=True)
    MADEDIR.mkdir(parents=True)
    say(f"building the source package from {spec.name}")
    rpmbuild_bs(spec, made, MADEDIR)
    take_srpm(MADEDIR, result_dir)


def script_spec(made: Path) -> Path:
    """The one spec (a regular file, not a link) in the script's result directory."""
    specs = sorted(made.glob("*.spec"))
    if len(specs) != 1:
        found = ", ".join(p.name for p in specs) or "none"
        raise StepFailed(f"the script's result directory must hold one spec; it has {found}",
                         SRPM_FAILED)
    if specs[0].is_symlink() or not specs[0].is_file():
        raise StepFailed(f"{specs[0].name} is not a regular file", SRPM_FAILED)
    return specs[0]


def install_builddeps(job: dict) -> None:
    """dnf install the script's dependencies, unless rpm finds them all installed."""
    query = ["rpm", "-q", "--quiet", "--whatprovides", *job["builddeps"]]
    if contained(query, lambda _: None, stderr=subprocess.DEVNULL) == 0:
        say("every build dependency of the script is installed already: no dnf install")
        return
    job = {**job, "repos": [
        {"id": f"script_repo_{i}", "name": url, "baseurl": url}
        for i, url in enumerate(job["repos"])
    ]}
    write_repos(job)
    argv = ["dnf", "install", "-y", f"--setopt=reposdir={REPOSDIR}",
            f"--releasever={releasever(job['chroot'])}", "--setopt=install_weak_deps=False"]
    if job.get("proxy"):
        argv.append(f"--setopt=proxy={job['proxy']}")
    run([*argv, *job["builddeps"]], BUILDDEP_FAILED)


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


def keep_spec(spec: Path, result_dir: Path) -> None:
    """The spec as the source package holds it, into the results (when it is a sane one)."""
    if spec.is_symlink() or not spec.is_file() or spec.stat().st_size > MAX_SPEC_BYTES:
        say(f"{spec.name} is not kept in the results: not a regular file of at most 1 MiB")
        return
    name = spec.name if SPEC_FILE.match(spec.name) else "package.spec"
    shutil.copyfile(spec, result_dir / name)
    say(f"result: {name}")


def force_identity(spec: Path) -> None:
    kept, dropped = [], []
    for line in spec.read_text(errors="surrogateescape").splitlines(keepends=True):
        (dropped if FORCED_LINE.match(line) else kept).append(line)
    spec.write_text("".join(kept), errors="surrogateescape")
    for line in dropped:
        say(f"removed from {spec.name}: {line.strip()}")


def force_dist(job: dict, spec: Path, release: str) -> None:
    """Make the Release carry the forced dist even when the spec leaves out %{?dist}.

    `release` is the Release the spec gives with the forced macros ('' if unknown).
    """
    dist = job["macros"]["dist"]
    if not dist or release.endswith(dist):
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


def spec_facts(job: dict, spec: Path) -> tuple[str, list[str] | None]:
    """The Release the spec gives with the forced macros, and its BuildRequires.

    One rpmspec run for both (each run costs a noticeable part of a second in
    an emulated VM): the source package's requires are the BuildRequires.
    ('', None) if rpmspec cannot tell.
    """
    # Parsing the spec runs its %(...) macros: contained like every build command.
    query = "%{release}\\n[%{requirenevrs}\\n]"
    argv = ["rpmspec", "-q", "--srpm", "--queryformat", query, *defines(job), str(spec)]
    out = bytearray()
    code = contained(argv, out.extend, stderr=subprocess.DEVNULL)
    lines = out.decode(errors="replace").splitlines()
    if code != 0 or not lines or not lines[0].strip():
        return "", None
    return lines[0].strip(), [line.strip() for line in lines[1:] if line.strip()]


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
                with urlopen(repo["gpgkey"]) as response:
                    key.write_bytes(response.read(MAX_KEY_BYTES))
            except (OSError, ValueError) as exc:
                raise StepFailed(f"fetching {repo['gpgkey']} failed: {exc}", KEY_FAILED) from exc
            run(["rpm", "--import", str(key)], KEY_FAILED)
            lines.append(f"gpgkey=file://{key}")
        lines.append("")
    (REPOSDIR / "kopers.repo").write_text("\n".join(lines))
    print(f"+ cat {REPOSDIR}/kopers.repo", flush=True)
    print("\n".join(lines), flush=True)


def builddep(job: dict, spec: Path) -> None:
    argv = [
        "dnf", "builddep", "-y",
        f"--setopt=reposdir={REPOSDIR}",
        f"--releasever={releasever(job['chroot'])}",
        "--setopt=install_weak_deps=False",
    ]
    for name in MACROS:
        argv += ["--define", f"{name} {job['macros'][name]}"]
    run([*argv, str(spec)], BUILDDEP_FAILED)


def deps_installed(spec: Path, needs: list[str] | None) -> bool:
    """True if the BuildRequires (`needs`, from spec_facts) are plain names rpm finds
    installed (none at all counts); anything else (versions, rich or generated
    dependencies, a spec rpmspec could not read) is dnf's to judge."""
    if needs is None or "%generate_buildrequires" in spec.read_text(errors="replace"):
        return False
    if not all(PLAIN_NAME.match(n) for n in needs):
        return False
    query = ["rpm", "-q", "--quiet", "--whatprovides", *needs]
    return not needs or contained(query, lambda _: None, stderr=subprocess.DEVNULL) == 0


def write_manifest(result_dir: Path) -> None:
    names = recorded_manifest()
    if names is None:
        out = subprocess.run(
            ["rpm", "-qa", "--qf", "%{NEVRA}\\n"], capture_output=True, text=True, check=False
        ).stdout
        names = sorted(line for line in out.splitlines() if line.strip())
    (result_dir / "manifest.txt").write_text("".join(f"{n}\n" for n in names))
    say(f"buildroot manifest: {len(names)} packages")


def rpmdb_digest() -> str | None:
    """SHA-256 of the rpm database file; None when it may hold more than that file
    (a non-empty write-ahead log) or cannot be read."""
    try:
        wal = RPMDB.with_name(RPMDB.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return None
        return hashlib.sha256(RPMDB.read_bytes()).hexdigest()
    except OSError:
        return None


def record_manifest() -> int:
    """At template build: the package list with the digest of the database it came from."""
    out = subprocess.run(
        ["rpm", "-qa", "--qf", "%{NEVRA}\\n"], capture_output=True, text=True, check=True
    ).stdout
    names = sorted(line for line in out.splitlines() if line.strip())
    MANIFEST_RECORD.write_text(json.dumps({"rpmdb": rpmdb_digest(), "packages": names}))
    return BUILT


def recorded_manifest() -> list[str] | None:
    """The template's package list, when the database is byte for byte the one it was
    read from (nothing installed or imported since): the same answer as `rpm -qa`
    without its half second in an emulated VM. None otherwise."""
    try:
        record = json.loads(MANIFEST_RECORD.read_text())
    except (OSError, ValueError):
        return None
    digest = rpmdb_digest()
    names = record.get("packages") if isinstance(record, dict) else None
    if digest is None or record.get("rpmdb") != digest or not isinstance(names, list):
        return None
    return [n for n in names if isinstance(n, str)]


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
    keep_spec(spec, result_dir)
    force_identity(spec)
    release, needs = spec_facts(job, spec)
    force_dist(job, spec, release)
    if job["repos"]:
        if deps_installed(spec, needs):
            # Nothing for dnf to do, so no repository (nor its key) is needed.
            say("every BuildRequires is installed already (rpm says so): no dnf builddep")
        else:
            write_repos(job)
            builddep(job, spec)
    # Written before rpmbuild so a failed build still tells what its buildroot held.
    write_manifest(result_dir)
    run(["rpmbuild", "-ba", *defines(job), str(spec)], RPMBUILD_FAILED)
    collect(result_dir)


def main(argv: list[str]) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    os.environ.setdefault("LANG", "C.UTF-8")
    if argv[1:] == ["--warm"]:
        # Run once when a clone has booted: the builder's first start loads
        # Python and its modules from disk, a second of an emulated VM's time.
        return BUILT
    if argv[1:] == ["--record-manifest"]:
        return record_manifest()
    if len(argv) != 2:
        print("usage: kopers-builder JOB.json", flush=True)
        return INVALID_JOB
    try:
        job = load_job(argv[1])
    except JobError as exc:
        say(f"invalid job: {exc}")
        return INVALID_JOB
    try:
        mode = job.get("mode")
        if mode == "srpm":
            build_srpm(job)
        elif mode == "custom":
            build_custom(job)
        elif mode == "pypi":
            build_pypi(job)
        else:
            build(job)
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
