"""What a build provides and BuildRequires, from the primary XML createrepo_c writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import createrepo_c as cr
import pytest

from kopers.publish.capabilities import of_build, parse_primary

SPEC = """\
Name: liba
Version: 2
Release: 1
Summary: s
License: MIT
BuildRequires: gcc, /usr/bin/make, zlib-devel >= 1.2
Provides: liba-abi = 2
%description
d
%package devel
Summary: d
Requires: %{name} = %{version}
%description devel
d
%install
mkdir -p %{buildroot}/usr/bin
echo x > %{buildroot}/usr/bin/atool
%files
/usr/bin/atool
%files devel
"""


def primary(path: Path) -> bytes:
    pkg = cr.package_from_rpm(str(path), cr.SHA256, f"b/{path.name}", None, 10)
    return str(cr.xml_dump(pkg)[0]).encode()


def test_binaries_provide_and_the_source_requires(tmp_path: Path) -> None:
    top = tmp_path / "top"
    (top / "SPECS").mkdir(parents=True)
    spec = top / "SPECS" / "liba.spec"
    spec.write_text(SPEC)
    # --nodeps: the BuildRequires are data here, not installed on this host.
    subprocess.run(
        ["rpmbuild", "-ba", "--nodeps", "--define", f"_topdir {top}", str(spec)],
        check=True,
        capture_output=True,
    )
    rpms = sorted((top / "RPMS").rglob("*.rpm")) + sorted((top / "SRPMS").glob("*.src.rpm"))
    caps = of_build([primary(p) for p in rpms])
    assert {"liba", "liba-abi", "liba-devel", "/usr/bin/atool"} <= caps.provides
    assert caps.build_requires == {"gcc", "/usr/bin/make", "zlib-devel"}
    is_source, _, requires = parse_primary(primary(rpms[-1]))
    assert is_source and "gcc" in requires


@pytest.mark.parametrize(
    "name",
    ["evil\nkopers: forged line", "tab\there", "x" * 600, ""],
)
def test_names_a_build_could_forge_logs_with_are_dropped(name: str) -> None:
    escaped = name.replace("\n", "&#10;").replace("\t", "&#9;")
    chunk = (
        '<package type="rpm"><arch>x86_64</arch><format><rpm:provides>'
        f'<rpm:entry name="{escaped}"/><rpm:entry name="fine"/>'
        "</rpm:provides></format></package>"
    ).encode()
    assert of_build([chunk]).provides == {"fine"}


def test_unparsable_xml_counts_for_nothing() -> None:
    assert of_build([b"<package><unclosed>"]).provides == frozenset()
