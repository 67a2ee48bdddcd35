"""The events Kopers sends out: their JSON, signature, headers and retry pauses, the
parsing of hook URLs and stream parameters, and which hooks' drains start. Pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kopers.api.eventstream import (
    accepts_stream,
    parse_last_id,
    parse_project,
    streams_per_address,
)
from kopers.api.hooks import hook_secret, hook_url, parse_hook, valid_host
from kopers.errors import BadRequest
from kopers.hooksender import pick_drains
from kopers.notifications import (
    DueHook,
    EventKind,
    Notification,
    answer_text,
    body_bytes,
    delivery_headers,
    event_json,
    retry_delay,
    signature,
    sse_message,
)

AT = datetime(2026, 5, 4, 12, 30, 1, 250000, tzinfo=UTC)
N = Notification(
    id=42,
    at=AT,
    project_id=7,
    project="@sig/tools",
    kind=EventKind.TASK_STATE,
    build_id=1234,
    chroot="fedora-40-x86_64",
    state="running",
    previous="starting",
)


def test_an_event_names_its_project_build_chroot_and_states() -> None:
    assert event_json(N, 99, "https://kopers.example.org") == {
        "id": 42,
        "delivery": 99,
        "kind": "task.state",
        "at": "2026-05-04T12:30:01.250000+00:00",
        "project": "@sig/tools",
        "project_id": 7,
        "build": 1234,
        "chroot": "fedora-40-x86_64",
        "state": "running",
        "previous": "starting",
        "url": "https://kopers.example.org/api_3/build/1234",
    }


def test_the_body_is_compact_sorted_json_that_reads_back_the_same() -> None:
    event = event_json(N, 99, "http://k")
    body = body_bytes(event)
    assert json.loads(body) == event
    assert b" " not in body and body.startswith(b'{"at":')
    assert body_bytes(dict(reversed(list(event.items())))) == body
    # Not ASCII in a value stays valid JSON, escaped.
    odd = body_bytes({"state": "é\n"})
    assert odd == b'{"state":"\\u00e9\\n"}'


def test_the_signature_is_rfc_4231s_hmac_sha256() -> None:
    # RFC 4231, test case 1.
    key, data = "\x0b" * 20, b"Hi There"
    want = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    assert signature(key, data) == "sha256=" + want
    assert signature(key, data + b" ") != signature(key, data)


def test_the_headers_say_what_and_which_delivery_and_carry_the_signature() -> None:
    body = body_bytes(event_json(N, 99, "http://k"))
    headers = delivery_headers(EventKind.BUILD_STATE, 99, "s" * 20, body)
    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": "Kopers-Hookshot",
        "X-Kopers-Event": "build.state",
        "X-Kopers-Delivery": "99",
        "X-Kopers-Signature-256": signature("s" * 20, body),
    }


@pytest.mark.parametrize(
    ("attempts", "want"),
    [(0, 0.0), (1, 5.0), (2, 10.0), (3, 20.0), (6, 160.0), (7, 300.0), (10**6, 300.0)],
)
def test_retries_wait_longer_each_time_up_to_the_cap(attempts: int, want: float) -> None:
    assert retry_delay(attempts, 5, 300) == want


def test_an_answer_is_kept_short_and_storable() -> None:
    assert answer_text(b"ok") == "ok"
    assert len(answer_text(b"x" * 2048)) == 500
    assert "\x00" not in answer_text(b"a\x00b")
    assert answer_text(b"\xff\xfeok") == "\ufffd\ufffdok"


def test_a_server_sent_event_is_three_lines_and_a_blank_one() -> None:
    raw = sse_message(N, "http://k").decode()
    lines = raw.split("\n")
    assert lines[:2] == ["id: 42", "event: task.state"]
    assert lines[2].startswith("data: {") and lines[3:] == ["", ""]
    assert json.loads(lines[2].removeprefix("data: "))["delivery"] is None


# -- parsing what clients send ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/kopers",
        "http://example.com:8080/a?b=c",
        "https://[2001:db8::1]/x",
        "http://10.0.0.1/hook",  # the address policy decides at delivery
        "https://bücher.example/x",
        "https://example.com./x",
    ],
)
def test_a_hook_url_of_http_or_https_with_a_host_is_taken(url: str) -> None:
    assert hook_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "https://u:p@example.com/",
        "https://u@example.com/",
        "https://example.com/" + "a" * 2000,
        "https://",
        "https://[10.0.0.1]/",
        "https://-x.example.com/",
        "https://a..b/",
        "https://a_b.example.com/",
        "https://" + "a" * 64 + ".com/",
        "https://example.com:0/",
        "https:// example.com/",
        None,
        3,
    ],
)
def test_a_hook_url_that_is_not_fit_is_a_400(url: object) -> None:
    with pytest.raises(BadRequest):
        hook_url(url)


def test_host_syntax() -> None:
    assert valid_host("example.com") and valid_host("127.0.0.1") and valid_host("::1", True)
    assert not valid_host("::1") and not valid_host("127.0.0.1", True)
    assert not valid_host("." * 3) and not valid_host("a" * 254)


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # 127.0.0.1 as one number
        "127.1",
        "0",
        "0177.0.0.1",  # octal
        "0x7f000001",  # hex, which a resolver reads as an address
        "0x7f.0.0.1",
        "127.0.0.0x1",
        "1.2.3.4.5",
        "127.0.0.1.",
        "example.123",  # a name whose last label is a number reads as an address
        "example.0x",
        "::1%eth0",  # a zone belongs to this host, not to a URL
        "fe80::1%25eth0",
    ],
)
def test_a_host_that_is_neither_a_dns_name_nor_a_canonical_address_is_refused(
    host: str,
) -> None:
    assert not valid_host(host, bracketed=":" in host)
    shown = f"[{host}]" if ":" in host else host
    with pytest.raises(BadRequest) as refused:
        hook_url(f"http://{shown}/hook")
    assert "\n" not in refused.value.message


@pytest.mark.parametrize(
    "host",
    ["deadbeef", "0x7f000001.example.com", "1e3.example", "123.example.com", "a-1.b2", "x.0x1g"],
)
def test_names_that_only_look_numeric_are_names(host: str) -> None:
    assert valid_host(host)
    assert hook_url(f"http://{host}/") == f"http://{host}/"


def test_ipv6_literals_are_taken_as_written() -> None:
    for host in ("2001:db8::1", "2001:DB8::1", "::ffff:192.0.2.1", "0:0:0:0:0:0:0:1"):
        assert valid_host(host, bracketed=True), host
        assert hook_url(f"https://[{host}]:8443/x") == f"https://[{host}]:8443/x"


def test_a_secret_is_printable_ascii_of_sensible_length() -> None:
    assert hook_secret("s" * 16) == "s" * 16
    for bad in ("s" * 15, "s" * 257, "s" * 15 + "\n", "é" * 16, 16, None):
        with pytest.raises(BadRequest):
            hook_secret(bad)
    assert parse_hook({"url": "https://e.com/"}).secret is None
    assert parse_hook({"url": "https://e.com/", "secret": "t" * 20}).secret == "t" * 20


# -- which hooks' drains start ---------------------------------------------------

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def due(hook: int, project: int, seconds: int = 0) -> DueHook:
    return DueHook(hook, project, T0 + timedelta(seconds=seconds))


def test_drains_start_in_the_order_their_heads_fell_due_up_to_the_slots() -> None:
    hooks = [due(1, 1, 5), due(2, 2, 1), due(3, 3, 3)]
    assert pick_drains(hooks, {}, {}, total=2, per_project=4) == [hooks[1], hooks[2]]
    assert pick_drains(hooks, {}, {}, total=8, per_project=4) == [hooks[1], hooks[2], hooks[0]]
    assert pick_drains(hooks, {9: 9, 8: 8}, {}, total=2, per_project=4) == []
    assert pick_drains([], {}, {}, total=2, per_project=4) == []


def test_one_project_gets_no_more_than_its_share_of_the_slots() -> None:
    mine = [due(h, 1, h) for h in range(1, 21)]
    other = due(99, 2, 100)
    picked = pick_drains([*mine, other], {}, {}, total=16, per_project=4)
    assert picked == [*mine[:4], other]
    # Drains already running count against the project's share.
    picked = pick_drains([*mine[3:], other], {1: 1, 2: 1, 3: 1}, {}, total=16, per_project=4)
    assert picked == [mine[3], other]


def test_a_hook_already_draining_is_not_started_twice() -> None:
    assert pick_drains([due(1, 1), due(2, 1)], {1: 1}, {}, total=4, per_project=4) == [due(2, 1)]


def test_a_hook_that_used_its_turn_goes_behind_those_waiting() -> None:
    long_due, newer, newest = due(1, 1, 0), due(2, 2, 60), due(3, 3, 200)
    hooks = [long_due, newer, newest]
    served = {1: T0 + timedelta(seconds=100)}  # hook 1 made way then, with more to send
    assert pick_drains(hooks, {}, served, total=3, per_project=1) == [newer, long_due, newest]
    served[2] = T0 + timedelta(seconds=101)
    assert pick_drains(hooks, {}, served, total=1, per_project=1) == [long_due]


def test_stream_parameters() -> None:
    assert parse_project("@sig/tools") == ("@sig", "tools")
    for bad in ("alice", "a/b/c", "/p", "a/", "a/\x00"):
        with pytest.raises(BadRequest):
            parse_project(bad)
    assert parse_last_id(None, "since") is None and parse_last_id("", "since") is None
    assert parse_last_id("0", "since") == 0 and parse_last_id("17", "since") == 17
    for bad in ("-1", "x", "1.0", str(2**63), "٣"):
        with pytest.raises(BadRequest):
            parse_last_id(bad, "since")
    assert accepts_stream("text/event-stream")
    assert accepts_stream("text/html, Text/Event-Stream;q=0.9")
    assert not accepts_stream("*/*") and not accepts_stream("")


def test_the_stream_cap_of_an_address_follows_its_connection_cap() -> None:
    assert streams_per_address(64) == 8  # the default
    assert streams_per_address(4) == 8 and streams_per_address(1) == 8  # connections bind first
    assert streams_per_address(4096) == 512  # behind a reverse proxy, raised with it
    assert streams_per_address(0) == 0  # connections not capped: streams neither
