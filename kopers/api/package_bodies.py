"""The JSON bodies of Copr's package calls, parsed into typed values. Pure.

`package/add` and `package/edit` carry the package's source definition as
flat keys beside its settings (`max_builds`, `timeout`, `chroot_denylist`,
`webhook_rebuild`), the way copr-cli and python-copr send them: copr-cli
names the custom method's keys `script_chroot`, `script_builddeps`, ...,
python-copr's documentation names them `chroot`, `builddeps`, ...; both are
taken. null (or a missing key) means "not given": on add the default, on
edit "leave it as it is". Every value is checked here by the parsers of
`kopers.api.fields` and the rules git clones follow (kopers.worker.scm);
a bad one is a BadRequest naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kopers.api import fields
from kopers.api.fields import body_object, optional
from kopers.errors import BadRequest
from kopers.models import (
    CustomPackageSource,
    DistGitPackageSource,
    PackageSource,
    PackageSourceType,
    PypiPackageSource,
    RubyGemsPackageSource,
    ScmPackageSource,
    ScmType,
    SpecGenerator,
    SrpmBuildMethod,
)
from kopers.publish.layout import MAX_NAME_LENGTH, validate_chroot
from kopers.submission import MAX_TIMEOUT
from kopers.worker.scm import check_clone_url, check_committish, relative

# The source types a client may define a package with (upload and link come
# only from builds).
DEFINABLE = (
    PackageSourceType.SCM,
    PackageSourceType.PYPI,
    PackageSourceType.RUBYGEMS,
    PackageSourceType.CUSTOM,
    PackageSourceType.DISTGIT,
)
MAX_BUILDS = 100  # Copr's bound
MIN_TIMEOUT = 60
SPEC_TEMPLATES = ("", "fedora", "epel7", "mageia", "pld")
PYTHON_VERSIONS = ("2", "3")

# An RPM package name, as result directories take it (kopers.publish.layout).
_PACKAGE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*")
_PYPI_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*")
_GEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NAMESPACE = re.compile(r"[A-Za-z0-9@_+][A-Za-z0-9@_.+/-]*")
_CHROOT_PATTERN = re.compile(r"[A-Za-z0-9*?.+_\[\]-]+")

# Body keys that are no part of the source definition.
NOT_SOURCE = frozenset(
    {
        "package_name",
        "ownername",
        "projectname",
        "webhook_rebuild",
        "max_builds",
        "timeout",
        "chroot_denylist",
    }
)
# Other names clients use for the same keys -> the name stored.
_ALIASES = {
    "script_chroot": "chroot",
    "script_builddeps": "builddeps",
    "script_resultdir": "resultdir",
    "script_repos": "repos",
    "srpm_build_method": "source_build_method",
    "type": "scm_type",
}


@dataclass(frozen=True, slots=True)
class PackageOptions:
    """A package's settings as a body gave them; None: not given.

    `max_builds` and `timeout` of 0 mean "none" (keep every build, the
    project's timeout), as in Copr; `chroot_denylist` [] clears the list.
    """

    webhook_rebuild: bool | None = None
    max_builds: int | None = None
    timeout: int | None = None
    chroot_denylist: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PackageRef:
    """Which package a reset, delete or build call names."""

    owner: str
    project: str
    name: str


def package_name(value: Any, field: str = "package_name") -> str:
    """An RPM package name: letters, digits and _.+-, not starting with . or -."""
    name = fields.name(value, field)
    if len(name) > MAX_NAME_LENGTH or ".." in name or not _PACKAGE.fullmatch(name):
        raise BadRequest(
            f"{field} is not a valid package name: {fields.shown(name)}"
            " (letters, digits and _.+-, not starting with . or -)"
        )
    return name


def source_type(value: Any, field: str = "source_type_text") -> PackageSourceType:
    """The source type of an add or edit path: scm, pypi, rubygems, custom or distgit."""
    return PackageSourceType(fields.choice(value, field, [str(t) for t in DEFINABLE]))


def check_body_name(data: Mapping[str, Any], name: str) -> None:
    """python-copr repeats the path's package name in the body: it must be the same."""
    given = data.get("package_name")
    if given is not None and given != "" and package_name(given) != name:
        raise BadRequest("package_name in the body is not the package named in the path")


def package_options(data: Mapping[str, Any]) -> PackageOptions:
    """The settings every source type has."""
    denylist = data.get("chroot_denylist")
    return PackageOptions(
        webhook_rebuild=optional(fields.boolean, data.get("webhook_rebuild"), "webhook_rebuild"),
        max_builds=optional(
            fields.integer, data.get("max_builds"), "max_builds", lo=0, hi=MAX_BUILDS
        ),
        timeout=optional(_timeout, data.get("timeout"), "timeout"),
        chroot_denylist=None if denylist is None else _denylist(denylist),
    )


def given_source_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The body's source keys that carry a value, under their stored names."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None or key in NOT_SOURCE:
            continue
        stored = _ALIASES.get(key, key)
        if stored in out and key != stored:
            continue  # the stored name given as well wins over its alias
        out[stored] = value
    return out


def parse_source(kind: PackageSourceType, data: Mapping[str, Any], max_text: int) -> PackageSource:
    """The definition of a `kind` package from its (merged) source keys."""
    parse = _PARSERS.get(kind)
    if parse is None:
        raise BadRequest(f"a package cannot be defined with source type {kind}")
    return parse(data, max_text)


def package_ref(data: Any) -> PackageRef:
    """reset, delete and build bodies: `ownername`, `projectname`, `package_name`."""
    body = body_object(data, "the request body")
    return PackageRef(
        owner=fields.name(body.get("ownername"), "ownername"),
        project=fields.name(body.get("projectname"), "projectname"),
        name=package_name(body.get("package_name")),
    )


# -- one parser per source type ------------------------------------------------


def _scm(data: Mapping[str, Any], _max_text: int) -> ScmPackageSource:
    clone_url = check_clone_url(fields.url(data.get("clone_url"), "clone_url"))
    committish = optional(fields.token, data.get("committish"), "committish") or ""
    check_committish(committish)
    subdirectory = optional(_path, data.get("subdirectory"), "subdirectory") or ""
    spec = optional(_path, data.get("spec"), "spec") or ""
    scm_type = optional(fields.choice, data.get("scm_type"), "scm_type", [str(t) for t in ScmType])
    method = optional(
        fields.choice,
        data.get("source_build_method"),
        "source_build_method",
        [str(m) for m in SrpmBuildMethod],
    )
    return ScmPackageSource(
        clone_url=clone_url,
        committish=committish,
        subdirectory=subdirectory,
        spec=spec,
        scm_type=ScmType(scm_type or ScmType.GIT),
        source_build_method=SrpmBuildMethod(method or SrpmBuildMethod.RPKG),
    )


def _pypi(data: Mapping[str, Any], _max_text: int) -> PypiPackageSource:
    name = _word(data.get("pypi_package_name"), "pypi_package_name", _PYPI_NAME)
    version = optional(_word, data.get("pypi_package_version"), "pypi_package_version", _VERSION)
    generator = optional(
        fields.choice, data.get("spec_generator"), "spec_generator", [str(g) for g in SpecGenerator]
    )
    template = data.get("spec_template")
    versions = data.get("python_versions")
    return PypiPackageSource(
        pypi_package_name=name,
        pypi_package_version=version,
        spec_generator=SpecGenerator(generator or SpecGenerator.PYP2SPEC),
        spec_template=""
        if template is None
        else fields.choice(template, "spec_template", SPEC_TEMPLATES),
        python_versions=("3",) if versions is None else _python_versions(versions),
    )


def _rubygems(data: Mapping[str, Any], _max_text: int) -> RubyGemsPackageSource:
    return RubyGemsPackageSource(gem_name=_word(data.get("gem_name"), "gem_name", _GEM))


def _custom(data: Mapping[str, Any], max_text: int) -> CustomPackageSource:
    script = fields.text(data.get("script"), "script", max_text)
    if not script.strip():
        raise BadRequest("script must not be empty")
    # A script pasted from a browser has CRLF line ends, which break its shebang.
    script = script.replace("\r\n", "\n")
    if not script.endswith("\n"):
        script += "\n"
    return CustomPackageSource(
        script=script,
        chroot=optional(_chroot, data.get("chroot"), "chroot"),
        builddeps=tuple(
            optional(fields.str_list, data.get("builddeps"), "builddeps", item=fields.token) or ()
        ),
        resultdir=optional(_relative, data.get("resultdir"), "resultdir"),
        repos=tuple(optional(fields.str_list, data.get("repos"), "repos", item=fields.url) or ()),
    )


def _distgit(data: Mapping[str, Any], _max_text: int) -> DistGitPackageSource:
    namespace = optional(_word, data.get("namespace"), "namespace", _NAMESPACE)
    if namespace is not None and ".." in namespace:
        raise BadRequest("namespace must not contain '..'")
    committish = optional(fields.token, data.get("committish"), "committish")
    if committish is not None:
        check_committish(committish)
    return DistGitPackageSource(
        distgit=optional(_word, data.get("distgit"), "distgit", _INSTANCE),
        namespace=namespace,
        committish=committish,
    )


_PARSERS: dict[PackageSourceType, Callable[[Mapping[str, Any], int], PackageSource]] = {
    PackageSourceType.SCM: _scm,
    PackageSourceType.PYPI: _pypi,
    PackageSourceType.RUBYGEMS: _rubygems,
    PackageSourceType.CUSTOM: _custom,
    PackageSourceType.DISTGIT: _distgit,
}


# -- single values -------------------------------------------------------------


def _word(value: Any, field: str, pattern: re.Pattern[str]) -> str:
    word = fields.name(value, field)
    if not pattern.fullmatch(word):
        raise BadRequest(f"{field} is not a valid name: {fields.shown(word)}")
    return word


def _path(value: Any, field: str) -> str:
    """A relative path in a repository: one line, inside it."""
    path = fields.line(value, field, fields.MAX_URL_BYTES)
    relative(path, field)
    return path


def _relative(value: Any, field: str) -> str:
    return _path(value, field)


def _chroot(value: Any, field: str) -> str:
    chroot = fields.name(value, field)
    try:
        return validate_chroot(chroot)
    except BadRequest:
        raise BadRequest(f"{field} is not a chroot name: {fields.shown(chroot)}") from None


def _timeout(value: Any, field: str) -> int:
    seconds = fields.integer(value, field, lo=0, hi=MAX_TIMEOUT)
    if 0 < seconds < MIN_TIMEOUT:
        raise BadRequest(f"{field} must be 0 (the project's) or {MIN_TIMEOUT} to {MAX_TIMEOUT}")
    return seconds


def _denylist(value: Any) -> tuple[str, ...]:
    """copr-cli's comma-separated patterns, or a list of them."""
    field = "chroot_denylist"
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise BadRequest(f"{field} must be a comma-separated string or a list of patterns")
    out = []
    for i, item in enumerate(items):
        pattern = fields.name(item, f"{field}[{i}]")
        if not _CHROOT_PATTERN.fullmatch(pattern):
            raise BadRequest(f"{field}[{i}] is not a chroot pattern: {fields.shown(pattern)}")
        out.append(pattern)
    return tuple(dict.fromkeys(out))


def _python_versions(value: Any) -> tuple[str, ...]:
    field = "python_versions"
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise BadRequest(f"{field} must be a non-empty list of 2 and 3")
    out = []
    for i, item in enumerate(items):
        text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        out.append(fields.choice(text, f"{field}[{i}]", PYTHON_VERSIONS))
    return tuple(dict.fromkeys(out))
