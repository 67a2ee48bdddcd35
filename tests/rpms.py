"""Making small RPMs for tests and benchmarks with the real rpmbuild."""

from __future__ import annotations

import subprocess
from pathlib import Path

NOARCH_SPEC = """\
Name: {name}
Version: {version}
Release: {release}
Summary: Kopers test package
License: MIT
BuildArch: noarch
{requires}
%description
A package used by the Kopers tests.
%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo {name} > %{{buildroot}}/usr/share/{name}/hello.txt
%files
/usr/share/{name}/hello.txt
"""


def rpmbuild(spec_text: str, top: Path, mode: str = "-bs") -> list[Path]:
    """Write the spec under `top`, run `rpmbuild MODE`, return what it built.

    `-bs` gives the SRPM, `-bb` the binary RPMs, `-ba` both (binaries first).
    The dist tag is left empty: Kopers forces its own when it builds.
    """
    (top / "SPECS").mkdir(parents=True, exist_ok=True)
    spec = top / "SPECS" / "package.spec"
    spec.write_text(spec_text)
    subprocess.run(
        ["rpmbuild", mode, "--define", f"_topdir {top}", "--define", "dist %{nil}", str(spec)],
        check=True,
        capture_output=True,
    )
    return sorted((top / "RPMS").rglob("*.rpm")) + sorted((top / "SRPMS").glob("*.src.rpm"))


def noarch_rpm(
    workdir: Path, name: str, version: str = "1.0", release: int = 1
) -> tuple[Path, Path]:
    """A tiny noarch package: (binary RPM, SRPM)."""
    top = workdir / f"rpmbuild-{name}-{version}-{release}"
    spec = NOARCH_SPEC.format(name=name, version=version, release=release, requires="")
    rpm, srpm = rpmbuild(spec, top, "-ba")
    return rpm, srpm


def noarch_srpm(workdir: Path, name: str, version: str = "1", requires: str = "") -> Path:
    """A tiny noarch source package; `requires` is e.g. "BuildRequires: other"."""
    spec = NOARCH_SPEC.format(name=name, version=version, release=1, requires=requires)
    return rpmbuild(spec, workdir / f"{name}-{version}")[-1]


def srpm_with_header_name(workdir: Path, header_name: str) -> Path:
    """A source RPM whose header claims the Name `header_name`, whatever it holds.

    rpmbuild refuses such names, so a package is built under a placeholder of
    the same length and the placeholder's bytes are replaced in the (uncompressed)
    header, the way an attacker would. `rpm -qp --nosignature --nodigest` reads
    it back as is.
    """
    placeholder = "k" * len(header_name)
    srpm = noarch_srpm(workdir, placeholder)
    data = srpm.read_bytes()
    assert placeholder.encode() in data
    hostile = workdir / "hostile.src.rpm"
    hostile.write_bytes(data.replace(placeholder.encode(), header_name.encode()))
    return hostile
