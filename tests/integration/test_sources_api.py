"""The build sources beyond SRPMs through /api_3, as Copr's clients send them.

Without VMs: what is refused (and leaves nothing behind), what is accepted and
stored, and an uploaded binary RPM published all the way by its source step,
which needs no VM.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kopers.models import BuildState, SourceType
from kopers.worker.source import SourceStep
from tests.integration.conftest import CHROOT, Api, create
from tests.rpms import NOARCH_SPEC, noarch_rpm, rpmbuild

WHERE = {"ownername": "alice", "projectname": "demo"}


async def upload_to(api: Api, route: str, path: Path, name: str | None = None) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field(
        "pkgs", path.read_bytes(), filename=name or path.name, content_type="application/x-rpm"
    )
    form.add_field("json", json.dumps(WHERE), filename="json", content_type="application/json")
    return await api.call("POST", f"/api_3/build/create/{route}", "alice", data=form)


@pytest.fixture
async def demo(api: Api) -> Api:
    assert (await create(api, "alice", "alice", "demo"))[0] == 200
    return api


async def nothing_stored(api: Api) -> None:
    assert await api.count("builds") == 0
    incoming = api.kopers.paths.incoming
    assert not incoming.exists() or not any(incoming.iterdir())


# -- a .spec upload ------------------------------------------------------------


async def test_a_spec_upload_becomes_a_build_made_in_a_vm(demo: Api, tmp_path: Path) -> None:
    spec = tmp_path / "hello.spec"
    spec.write_text(NOARCH_SPEC.format(name="hello", version="1", release=1, requires=""))
    status, body = await upload_to(demo, "upload", spec)
    assert status == 200, body
    build = await demo.kopers.store.get_build(body["id"])
    assert build.source_type == SourceType.SPEC
    assert build.source_state == BuildState.PENDING  # the VM makes the SRPM
    assert (demo.kopers.paths.source_dir(build.id) / "hello.spec").is_file()


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\xed\xab\xee\xdb" + b"\0" * 100, "is an RPM package, not a spec"),
        (b"Name: x\n\0\0binary", "is not text"),
        (b"   \n", "is empty"),
        (b"%define x " + b"y" * (1 << 20), "larger than"),
    ],
)
async def test_a_spec_upload_that_is_no_spec_is_refused(
    demo: Api, tmp_path: Path, content: bytes, said: str
) -> None:
    spec = tmp_path / "x.spec"
    spec.write_bytes(content)
    status, body = await upload_to(demo, "upload", spec)
    assert status == 400, body
    assert said in body["error"]
    await nothing_stored(demo)


# -- uploadrpm --------------------------------------------------------------------


async def test_an_uploaded_rpm_is_published_without_a_build(demo: Api, tmp_path: Path) -> None:
    rpm, _ = noarch_rpm(tmp_path, "shipped", "2.0")
    status, body = await upload_to(demo, "rpm-upload", rpm)
    assert status == 200, body
    kopers = demo.kopers
    step = SourceStep(
        kopers.config, kopers.paths, kopers.store, kopers.hub, kopers.vms, None, kopers.publisher
    )
    assert await step.run(body["id"]) == BuildState.SUCCEEDED
    build = await kopers.store.get_build(body["id"])
    assert build.state == BuildState.SUCCEEDED
    assert (build.package_name, build.package_version) == ("shipped", "2.0-1")
    task = build.tasks[0]
    assert task.state == BuildState.SUCCEEDED
    published = Path(str(task.result_dir)) / rpm.name
    signature = subprocess.run(
        ["rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}%{DSAHEADER:pgpsig}", str(published)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Key ID" in signature  # signed with the project's key
    repodata = Path(str(task.result_dir)).parent / "repodata" / "repomd.xml"
    assert repodata.is_file()
    status, built = await demo.call("GET", f"/api_3/build/built-packages/{build.id}")
    assert status == 200
    assert built[CHROOT]["packages"][0]["name"] == "shipped"


async def test_an_srpm_is_refused_by_uploadrpm(demo: Api, tmp_path: Path) -> None:
    _, srpm = noarch_rpm(tmp_path, "hello")
    status, body = await upload_to(demo, "rpm-upload", srpm)
    assert status == 400, body
    assert "is a source RPM" in body["error"]
    await nothing_stored(demo)


async def test_a_file_that_is_no_rpm_is_refused_by_uploadrpm(demo: Api, tmp_path: Path) -> None:
    junk = tmp_path / "junk-1-1.noarch.rpm"
    junk.write_bytes(b"\xed\xab\xee\xdb" + b"garbage" * 50)
    status, body = await upload_to(demo, "rpm-upload", junk)
    assert status == 400, body
    assert "not a readable RPM" in body["error"]
    await nothing_stored(demo)


async def test_an_rpm_whose_header_name_has_a_slash_is_refused(demo: Api, tmp_path: Path) -> None:
    spec = NOARCH_SPEC.format(name="evil", version="1", release=1, requires="")
    rpm = rpmbuild(spec, tmp_path / "top", "-bb")[0]
    # rpm refuses to build a Name with "/", so the header is made to say one:
    # the name field's bytes are replaced in place, keeping the header's layout.
    data = rpm.read_bytes()
    hostile = tmp_path / "hostile.noarch.rpm"
    hostile.write_bytes(data.replace(b"evil\0", b"e/il\0"))
    status, body = await upload_to(demo, "rpm-upload", hostile)
    assert status == 400, body
    assert "name 'e/il' is not allowed" in body["error"]
    await nothing_stored(demo)


# -- custom, pypi, scm methods ------------------------------------------------------


async def post(api: Api, route: str, body: dict[str, Any]) -> tuple[int, Any]:
    return await api.call("POST", f"/api_3/build/create/{route}", "alice", json={**WHERE, **body})


async def test_a_custom_build_stores_what_the_client_sent(demo: Api) -> None:
    sent = {
        "script": "#!/bin/sh\necho hi\n",
        "chroot": CHROOT,
        "builddeps": "make patch",
        "resultdir": "out",
        "repos": "http://example.org/repo/",
    }
    status, body = await post(demo, "custom", sent)
    assert status == 200, body
    build = await demo.kopers.store.get_build(body["id"])
    assert build.source_type == SourceType.CUSTOM
    assert build.source == {
        "script": sent["script"],
        "chroot": CHROOT,
        "builddeps": ["make", "patch"],
        "resultdir": "out",
        "repos": ["http://example.org/repo/"],
    }


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"script": ""}, "script must not be empty"),
        ({"script": None}, "script must be a string"),
        ({"script": "x", "resultdir": "../up"}, "resultdir must be a relative path"),
        ({"script": "x", "resultdir": "/etc"}, "resultdir must be a relative path"),
        ({"script": "x", "chroot": "fedora-99-x86_64"}, "is not a chroot of this server"),
        ({"script": "x", "builddeps": ["-rf"]}, "is not a package name"),
        ({"script": "x", "repos": ["file:///etc/"]}, "repos"),
    ],
)
async def test_a_custom_build_with_bad_fields_is_refused(
    demo: Api, body: dict[str, Any], said: str
) -> None:
    status, answer = await post(demo, "custom", body)
    assert status == 400, answer
    assert said in answer["error"]
    await nothing_stored(demo)


async def test_a_pypi_build_stores_what_the_client_sent(demo: Api) -> None:
    sent = {
        "pypi_package_name": "kopers-hello",
        "pypi_package_version": "1.0",
        "spec_generator": "pyp2spec",
        "spec_template": "",
        "python_versions": [3, 2],
    }
    status, body = await post(demo, "pypi", sent)
    assert status == 200, body
    build = await demo.kopers.store.get_build(body["id"])
    assert build.source_type == SourceType.PYPI
    assert build.source == {
        "pypi_package_name": "kopers-hello",
        "pypi_package_version": "1.0",
        "spec_generator": "pyp2spec",
        "python_versions": [3, 2],
    }


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"pypi_package_name": "../../etc/passwd"}, "must be a Python package name"),
        ({"pypi_package_name": "https://evil.example/x"}, "must be a Python package name"),
        ({"pypi_package_name": "-rf"}, "must be a Python package name"),
        ({"pypi_package_name": "six", "pypi_package_version": "1 2"}, "is not a version"),
        ({"pypi_package_name": "six", "spec_generator": "pyp2rpm"}, "pyp2rpm"),
        ({"pypi_package_name": "six", "spec_template": "fedora"}, "spec_template"),
        ({"pypi_package_name": "six", "python_versions": [2]}, "must include 3"),
    ],
)
async def test_a_pypi_build_with_bad_fields_is_refused(
    demo: Api, body: dict[str, Any], said: str
) -> None:
    status, answer = await post(demo, "pypi", body)
    assert status == 400, answer
    assert said in answer["error"]
    await nothing_stored(demo)


SCM = {"clone_url": "https://example.org/r.git", "scm_type": "git"}


@pytest.mark.parametrize(
    ("method", "said"),
    [
        ("tito", "source_build_method tito is not supported"),
        ("tito_test", "source_build_method tito_test is not supported"),
        ("magic", "source_build_method must be one of rpkg, make_srpm"),
        ("make srpm", "source_build_method must be one word"),
    ],
)
async def test_an_scm_method_kopers_does_not_run_is_refused(
    demo: Api, method: str, said: str
) -> None:
    status, answer = await post(demo, "scm", {**SCM, "source_build_method": method})
    assert status == 400, answer
    assert said in answer["error"]
    await nothing_stored(demo)


@pytest.mark.parametrize("method", ["rpkg", "make_srpm", None])
async def test_an_scm_method_is_stored(demo: Api, method: str | None) -> None:
    status, body = await post(demo, "scm", {**SCM, "source_build_method": method})
    assert status == 200, body
    build = await demo.kopers.store.get_build(body["id"])
    assert build.source["source_build_method"] == (method or "rpkg")


@pytest.mark.parametrize("route", ["rubygems", "distgit"])
async def test_gems_and_dist_git_are_not_offered(demo: Api, route: str) -> None:
    status, body = await post(demo, route, {"gem_name": "x", "package_name": "x"})
    assert status == 501, body
    assert "is not supported by this Kopers server" in body["error"]
    assert "no route" not in body["error"]


@pytest.mark.parametrize(("timeout", "status"), [("1", 200), (5, 200), ("0", 400), (-1, 400)])
async def test_small_timeouts_are_taken(demo: Api, timeout: Any, status: int) -> None:
    got, body = await post(demo, "custom", {"script": "true", "timeout": timeout})
    assert got == status, body
    if status == 200:
        build = await demo.kopers.store.get_build(body["id"])
        assert build.timeout == int(timeout)
