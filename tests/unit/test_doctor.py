"""`kopers doctor`'s verdicts: each check's ok, warn and FAIL, from plain findings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kopers import doctor
from kopers.doctor import GIB, Check, Verdict
from kopers.doctorchecks import _dsn_place, _probed, check_templates, free_bytes

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(ok  |warn|FAIL)  [^:]+: \S")


def verdicts(*checks: Check) -> list[Verdict]:
    for check in checks:
        assert LINE.match(check.line()), check.line()
    return [c.verdict for c in checks]


def test_a_line_is_verdict_what_detail_and_the_fix_only_when_not_ok() -> None:
    ok = Check(Verdict.OK, "thing", "fine", "do this")
    bad = Check(Verdict.FAIL, "thing", "broken", "do this")
    assert ok.line() == "ok    thing: fine"
    assert bad.line() == "FAIL  thing: broken; do this"
    assert Check(Verdict.WARN, "x", "y").line() == "warn  x: y"


def test_a_line_carries_no_control_characters_from_other_programs() -> None:
    line = Check(Verdict.WARN, "/dev/kvm", "qemu said \x1b[2J\nbye\r").line()
    assert "\x1b" not in line and "\n" not in line and "\r" not in line
    assert line.startswith("warn  /dev/kvm: qemu said")


def test_the_exit_status_is_non_zero_only_with_a_fail() -> None:
    ok, warn, fail = (Check(v, "w", "d") for v in (Verdict.OK, Verdict.WARN, Verdict.FAIL))
    assert doctor.exit_status([ok, warn]) == 0
    assert doctor.exit_status([ok, fail, warn]) == 1
    assert doctor.exit_status([]) == 0


def test_kvm() -> None:
    assert (
        verdicts(
            doctor.kvm(True, True, "auto", None),
            doctor.kvm(True, True, "auto", ("kvm", "a kernel booted")),
            doctor.kvm(False, False, "qemu", None),
            doctor.kvm(False, False, "auto", None),
            doctor.kvm(True, False, "auto", None),
            doctor.kvm(True, True, "auto", ("qemu", "KVM internal error")),
            doctor.kvm(False, False, "kvm", None),
            doctor.kvm(True, False, "kvm", None),
        )
        == [Verdict.OK] * 3 + [Verdict.WARN] * 3 + [Verdict.FAIL] * 2
    )
    assert "TCG" in doctor.kvm(False, False, "auto", None).detail
    assert "group kvm" in doctor.kvm(True, False, "auto", None).fix


def test_libvirt() -> None:
    uri = "qemu+ssh://root@build2/system"
    ok = doctor.libvirt("build2", uri, None)
    unchecked = doctor.libvirt("build2", uri, "no module", checked=False)
    down = doctor.libvirt("build2", uri, "Failed to connect socket")
    assert verdicts(ok, unchecked, down) == [Verdict.OK, Verdict.WARN, Verdict.FAIL]
    assert uri in down.detail and "libvirtd" in down.fix
    assert down.what == "libvirt on host build2"


@pytest.mark.parametrize(
    ("free", "verdict"),
    [
        (None, Verdict.WARN),
        (100 * GIB, Verdict.OK),
        (doctor.LOW_DISK, Verdict.OK),
        (doctor.LOW_DISK - 1, Verdict.WARN),
        (2 * GIB, Verdict.WARN),
        (doctor.NO_DISK - 1, Verdict.FAIL),
        (0, Verdict.FAIL),
    ],
)
def test_disk(free: int | None, verdict: Verdict) -> None:
    check = doctor.disk("data directory", "/srv/kopers", free)
    assert verdicts(check) == [verdict]
    assert "/srv/kopers" in check.detail


def test_template() -> None:
    ok = doctor.template("fedora-40-x86_64", "fedora-40", "abc123", True, "")
    missing = doctor.template("fedora-40-x86_64", "fedora-40", "abc123", False, "")
    broken = doctor.template("fedora-40-x86_64", "nope", None, False, "template nope: no recipe")
    assert verdicts(ok, missing, broken) == [Verdict.OK, Verdict.FAIL, Verdict.FAIL]
    assert missing.fix == "run: kopers template build fedora-40"
    assert "abc123" in missing.detail and "no recipe" in broken.detail


def test_template_copy() -> None:
    folder, source = "/srv/c/templates/debian-12-ab12", "/root/.cache/t/debian-12-ab12"
    ok = doctor.template_copy("b2", "debian-12", folder, source, None)
    bad = doctor.template_copy("b2", "debian-12", folder, source, "it has no base.qcow2")
    assert verdicts(ok, bad) == [Verdict.OK, Verdict.FAIL]
    assert ok.line() == (
        f"ok    host b2's copy of template debian-12: {folder} holds a copy of {source}"
    )
    assert bad.detail == f"{folder}: it has no base.qcow2"
    assert f"copy the folder {source} to {folder} on that host" in bad.fix


def test_postgres() -> None:
    ok = doctor.postgres("database db1:5432/kopers", None)
    fresh = doctor.postgres("embedded Postgres in /srv/pg", None, started=False)
    down = doctor.postgres("database db1:5432/kopers", "connection refused")
    assert verdicts(ok, fresh, down) == [Verdict.OK, Verdict.WARN, Verdict.FAIL]
    assert "connection refused" in down.detail and "kopers migrate" in fresh.fix


def test_migrations() -> None:
    known = [1, 2, 3]
    current = doctor.migrations([1, 2, 3], known)
    behind = doctor.migrations([1], known)
    ahead = doctor.migrations([1, 2, 3, 4], known)
    assert verdicts(current, behind, ahead) == [Verdict.OK, Verdict.WARN, Verdict.FAIL]
    assert "2 of 3" in behind.detail and "0002" in behind.detail
    assert "4" in ahead.detail


@pytest.mark.parametrize(
    ("url", "status", "verdict"),
    [
        ("https://kopers.example.org", 200, Verdict.OK),
        ("http://127.0.0.1:8080", 200, Verdict.OK),
        ("https://kopers.example.org", None, Verdict.WARN),
        ("https://kopers.example.org", 502, Verdict.WARN),
        ("ftp://kopers.example.org", 200, Verdict.FAIL),
        ("https://", None, Verdict.FAIL),
        ("https://kopers.example.org:99999", None, Verdict.FAIL),
        ("https://kopers.example.org/?x=1", 200, Verdict.FAIL),
        ("https://user:pw@kopers.example.org", 200, Verdict.FAIL),
        ("https://kopers.example.org/a b", 200, Verdict.FAIL),
    ],
)
def test_public_url(url: str, status: int | None, verdict: Verdict) -> None:
    check = doctor.public_url(url, status, None if status else "connection refused")
    assert verdicts(check) == [verdict]


def test_a_check_that_cannot_run_says_so_as_a_warning() -> None:
    check = doctor.unchecked("migrations", "the database does not answer")
    assert verdicts(check) == [Verdict.WARN]
    assert check.line() == "warn  migrations: not checked: the database does not answer"


def test_a_dsn_is_shown_without_its_credentials() -> None:
    assert _dsn_place("postgresql://kopers:s3cret@db1:5433/kopers") == "db1:5433/kopers"
    assert "s3cret" not in _dsn_place("host=db1 user=kopers password=s3cret dbname=kopers")


def test_free_space_is_measured_where_the_directory_would_be_made(tmp_path: Path) -> None:
    free = free_bytes(tmp_path / "not" / "made" / "yet")
    assert free is not None and free > 0


def test_the_kvm_probe_cache_is_read_and_a_broken_one_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "kvm-probe.json"
    assert _probed(cache) is None
    cache.write_text(json.dumps({"key": "k", "domain_type": "qemu", "reason": "no banner"}))
    assert _probed(cache) == ("qemu", "no banner")
    cache.write_text("{not json")
    assert _probed(cache) is None


def test_templates_are_checked_against_the_cache_for_their_recipe(tmp_path: Path) -> None:
    from kopers import config

    cfg = config.load(
        str(REPO / "kopers.toml"), env={"KOPERS_VM_CACHE_DIR": str(tmp_path / "cache")}
    )
    [check] = check_templates(cfg, REPO / "vm_templates")
    assert check.verdict == Verdict.FAIL and check.fix == "run: kopers template build debian-12"
    # A chroot whose template has no recipe folder says so.
    [broken] = check_templates(cfg, tmp_path / "no-templates")
    assert broken.verdict == Verdict.FAIL and "does not exist" in broken.detail
