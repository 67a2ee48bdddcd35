"""The JSON Schemas of request bodies: what the handlers read from a body. Pure.

They follow kopers.api.bodies and kopers.api.fields: Copr's clients send
numbers as strings, lists as space-separated strings and null for "not
given", and many keys Kopers ignores, so bodies stay open objects.
"""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_schemas import (
    BOOL,
    COUNT,
    FLAG,
    HTTP_URL,
    ID,
    LINK,
    MAX_BIGINT,
    MAX_DAYS,
    MAX_INT4,
    MAX_TIMEOUT,
    MAX_URL,
    NAME,
    PERM_STATE,
    PROJECT_NAME,
    STRING,
    Schema,
    name_list,
    nullable,
    number_or_digits,
    open_obj,
    text,
)

_BUILD_OPTION_FIELDS: dict[str, Schema] = {
    "ownername": NAME,
    "projectname": NAME,
    "project_dirname": nullable(STRING),
    "chroots": {**name_list(NAME), "description": "names or patterns; null: every chroot"},
    "exclude_chroots": name_list(NAME),
    "timeout": number_or_digits(1, MAX_TIMEOUT),
    "background": FLAG,
    "after_build_id": number_or_digits(1, MAX_BIGINT),
    "with_build_id": number_or_digits(1, MAX_BIGINT),
}


def build_option_fields() -> dict[str, Schema]:
    """Copr's build options, for the bodies of other modules' operations."""
    return dict(_BUILD_OPTION_FIELDS)


_EMPTY_LIST: Schema = {
    "anyOf": [{"type": "array", "maxItems": 0}, {"type": "string", "enum": [""]}, {"type": "null"}],
    "description": "not kept by Kopers yet: refused unless empty",
}


def _examples(chroot: str) -> dict[str, Any]:
    """One whole body of each kind, as Copr's clients send it: the page shows them."""
    where = {"ownername": "alice", "projectname": "demo"}
    options = {**where, "chroots": None, "timeout": "3600", "background": False}
    return {
        "ProjectCreate": {
            "name": "demo",
            "chroots": [chroot],
            "description": "A demo project",
            "additional_repos": [],
            "enable_net": False,
            "delete_after_days": "30",
        },
        "BuildOptions": options,
        "UrlBuild": {**options, "pkgs": ["https://example.org/hello-2.12-1.src.rpm"]},
        "ScmBuild": {**options, "clone_url": "https://example.org/hello.git", "scm_type": "git"},
        "ChrootEdit": {"additional_repos": "https://example.org/repo/", "reset_fields": None},
        "PermissionsSet": {"bob": {"builder": "approved", "admin": "nothing"}},
        "PermissionsRequest": {"builder": True, "admin": False},
        "BuildIds": {"builds": [1]},
        "Chain": {
            "chroots": None,
            "builds": [
                {"url": "https://example.org/a-1-1.src.rpm"},
                {"url": "https://example.org/b-1-1.src.rpm", "after": [0]},
            ],
        },
        "ProjectSettingsUpdate": {"keep_builds": 5, "quota_mib": 1024, "build_timeout": 7200},
    }


def request_schemas(chroots: list[str], max_text_bytes: int) -> dict[str, Schema]:
    """Request bodies, each with an example; chroot names are the ones this server offers."""
    examples = _examples(chroots[0] if chroots else "fedora-40-x86_64")
    return {
        name: {**schema, "examples": [examples[name]]}
        for name, schema in _schemas(chroots, max_text_bytes).items()
    }


def _schemas(chroots: list[str], max_text_bytes: int) -> dict[str, Schema]:
    chroot: Schema = {"type": "string", "enum": chroots} if chroots else NAME
    free = nullable(text(max_text_bytes))
    return {
        "ProjectCreate": open_obj(
            {
                "name": PROJECT_NAME,
                "chroots": {**name_list(chroot), "description": "at least one"},
                "description": free,
                "instructions": free,
                "homepage": free,
                "contact": free,
                "additional_repos": name_list(LINK),
                "enable_net": FLAG,
                "delete_after_days": number_or_digits(1, MAX_DAYS),
            },
            ("name", "chroots"),
        ),
        "BuildOptions": open_obj(_BUILD_OPTION_FIELDS, ("ownername", "projectname")),
        "UrlBuild": open_obj(
            {**_BUILD_OPTION_FIELDS, "pkgs": name_list(HTTP_URL)},
            ("ownername", "projectname", "pkgs"),
        ),
        "ScmBuild": open_obj(
            {
                **_BUILD_OPTION_FIELDS,
                "clone_url": LINK,
                "committish": nullable(text(MAX_URL, lines=False)),
                "subdirectory": nullable(text(MAX_URL, lines=False)),
                "spec": nullable(text(MAX_URL, lines=False)),
                "scm_type": nullable({"type": "string", "enum": ["git"]}),
                "source_build_method": nullable({"type": "string", "enum": ["rpkg", "make_srpm"]}),
            },
            ("ownername", "projectname", "clone_url"),
        ),
        "ChrootEdit": open_obj(
            {
                "additional_repos": name_list(LINK),
                "additional_packages": _EMPTY_LIST,
                "additional_modules": _EMPTY_LIST,
                "with_opts": _EMPTY_LIST,
                "without_opts": _EMPTY_LIST,
                "delete_comps": FLAG,
                "reset_fields": nullable({"type": "array", "items": NAME}),
            }
        ),
        "PermissionsSet": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": NAME,
            "additionalProperties": {
                "type": "object",
                "minProperties": 1,
                "properties": {"admin": PERM_STATE, "builder": PERM_STATE},
                "additionalProperties": False,
            },
            "description": "user name -> the roles to give",
        },
        "PermissionsRequest": {
            "type": "object",
            "minProperties": 1,
            "properties": {"admin": BOOL, "builder": BOOL},
            "additionalProperties": False,
            "description": "true: ask for the role; false: give it up",
        },
        "BuildIds": open_obj(
            {"builds": {"type": "array", "minItems": 1, "items": ID}}, ("builds",)
        ),
        "Chain": open_obj(
            {
                **{k: v for k, v in _BUILD_OPTION_FIELDS.items() if "name" not in k},
                "builds": {
                    "type": "array",
                    "minItems": 1,
                    "items": open_obj(
                        {"url": HTTP_URL, "after": {"type": "array", "items": COUNT}}, ("url",)
                    ),
                },
            },
            ("builds",),
        ),
        "ProjectSettingsUpdate": open_obj(
            {
                "keep_builds": number_or_digits(1, MAX_INT4),
                "quota_mib": number_or_digits(1, MAX_INT4),
                "delete_after_days": number_or_digits(1, MAX_DAYS),
                "build_timeout": number_or_digits(60, MAX_TIMEOUT),
                "rebuild_dependents": FLAG,
            }
        ),
    }
