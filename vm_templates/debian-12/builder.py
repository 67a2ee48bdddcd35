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
against the job's repos (when there are any); `rpmbuild -ba`; copy the RPMs and
the rebuilt SRPM to result_dir with manifest.txt (the buildroot's packages).

A job with `"mode": "srpm"` builds a source package instead, from a checkout
the host uploaded (builds from git):

    {"mode": "srpm", "build_id": 7, "chroot": "debian-12-x86_64",
     "spec": "/build/src/pkg.spec", "sources": "/build/src",
     "result_dir": "/build/out"}

Every command and all of its output go to stdout, line-buffered: the host
streams them live as the build log. Exit status: 0 built, 1 the package failed
(the last line names the failing command), 2 the job file is invalid.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

TOPDIR = Path("/build/top")
REPOSDIR = Path("/build/repos.d")
MACROS = ("dist", "vendor", "packager")
# Lines the packager may not set: they would override the identity Kopers forces.
FORCED_LINE = re.compile(r"^\s*(?:(?:vendor|packager)\s*:|%(?:define|global)\s+dist\s)", re.I)
REPO_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")
RELEASE_LINE = re.compile(r"^(\s*release\s*:\s*)(\S.*?)(\s*)$", re.I)


class JobError(Exception):
    """The job file is unusable: exit 2."""


class CommandFailed(Exception):
    """A build step failed: exit 1."""

    def __init__(self, argv: list[str], code: int) -> None:
        super().__init__(f"{shlex.join(argv)} failed with exit code {code}")


def say(text: str) -> None:
    print(f"kopers-builder: {text}", flush=True)


def run(argv: list[str]) -> None:
    """Run a command with its stdout and stderr going straight to ours."""
    print(f"+ {shlex.join(argv)}", flush=True)
    code = subprocess.run(argv, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise CommandFailed(argv, code)


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
    ])
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
    run(["rpm", "-i", "--force-debian", "--define", f"_topdir {TOPDIR}", job["srpm"]])
    specs = sorted((TOPDIR / "SPECS").glob("*.spec"))
    if len(specs) != 1:
        say(f"expected one spec file in the source package, found {len(specs)}")
        raise CommandFailed(["rpm", "-i", job["srpm"]], 1)
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
    result = subprocess.run(
        ["rpmspec", "-q", "--srpm", "--queryformat", "%{release}\n", *defines(job), str(spec)],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout else ""


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
            except OSError as exc:
                raise CommandFailed(["fetch", repo["gpgkey"]], 1) from exc
            run(["rpm", "--import", str(key)])
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
    run([*argv, str(spec)])


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
    run(["rpmbuild", "-ba", *defines(job), str(spec)])
    collect(result_dir)


def main(argv: list[str]) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    os.environ.setdefault("LANG", "C.UTF-8")
    if len(argv) != 2:
        print("usage: kopers-builder JOB.json", flush=True)
        return 2
    try:
        job = load_job(argv[1])
    except JobError as exc:
        say(f"invalid job: {exc}")
        return 2
    try:
        build_srpm(job) if job.get("mode") == "srpm" else build(job)
    except CommandFailed as exc:
        say(str(exc))
        return 1
    except OSError as exc:
        say(f"build failed: {exc}")
        return 1
    say("build succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
