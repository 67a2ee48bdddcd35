#!/usr/bin/python3
"""kopers-builder for the Fedora 40 template: rebuild one SRPM with mock.

Runs inside the builder VM as root, python3 stdlib only:

    kopers-builder JOB.json

The job file is the same contract as the Debian builder's (see
vm_templates/debian-12/builder.py):

    {"build_id": 7, "chroot": "fedora-40-x86_64",
     "srpm": "/build/in/NAME.src.rpm", "result_dir": "/build/out",
     "macros": {"dist": ".fc40.kopers", "vendor": "...", "packager": "..."},
     "repos": [{"id": "...", "name": "...", "baseurl": "...", "gpgcheck": false,
                "gpgkey": "optional URL"}],
     "enable_net": false,
     "proxy": "optional http://127.0.0.1:PORT for mock's dnf"}

Steps: unpack the SRPM; remove Vendor:, Packager: and %define/%global dist
from the spec; write a mock config that includes mock's own config of the
chroot, adds the job's repos and forces the macros; run mock (as the user
`kopers`: mock will not build as root), which builds the SRPM and then the
binary RPMs; copy the results and write manifest.txt from mock's
installed_pkgs.log (or root.log). Output is line-buffered on stdout; exit 0 built,
1 the package failed (last line names the command), 2 the job is invalid.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

TOPDIR = Path("/build/top")
MOCKDIR = Path("/build/mock")
MOCK_USER = "kopers"
MACROS = ("dist", "vendor", "packager")
FORCED_LINE = re.compile(r"^\s*(?:(?:vendor|packager)\s*:|%(?:define|global)\s+dist\s)", re.I)
REPO_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")
CHROOT = re.compile(r"^[a-z0-9][a-z0-9.+_]*-[a-z0-9.+_]+-[a-z0-9_]+$")
# package_state lines: "NEVRA BUILDTIME SIZE PKGID installed".
INSTALLED = re.compile(r"(\S+)\s+\d+\s+\d+\s+\S+\s+installed\s*$")


class JobError(Exception):
    """The job file is unusable: exit 2."""


class CommandFailed(Exception):
    """A build step failed: exit 1."""

    def __init__(self, argv: list[str], code: int) -> None:
        super().__init__(f"{shlex.join(argv)} failed with exit code {code}")


def say(text: str) -> None:
    print(f"kopers-builder: {text}", flush=True)


def run(argv: list[str]) -> None:
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
        # Builds from git: the host uploaded a checkout; make its SRPM.
        for key in ("chroot", "spec", "sources", "result_dir"):
            if not isinstance(job.get(key), str):
                raise JobError(f"job field {key!r} must be a string")
        job.setdefault("repos", [])
        job.setdefault("macros", {"dist": "", "vendor": "", "packager": ""})
        return job
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
    if not CHROOT.match(job["chroot"]):
        raise JobError(f"chroot {job['chroot']!r} is not of the form distro-version-arch")
    if not isinstance(job.get("proxy", ""), str):
        raise JobError("job field 'proxy' must be a string")
    if not Path(job["srpm"]).is_file():
        raise JobError(f"source package {job['srpm']} does not exist")
    return job


def install_srpm(job: dict) -> Path:
    shutil.rmtree(TOPDIR, ignore_errors=True)
    TOPDIR.mkdir(parents=True)
    run(["rpm", "-i", "--define", f"_topdir {TOPDIR}", job["srpm"]])
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


def repo_sections(job: dict) -> str:
    lines = []
    for repo in job["repos"]:
        lines += [
            "",
            f"[{repo['id']}]",
            f"name={repo['name']}",
            f"baseurl={repo['baseurl']}",
            f"gpgcheck={int(repo.get('gpgcheck', False))}",
            "enabled=1",
            "skip_if_unavailable=False",
            "metadata_expire=0",
        ]
        if repo.get("gpgkey"):
            lines.append(f"gpgkey={repo['gpgkey']}")
    return "\n".join(lines) + "\n"


def mock_config(job: dict) -> str:
    """A mock config: mock's own config of the chroot, plus our repos and macros.

    Values are written with repr() so they are valid Python literals whatever
    the job contains.
    """
    lines = [
        "# Generated by kopers-builder for one build; the VM is discarded afterwards.",
        f"include('/etc/mock/{job['chroot']}.cfg')",
        f"config_opts['root'] = {'kopers-' + str(job['build_id'])!r}",
        f"config_opts['rpmbuild_networking'] = {bool(job['enable_net'])!r}",
        "config_opts['use_bootstrap_image'] = False",
        "config_opts['print_main_output'] = True",
        "config_opts['plugin_conf']['package_state_enable'] = True",
        "config_opts['plugin_conf']['package_state_opts']['installed_pkgs'] = True",
    ]
    for name in MACROS:
        lines.append(f"config_opts['macros']['%{name}'] = {job['macros'][name]!r}")
    if job["repos"]:
        lines.append(f"config_opts['dnf.conf'] += {repo_sections(job)!r}")
    if job.get("proxy"):
        # The distro repos are reached through the host's proxy over SSH.
        main = f"[main]\nproxy={job['proxy']}\n"
        lines.append(
            f"config_opts['dnf.conf'] = config_opts['dnf.conf'].replace('[main]\\n', {main!r}, 1)"
        )
    return "\n".join(lines) + "\n"


def run_mock(job: dict, spec: Path) -> Path:
    shutil.rmtree(MOCKDIR, ignore_errors=True)
    results = MOCKDIR / "results"
    results.mkdir(parents=True)
    config = MOCKDIR / "kopers.cfg"
    config.write_text(mock_config(job))
    print(f"+ cat {config}", flush=True)
    print(config.read_text(), flush=True)
    shutil.chown(MOCKDIR, MOCK_USER)
    shutil.chown(results, MOCK_USER)
    # Without --buildsrpm/--rebuild, mock builds the SRPM from spec + sources
    # in the chroot and then rebuilds it: both with our macros.
    run([
        "runuser", "-u", MOCK_USER, "--", "mock", "-r", str(config),
        "--spec", str(spec), "--sources", str(TOPDIR / "SOURCES"),
        "--resultdir", str(results),
    ])  # fmt: skip
    return results


def build_srpm(job: dict) -> None:
    """mock --buildsrpm from the uploaded checkout; the SRPM goes to result_dir."""
    shutil.rmtree(MOCKDIR, ignore_errors=True)
    results = MOCKDIR / "results"
    results.mkdir(parents=True)
    config = MOCKDIR / "kopers.cfg"
    config.write_text(mock_config(job))
    shutil.chown(MOCKDIR, MOCK_USER)
    shutil.chown(results, MOCK_USER)
    run([
        "runuser", "-u", MOCK_USER, "--", "mock", "-r", str(config), "--buildsrpm",
        "--spec", job["spec"], "--sources", job["sources"], "--resultdir", str(results),
    ])  # fmt: skip
    result_dir = Path(job["result_dir"])
    result_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(results.glob("*.src.rpm")):
        shutil.copy2(path, result_dir / path.name)
        say(f"result: {path.name}")


def write_manifest(mock_results: Path, result_dir: Path) -> None:
    names: set[str] = set()
    for log in ("installed_pkgs.log", "root.log"):
        path = mock_results / log
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                match = INSTALLED.search(line)
                if match:
                    names.add(match.group(1).split()[-1])
        if names:
            break
    (result_dir / "manifest.txt").write_text("".join(f"{n}\n" for n in sorted(names)))
    say(f"buildroot manifest: {len(names)} packages")


def collect(mock_results: Path, result_dir: Path) -> None:
    for path in sorted(mock_results.glob("*.rpm")):
        shutil.copy2(path, result_dir / path.name)
        say(f"result: {path.name}")
    for log in ("build.log", "root.log", "state.log"):
        if (mock_results / log).is_file():
            shutil.copy2(mock_results / log, result_dir / f"mock-{log}")


def build(job: dict) -> None:
    result_dir = Path(job["result_dir"])
    result_dir.mkdir(parents=True, exist_ok=True)
    network = "on" if job["enable_net"] else "off"
    say(f"build {job['build_id']} for {job['chroot']}, network {network}")
    spec = install_srpm(job)
    force_identity(spec)
    results = MOCKDIR / "results"
    try:
        results = run_mock(job, spec)
    finally:
        # Even a failed build leaves logs and a buildroot manifest worth keeping.
        if results.is_dir():
            write_manifest(results, result_dir)
            collect(results, result_dir)


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
