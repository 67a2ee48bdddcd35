"""End to end: build (or reuse) the debian-12 template, boot one TCG VM, build RPMs in it.

Needs root, libvirtd + virtlogd, mmdebstrap, rpmbuild and network access to the
Debian mirrors the first time (the image is then cached in ~/.cache/kopers, or
$KOPERS_CACHE_DIR). One VM serves every test in this file; the last test
destroys it and checks that nothing is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kopers.errors import BuildFailed, InfrastructureError
from kopers.vm import ssh
from kopers.vm.domain import domain_name, domain_prefix
from kopers.vm.libvirt import LibvirtDriver, VmHandle
from kopers.vm.probe import probe_domain_type
from kopers.vm.template import TemplateImage, build_template, default_templates_root
from kopers.worker.results import ResultLimits, take_results
from kopers.worker.session import BuilderStatus

pytestmark = pytest.mark.e2e

URI = "qemu:///system"
INSTANCE = "e2etest"
DIST = ".deb12.kopers"
VENDOR = "Kopers alice/e2e"
PACKAGER = "alice via Kopers"


def cache_dir() -> Path:
    return Path(os.environ.get("KOPERS_CACHE_DIR") or "~/.cache/kopers").expanduser()


def _require_host() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (mmdebstrap root mode, qemu:///system)")
    for tool in ("virsh", "mmdebstrap", "rpmbuild", "qemu-img"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if subprocess.run(["virsh", "-c", URI, "version"], capture_output=True).returncode != 0:
        pytest.skip("libvirtd is not running (libvirtd -d; virtlogd -d)")


@dataclass
class Vm:
    driver: LibvirtDriver
    handle: VmHandle
    image: TemplateImage
    timings: dict[str, float] = field(default_factory=dict)
    built: dict[str, Path] = field(default_factory=dict)


@pytest.fixture(scope="module")
async def image() -> TemplateImage:
    _require_host()
    started = time.monotonic()
    built = await build_template(
        "debian-12", default_templates_root(), cache_dir(), lambda line: print(line, flush=True)
    )
    print(f"template ready after {time.monotonic() - started:.1f}s: {built.dir}")
    return built


@pytest.fixture(scope="module")
async def vm(image: TemplateImage, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Vm]:
    # Under /tmp/pytest-of-root (mode 700): also exercises the qemu-user ACLs.
    overlays = tmp_path_factory.mktemp("overlays")
    driver = LibvirtDriver(URI, "qemu", overlays, vcpus=2, memory_mib=1536)
    started = time.monotonic()
    handle = await driver.start(image, domain_name(INSTANCE, "boot"))
    try:
        try:
            await ssh.wait_ready(handle.ssh_host, handle.ssh_port, image.ssh_key, timeout=300)
        except Exception:
            print(await driver.console_tail(handle))
            raise
        state = Vm(driver, handle, image, {"boot_to_ssh": time.monotonic() - started})
        print(f"boot to ssh: {state.timings['boot_to_ssh']:.1f}s")
        yield state
    finally:
        await driver.destroy(handle)
        await driver.close()


async def run(vm: Vm, cmd: str) -> tuple[int, list[str]]:
    lines: list[str] = []

    def on_line(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    async with ssh.connect(vm.handle.ssh_host, vm.handle.ssh_port, vm.image.ssh_key) as session:
        code = await session.run(cmd, on_line)
    return code, lines


def make_srpm(workdir: Path, spec_text: str, sources: dict[str, str]) -> Path:
    top = workdir / "rpmbuild"
    (top / "SOURCES").mkdir(parents=True)
    for name, text in sources.items():
        (top / "SOURCES" / name).write_text(text)
    spec = workdir / "pkg.spec"
    spec.write_text(spec_text)
    subprocess.run(
        ["rpmbuild", "-bs", "--define", f"_topdir {top}", str(spec)],
        check=True,
        capture_output=True,
    )
    (srpm,) = (top / "SRPMS").glob("*.src.rpm")
    return srpm


async def build_in_vm(
    vm: Vm,
    workdir: Path,
    srpm: Path,
    repos: list[dict[str, object]] | None = None,
    remote_forward: tuple[int, int] | None = None,
) -> tuple[int, list[str], Path]:
    """Upload SRPM and job, run the builder, download /build/out into workdir/results."""
    job = {
        "build_id": 1,
        "chroot": "debian-12-x86_64",
        "srpm": f"/build/in/{srpm.name}",
        "result_dir": "/build/out",
        "macros": {"dist": DIST, "vendor": VENDOR, "packager": PACKAGER},
        "repos": repos or [],
        "enable_net": False,
    }
    job_file = workdir / "job.json"
    job_file.write_text(json.dumps(job))
    lines: list[str] = []
    results = workdir / "results"
    h = vm.handle
    async with ssh.connect(h.ssh_host, h.ssh_port, vm.image.ssh_key) as session:
        if remote_forward is not None:
            await session.forward_remote(remote_forward[0], "127.0.0.1", remote_forward[1])
        await session.run("rm -rf /build/out /build/in && mkdir -p /build/in /build/out", print)
        await session.put(srpm, job["srpm"])  # type: ignore[arg-type]
        await session.put(job_file, "/build/job.json")
        started = time.monotonic()
        code = await session.run(f"{vm.image.builder} /build/job.json", lines.append)
        vm.timings[srpm.name] = time.monotonic() - started
        # Through the result boundary, as the runner copies results.
        await take_results(session, "/build/out", results, ResultLimits(100, 1 << 30, 600))
    print("\n".join(lines))
    return code, lines, results


def rpm_query(path: Path, fmt: str) -> str:
    return subprocess.run(
        ["rpm", "-qp", "--qf", fmt, str(path)], check=True, capture_output=True, text=True
    ).stdout


NOARCH_SPEC = """\
Name: kopers-e2e-noarch
Version: 1.0
Release: 3%{?dist}
Summary: Kopers e2e noarch package
License: MIT
BuildArch: noarch
Vendor: Someone Else
Packager: Mallory <m@example.com>
%define dist .evil
Source0: hello.sh

%description
A shell script.

%install
install -D -m 755 %{SOURCE0} %{buildroot}%{_bindir}/kopers-e2e-hello

%files
%{_bindir}/kopers-e2e-hello
"""

GCC_SPEC = """\
Name: kopers-e2e-hello
Version: 2.0
Release: 1%{?dist}
Summary: Kopers e2e C program
License: MIT
BuildRequires: gcc
BuildRequires: make
BuildRequires: glibc-devel
%{?with_dep:BuildRequires: kopers-e2e-noarch >= 1.0}
Source0: hello.c

%description
Hello world in C.

%build
gcc -O2 -o hello %{SOURCE0}
./hello

%install
install -D -m 755 hello %{buildroot}%{_bindir}/kopers-e2e-hello-c

%files
%{_bindir}/kopers-e2e-hello-c
"""

HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello from kopers"); return 0; }\n'


async def test_uname(vm: Vm) -> None:
    code, lines = await run(vm, "uname -r")
    assert code == 0
    assert lines and lines[0].endswith("-cloud-amd64")


async def test_rpm_db_has_system_provides(vm: Vm) -> None:
    code, lines = await run(
        vm, "rpm -q --whatprovides 'libc.so.6()(64bit)' gcc /bin/sh 'rtld(GNU_HASH)'"
    )
    assert code == 0, lines
    assert all(line.startswith("kopers-system-provides-") for line in lines)
    assert (vm.image.dir / "system-provides.txt").is_file()


async def test_noarch_build_forces_identity(vm: Vm, tmp_path: Path) -> None:
    srpm = make_srpm(tmp_path, NOARCH_SPEC, {"hello.sh": "#!/bin/sh\necho hello\n"})
    code, lines, results = await build_in_vm(vm, tmp_path, srpm)
    assert code == 0, lines[-5:]
    (rpm,) = results.glob("*.noarch.rpm")
    vendor, release = rpm_query(rpm, "%{VENDOR}|%{RELEASE}").split("|")
    assert vendor == VENDOR
    assert release.endswith(DIST)
    assert release == f"3{DIST}"
    assert rpm_query(rpm, "%{PACKAGER}") == PACKAGER
    assert list(results.glob(f"*3{DIST}.src.rpm"))
    manifest = (results / "manifest.txt").read_text().splitlines()
    assert any(line.startswith("kopers-system-provides-") for line in manifest)
    assert manifest == sorted(manifest)
    vm.built["noarch"] = rpm


async def test_a_spec_without_dist_still_gets_the_forced_one(vm: Vm, tmp_path: Path) -> None:
    spec = NOARCH_SPEC.replace("Release: 3%{?dist}", "Release: 4").replace(
        "Name: kopers-e2e-noarch", "Name: kopers-e2e-nodist"
    )
    srpm = make_srpm(tmp_path, spec, {"hello.sh": "#!/bin/sh\necho hello\n"})
    code, lines, results = await build_in_vm(vm, tmp_path, srpm)
    assert code == 0, lines[-5:]
    assert any("lacks %{?dist}; it gets .deb12.kopers" in line for line in lines)
    (rpm,) = results.glob("kopers-e2e-nodist-*.noarch.rpm")
    assert rpm_query(rpm, "%{RELEASE}") == f"4{DIST}"
    assert list(results.glob(f"kopers-e2e-nodist-1.0-4{DIST}.src.rpm"))


async def test_gcc_build_uses_system_provides(vm: Vm, tmp_path: Path) -> None:
    srpm = make_srpm(tmp_path, GCC_SPEC, {"hello.c": HELLO_C})
    code, lines, results = await build_in_vm(vm, tmp_path, srpm)
    assert code == 0, lines[-5:]
    assert "hello from kopers" in lines
    (rpm,) = results.glob("kopers-e2e-hello-2.0-*.x86_64.rpm")
    assert rpm_query(rpm, "%{RELEASE}") == f"1{DIST}"
    requires = subprocess.run(
        ["rpm", "-qp", "--requires", str(rpm)], check=True, capture_output=True, text=True
    ).stdout
    assert "libc.so.6()(64bit)" in requires


async def test_failed_build_names_the_command(vm: Vm, tmp_path: Path) -> None:
    broken = GCC_SPEC.replace("./hello", "./hello && exit 7")
    srpm = make_srpm(tmp_path, broken, {"hello.c": HELLO_C})
    code, lines, _ = await build_in_vm(vm, tmp_path, srpm)
    assert code == BuilderStatus.RPMBUILD_FAILED
    assert lines[-1].startswith("kopers-builder: rpmbuild -ba ")
    assert lines[-1].endswith("failed with exit code 1")


async def test_links_planted_in_the_results_stay_in_the_vm(vm: Vm, tmp_path: Path) -> None:
    """A spec (root in the VM) links host-looking paths into the result directory:
    the result boundary refuses them, and no byte of what they point at leaves."""
    planting = NOARCH_SPEC.replace(
        "%install\n",
        "%install\n"
        "ln -s /etc/shadow /build/out/stolen-1-1.noarch.rpm\n"
        "ln -s ../../../../../.. /build/out/d\n",
    )
    srpm = make_srpm(tmp_path, planting, {"hello.sh": "#!/bin/sh\necho hello\n"})
    with pytest.raises(BuildFailed, match=r"'(stolen-1-1\.noarch\.rpm|d)' is a link"):
        await build_in_vm(vm, tmp_path, srpm)
    copied = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    assert not any(b"root:" in p.read_bytes() for p in copied)
    assert not any(p.is_symlink() for p in (tmp_path / "results").rglob("*"))


@pytest.fixture
def repo_server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A plain HTTP server on 127.0.0.1 over a fresh repo directory."""
    repo = tmp_path / "repo"
    repo.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(repo))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield repo, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


async def test_builddep_from_project_repo(
    vm: Vm, tmp_path: Path, repo_server: tuple[Path, int]
) -> None:
    """Chain build: BuildRequires a package built earlier, served through SSH."""
    if "noarch" not in vm.built:
        pytest.skip("the noarch build did not succeed")
    repo, port = repo_server
    shutil.copy2(vm.built["noarch"], repo)
    createrepo = shutil.which("createrepo_c") or str(Path(sys.executable).with_name("createrepo_c"))
    subprocess.run([createrepo, "--quiet", str(repo)], check=True)
    srpm = make_srpm(
        tmp_path, GCC_SPEC.replace("%{?with_dep:", "%{!?without_dep:"), {"hello.c": HELLO_C}
    )
    repos = [{"id": "kopers-e2e", "name": "e2e", "baseurl": "http://127.0.0.1:8765/",
              "gpgcheck": False}]  # fmt: skip
    code, lines, results = await build_in_vm(vm, tmp_path, srpm, repos, (8765, port))
    assert code == 0, lines[-5:]
    assert any(line.startswith("+ dnf builddep") for line in lines)
    manifest = (results / "manifest.txt").read_text()
    assert f"kopers-e2e-noarch-1.0-3{DIST}.noarch" in manifest


async def test_probe_decides(image: TemplateImage) -> None:
    result = await probe_domain_type(image, timeout=30)
    print(f"probe: {result.domain_type} ({result.reason})")
    assert result.domain_type in ("kvm", "qemu")
    assert result.reason


async def test_destroy_leaves_nothing(vm: Vm) -> None:
    """Destroying the VM mid-command is a lost connection, then nothing is left."""
    print("timings:", {k: round(v, 1) for k, v in vm.timings.items()})
    h = vm.handle
    started = asyncio.Event()

    def on_line(line: str) -> None:
        if line == "started":
            started.set()

    async with ssh.connect(h.ssh_host, h.ssh_port, vm.image.ssh_key) as session:
        running = asyncio.create_task(session.run("echo started; sleep 300", on_line))
        await asyncio.wait_for(started.wait(), 30)
        await vm.driver.destroy(h)
        with pytest.raises(InfrastructureError, match="connection lost"):
            await asyncio.wait_for(running, 60)
    await vm.driver.destroy(vm.handle)  # idempotent
    listed = subprocess.run(
        ["virsh", "-c", URI, "list", "--all", "--name"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert vm.handle.name not in listed
    assert not vm.handle.overlay.exists()
    assert not vm.handle.console_log.exists()
    assert await vm.driver.list_domains(domain_prefix(INSTANCE)) == []


async def test_reap_removes_unowned_vms(image: TemplateImage, tmp_path: Path) -> None:
    """reap() stops domains and deletes overlays that nobody keeps (one short-lived start)."""
    overlays = tmp_path / "overlays"
    driver = LibvirtDriver(URI, "qemu", overlays, vcpus=1, memory_mib=512)
    # Leftovers of a crashed instance: an overlay without a domain, one that
    # belongs to a VM the caller is still starting (it must stay), and one of
    # another instance (not ours to touch).
    orphan = overlays / f"{domain_name(INSTANCE, 'orphan')}.qcow2"
    kept = overlays / f"{domain_name(INSTANCE, 'starting')}.qcow2"
    foreign = overlays / f"{domain_name('otherinstance', 'x')}.qcow2"
    try:
        lose = await driver.start(image, domain_name(INSTANCE, "lose"))
        for path in (orphan, kept, foreign):
            path.write_bytes(b"")
        reaped = await driver.reap(domain_prefix(INSTANCE), {kept.name.removesuffix(".qcow2")})
        assert reaped == sorted([lose.name, orphan.name.removesuffix(".qcow2")])
        assert await driver.list_domains(domain_prefix(INSTANCE)) == []
        assert not lose.overlay.exists()
        assert not orphan.exists()
        assert kept.exists()
        assert foreign.exists()
    finally:
        await driver.reap(domain_prefix(INSTANCE), set())
        foreign.unlink(missing_ok=True)
        await driver.close()
    pools = subprocess.run(
        ["virsh", "-c", URI, "pool-list", "--all", "--name"], capture_output=True, text=True
    ).stdout.split()
    assert driver.pool_name not in pools
