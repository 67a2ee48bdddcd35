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
installed_pkgs.log (or root.log). The spec as the SRPM holds it goes to the
results too. Output is line-buffered on stdout; exit 0 built, 1 the package
failed (last line names the command), 2 the job is invalid (the Debian
builder's finer statuses are all 1 here).

The source modes are the Debian builder's, each leaving one SRPM in
result_dir: "srpm" (mock --buildsrpm, after fetching the spec's remote
sources with "fetch"; "method": "make_srpm" runs .copr/Makefile), "custom"
(the user's script as root, its build dependencies installed with dnf first)
and "pypi" (Fedora's pyp2spec, its requests to pypi.org sent to "index_url").
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
MOCKDIR = Path("/build/mock")
WORKDIR = Path("/build/work")  # where a custom script or pyp2spec runs
MADEDIR = Path("/build/made")  # where make_srpm and rpmbuild -bs write
CHUNK = 1 << 16
MAX_FETCH_BYTES = 2 << 30
MAX_SPEC_BYTES = 1 << 20
SOURCE_LINE = re.compile(r"^\s*(?:source|patch)\d*\s*:\s*(\S+)\s*$", re.I)
SAFE_FILE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+~-]{0,200}$")
SPEC_FILE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,200}\.spec$")
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
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


def run(argv: list[str], cwd: Path | None = None) -> None:
    print(f"+ {shlex.join(argv)}" + (f"  (in {cwd})" if cwd else ""), flush=True)
    code = subprocess.run(
        argv, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=cwd
    ).returncode
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
        if job.setdefault("method", "rpmbuild") not in ("rpmbuild", "make_srpm"):
            raise JobError(f"unknown method {job['method']!r}")
        return source_defaults(job)
    if job.get("mode") == "custom":
        for key in ("chroot", "script", "resultdir", "result_dir"):
            if not isinstance(job.get(key), str):
                raise JobError(f"job field {key!r} must be a string")
        for key in ("builddeps", "repos"):
            if not isinstance(job.get(key), list) or not all(
                isinstance(v, str) for v in job[key]
            ):
                raise JobError(f"job field {key!r} must be a list of strings")
        if any(not PLAIN_NAME.match(dep) for dep in job["builddeps"]):
            raise JobError("builddeps must be package names")
        if any("\n" in u or not u.startswith(("http://", "https://")) for u in job["repos"]):
            raise JobError("repos must be http(s) URLs")
        rel = Path(job["resultdir"] or ".")
        if rel.is_absolute() or ".." in rel.parts:
            raise JobError("resultdir must be a relative path inside the script's directory")
        job["script_repos"] = job.pop("repos")
        return source_defaults(job)
    if job.get("mode") == "pypi":
        for key in ("chroot", "package", "version", "index_url", "result_dir"):
            if not isinstance(job.get(key), str):
                raise JobError(f"job field {key!r} must be a string")
        if not PYPI_NAME.match(job["package"]):
            raise JobError("package must be a Python package name")
        if job["version"] and not PYPI_VERSION.match(job["version"]):
            raise JobError("version must be a version")
        if not job["index_url"].startswith(("http://", "https://")):
            raise JobError("index_url must be an http(s) URL")
        return source_defaults(job)
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


def source_defaults(job: dict) -> dict:
    """A source job: the fields mock's config reads, and a string or null proxy."""
    proxy = job.setdefault("proxy", None)
    if proxy is not None and (not isinstance(proxy, str) or "\n" in proxy):
        raise JobError("job field 'proxy' must be a URL or null")
    job.setdefault("build_id", 0)
    job.setdefault("repos", [])
    job.setdefault("macros", {"dist": "", "vendor": "", "packager": ""})
    job["enable_net"] = bool(proxy)
    if not isinstance(job.setdefault("fetch", False), bool):
        raise JobError("job field 'fetch' must be a boolean")
    return job


def use_proxy(job: dict) -> None:
    proxy = job.get("proxy")
    if proxy:
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ftp_proxy"):
            os.environ[name] = proxy
        os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
        say("network access goes through the egress proxy")


def remote_name(url: str) -> str | None:
    base, _, fragment = url.partition("#")
    name = (fragment or base).rstrip("/").rsplit("/", 1)[-1]
    return name if SAFE_FILE.match(name) else None


def fetch_file(url: str, target: Path) -> None:
    print(f"+ fetch {url} > {target.name}", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=300) as response, target.open("xb") as out:
            total = 0
            while block := response.read(CHUNK):
                total += len(block)
                if total > MAX_FETCH_BYTES:
                    raise CommandFailed(["fetch", url], 1)
                out.write(block)
    except (OSError, ValueError) as exc:
        say(f"fetching {url} failed: {exc}")
        raise CommandFailed(["fetch", url], 1) from exc
    say(f"fetched {target.name}: {total} bytes")


def fetch_sources(spec: Path, sources: Path) -> None:
    """Download the spec's remote Source/Patch files the sources directory lacks."""
    argv = ["rpmspec", "-P", "--define", f"_sourcedir {sources}", str(spec)]
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if out.returncode != 0:
        run(argv)
    for line in out.stdout.splitlines():
        match = SOURCE_LINE.match(line)
        if not match or not match.group(1).lower().startswith(("http://", "https://", "ftp://")):
            continue
        value = match.group(1)
        name = remote_name(value)
        if name is None:
            say(f"the source URL {value!r} names no usable file")
            raise CommandFailed(["fetch", value], 1)
        if not (sources / name).exists():
            fetch_file(value.partition("#")[0], sources / name)


def take_srpm(made: Path, result_dir: Path) -> None:
    srpms = [p for p in sorted(made.glob("*.src.rpm")) if p.is_file() and not p.is_symlink()]
    if len(srpms) != 1:
        say(f"{len(srpms)} source packages were made, not one")
        raise CommandFailed(["srpm"], 1)
    result_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(srpms[0], result_dir / srpms[0].name)
    say(f"result: {srpms[0].name}")


def mock_srpm(job: dict, spec: Path, sources: Path) -> None:
    """mock --buildsrpm from a spec and its sources; the SRPM goes to result_dir."""
    shutil.rmtree(MOCKDIR, ignore_errors=True)
    results = MOCKDIR / "results"
    results.mkdir(parents=True)
    config = MOCKDIR / "kopers.cfg"
    config.write_text(mock_config(job))
    shutil.chown(MOCKDIR, MOCK_USER)
    shutil.chown(results, MOCK_USER)
    run([
        "runuser", "-u", MOCK_USER, "--", "mock", "-r", str(config), "--buildsrpm",
        "--spec", str(spec), "--sources", str(sources), "--resultdir", str(results),
    ])  # fmt: skip
    take_srpm(results, Path(job["result_dir"]))


def build_custom(job: dict) -> None:
    """The user's script as root in a fresh directory; its spec and sources make the SRPM."""
    use_proxy(job)
    if job["builddeps"]:
        argv = ["dnf", "install", "-y", "--setopt=install_weak_deps=False"]
        for i, url in enumerate(job["script_repos"]):
            argv += [f"--repofrompath=script_repo_{i},{url}", "--nogpgcheck"]
        if job.get("proxy"):
            argv.append(f"--setopt=proxy={job['proxy']}")
        run([*argv, *job["builddeps"]])
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    script = Path(job["script"])
    script.chmod(0o755)
    shebang = script.read_bytes()[:2] == b"#!"
    run([str(script)] if shebang else ["/bin/sh", str(script)], cwd=WORKDIR)
    made = (WORKDIR / (job["resultdir"] or ".")).resolve()
    if not made.is_dir() or not made.is_relative_to(WORKDIR.resolve()):
        say(f"the script left no result directory {job['resultdir']!r}")
        raise CommandFailed(["custom"], 1)
    specs = sorted(made.glob("*.spec"))
    if len(specs) != 1 or specs[0].is_symlink() or not specs[0].is_file():
        say("the script's result directory must hold one spec, a regular file")
        raise CommandFailed(["custom"], 1)
    fetch_sources(specs[0], made)
    mock_srpm(job, specs[0], made)


def build_pypi(job: dict) -> None:
    """Fedora's pyp2spec from the job's index, the release's sdist, rpmbuild -bs."""
    use_proxy(job)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    package, version, index = job["package"], job["version"], job["index_url"].rstrip("/")
    spec = WORKDIR / "pypi.spec"
    argv = ["python3", "-c", PYP2SPEC_RUN, index, package, "-o", str(spec),
            "-c", str(WORKDIR / "pypi.conf")]  # fmt: skip
    run(argv + (["--version", version] if version else []), cwd=WORKDIR)
    url = f"{index}/pypi/{package}/{version}/json" if version else f"{index}/pypi/{package}/json"
    try:
        with urllib.request.urlopen(url, timeout=300) as response:
            data = json.loads(response.read(16 << 20))
        sdist = next(u for u in data["urls"] if u.get("packagetype") == "sdist")
        name = remote_name(str(sdist["url"]))
    except (OSError, ValueError, KeyError, TypeError, StopIteration) as exc:
        say(f"the index has no usable sdist of {package}: {exc}")
        raise CommandFailed(["fetch", url], 1) from exc
    if name is None:
        raise CommandFailed(["fetch", str(sdist["url"])], 1)
    fetch_file(str(sdist["url"]), WORKDIR / name)
    shutil.rmtree(MADEDIR, ignore_errors=True)
    MADEDIR.mkdir(parents=True)
    stand_ins = []
    for macro, head, body in (
        ("autorelease", "autorelease", "1%{?dist}"),
        ("autochangelog", "autochangelog", "%{nil}"),
    ):
        out = subprocess.run(["rpm", "--eval", f"%{{?{macro}:defined}}"], capture_output=True,
                             text=True).stdout.strip()  # fmt: skip
        if out != "defined":
            stand_ins += ["--define", f"{head} {body}"]
    run([
        "rpmbuild", "-bs", "--define", f"_sourcedir {WORKDIR}",
        "--define", f"_srcrpmdir {MADEDIR}", "--define", "dist %{nil}", *stand_ins, str(spec),
    ])  # fmt: skip
    take_srpm(MADEDIR, Path(job["result_dir"]))


def keep_spec(spec: Path, result_dir: Path) -> None:
    """The spec as the source package holds it, into the results."""
    if spec.is_symlink() or not spec.is_file() or spec.stat().st_size > MAX_SPEC_BYTES:
        return
    name = spec.name if SPEC_FILE.match(spec.name) else "package.spec"
    shutil.copyfile(spec, result_dir / name)
    say(f"result: {name}")


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
    """The SRPM from the uploaded directory (mock --buildsrpm or make_srpm)."""
    use_proxy(job)
    sources = Path(job["sources"])
    if job["method"] == "make_srpm":
        shutil.rmtree(MADEDIR, ignore_errors=True)
        MADEDIR.mkdir(parents=True)
        spec = job["spec"] if Path(job["spec"]).is_file() else ""
        makefile = str(sources / ".copr" / "Makefile")
        run(["make", "-f", makefile, "srpm", f"outdir={MADEDIR}", f"spec={spec}"], cwd=sources)
        take_srpm(MADEDIR, Path(job["result_dir"]))
        return
    if job["fetch"]:
        fetch_sources(Path(job["spec"]), sources)
    mock_srpm(job, Path(job["spec"]), sources)


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
    # mock's own logs go into the build log: the host takes only RPMs, the
    # manifest and the spec from the result directory.
    for log in ("root.log", "state.log", "build.log"):
        if (mock_results / log).is_file():
            print(f"+ cat mock's {log}", flush=True)
            print((mock_results / log).read_text(errors="replace"), flush=True)


def build(job: dict) -> None:
    result_dir = Path(job["result_dir"])
    result_dir.mkdir(parents=True, exist_ok=True)
    network = "on" if job["enable_net"] else "off"
    say(f"build {job['build_id']} for {job['chroot']}, network {network}")
    spec = install_srpm(job)
    keep_spec(spec, result_dir)
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
    if argv[1:] == ["--warm"]:
        # Run once when a clone has booted, so its first real start finds Python in memory.
        return 0
    if len(argv) != 2:
        print("usage: kopers-builder JOB.json", flush=True)
        return 2
    try:
        job = load_job(argv[1])
    except JobError as exc:
        say(f"invalid job: {exc}")
        return 2
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
