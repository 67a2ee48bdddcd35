"""The request-parsing layer: value parsers (kopers.api.fields), body parsers, request readers.

Hostile values are the ones seen against the live API: NUL and other
control characters, lone surrogates, numbers past Postgres' bigint, digits
of other scripts ("²", "٣") that str.isdigit() or int() take, thousands of
digits, lists where objects belong, names longer than a file name.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from kopers.api import bodies, fields, params
from kopers.api.auth import parse_basic
from kopers.api.results import checked_tail
from kopers.errors import BadRequest

BIG = str(2**63)
HOSTILE_DIGITS = [BIG, "\u00b2", "\u0663", "1" * 5000, " 9", "+9", "9_0", "1e3", "0x10", ""]


def refused(parse: Any, value: Any, *args: Any, **kw: Any) -> str:
    """The message of the BadRequest `parse` raises; it must be one short line."""
    with pytest.raises(BadRequest) as info:
        parse(value, "thefield", *args, **kw)
    message = info.value.message
    assert "\n" not in message and len(message) < 200, message
    assert "thefield" in message, message
    return message


# -- numbers ------------------------------------------------------------------


def test_integer_takes_json_numbers_and_ascii_digit_strings() -> None:
    assert fields.integer(42, "n") == 42
    assert fields.integer("42", "n") == 42
    assert fields.integer("-7", "n") == -7
    assert fields.integer(str(fields.MAX_INT), "n") == 2**63 - 1


@pytest.mark.parametrize("value", HOSTILE_DIGITS)
def test_integer_refuses_what_int_or_postgres_would_trip_on(value: str) -> None:
    refused(fields.integer, value)


@pytest.mark.parametrize("value", [True, False, 1.5, 3.0, None, [], {}, 2**63, -(2**63) - 1])
def test_integer_refuses_other_json_types_and_out_of_range(value: Any) -> None:
    refused(fields.integer, value)


def test_integer_bounds_are_named_in_the_message() -> None:
    assert "between 1 and 10" in refused(fields.integer, 11, lo=1, hi=10)
    assert "out of range" in refused(fields.integer, BIG)
    assert "out of range" in refused(fields.integer, "1" * 5000)
    with pytest.raises(BadRequest):
        fields.positive_id(0, "id")
    assert fields.positive_id("7", "id") == 7


def test_id_list() -> None:
    assert fields.id_list([1, "2"], "builds") == [1, 2]
    for bad in ([], "1", {"1": 1}, [2**63], [True], [None], None):
        refused(fields.id_list, bad)


# -- names and text -----------------------------------------------------------


@pytest.mark.parametrize("value", ["alice", "@grp", "fedora-40-x86_64", "p+q_r.s", "ü" * 127])
def test_name_accepts_identifier_like_names(value: str) -> None:
    assert fields.name(value, "n") == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        5,
        ["a"],
        {"a": 1},
        "",
        "a\x00b",
        "a\x07",
        "tab\there",
        "new\nline",
        "\x7f",
        "\x85",
        "a/b",
        "x" * 256,
        "é" * 128,  # 128 characters, 256 bytes
        "\ud800",  # a lone surrogate, as JSON's "\ud800" decodes
    ],
)
def test_name_refuses(value: Any) -> None:
    refused(fields.name, value)


def test_text_keeps_line_breaks_and_tabs_and_counts_bytes() -> None:
    assert fields.text("one\r\ntwo\tthree", "t", 100) == "one\r\ntwo\tthree"
    assert fields.text("é" * 5, "t", 10) == "é" * 5
    assert "longer than 10 bytes" in refused(fields.text, "é" * 6, 10)
    for bad in ("\x00", "\x1b[31mred", "\x0b", "\ud83d", 5, None, ["x"], {"a": "b"}):
        refused(fields.text, bad, 100)


def test_line_refuses_every_control_character() -> None:
    assert fields.line("abc", "l", 10) == "abc"
    for bad in ("a\nb", "a\tb", "\x00", "x" * 11):
        refused(fields.line, bad, 10)


# -- flags, lists, choices, URLs, objects ---------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("True", True),  # python-copr's query strings
        ("False", False),
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("on", True),  # copr-cli's on/off options
        ("off", False),
        ("yes", True),
        ("no", False),
        (1, True),
        (0, False),
    ],
)
def test_boolean_accepts_what_clients_send(value: Any, expected: bool) -> None:
    assert fields.boolean(value, "b") is expected


@pytest.mark.parametrize("value", ["maybe", "", "\x00", 2, -1, 1.0, None, [], {}])
def test_boolean_refuses(value: Any) -> None:
    refused(fields.boolean, value)


def test_str_list_takes_lists_and_space_separated_strings() -> None:
    assert fields.str_list(["a", "b"], "l") == ["a", "b"]
    assert fields.str_list(" a  b ", "l") == ["a", "b"]
    assert fields.str_list([], "l") == []
    for bad in ({"a": 1}, [1], [["a"]], ["a\x00"], ["a/b"], 5, None):
        refused(fields.str_list, bad)
    assert fields.str_list(["http://h/a"], "l", item=fields.http_url) == ["http://h/a"]
    assert "thefield[1]" in refused(
        fields.str_list, ["http://h/a", "ftp://h/b"], item=fields.http_url
    )


def test_list_item_errors_name_the_item() -> None:
    assert "thefield[1]" in refused(fields.str_list, ["a", "b\x00"])


def test_optional_treats_null_and_empty_as_not_given() -> None:
    assert fields.optional(fields.integer, None, "n") is None
    assert fields.optional(fields.integer, "", "n") is None
    assert fields.optional(fields.integer, "5", "n", lo=1) == 5
    with pytest.raises(BadRequest, match="n must be a whole number"):
        fields.optional(fields.integer, "x", "n")


def test_choice() -> None:
    assert fields.choice("git", "scm_type", ("git",)) == "git"
    refused(fields.choice, "svn", ("git",))
    refused(fields.choice, ["git"], ("git",))


@pytest.mark.parametrize(
    "value", ["http://[x", "http://h:99999/", "http://h/a b", "http://h/\x00", "", 5, "x" * 5000]
)
def test_url_refuses_what_a_url_parser_would_trip_on(value: Any) -> None:
    refused(fields.url, value)


def test_http_url() -> None:
    assert fields.http_url("https://h.example/x.src.rpm", "u") == "https://h.example/x.src.rpm"
    for bad in ("file:///etc/passwd", "http://", "copr://a/b", "http://[::1"):
        refused(fields.http_url, bad)


@pytest.mark.parametrize("value", [[], [{}], "x", 1, None, True])
def test_body_object_refuses_anything_but_an_object(value: Any) -> None:
    assert "must be a JSON object" in refused(fields.body_object, value)
    assert fields.body_object({"a": 1}, "body") == {"a": 1}


# -- bodies ---------------------------------------------------------------------


def test_build_body_parses_copr_cli_strings() -> None:
    body = bodies.build_body(
        {
            "ownername": "alice",
            "projectname": "p",
            "chroots": ["fedora-*"],
            "timeout": "3600",
            "after_build_id": "12",
            "background": "True",
        }
    )
    assert (body.owner, body.project) == ("alice", "p")
    assert body.request.chroots == ("fedora-*",) and body.request.timeout == 3600
    assert body.request.after_build_id == 12 and body.request.background is True


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "the request body"),
        ({"ownername": "al\x00ice", "projectname": "p"}, "ownername"),
        ({"ownername": "alice"}, "projectname"),
        ({"ownername": "alice", "projectname": "p", "after_build_id": BIG}, "after_build_id"),
        ({"ownername": "alice", "projectname": "p", "with_build_id": "\u0663"}, "with_build_id"),
        ({"ownername": "alice", "projectname": "p", "timeout": "\u00b2"}, "timeout"),
        ({"ownername": "alice", "projectname": "p", "chroots": {"a": 1}}, "chroots"),
        ({"ownername": "alice", "projectname": "p", "exclude_chroots": [1]}, "exclude_chroots"),
        ({"ownername": "alice", "projectname": "p", "background": "later"}, "background"),
    ],
)
def test_build_body_refuses(data: Any, field: str) -> None:
    with pytest.raises(BadRequest, match=field):
        bodies.build_body(data)


def test_new_project_caps_and_types_its_text() -> None:
    ok = bodies.new_project({"name": "p", "chroots": ["c-1-x"], "homepage": "http://h"}, 100)
    assert ok["homepage"] == "http://h" and ok["description"] is None
    for data, field in [
        ({"name": "p", "homepage": 5}, "homepage"),
        ({"name": "p", "contact": ["x"]}, "contact"),
        ({"name": "p", "description": "x" * 101}, "description"),
        ({"name": "p", "instructions": "\x00"}, "instructions"),
        ({"name": "p\x00"}, "name"),
        ({"name": "p", "delete_after_days": "9" * 30}, "delete_after_days"),
        ({"name": "p", "delete_after_days": 0}, "delete_after_days"),
        ({"name": "p", "enable_net": "perhaps"}, "enable_net"),
        ({"name": "p", "additional_repos": ["http://[x"]}, "additional_repos"),
        (["p"], "the request body"),
    ]:
        with pytest.raises(BadRequest, match=field):
            bodies.new_project(data, 100)


def test_chroot_edit() -> None:
    assert bodies.chroot_edit({"additional_repos": "http://a http://b"}).additional_repos == [
        "http://a",
        "http://b",
    ]
    assert bodies.chroot_edit({}).additional_repos is None
    assert bodies.chroot_edit({"reset_fields": ["additional_repos"]}).additional_repos == []
    for data, field in [
        ([], "json part"),
        ({"reset_fields": 5}, "reset_fields"),
        ({"additional_repos": {"a": 1}}, "additional_repos"),
        ({"additional_packages": [1]}, "additional_packages"),
        ({"additional_packages": "gcc"}, "not supported"),
        ({"delete_comps": "sure"}, "delete_comps"),
    ]:
        with pytest.raises(BadRequest, match=field):
            bodies.chroot_edit(data)


def test_chain_steps_refuse_lists_for_objects_and_huge_indexes() -> None:
    with pytest.raises(BadRequest, match=r"builds\[0\] must be a JSON object"):
        bodies.chain_steps({"builds": [[]]})
    with pytest.raises(BadRequest, match=r"builds\[1\].after"):
        bodies.chain_steps(
            {"builds": [{"url": "http://h/a"}, {"url": "http://h/b", "after": [BIG]}]}
        )
    with pytest.raises(BadRequest, match=r"builds\[0\].url"):
        bodies.chain_steps({"builds": [{"url": "http://h/\x00"}]})


def test_scm_source() -> None:
    scm = bodies.scm_source({"clone_url": "https://git.example/r.git", "committish": "main"})
    assert scm.as_source()["committish"] == "main"
    for data, field in [
        ({"clone_url": "http://[x"}, "clone_url"),
        ({}, "clone_url"),
        ({"clone_url": "https://h/r", "committish": "a b"}, "committish"),
        ({"clone_url": "https://h/r", "subdirectory": "../up"}, "subdirectory"),
        ({"clone_url": "https://h/r", "spec": "a\nb"}, "spec"),
        ({"clone_url": "https://h/r", "scm_type": "svn"}, "scm_type"),
    ]:
        with pytest.raises(BadRequest, match=field):
            bodies.scm_source(data)


# -- request readers -------------------------------------------------------------


def _request(path: str = "/", match: dict[str, str] | None = None, **headers: str) -> Any:
    return make_mocked_request("GET", path, headers=headers, match_info=match or {})


@pytest.mark.parametrize("value", ["\u0663", "\u00b2", BIG, "1" * 5000, "0", "-1", "abc", "\x00"])
def test_path_id_refuses(value: str) -> None:
    with pytest.raises(BadRequest, match="build_id"):
        params.path_id(_request(match={"build_id": value}), "build_id")


def test_path_id_and_name() -> None:
    request = _request(match={"build_id": "7", "owner": "alice", "bad": "a\x00"})
    assert params.path_id(request, "build_id") == 7
    assert params.path_name(request, "owner") == "alice"
    with pytest.raises(BadRequest, match="bad must not contain control"):
        params.path_name(request, "bad")


def test_query_readers() -> None:
    request = _request("/x?limit=5&offset=&flag=False&bad=%00&big=" + BIG)
    assert params.query_int(request, "limit", lo=0) == 5
    assert params.query_int(request, "offset", 0) == 0
    assert params.query_int(request, "missing") is None
    assert params.query_bool(request, "flag", True) is False
    with pytest.raises(BadRequest, match="big is out of range"):
        params.query_int(request, "big")
    with pytest.raises(BadRequest, match="bad"):
        params.query_name(request, "bad")
    with pytest.raises(BadRequest, match="limit"):
        params.paging(_request("/x?limit=-1"))
    assert params.paging(_request("/x?limit=10&offset=20")) == (10, 20)


@pytest.mark.parametrize(
    "host", ["a]b", "a b", "a/b", "[::1", "h:port", "h:123456", "\u00e9.example"]
)
def test_a_host_header_that_is_no_host_is_refused(host: str) -> None:
    with pytest.raises(BadRequest, match="Host"):
        params.request_host(_request(Host=host))


@pytest.mark.parametrize(
    "host", ["copr.example", "copr.example:8080", "127.0.0.1:80", "[::1]:8080"]
)
def test_real_hosts_pass(host: str) -> None:
    assert params.request_host(_request(Host=host)) == host


def test_require_multipart() -> None:
    params.require_multipart(_request(**{"Content-Type": "multipart/form-data; boundary=x"}))
    for content_type in ("application/json", "text/plain", "multipart/mixed; boundary=x", ""):
        with pytest.raises(BadRequest, match="multipart/form-data"):
            params.require_multipart(_request(**{"Content-Type": content_type}))


# -- the Basic-auth login and the results path ---------------------------------------


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def test_a_login_no_token_could_have_is_no_login() -> None:
    assert parse_basic(_basic(b"abc:def")) == ("abc", "def")
    for raw in (
        b"ab\x00c:def",
        b"abc:de\x00f",
        b"ab\x1bc:def",
        b"abc:d\nef",
        b"x" * 256 + b":def",
        b"abc:" + b"y" * 256,
        b"a/b:def",
    ):
        assert parse_basic(_basic(raw)) is None, raw


def test_a_results_path_names_only_possible_files() -> None:
    assert checked_tail("alice/p/c/00000001-x/") == "alice/p/c/00000001-x/"
    for tail in ("a/\x00", "x" * 256, "a/" + "é" * 128, "a\x07", "a/" * 1100):
        with pytest.raises(BadRequest, match="path"):
            checked_tail(tail)
