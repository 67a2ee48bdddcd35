"""The JSON bodies of the API, parsed into what the domain operations take. Pure.

Each function takes a decoded JSON value as the client sent it (copr-cli's
habits included: numbers as strings, lists as space-separated strings, null
for "not given") and returns typed values, or raises BadRequest naming the
field. Keys a body may carry but Kopers does not use (isolation, bootstrap,
...) are ignored, as upstream ignores what it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kopers.api import fields
from kopers.api.fields import body_object, optional
from kopers.errors import BadRequest
from kopers.sourcekinds import MAX_SCRIPT_BYTES, CustomSource, PypiSource, scm_method
from kopers.submission import BuildRequest, ChainStep, ScmSource
from kopers.worker.scm import check_clone_url, check_committish, relative

# Fields of a project that are free text, capped by limits.max_text_kib.
PROJECT_TEXT = ("description", "instructions", "homepage", "contact")
# edit-chroot lists Kopers does not keep yet: refused when not empty.
CHROOT_UNSUPPORTED = ("additional_packages", "additional_modules", "with_opts", "without_opts")


@dataclass(frozen=True, slots=True)
class BuildBody:
    """A Copr build call's body: where to build, and how."""

    owner: str
    project: str
    request: BuildRequest


def build_request(data: dict[str, Any]) -> BuildRequest:
    """Copr's build options (check-before-build, create/*, the native chain)."""
    after = optional(fields.positive_id, data.get("after_build_id"), "after_build_id")
    with_ = optional(fields.positive_id, data.get("with_build_id"), "with_build_id")
    chroots = data.get("chroots")
    return BuildRequest(
        chroots=None if chroots is None else tuple(fields.str_list(chroots, "chroots")),
        exclude_chroots=tuple(
            optional(fields.str_list, data.get("exclude_chroots"), "exclude_chroots") or ()
        ),
        timeout=optional(fields.integer, data.get("timeout"), "timeout", lo=1),
        background=bool(optional(fields.boolean, data.get("background"), "background")),
        after_build_id=after,
        with_build_id=with_,
    )


def build_body(data: Any, field: str = "the request body") -> BuildBody:
    """A /api_3/build/* body: `ownername`, `projectname` and the build options."""
    body = body_object(data, field)
    return BuildBody(
        owner=fields.name(body.get("ownername"), "ownername"),
        project=fields.name(body.get("projectname"), "projectname"),
        request=build_request(body),
    )


def package_urls(data: dict[str, Any]) -> list[str]:
    """create/url's `pkgs`: a list of http(s) URLs, or one space-separated string."""
    return fields.str_list(data.get("pkgs") or [], "pkgs", item=fields.http_url)


def scm_source(data: dict[str, Any]) -> ScmSource:
    """create/scm's git source: clone URL, committish, subdirectory, spec file."""
    if data.get("scm_type") not in ("git", None):
        raise BadRequest("scm_type must be git: only git repositories are supported")
    clone_url = check_clone_url(fields.url(data.get("clone_url"), "clone_url"))
    committish = optional(fields.token, data.get("committish"), "committish") or ""
    subdirectory = optional(_path, data.get("subdirectory"), "subdirectory") or ""
    spec = optional(_path, data.get("spec"), "spec") or ""
    method = scm_method(
        optional(fields.token, data.get("source_build_method"), "source_build_method")
    )
    check_committish(committish)
    relative(subdirectory, "subdirectory")
    relative(spec, "spec")
    return ScmSource(clone_url, committish, subdirectory, spec, method)


def custom_source(data: dict[str, Any]) -> CustomSource:
    """create/custom's script, its chroot, build dependencies, result dir and repos."""
    script = data.get("script")
    if not isinstance(script, str):
        raise BadRequest("script must be a string: the script's text")
    resultdir = optional(_path, data.get("resultdir"), "resultdir") or ""
    relative(resultdir, "resultdir")
    return CustomSource(
        script=fields.text(script, "script", MAX_SCRIPT_BYTES),
        chroot=optional(fields.token, data.get("chroot"), "chroot"),
        builddeps=tuple(
            optional(fields.str_list, data.get("builddeps"), "builddeps", item=fields.token) or ()
        ),
        resultdir=resultdir,
        repos=tuple(
            optional(fields.str_list, data.get("repos"), "repos", item=fields.http_url) or ()
        ),
    )


def pypi_source(data: dict[str, Any]) -> PypiSource:
    """create/pypi's package name and version, spec generator and Python versions."""
    name = fields.line(data.get("pypi_package_name"), "pypi_package_name", 200)
    version = optional(fields.line, data.get("pypi_package_version"), "pypi_package_version", 64)
    template = optional(fields.line, data.get("spec_template"), "spec_template", 64)
    if template:
        raise BadRequest("spec_template is for pyp2rpm, which this server does not run")
    versions = data.get("python_versions")
    if versions is None or versions == []:
        versions = [3]
    if not isinstance(versions, list):
        versions = [versions]
    parsed = tuple(fields.integer(v, "python_versions", lo=2, hi=3) for v in versions)
    return PypiSource(
        name=name,
        version=version or "",
        spec_generator=optional(fields.line, data.get("spec_generator"), "spec_generator", 20)
        or "pyp2spec",
        python_versions=parsed,
    )


def _path(value: Any, field: str) -> str:
    """A relative path in a repository: one line of text."""
    path = fields.text(value, field, fields.MAX_URL_BYTES)
    if any(c in path for c in "\n\r\t"):
        raise BadRequest(f"{field} must not contain line breaks or tabs")
    return path


def chain_steps(data: dict[str, Any]) -> list[ChainStep]:
    """The native chain body -> steps.

    `{"builds": [{"url": ...}, {"url": ..., "after": [0]}, ...]}`: an ordered
    list in which each step waits for the one before it, unless it names the
    earlier steps it waits for with `after` (an empty list: none).
    """
    items = data.get("builds")
    if not isinstance(items, list) or not items:
        raise BadRequest("builds must be a non-empty list of {url, after}")
    steps = []
    for index, item in enumerate(items):
        step = body_object(item, f"builds[{index}]")
        url = fields.http_url(step.get("url"), f"builds[{index}].url")
        after = step.get("after", [index - 1] if index else [])
        if not isinstance(after, list):
            raise BadRequest(f"builds[{index}].after must be a list of step indexes")
        earlier = [fields.integer(a, f"builds[{index}].after", lo=0) for a in after]
        if any(a >= index for a in earlier):
            raise BadRequest(f"builds[{index}].after may only name earlier steps (0..{index - 1})")
        steps.append(ChainStep(url, tuple(sorted(set(earlier)))))
    return steps


def new_project(data: Any, max_text: int) -> dict[str, Any]:
    """project/add's body -> the values kopers.projects creates a project from.

    Free text is capped at `max_text` bytes; the name's own pattern, the
    chroots on offer and the expiry's range are the project rules' to check.
    """
    body = body_object(data, "the request body")
    project: dict[str, Any] = {
        "name": fields.name(body.get("name"), "name"),
        "chroots": fields.str_list(body.get("chroots") or [], "chroots"),
        "additional_repos": fields.str_list(
            body.get("additional_repos") or [], "additional_repos", item=fields.url
        ),
        "enable_net": bool(optional(fields.boolean, body.get("enable_net"), "enable_net")),
        "delete_after_days": optional(
            fields.integer, body.get("delete_after_days"), "delete_after_days", lo=1
        ),
    }
    for key in PROJECT_TEXT:
        project[key] = optional(fields.text, body.get(key), key, max_text)
    return project


@dataclass(frozen=True, slots=True)
class ChrootEdit:
    """edit-chroot's body: the chroot's repositories to set (None: leave them)."""

    additional_repos: list[str] | None


def chroot_edit(data: Any) -> ChrootEdit:
    """edit-chroot's `json` part (or JSON body)."""
    body = body_object(data, "the json part")
    for key in CHROOT_UNSUPPORTED:
        if optional(fields.str_list, body.get(key), key, item=fields.token):
            raise BadRequest(f"{key} is not supported by this server yet")
    optional(fields.boolean, body.get("delete_comps"), "delete_comps")
    reset = optional(fields.str_list, body.get("reset_fields"), "reset_fields") or []
    repos = body.get("additional_repos")
    if "additional_repos" in reset:
        return ChrootEdit([])
    if repos is None:
        return ChrootEdit(None)
    return ChrootEdit(fields.str_list(repos, "additional_repos", item=fields.url))


def permission_users(data: Any) -> Any:
    """permissions/set's body `{user: {role: state}}` with each user a valid name.

    The rest (the shape, the roles, the states) is kopers.access.parse_set's.
    """
    if isinstance(data, dict):
        for user in data:
            fields.name(user, "user name")
    return data
