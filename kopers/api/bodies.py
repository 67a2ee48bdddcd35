"""The JSON bodies of the API, parsed into what the domain operations take. Pure.

Each function takes a decoded JSON value as the client sent it (copr-cli's
habits included: numbers as strings, lists as space-separated strings, null
for "not given") and returns typed values, or raises BadRequest naming the
field. Keys no Copr client sends are ignored, as upstream ignores what it
does not know; a project option Kopers cannot honour (multilib, mock's
bootstrap and isolation, pulp storage, ...) is taken at its default, the
value copr-cli always sends, and refused with a 400 naming it otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kopers.api import fields
from kopers.api.fields import body_object, optional
from kopers.errors import BadRequest, NotSupported
from kopers.projects import MAX_DAYS, MAX_INT4, NO_EXPIRY, ProjectInput
from kopers.publish.repofile import copr_repo
from kopers.sourcekinds import MAX_SCRIPT_BYTES, CustomSource, PypiSource, scm_method
from kopers.submission import BuildRequest, ChainStep, ScmSource
from kopers.worker.scm import check_clone_url, check_committish, relative

# Fields of a project that are free text, capped by limits.max_text_kib.
PROJECT_TEXT = ("description", "instructions", "homepage", "contact")
# edit-chroot lists Kopers does not keep yet: refused when not empty.
CHROOT_UNSUPPORTED = ("additional_packages", "additional_modules", "with_opts", "without_opts")
# What get-chroot shows and edit-chroot's reset_fields may name. Only
# additional_repos is kept; the others are always at their default.
CHROOT_FIELDS = (
    "additional_repos",
    *CHROOT_UNSUPPORTED,
    "comps_name",
    "delete_after_days",
    "isolation",
    "bootstrap",
    "bootstrap_image",
)

# The builders run rpmbuild in a contained VM: there is no mock to configure.
_NO_MOCK = "builds run rpmbuild in a contained VM, not mock"
# Options only their default value of which this server can honour: the values
# accepted (None: not given), and why another is refused.
_DEFAULT_ONLY: dict[str, tuple[tuple[Any, ...], str]] = {
    "bootstrap": ((None, "", "default", "unchanged", "untouched"), _NO_MOCK),
    "bootstrap_image": ((None, ""), _NO_MOCK),
    "isolation": ((None, "", "default", "unchanged"), _NO_MOCK),
    "storage": ((None, "", "backend"), "this server keeps results on its own disk (backend)"),
}
# Flags this server can honour only when off.
_OFF_ONLY = {
    "devel_mode": "this server publishes repodata after every build",
    "multilib": "this server makes no multilib repositories",
    "fedora_review": "the builders have no fedora-review",
    "appstream": "this server generates no AppStream metadata",
}


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
    project = fields.name(body.get("projectname"), "projectname")
    same_dir(project, body.get("project_dirname"))
    return BuildBody(
        owner=fields.name(body.get("ownername"), "ownername"),
        project=project,
        request=build_request(body),
    )


def same_dir(project: str, dirname: Any) -> None:
    """Copr's project directories (`p:custom:x`) are not kept apart here: only `p` is.

    A build sent to one must not land in the main repository as if it had
    been asked for: it is refused, saying so.
    """
    if dirname is None or dirname == "" or dirname == project:
        return
    if not isinstance(dirname, str):
        raise BadRequest("project_dirname must be a string")
    if dirname.split(":", 1)[0] != project:
        raise BadRequest(f"project_dirname must be {project} or {project}:<suffix>")
    raise NotSupported(
        f"project directories ({project}:<suffix>) are not supported by this Kopers "
        f"server; use {project}"
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


def _default_only(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Refuse any value but the default of an option this server cannot honour otherwise."""
    for key in keys:
        value = body.get(key)
        if key in _OFF_ONLY:
            if optional(fields.boolean, value, key):
                raise BadRequest(f"{key} is not supported by this server: {_OFF_ONLY[key]}")
            continue
        accepted, why = _DEFAULT_ONLY[key]
        if value not in accepted:
            raise BadRequest(
                f"{key} {fields.shown(value)} is not supported by this server: {why}; "
                f"leave it {accepted[2] if len(accepted) > 2 else 'unset'}"
            )


def _runtime_dependency(value: Any, field: str) -> str:
    """A repository to enable with the project's: an http(s) URL with a host, or copr://o/p."""
    url = fields.url(value, field, ("http", "https", "copr"))
    if url.startswith("copr:"):
        if copr_repo(url) is None:
            raise BadRequest(f"{field} must be copr://owner/project, got {fields.shown(url)}")
    elif not urlsplit(url).hostname:
        raise BadRequest(f"{field} must name a host, got {fields.shown(url)}")
    return url


def _forge_project(value: Any, field: str) -> str:
    """A forge project Packit may build from (github.com/owner/repo), without a scheme."""
    word = fields.token(value, field)
    return word.split("://", 1)[1] if "://" in word else word


def _days(value: Any) -> int | None:
    """delete_after_days: a positive number of days, or -1 for no expiry (Copr's way)."""
    days = optional(fields.integer, value, "delete_after_days", lo=NO_EXPIRY, hi=MAX_DAYS)
    if days == 0:
        raise BadRequest("delete_after_days must be a positive number of days, or -1 for none")
    return days


def _flag(body: dict[str, Any], key: str) -> bool | None:
    return optional(fields.boolean, body.get(key), key)


def _tuple(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def project_input(body: dict[str, Any], max_text: int, repos_key: str) -> ProjectInput:
    """The project fields of a create or modify body; the repository list is `repos_key`."""
    _default_only(body, (*_DEFAULT_ONLY, *_OFF_ONLY))
    texts = {key: optional(fields.text, body.get(key), key, max_text) for key in PROJECT_TEXT}
    chroots = body.get("chroots")
    return ProjectInput(
        **texts,
        additional_repos=_tuple(
            optional(fields.str_list, body.get(repos_key), repos_key, item=fields.url)
        ),
        enable_net=_flag(body, "enable_net"),
        delete_after_days=_days(body.get("delete_after_days")),
        chroots=None if chroots is None else tuple(fields.str_list(chroots, "chroots")),
        persistent=_flag(body, "persistent"),
        unlisted_on_hp=_flag(body, "unlisted_on_hp"),
        auto_prune=_flag(body, "auto_prune"),
        module_hotfixes=_flag(body, "module_hotfixes"),
        repo_priority=optional(
            fields.integer, body.get("repo_priority"), "repo_priority", lo=1, hi=MAX_INT4
        ),
        runtime_dependencies=_tuple(
            optional(
                fields.str_list,
                body.get("runtime_dependencies"),
                "runtime_dependencies",
                item=_runtime_dependency,
            )
        ),
        follow_fedora_branching=_flag(body, "follow_fedora_branching"),
        packit_forge_projects_allowed=_tuple(
            optional(
                fields.str_list,
                body.get("packit_forge_projects_allowed"),
                "packit_forge_projects_allowed",
                item=_forge_project,
            )
        ),
    )


def new_project(data: Any, max_text: int) -> dict[str, Any]:
    """project/add's body -> the values kopers.projects creates a project from.

    The name, the chroots and every field of `ProjectInput`, by name. Free
    text is capped at `max_text` bytes; the name's own pattern, the chroots
    on offer, the expiry's range and who may set what are the project rules'
    to check.
    """
    body = body_object(data, "the request body")
    given = project_input(body, max_text, "additional_repos")
    project: dict[str, Any] = {
        f.name: list(v) if isinstance(v := getattr(given, f.name), tuple) else v
        for f in dataclasses.fields(given)
    }
    project["name"] = fields.name(body.get("name"), "name")
    project["chroots"] = project["chroots"] or []
    project["additional_repos"] = project["additional_repos"] or []
    project["enable_net"] = bool(given.enable_net)
    return project


def project_edit(data: Any, max_text: int) -> ProjectInput:
    """project/edit's body (copr-cli modify): null or absent leaves a field as it is.

    The repository list is `repos` (python-copr's edit renames it), or
    `additional_repos`; a delete_after_days of "" (copr-cli's "empty
    disables") takes the expiry away, as -1 does.
    """
    body = dict(body_object(data, "the request body"))
    if body.get("repos") is None:
        body["repos"] = body.get("additional_repos")
    if body.get("delete_after_days") == "":
        body["delete_after_days"] = NO_EXPIRY
    return project_input(body, max_text, "repos")


@dataclass(frozen=True, slots=True)
class ChrootEdit:
    """edit-chroot's body: the chroot's repositories to set (None: leave them)."""

    additional_repos: list[str] | None


def chroot_edit(data: Any) -> ChrootEdit:
    """edit-chroot's `json` part (or JSON body).

    Only additional_repos is kept per chroot: every other field must be
    empty or at its default, and reset_fields may name only get-chroot's
    fields (resetting one that is always at its default changes nothing).
    """
    body = body_object(data, "the json part")
    for key in CHROOT_UNSUPPORTED:
        if optional(fields.str_list, body.get(key), key, item=fields.token):
            raise BadRequest(f"{key} is not supported by this server yet")
    for key in ("delete_after_days", "comps", "comps_name"):
        if body.get(key) not in (None, ""):
            raise BadRequest(f"{key} is not supported by this server yet")
    _default_only(body, ("bootstrap", "bootstrap_image", "isolation"))
    optional(fields.boolean, body.get("delete_comps"), "delete_comps")
    reset = optional(fields.str_list, body.get("reset_fields"), "reset_fields") or []
    for name in reset:
        if name not in CHROOT_FIELDS:
            raise BadRequest(
                f"reset_fields: {fields.shown(name)} is not a field of a project chroot "
                f"that can be reset; those are: {', '.join(CHROOT_FIELDS)}"
            )
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
