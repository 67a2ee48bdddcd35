"""Pure helpers of the HTTP layer: Basic auth, listings, dnf chroot choice, tokens, jobs."""

import base64
import configparser
from datetime import UTC, datetime

from kopers import tokens
from kopers.api.auth import parse_basic
from kopers.api.dnfrepo import pick_chroot
from kopers.api.native import public_vm_status
from kopers.api.results import listing
from kopers.config import ChrootConfig
from kopers.models import Build, BuildState, SourceType
from kopers.rpmfile import looks_like_rpm, parse_query_line
from kopers.worker.job import RepoRef, render_job


def test_parse_basic() -> None:
    header = "Basic " + base64.b64encode(b"login:sec:ret").decode()
    assert parse_basic(header) == ("login", "sec:ret")
    assert parse_basic("Bearer x") is None
    assert parse_basic("Basic !!!") is None
    assert parse_basic("Basic " + base64.b64encode(b"nocolon").decode()) is None


def test_listing_has_relative_links_for_wget() -> None:
    html = listing("/results/a/p/", [("x.rpm", False, 10), ("repodata", True, 0)])
    assert '<a href="repodata/">' in html
    assert '<a href="x.rpm">' in html
    assert html.index("repodata/") < html.index("x.rpm")


def test_pick_chroot_matches_os_version_and_arch() -> None:
    chroots = ("debian-12-x86_64", "fedora-40-aarch64", "fedora-40-x86_64")
    assert pick_chroot(chroots, "fedora-40", "x86_64") == "fedora-40-x86_64"
    assert pick_chroot(chroots, "debian-12", "x86_64") == "debian-12-x86_64"
    assert pick_chroot(chroots, "epel-9", "x86_64") is None


def test_token_config_is_a_copr_cli_ini() -> None:
    new = tokens.generate()
    assert ":" not in new.secret
    assert tokens.matches(new.secret, new.digest)
    assert not tokens.matches(new.secret + "x", new.digest)
    ini = configparser.ConfigParser()
    ini.read_string(tokens.copr_cli_config("http://127.0.0.1:8080", "alice", new))
    section = ini["copr-cli"]
    assert section["login"] == new.login and section["token"] == new.secret
    assert section["username"] == "alice" and section["encrypted"] == "false"


def test_rpm_query_line_parsing() -> None:
    src = parse_query_line("hello\t0\t1.0\t1\tx86_64\t(none)\t(none)\n")
    assert src.is_source and src.nevra.arch == "src" and src.vendor == ""
    binary = parse_query_line(
        "hello\t2\t1.0\t1.deb12.kopers\tnoarch\thello-1.0-1.src.rpm\tKopers a/p"
    )
    assert not binary.is_source and binary.nevra.epoch == 2 and binary.vendor == "Kopers a/p"
    assert looks_like_rpm(b"\xed\xab\xee\xdbrest") and not looks_like_rpm(b"PK\x03\x04")


def uploaded_build(build_id: int, owner: str, project: str, submitter: str) -> Build:
    """An uploaded build of `hello`, its source in place."""
    return Build(
        id=build_id,
        project_id=1,
        owner=owner,
        project=project,
        submitter=submitter,
        source_type=SourceType.UPLOAD,
        source={},
        package_name="hello",
        package_version="1-1",
        srpm_name="hello-1-1.src.rpm",
        source_state=BuildState.SUCCEEDED,
        canceled=False,
        timeout=600,
        submitted_on=datetime.now(UTC),
        started_on=None,
        ended_on=None,
    )


def test_job_forces_dist_vendor_and_packager() -> None:
    build = uploaded_build(7, "@sig", "tools", "bob")
    chroot = ChrootConfig("fedora-40-x86_64", "fedora-40", ".fc40", True, "")
    job = render_job(build, chroot, repo_tag="kopers", public_url="http://h", srpm_name="h.src.rpm")
    assert job["macros"]["dist"] == ".fc40.kopers"
    assert job["macros"]["vendor"] == "Kopers @sig/tools"
    assert "bob" in job["macros"]["packager"]
    assert job["srpm"] == "/build/in/h.src.rpm"
    signed = RepoRef("own", "own", "http://127.0.0.1:1/r/", gpgcheck=True, gpgkey="http://k/key")
    job = render_job(
        build,
        chroot,
        repo_tag="kopers",
        public_url="http://h",
        srpm_name="h.src.rpm",
        repos=(signed, RepoRef("x", "x", "http://127.0.0.1:2/")),
    )
    assert job["repos"][0]["gpgkey"] == "http://k/key" and job["repos"][0]["gpgcheck"] is True
    assert "gpgkey" not in job["repos"][1] and job["repos"][1]["gpgcheck"] is False


def test_job_names_the_proxy_only_for_a_network_enabled_build() -> None:
    build = uploaded_build(8, "alice", "net", "alice")
    chroot = ChrootConfig("fedora-40-x86_64", "fedora-40", ".fc40", True, "")
    proxy = "http://127.0.0.1:40003"
    for enable_net, shown in ((True, proxy), (False, None)):
        job = render_job(
            build,
            chroot,
            repo_tag="kopers",
            public_url="http://h",
            srpm_name="h.src.rpm",
            enable_net=enable_net,
            proxy=proxy,
        )
        assert (job["enable_net"], job["proxy"]) == (enable_net, shown)


def test_the_public_vm_status_leaves_out_how_hosts_are_reached() -> None:
    vm = {
        "enabled": True,
        "slots": 2,
        "hosts": [
            {"name": "b2", "uri": "qemu+ssh://root@b2/system", "tunnel": "root@b2", "error": "x"}
        ],
        "templates": {"debian-12": {"image": "/root/.cache/kopers/templates/d", "warm": 1}},
        "vms": [],
    }
    public = public_vm_status(vm)
    assert public["hosts"] == [{"name": "b2"}]
    assert public["templates"] == {"debian-12": {"warm": 1}}
    assert public["slots"] == 2
    assert vm["hosts"][0]["uri"] == "qemu+ssh://root@b2/system"  # the original is untouched
