"""Reading a forge's payload: JSON (or a form's `payload` field) and its fields, typed. Pure.

A forge's payload arrives from the network, so each reader here checks one
field's type and bounds and raises a BadRequest that names the field
(`payload: repository.clone_url is missing or not a string`). A commit id is
hex of a SHA-1 or SHA-256 repository, the all-zero id meaning a deleted ref;
a branch or tag name is one git itself would take (`is_ref_name`), so it never
reads as an option or as revision syntax when kopers.worker.scm hands it to git.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from kopers.errors import BadRequest

MAX_URL = 4096
MAX_REF = 255  # kopers.worker.scm.MAX_COMMITTISH
MAX_PATHS = 5000  # changed paths looked at; past it the list counts as unknown
MAX_FORM_FIELDS = 100
FORM = "application/x-www-form-urlencoded"
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # SHA-1, or SHA-256 repositories
_ZEROS = re.compile(r"0+")
# What git check-ref-format refuses in a ref name, besides controls and spaces.
_REF_BAD = re.compile(r"\.\.|@\{|//|[~^:?*\[\\]|(^|/)\.|\.lock(/|$)|[/.]$|^/")


class RefKind(enum.StrEnum):
    BRANCH = "branch"
    TAG = "tag"


def payload_of(body: bytes, content_type: str) -> dict[str, Any]:
    """The delivery's JSON object: the body, or the form field `payload` of a form body.

    GitHub and Pagure can send either; NaN and Infinity, non-UTF-8 text and
    nesting deep enough to exhaust the parser are malformed like anything else.
    """
    raw: bytes | str = body
    if content_type == FORM:
        try:
            fields = parse_qs(
                body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
            )
        except ValueError:  # UnicodeDecodeError too
            raise BadRequest("the form body is malformed or has too many fields") from None
        values = fields.get("payload", [])
        if len(values) != 1:
            raise BadRequest("the form body must hold one field `payload`")
        raw = values[0]
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest("the payload is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = (str(exc).splitlines() or ["malformed"])[0][:120]
        raise BadRequest(f"the payload is not valid JSON: {reason}") from None
    if not isinstance(data, dict):
        raise BadRequest("the payload is not a JSON object")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def obj(data: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
    """A required JSON object."""
    value = data.get(key)
    if not isinstance(value, dict):
        raise BadRequest(f"payload: {_path(where, key)} is missing or not an object")
    return value


def text(data: Mapping[str, Any], key: str, where: str = "") -> str:
    """A required non-empty string of at most MAX_URL characters."""
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"payload: {_path(where, key)} is missing or not a string")
    if len(value) > MAX_URL:
        raise BadRequest(f"payload: {_path(where, key)} is longer than {MAX_URL} characters")
    return value


def optional(data: Mapping[str, Any], key: str, kind: type) -> Any:
    """A value of `kind` or None (absent or null)."""
    value = data.get(key)
    if value is None:
        return None
    # bool is an int in Python; a count that is true or false is still wrong.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"payload: {key} is not a {kind.__name__}")
    return value


def url(value: str, field: str) -> str:
    """One line of printable text, at most MAX_URL characters (what it names is forgeplan's)."""
    if len(value) > MAX_URL or not value.isprintable():
        raise BadRequest(f"payload: {field} is not a URL")
    return value


def urls(
    data: Mapping[str, Any], where: str, keys: Sequence[str], *, required: bool = True
) -> tuple[str, ...]:
    """The URL strings under `keys` (missing ones skipped); 400 if one is not a string."""
    out = []
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadRequest(f"payload: {_path(where, key)} is not a string")
        out.append(url(value, _path(where, key)))
    if required and not out:
        raise BadRequest(f"payload: {_path(where, keys[0])} is missing")
    return tuple(out)


def ref(value: str) -> tuple[RefKind, str]:
    """`refs/heads/x` or `refs/tags/x` -> (kind, x)."""
    for prefix, kind in (("refs/heads/", RefKind.BRANCH), ("refs/tags/", RefKind.TAG)):
        if value.startswith(prefix):
            return kind, ref_name(value.removeprefix(prefix), "ref")
    raise BadRequest("payload: ref is neither refs/heads/... nor refs/tags/...")


def is_ref_name(name: str) -> bool:
    """Whether git would take `name` for a branch or tag (its check-ref-format rules).

    Not empty, not over MAX_REF, no leading `-` (an option), no spaces or
    controls, and none of the revision syntax git refuses in names: `..`,
    `@{`, `~ ^ : ? * [ \\`, `//`, a component starting with `.` or ending in
    `.lock`, a leading `/`, a trailing `/` or `.`, or `@` alone.
    """
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_REF
        and name != "@"
        and not name.startswith("-")
        and not any(c.isspace() or not c.isprintable() for c in name)
        and _REF_BAD.search(name) is None
    )


def ref_name(name: str, field: str) -> str:
    """A branch or tag name that git could not read as anything else (kopers.worker.scm)."""
    if not is_ref_name(name):
        raise BadRequest(f"payload: {field} is not a branch or tag name")
    return name


def commit(
    data: Mapping[str, Any], key: str, *, required: bool = True, where: str = ""
) -> str | None:
    """A commit id (lower-case hex); None for the all-zero id of a deleted ref.

    Absent or null is a 400 when `required`, else None.
    """
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _SHA.fullmatch(value.lower()):
        raise BadRequest(f"payload: {_path(where, key)} is not a commit id")
    return None if _ZEROS.fullmatch(value) else value.lower()


def changed_paths(commits: list[Any]) -> tuple[str, ...] | None:
    """Every path the commits add, change or remove; None when there are too many to tell."""
    paths: list[str] = []
    for i, item in enumerate(commits):
        if not isinstance(item, dict):
            raise BadRequest(f"payload: commits[{i}] is not an object")
        for key in ("added", "modified", "removed"):
            value = item.get(key, [])
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise BadRequest(f"payload: commits[{i}].{key} is not a list of paths")
            paths.extend(value)
            if len(paths) > MAX_PATHS:
                return None
    return tuple(dict.fromkeys(paths))
