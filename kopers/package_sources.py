"""A package's source definition <-> Copr's `source_dict` JSON. Pure.

The store keeps a package's source as JSON in the shape Copr's API shows it
(`source_dict`), written from the typed `kopers.models` source dataclasses
and read back into them. A package made from a build (upload, URL, git) gets
that build's source JSON, whose keys differ a little (an upload's `filename`
is Copr's `pkg`): reading is lenient and fills defaults, so a row is always
readable; what a client sends is checked field by field in
kopers.api.package_bodies before it gets here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kopers.models import (
    CustomPackageSource,
    DistGitPackageSource,
    LinkPackageSource,
    PackageSource,
    PackageSourceType,
    PypiPackageSource,
    RubyGemsPackageSource,
    ScmPackageSource,
    ScmType,
    SpecGenerator,
    SrpmBuildMethod,
    UploadPackageSource,
)


def source_type_of(source: PackageSource | None) -> PackageSourceType:
    """The source type a definition belongs to; UNSET for none."""
    match source:
        case None:
            return PackageSourceType.UNSET
        case ScmPackageSource():
            return PackageSourceType.SCM
        case PypiPackageSource():
            return PackageSourceType.PYPI
        case RubyGemsPackageSource():
            return PackageSourceType.RUBYGEMS
        case CustomPackageSource():
            return PackageSourceType.CUSTOM
        case DistGitPackageSource():
            return PackageSourceType.DISTGIT
        case UploadPackageSource():
            return PackageSourceType.UPLOAD
        case LinkPackageSource():
            return PackageSourceType.LINK


def source_json(source: PackageSource | None) -> dict[str, Any]:
    """Copr's `source_dict` of a definition ({} for none)."""
    match source:
        case None:
            return {}
        case ScmPackageSource():
            return {
                "clone_url": source.clone_url,
                "committish": source.committish,
                "subdirectory": source.subdirectory,
                "spec": source.spec,
                # Copr shows the SCM type as `type`; clients send `scm_type`.
                "type": str(source.scm_type),
                "scm_type": str(source.scm_type),
                "source_build_method": str(source.source_build_method),
            }
        case PypiPackageSource():
            return {
                "pypi_package_name": source.pypi_package_name,
                "pypi_package_version": source.pypi_package_version,
                "spec_generator": str(source.spec_generator),
                "spec_template": source.spec_template,
                "python_versions": list(source.python_versions),
            }
        case RubyGemsPackageSource():
            return {"gem_name": source.gem_name}
        case CustomPackageSource():
            return {
                "script": source.script,
                "chroot": source.chroot,
                "builddeps": list(source.builddeps),
                "resultdir": source.resultdir,
                "repos": list(source.repos),
            }
        case DistGitPackageSource():
            return {
                "distgit": source.distgit,
                "namespace": source.namespace,
                "committish": source.committish,
            }
        case UploadPackageSource():
            return {"pkg": source.pkg}
        case LinkPackageSource():
            return {"url": source.url}


def source_from_json(kind: PackageSourceType, data: Mapping[str, Any]) -> PackageSource | None:
    """The typed definition of a stored `source_dict` (None for UNSET)."""
    text = _Reader(data)
    match kind:
        case PackageSourceType.UNSET:
            return None
        case PackageSourceType.SCM:
            return ScmPackageSource(
                clone_url=text.text("clone_url"),
                committish=text.text("committish"),
                subdirectory=text.text("subdirectory"),
                spec=text.text("spec"),
                scm_type=ScmType(text.text("scm_type") or text.text("type") or "git"),
                source_build_method=SrpmBuildMethod(
                    text.text("source_build_method") or text.text("srpm_build_method") or "rpkg"
                ),
            )
        case PackageSourceType.PYPI:
            return PypiPackageSource(
                pypi_package_name=text.text("pypi_package_name"),
                pypi_package_version=text.opt("pypi_package_version"),
                spec_generator=SpecGenerator(text.text("spec_generator") or "pyp2spec"),
                spec_template=text.text("spec_template"),
                python_versions=text.strings("python_versions") or ("3",),
            )
        case PackageSourceType.RUBYGEMS:
            return RubyGemsPackageSource(gem_name=text.text("gem_name"))
        case PackageSourceType.CUSTOM:
            return CustomPackageSource(
                script=text.text("script"),
                chroot=text.opt("chroot"),
                builddeps=text.strings("builddeps"),
                resultdir=text.opt("resultdir"),
                repos=text.strings("repos"),
            )
        case PackageSourceType.DISTGIT:
            return DistGitPackageSource(
                distgit=text.opt("distgit"),
                namespace=text.opt("namespace"),
                committish=text.opt("committish"),
            )
        case PackageSourceType.UPLOAD:
            return UploadPackageSource(pkg=text.opt("pkg") or text.opt("filename"))
        case PackageSourceType.LINK:
            return LinkPackageSource(url=text.text("url"))


class _Reader:
    """Lenient reads of a stored JSON object: a missing or odd value is a default."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data if isinstance(data, Mapping) else {}

    def opt(self, key: str) -> str | None:
        value = self.data.get(key)
        return str(value) if value is not None and value != "" else None

    def text(self, key: str) -> str:
        return self.opt(key) or ""

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if isinstance(value, str):
            return tuple(value.split())
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        return ()
