"""The walking skeleton, end to end: the unmodified copr-cli against a real Kopers.

An SRPM goes in through copr-cli, is built by rpmbuild in a fresh libvirt/qemu
VM, is signed with the project's own key, and comes out as a dnf repository
that a real dnf installs from with gpgcheck=1. Tests in this file share one
server and run in order; each VM boot is a real TCG (or KVM) boot.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import createrepo_c as cr
import pytest

from kopers.worker.session import failure_reason
from tests.dnfroot import install_from
from tests.e2e.server import CHROOT, Server
from tests.webroot import WebRoot

pytestmark = pytest.mark.e2e
PROJECT = "skeleton"


@pytest.fixture(scope="module")
def alice(server: Server) -> str:
    server.user("alice")
    server.user("bob")
    return "alice"


@pytest.fixture(scope="module")
def broken_build(server: Server, alice: str, make_srpm: Callable[..., Path]) -> int:
    """A build whose %build fails, submitted and not waited for: its id.

    The session server has one VM slot and gives it to alice's oldest ready
    build, so while this one boots and fails, alice's next build waits.
    """
    srpm = make_srpm("kopers-broken", "1.0", build="this-command-does-not-exist --really")
    r = server.copr(alice, "build", PROJECT, str(srpm), "--nowait")
    assert r.returncode == 0, r.stderr
    return build_id_of(r.stdout)


def build_id_of(output: str) -> int:
    match = re.search(r"Created builds: (\d+)", output)
    assert match, output
    return int(match.group(1))


def rpm_query(path: Path, fmt: str) -> str:
    return subprocess.run(
        ["rpm", "-qp", "--nosignature", "--qf", fmt, str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_create_list_get(server: Server, alice: str) -> None:
    r = server.copr(
        alice, "create", PROJECT, "--chroot", CHROOT, "--description", "walking skeleton"
    )
    assert r.returncode == 0, r.stderr
    assert f"/coprs/alice/{PROJECT}/" in r.stdout
    r = server.copr(alice, "list")
    assert r.returncode == 0 and f"Name: {PROJECT}" in r.stdout and "walking skeleton" in r.stdout
    r = server.copr(alice, "get", f"alice/{PROJECT}")
    assert r.returncode == 0 and f"/results/alice/{PROJECT}/{CHROOT}/" in r.stdout
    r = server.copr(alice, "list-chroots")
    assert r.returncode == 0 and CHROOT in r.stdout


def test_build_upload_succeeds_and_downloads_signed_identifiable_rpms(
    server: Server, alice: str, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    srpm = make_srpm("kopers-hello", "1.0")
    r = server.copr(alice, "build", PROJECT, str(srpm))  # waits until the build ends
    assert r.returncode == 0, r.stdout + r.stderr
    assert "succeeded" in r.stdout
    build_id = build_id_of(r.stdout)

    r = server.copr(alice, "status", str(build_id))
    assert r.stdout.strip() == "succeeded"
    r = server.copr(alice, "list-builds", PROJECT)
    assert r.returncode == 0 and re.search(rf"{build_id}\s+kopers-hello\s+succeeded", r.stdout)

    dest = tmp_path / "dl"
    r = server.copr(alice, "download-build", str(build_id), "-d", str(dest))
    assert r.returncode == 0, r.stderr
    rpms = sorted((dest / CHROOT).glob("*.noarch.rpm"))
    assert [p.name for p in rpms] == ["kopers-hello-1.0-1.deb12.kopers.noarch.rpm"]
    assert (dest / CHROOT / "build.log").is_file()
    assert rpm_query(rpms[0], "%{VENDOR}|%{RELEASE}") == f"Kopers alice/{PROJECT}|1.deb12.kopers"
    assert "alice" in rpm_query(rpms[0], "%{PACKAGER}")

    # rpm -K with only the project's public key imported verifies the signature.
    key = tmp_path / "pubkey.gpg"
    key.write_text(server.get(f"/results/alice/{PROJECT}/pubkey.gpg"))
    db = tmp_path / "rpmdb"
    db.mkdir()
    subprocess.run(["rpm", "--dbpath", str(db), "--import", str(key)], check=True)
    check = subprocess.run(
        ["rpm", "--dbpath", str(db), "-Kv", str(rpms[0])], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(r"Header (V4 )?RSA/SHA(256|512) Signature, key ID \w+: OK", check.stdout)

    manifest = server.get(f"/api/builds/{build_id}/buildroot")
    assert any(n.startswith("kopers-system-provides") for n in manifest["chroots"][CHROOT])

    # Every step was timed on the host; the builder's phases as its output divides them.
    [task] = server.get(f"/api/builds/{build_id}")["tasks"]
    timed = {s["name"]: s for s in task["steps"] if s["source"] == "kopers"}
    for name in ("vm claim", "upload", "builder", "result download", "signing", "publish"):
        assert timed[name]["seconds"] > 0, (name, task["steps"])
    phases = {s["name"] for s in task["steps"] if s["source"] == "builder"}
    assert {"unpack", "rpmbuild"} <= phases, task["steps"]
    log = (dest / CHROOT / "build.log").read_text()
    assert "kopers: step vm claim: " in log and "kopers: step rpmbuild: " in log
    # Nothing to install: rpm says so, and dnf is not asked.
    assert "builddep" not in phases and "no dnf builddep" in log
    assert "kopers: step times: vm claim " in log and " signing " in log


def test_dnf_installs_from_the_served_repo_file(server: Server, alice: str, tmp_path: Path) -> None:
    repo_text = server.get(f"/coprs/alice/{PROJECT}/repo/debian-12/dnf.repo?arch=x86_64")
    assert repo_text.startswith("[copr:127.0.0.1:alice:skeleton]\n")
    assert "gpgcheck=1" in repo_text and "repo_gpgcheck=1" in repo_text
    root = install_from(repo_text, "kopers-hello", tmp_path)
    assert (root / "usr/share/kopers-hello/hello.txt").read_text() == "kopers-hello 1.0\n"
    q = subprocess.run(
        ["rpm", "--root", str(root), "-q", "kopers-hello"], capture_output=True, text=True
    )
    assert q.stdout.strip() == "kopers-hello-1.0-1.deb12.kopers.noarch"


def test_cancel_pending_and_delete(
    server: Server, alice: str, broken_build: int, make_srpm: Callable[..., Path]
) -> None:
    # It waits behind the broken build for the one VM slot: canceled, it never starts.
    never = make_srpm("kopers-never", "1")
    pending = build_id_of(server.copr(alice, "build", PROJECT, str(never), "--nowait").stdout)
    r = server.copr(alice, "cancel", str(pending))
    assert r.returncode == 0 and "canceled" in r.stdout
    assert server.get(f"/api_3/build/{pending}")["state"] == "canceled"
    assert server.get(f"/api_3/build/{pending}")["started_on"] is None
    r = server.copr(alice, "delete-build", str(pending))
    assert r.returncode == 0, r.stderr
    r = server.copr(alice, "status", str(pending))
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_failing_build_ends_failed_with_a_log_and_leaves_no_vm(
    server: Server, alice: str, broken_build: int
) -> None:
    build_id = broken_build
    assert server.wait_build(build_id)["state"] == "failed"
    r = server.copr(alice, "watch-build", str(build_id))
    assert r.returncode == 4 and "failed" in r.stdout + r.stderr

    chroots = server.get(f"/api_3/build-chroot/list?build_id={build_id}")["items"]
    assert chroots[0]["state"] == "failed"
    result_url = chroots[0]["result_url"]
    assert result_url.endswith(f"/{build_id:08d}-kopers-broken/")
    log = server.get(result_url.removeprefix(server.url) + "build.log")
    assert "this-command-does-not-exist" in log
    # The reason is Kopers' own reading of the builder's exit status, not build text.
    assert chroots[0]["reason"] in {failure_reason(status) for status in range(256)}

    assert server.wait_no_vms()


def test_build_from_url(
    server: Server, alice: str, make_srpm: Callable[..., Path], webroot: WebRoot
) -> None:
    url = webroot.add(make_srpm("kopers-fromurl", "2.0"))
    r = server.copr(alice, "build", PROJECT, url, "--nowait")
    assert r.returncode == 0, r.stderr
    build = server.wait_build(build_id_of(r.stdout))
    assert build["state"] == "succeeded", build
    assert build["source_package"]["name"] == "kopers-fromurl"
    packages = server.get(f"/api_3/build/built-packages/{build['id']}")
    names = {p["name"] for p in packages[CHROOT]["packages"]}
    assert names == {"kopers-fromurl"}


def test_bad_input_gets_a_clear_error_and_nothing_is_stored(
    server: Server, alice: str, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    before = server.get(f"/api_3/build/list?ownername=alice&projectname={PROJECT}")["items"]
    srpm = make_srpm("kopers-rejected", "1.0")
    junk = tmp_path / "junk.src.rpm"
    junk.write_text("not an rpm at all\n")

    r = server.copr(alice, "build", PROJECT, str(junk), "--nowait")
    assert r.returncode == 1 and "is not an RPM file" in r.stderr

    r = server.copr(alice, "build", "no-such-project", str(srpm), "--nowait")
    assert r.returncode == 1 and "does not exist" in r.stderr

    r = server.copr(alice, "build", PROJECT, str(srpm), "--nowait", "-r", "fedora-40-x86_64")
    assert r.returncode == 1 and "not enabled in project" in r.stderr

    r = server.copr("bob", "build", f"alice/{PROJECT}", str(srpm), "--nowait")
    assert r.returncode == 7 and "may not build in alice/skeleton" in r.stderr

    wrong = tmp_path / "wrong.conf"
    wrong.write_text(server.configs[alice].read_text().replace("token = ", "token = x"))
    r = subprocess.run(
        [
            str(Path(server.env["PATH"].split(":")[0]) / "copr-cli"),
            "--config",
            str(wrong),
            "build",
            PROJECT,
            str(srpm),
            "--nowait",
        ],
        capture_output=True,
        text=True,
        env=server.env,
        timeout=120,
    )
    assert r.returncode == 1 and "Login invalid/expired" in r.stderr

    after = server.get(f"/api_3/build/list?ownername=alice&projectname={PROJECT}")["items"]
    assert after == before
    assert list((server.data_dir / "incoming").iterdir()) == []


def test_a_batch_cannot_join_another_users_build(
    server: Server, alice: str, make_srpm: Callable[..., Path]
) -> None:
    victim = server.get(f"/api_3/build/list?ownername=alice&projectname={PROJECT}")["items"]
    assert victim, "an earlier test built in alice's project"
    target = victim[0]
    assert server.copr("bob", "create", "intruder", "--chroot", CHROOT).returncode == 0
    srpm = make_srpm("kopers-intruder", "1")
    for flag in ("--with-build-id", "--after-build-id"):
        r = server.copr("bob", "build", "intruder", str(srpm), "--nowait", flag, str(target["id"]))
        assert r.returncode != 0, r.stdout
        assert f"build {target['id']}" in r.stderr and "may not build" in r.stderr, r.stderr
    assert server.get("/api_3/build/list?ownername=bob&projectname=intruder")["items"] == []
    after = server.get(f"/api_3/build/list?ownername=alice&projectname={PROJECT}")["items"]
    assert [b for b in after if b["id"] == target["id"]] == [target]
    assert {b["id"] for b in after} == {b["id"] for b in victim}


def test_everything_survives_a_restart(server: Server, alice: str) -> None:
    builds = server.get(f"/api_3/build/list?ownername=alice&projectname={PROJECT}")["items"]
    server.stop()
    server.start()
    assert server.get(f"/api_3/project?ownername=alice&projectname={PROJECT}")["name"] == PROJECT
    assert server.get(f"/api_3/build/list?ownername=alice&projectname={PROJECT}")["items"] == builds
    repomd = server.get(f"/results/alice/{PROJECT}/{CHROOT}/repodata/repomd.xml")
    assert "primary" in repomd
    r = server.copr(alice, "list-builds", PROJECT)
    assert r.returncode == 0 and "kopers-hello" in r.stdout


def test_delete_build_takes_its_packages_out_of_the_repository(server: Server, alice: str) -> None:
    # The URL build above is the victim: one VM boot fewer than building another.
    builds = server.get(f"/api_3/build/list?ownername=alice&projectname={PROJECT}")["items"]
    build_id = next(
        b["id"]
        for b in builds
        if b["source_package"]["name"] == "kopers-fromurl" and b["state"] == "succeeded"
    )
    repo = server.data_dir / "results" / "alice" / PROJECT / CHROOT
    assert "kopers-fromurl" in repo_names(repo)

    r = server.copr(alice, "delete-build", str(build_id))
    assert r.returncode == 0, r.stderr
    assert "kopers-fromurl" not in repo_names(repo)
    assert "kopers-hello" in repo_names(repo)  # the other builds stay
    assert not list(repo.glob(f"{build_id:08d}-*"))


def repo_names(repo: Path) -> set[str]:
    md = cr.Repomd(str(repo / "repodata" / "repomd.xml"))
    primary = next(r for r in md.records if r.type == "primary")
    names: set[str] = set()
    cr.xml_parse_primary(
        str(repo / primary.location_href), pkgcb=lambda p: names.add(p.name) or True, do_files=False
    )
    return names
