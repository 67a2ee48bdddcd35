"""The result boundary's pure checks: what a VM's listing and RPM headers may say."""

from __future__ import annotations

import pytest

from kopers.errors import BuildFailed
from kopers.models import Nevra
from kopers.rpmfile import RpmInfo
from kopers.vm.ssh import RemoteEntry
from kopers.worker.results import Identity, ResultLimits, check_identity, check_listing

LIMITS = ResultLimits(max_files=3, max_bytes=1000, deadline_s=60)
IDENTITY = Identity(".deb12.kopers", "Kopers alice/tools", "hello")


def rpm(name: str = "hello-1-1.deb12.kopers.noarch.rpm", size: int = 10) -> RemoteEntry:
    return RemoteEntry(name, "file", size)


def test_rpms_and_the_manifest_pass_in_name_order() -> None:
    entries = [rpm("b-1-1.noarch.rpm"), RemoteEntry("manifest.txt", "file", 5), rpm("a-1.rpm")]
    assert [e.name for e in check_listing(entries, LIMITS)] == [
        "a-1.rpm",
        "b-1-1.noarch.rpm",
        "manifest.txt",
    ]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([RemoteEntry("manifest.txt", "link", 0)], "'manifest.txt' is a link"),
        ([RemoteEntry("x.rpm", "dir", 4096)], "'x.rpm' is a dir"),
        ([RemoteEntry("x.rpm", "other", 0)], "'x.rpm' is a other"),
        ([rpm("evil.sh")], "'evil.sh' is neither an RPM nor manifest.txt"),
        ([rpm(".hidden.rpm")], "'.hidden.rpm' is neither"),
        ([rpm("-x.rpm")], "'-x.rpm' is neither"),
        ([rpm("a\\x1b[2J.rpm")], "is neither"),
        ([rpm("a.rpm"), rpm("b.rpm"), rpm("c.rpm"), rpm("d.rpm")], "4 entries"),
        ([rpm("a.rpm", 600), rpm("b.rpm", 600)], "1200 bytes; at most 1000"),
    ],
)
def test_anything_else_fails_the_build_naming_the_entry(
    entries: list[RemoteEntry], message: str
) -> None:
    with pytest.raises(BuildFailed, match=message.replace("[", r"\[")):
        check_listing(entries, LIMITS)


def test_one_spec_passes_with_the_rpms() -> None:
    entries = [rpm(), RemoteEntry("hello.spec", "file", 300)]
    assert [e.name for e in check_listing(entries, LIMITS)] == [
        "hello-1-1.deb12.kopers.noarch.rpm",
        "hello.spec",
    ]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([RemoteEntry("hello.spec", "link", 0)], "'hello.spec' is a link"),
        ([RemoteEntry("a.spec", "file", 1), RemoteEntry("b.spec", "file", 1)], "2 spec files"),
        ([RemoteEntry("big.spec", "file", (1 << 20) + 1)], "spec 'big.spec' is larger"),
        ([RemoteEntry(".hidden.spec", "file", 1)], "is neither"),
        ([RemoteEntry("-rf.spec", "file", 1)], "is neither"),
        ([RemoteEntry("x.spec.sh", "file", 1)], "is neither"),
    ],
)
def test_a_hostile_spec_in_the_results_fails_the_build(
    entries: list[RemoteEntry], message: str
) -> None:
    limits = ResultLimits(max_files=3, max_bytes=4 << 20, deadline_s=60)
    with pytest.raises(BuildFailed, match=message):
        check_listing(entries, limits)


def info(release: str, vendor: str = "Kopers alice/tools", source: bool = False) -> RpmInfo:
    arch = "src" if source else "noarch"
    return RpmInfo(Nevra("hello", 0, "1", release, arch), source, vendor)


def test_rpms_with_the_forced_identity_pass() -> None:
    check_identity([info("1.deb12.kopers"), info("1.deb12.kopers", source=True)], IDENTITY)


@pytest.mark.parametrize(
    ("rpms", "message"),
    [
        ([info("1")], "Release '1' does not end in .deb12.kopers"),
        ([info("1.deb12.kopers.evil")], "does not end in"),
        ([info("1.deb12.kopers", vendor="Mallory")], "Vendor is 'Mallory'"),
        (
            [RpmInfo(Nevra("other", 0, "1", "1.deb12.kopers", "src"), True, IDENTITY.vendor)],
            "a source package other than hello",
        ),
    ],
)
def test_rpms_that_lost_the_forced_identity_fail(rpms: list[RpmInfo], message: str) -> None:
    with pytest.raises(BuildFailed, match=message):
        check_identity(rpms, IDENTITY)
