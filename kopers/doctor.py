"""`kopers doctor`: what the checks conclude from what the probes found. Pure.

Each check is one line, `ok|warn|FAIL  <what>: <detail>`, and a line that is
not ok says what to do about it. A FAIL is something `kopers serve` (or a
build) cannot get past; a warn works, worse or not yet (TCG instead of KVM,
little disk left), or could not be checked from here. Any FAIL makes the
command's exit status non-zero.

The probes (kopers.doctorchecks) look at the host, libvirt, Postgres and the
public URL and hand their findings here as plain values, so every verdict is
testable without any of those.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

GIB = 1 << 30
LOW_DISK = 5 * GIB  # below this a few builds or a template image fill the disk
NO_DISK = 1 * GIB  # below this one build does


class Verdict(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    verdict: Verdict
    what: str
    detail: str
    fix: str = ""  # what to do, when not ok

    def line(self) -> str:
        text = f"{self.verdict!s:<4}  {self.what}: {self.detail}"
        if self.fix and self.verdict != Verdict.OK:
            text += f"; {self.fix}"
        # Details quote other programs (qemu's console, libvirt, Postgres): one
        # line, with no control characters to move a terminal's cursor.
        return "".join(c if c.isprintable() else " " for c in text)


def exit_status(checks: Iterable[Check]) -> int:
    return 1 if any(c.verdict == Verdict.FAIL for c in checks) else 0


def unchecked(what: str, why: str) -> Check:
    """A check that could not run here (what it needs is missing or broken)."""
    return Check(Verdict.WARN, what, f"not checked: {why}")


def kvm(exists: bool, usable: bool, wanted: str, probed: tuple[str, str] | None) -> Check:
    """/dev/kvm on this host. `wanted` is the local hosts' hypervisor setting;
    `probed` the verdict of an earlier start's boot test (domain type, reason)."""
    what = "/dev/kvm"
    if wanted == "qemu":
        return Check(Verdict.OK, what, "not used: vm.hypervisor is qemu (TCG)")
    if not exists or not usable:
        detail = "does not exist" if not exists else "exists, but this user cannot open it"
        fix = (
            "enable virtualisation (nested, in a VM) and load kvm_intel or kvm_amd"
            if not exists
            else "add this user to group kvm (mode 0660) and log in again"
        )
        if wanted == "kvm":
            return Check(Verdict.FAIL, what, f"{detail}, but vm.hypervisor is kvm", fix)
        return Check(Verdict.WARN, what, f"{detail}: builder VMs run under TCG (slower)", fix)
    if probed is not None and probed[0] == "qemu":
        return Check(
            Verdict.WARN,
            what,
            f"usable, but a test boot under KVM failed ({probed[1]}): builder VMs run under TCG",
            'check nested virtualisation, or set vm.hypervisor = "qemu" to skip the test',
        )
    return Check(Verdict.OK, what, "usable: builder VMs run under KVM")


def libvirt(host: str, uri: str, error: str | None, checked: bool = True) -> Check:
    """libvirtd at one configured host URI; `checked` False when it could not be tried."""
    what = f"libvirt on host {host}"
    if not checked:
        return Check(Verdict.WARN, what, f"not checked: {error}", "install libvirt-python")
    if error is not None:
        return Check(
            Verdict.FAIL,
            what,
            f"cannot connect to {uri}: {error}",
            "start libvirtd (systemctl start libvirtd), or fix the URI in [vm] / [[vm.hosts]]",
        )
    return Check(Verdict.OK, what, f"{uri} answers")


def disk(what: str, path: str, free: int | None) -> Check:
    """Free space where `what` lives; None when it could not be measured."""
    label = f"free space in the {what}"
    if free is None:
        return Check(Verdict.WARN, label, f"cannot measure it at {path}", "check the path exists")
    shown = f"{free / GIB:.1f} GiB free at {path}"
    if free < NO_DISK:
        return Check(Verdict.FAIL, label, shown, "free some space: a build needs more than 1 GiB")
    if free < LOW_DISK:
        return Check(
            Verdict.WARN, label, shown, f"free some space: under {LOW_DISK // GIB} GiB is tight"
        )
    return Check(Verdict.OK, label, shown)


def template(chroot: str, name: str, recipe_hash: str | None, cached: bool, error: str) -> Check:
    """The cached image of an enabled chroot's template, for its current recipe."""
    what = f"template {name} (chroot {chroot})"
    if recipe_hash is None:
        return Check(Verdict.FAIL, what, error or "no recipe", "fix the chroot's template name")
    if not cached:
        return Check(
            Verdict.FAIL,
            what,
            f"no image for recipe {recipe_hash} in the template cache",
            f"run: kopers template build {name}",
        )
    return Check(Verdict.OK, what, f"image for recipe {recipe_hash} is cached")


def template_copy(host: str, name: str, folder: str, source: str, problem: str | None) -> Check:
    """Host `host`'s copy (in `folder` there) of template image `source` here;
    `problem` says how it differs, None when it is a copy."""
    what = f"host {host}'s copy of template {name}"
    if problem is not None:
        return Check(
            Verdict.FAIL,
            what,
            f"{folder}: {problem}",
            f"copy the folder {source} to {folder} on that host (docs/hosts.md); "
            "until then nothing boots there",
        )
    return Check(Verdict.OK, what, f"{folder} holds a copy of {source}")


def postgres(where: str, error: str | None, started: bool = True) -> Check:
    """The database: `where` says which (embedded in a data dir, or a DSN's host);
    `started` False when an embedded server was never created yet."""
    what = "postgres"
    if not started:
        return Check(
            Verdict.WARN,
            what,
            f"{where} does not exist yet",
            "it is made at the first start: run kopers migrate (or kopers serve)",
        )
    if error is not None:
        return Check(
            Verdict.FAIL,
            what,
            f"{where}: {error}",
            "check database.dsn and that the server runs (empty dsn: the embedded one)",
        )
    return Check(Verdict.OK, what, f"{where} answers")


def migrations(applied: Iterable[int], known: Sequence[int]) -> Check:
    """The database's applied migration versions against the ones this Kopers has."""
    what = "migrations"
    done = set(applied)
    pending = [v for v in known if v not in done]
    unknown = sorted(done - set(known))
    if unknown:
        return Check(
            Verdict.FAIL,
            what,
            f"the database has migrations this Kopers lacks ({', '.join(map(str, unknown))})",
            "a newer Kopers used this database: run that version",
        )
    if pending:
        return Check(
            Verdict.WARN,
            what,
            f"{len(pending)} of {len(known)} not applied (from {pending[0]:04d})",
            "run: kopers migrate (kopers serve applies them at start too)",
        )
    return Check(Verdict.OK, what, f"all {len(known)} applied")


def public_url_form(url: str) -> str | None:
    """Why a public URL is malformed, or None if it is well-formed."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "it must not carry a query, a fragment or credentials"
    if any(c.isspace() for c in url):
        return "it contains white space"
    return None


def public_url(url: str, status: int | None, error: str | None) -> Check:
    """The public URL, and what answered at its /api_3/: `status`, or `error` if nothing."""
    what = "public URL"
    malformed = public_url_form(url)
    if malformed is not None:
        return Check(Verdict.FAIL, what, f"{url!r}: {malformed}", "fix server.public_url")
    if status is None:
        return Check(
            Verdict.WARN,
            what,
            f"nothing answers at {url}/api_3/ ({error or 'no answer'})",
            "fine if kopers serve is not running; else check server.public_url and the proxy",
        )
    if status != 200:
        return Check(
            Verdict.WARN,
            what,
            f"{url}/api_3/ answers HTTP {status}, not 200",
            "check that server.public_url leads to this Kopers",
        )
    return Check(Verdict.OK, what, f"{url}/api_3/ answers")
