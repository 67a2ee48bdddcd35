"""The one validator of RPM header fields that become file names and URLs."""

from __future__ import annotations

import pytest

from kopers.errors import BadRequest
from kopers.rpmfile import parse_query_line


def line(name: str = "hello", epoch: str = "0", version: str = "1.0", release: str = "1") -> str:
    return f"{name}\t{epoch}\t{version}\t{release}\tx86_64\thello-1.0-1.src.rpm\t(none)\n"


@pytest.mark.parametrize(
    "name",
    ["hello", "python3-foo_bar", "gcc-c++", "perl-Foo.Bar", "A1", "x" * 128],
)
def test_names_rpm_builds_are_accepted(name: str) -> None:
    assert parse_query_line(line(name)).nevra.name == name


@pytest.mark.parametrize("version", ["1.0", "1.0~rc1", "1.0^git3.abc", "2+b1"])
def test_versions_with_rpms_own_operators_are_accepted(version: str) -> None:
    assert parse_query_line(line(version=version)).nevra.version == version


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "../00000057/hello"),
        ("name", "../../../x"),
        ("name", "a/b"),
        ("name", ".hidden"),
        ("name", "-rf"),
        ("name", ""),
        ("name", "a\x00b"),
        ("name", "a\x1b[31mb"),
        ("name", "a b"),
        ("name", "%{name}"),
        ("name", "x" * 129),
        ("version", "1/2"),
        ("version", ".."),
        ("release", "1\n2"),
        ("release", "-1"),
        ("epoch", "x"),
        ("epoch", "-1"),
    ],
)
def test_hostile_header_fields_are_refused_with_one_line(field: str, value: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_query_line(line(**{field: value}))
    message = caught.value.message
    assert field in message and "\n" not in message


def test_a_hostile_arch_is_refused() -> None:
    with pytest.raises(BadRequest, match="arch"):
        parse_query_line("hello\t0\t1\t1\t../x\thello-1-1.src.rpm\t(none)\n")
