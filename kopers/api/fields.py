"""Parsers for single client values: names, free text, numbers, flags, lists. Pure.

Every value a client sends (a path placeholder, a query parameter, a key of a
JSON body) goes through one of these before a handler uses it, so nothing
the database, the file system or a URL parser would choke on gets past the
API: no NUL or other control characters, no lone surrogates (JSON's
"\\ud800" decodes to one, and no encoder takes it), no number beyond
Postgres' bigint, no name longer than a file name may be. A bad value is a
`BadRequest` whose one-line message names the field; a value is never echoed
whole, so a message stays one short line whatever was sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from kopers.errors import BadRequest

T = TypeVar("T")

# Postgres' bigint: a larger number would reach the database and fail there.
MAX_INT = (1 << 63) - 1
# A name may become a file name (owner, project, chroot, package): 255 bytes.
MAX_NAME_BYTES = 255
# A URL (a package to fetch, a repository, a git remote).
MAX_URL_BYTES = 4096

# C0 and C1 control characters (NUL among them), and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# ASCII digits only: str.isdigit() passes "²" and int() reads "٣" as 3.
_DIGITS = re.compile(r"-?[0-9]+")
_MAX_DIGITS = 20  # bigint has 19; int() of thousands of digits is slow, then refused

_TRUE = frozenset({"true", "1", "on", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "off", "no", "n", "f"})


def shown(value: Any, limit: int = 40) -> str:
    """A short, one-line, printable form of a client's value for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def integer(value: Any, field: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number from JSON or text (copr-cli sends several as strings).

    Not a bool (JSON true is no count) and not a float. Text is ASCII digits
    with an optional minus, checked for length before int() ever sees it.
    Whatever the bounds asked, the number fits Postgres' bigint.
    """
    low = -MAX_INT if lo is None else max(lo, -MAX_INT)
    high = MAX_INT if hi is None else min(hi, MAX_INT)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        if len(value) > _MAX_DIGITS:
            raise BadRequest(f"{field} is out of range: {_range(low, high)}")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{field} must be a whole number, got {shown(value)}")
    if not low <= value <= high:
        raise BadRequest(f"{field} is out of range: {_range(low, high)}")
    return value


def _range(low: int, high: int) -> str:
    if low == -MAX_INT and high != MAX_INT:
        return f"it must be a whole number of at most {high}"
    if high == MAX_INT:
        return f"it must be a whole number from {low} to {high}"
    return f"it must be a whole number between {low} and {high}"


def positive_id(value: Any, field: str) -> int:
    """An object id: 1 to bigint's maximum."""
    return integer(value, field, lo=1)


def id_list(value: Any, field: str) -> list[int]:
    """A non-empty JSON list of object ids."""
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{field} must be a non-empty list of ids")
    return [positive_id(v, f"{field}[{i}]") for i, v in enumerate(value)]


def _string(value: Any, field: str) -> str:
    if value is None:
        raise BadRequest(f"{field} is required")
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string, got {type(value).__name__}")
    if _SURROGATE.search(value):
        raise BadRequest(f"{field} is not valid Unicode text")
    return value


def _bounded(value: str, field: str, max_bytes: int) -> str:
    # Each character is one UTF-8 byte at least: cheap check first.
    if len(value) > max_bytes or len(value.encode()) > max_bytes:
        raise BadRequest(f"{field} is longer than {max_bytes} bytes")
    return value


def name(value: Any, field: str) -> str:
    """An identifier-like name: owner, project, chroot, package, user, login.

    Non-empty, at most 255 bytes of UTF-8, no control characters and no '/'.
    What characters a kind of name may hold beyond that is for its owner
    (e.g. the project name pattern); this only keeps it safe to look up.
    """
    value = _string(value, field)
    if not value:
        raise BadRequest(f"{field} must not be empty")
    value = line(value, field, MAX_NAME_BYTES)
    if "/" in value:
        raise BadRequest(f"{field} must not contain '/'")
    return value


def line(value: Any, field: str, max_bytes: int) -> str:
    """A string of at most `max_bytes` of UTF-8 without any control character."""
    value = _bounded(_string(value, field), field, max_bytes)
    if _CONTROL.search(value):
        raise BadRequest(f"{field} must not contain control characters")
    return value


def text(value: Any, field: str, max_bytes: int) -> str:
    """Free text (a description, instructions): at most `max_bytes` of UTF-8.

    Line breaks and tabs are text; other control characters, NUL among them,
    are not (Postgres refuses NUL in text, and the rest only garble pages).
    """
    value = _bounded(_string(value, field), field, max_bytes)
    if _CONTROL_BUT_LINES.search(value):
        raise BadRequest(f"{field} must not contain control characters")
    return value


def token(value: Any, field: str) -> str:
    """One word of printable text (a package spec, a module, a macro): no spaces, no controls."""
    value = _bounded(_string(value, field), field, MAX_URL_BYTES)
    if not value or _CONTROL.search(value) or any(c.isspace() for c in value):
        raise BadRequest(f"{field} must be one word without spaces or control characters")
    return value


def boolean(value: Any, field: str) -> bool:
    """JSON true/false, or the text forms clients send.

    python-copr puts Python's `True`/`False` in query strings; copr-cli's own
    options take on/off, yes/no, 1/0 (its str2bool), and a form may send any.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise BadRequest(f"{field} must be true or false, got {shown(value)}")


def str_list(value: Any, field: str, *, item: Callable[[Any, str], str] = name) -> list[str]:
    """A list of strings, each parsed by `item`.

    copr-cli sends several lists as one space-separated string (edit-chroot),
    python-copr callers send JSON lists; both are taken.
    """
    if isinstance(value, str):
        items: Iterable[Any] = _string(value, field).split()
    elif isinstance(value, list):
        items = value
    else:
        raise BadRequest(f"{field} must be a list of strings")
    return [item(v, f"{field}[{i}]") for i, v in enumerate(items)]


def optional(parse: Callable[..., T], value: Any, field: str, *args: Any, **kw: Any) -> T | None:
    """None for a value not given (null, or "" as copr-cli sends it); else `parse(value, ...)`."""
    if value is None or value == "":
        return None
    return parse(value, field, *args, **kw)


def choice(value: Any, field: str, choices: Iterable[str]) -> str:
    """One of a fixed set of words."""
    allowed = tuple(choices)
    if not isinstance(value, str) or value not in allowed:
        raise BadRequest(f"{field} must be one of {', '.join(allowed)}, got {shown(value)}")
    return value


def url(value: Any, field: str, schemes: Iterable[str] | None = None) -> str:
    """A URL: one token of printable text that a URL parser takes, port included.

    `schemes` limits the scheme; the caller's own policy (which hosts may be
    reached) still applies where the URL is used.
    """
    value = _bounded(_string(value, field), field, MAX_URL_BYTES)
    if not value or _CONTROL.search(value) or any(c.isspace() for c in value):
        raise BadRequest(f"{field} must be a URL without spaces or control characters")
    try:
        parts = urlsplit(value.replace("$chroot", "chroot"))
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise BadRequest(f"{field} is not a valid URL: {shown(value)}") from None
    if schemes is not None:
        allowed = tuple(schemes)
        if parts.scheme not in allowed:
            raise BadRequest(
                f"{field} must be a URL with scheme {' or '.join(allowed)}, got {shown(value)}"
            )
    return value


def http_url(value: Any, field: str) -> str:
    """A URL to download from: http or https, with a host."""
    checked = url(value, field, ("http", "https"))
    if not urlsplit(checked).hostname:
        raise BadRequest(f"{field} must name a host, got {shown(checked)}")
    return checked


def body_object(data: Any, field: str) -> dict[str, Any]:
    """A JSON value that must be an object ({...}), e.g. a body or one of its members."""
    if not isinstance(data, dict):
        raise BadRequest(f"{field} must be a JSON object, got {_json_type(data)}")
    return data


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
