"""The JSON Schemas of Kopers' HTTP API: the values a request holds and every answer. Pure.

Answers are closed objects (`additionalProperties: false`) listing every
field the handlers write (kopers.api.copr_json and the handlers), so a field
added or dropped without this file fails the API fuzzer. Request bodies are
in openapi_bodies.py.

Bounds follow kopers.api.fields and what reaches Postgres: ids are bigints,
names are one line of at most 255 bytes, free text is capped by
`limits.max_text_kib`.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

MAX_BIGINT = (1 << 63) - 1
NAME_MAX = 255
MAX_TIMEOUT = 48 * 3600  # kopers.submission.MAX_TIMEOUT, repeated: this module imports nothing

BUILD_STATES = [
    "pending",
    "starting",
    "running",
    "importing",
    "waiting",
    "succeeded",
    "failed",
    "canceled",
    "skipped",
    "forked",
    "unknown",
]
PERM_STATES = ["nothing", "request", "approved"]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """A closed object: every `required` key is always there, `optional` ones may be."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
    }


def open_obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A request object: the listed keys are read, any other key is ignored."""
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    return out


# Scalars ----------------------------------------------------------------------

MAX_INT4 = (1 << 31) - 1  # projects' keep_builds and quota_mib are Postgres integers
MAX_DAYS = 36500
MAX_URL = 4096
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT}
COUNT: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_BIGINT}
STRING: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
TIMESTAMP: Schema = nullable({"type": "integer", "description": "Unix time in seconds"})
ISO_TIME: Schema = nullable({"type": "string", "format": "date-time"})
URL: Schema = {"type": "string", "format": "uri"}
STRINGS: Schema = {"type": "array", "items": STRING}
# C0 and C1 controls and DEL: refused in every name (kopers.api.fields).
_CONTROLS = "\\x00-\\x1f\\x7f-\\x9f"
# A name: owner, project, chroot, package, user, login. One line, no "/".
NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": NAME_MAX,
    "pattern": f"^[^{_CONTROLS}/]+$",
    "description": "at most 255 bytes of UTF-8, no control characters, no /",
}
# In a path segment a name also cannot hold the router's braces, nor be a dot segment.
PATH_NAME: Schema = {
    **NAME,
    "pattern": f"^[^{_CONTROLS}/{{}}]+$",
    "not": {"enum": [".", ".."]},
}
OWNER_OR_PROJECT: Schema = {
    "type": "string",
    "maxLength": 2 * NAME_MAX + 1,
    "pattern": f"^[^{_CONTROLS}/]+(/[^{_CONTROLS}/]+)?$",
    "description": "an owner (alice, @group) or a project (alice/name)",
}
PROJECT_NAME: Schema = {
    **NAME,
    "pattern": "^[A-Za-z0-9_.+-]+$",
    "not": {"enum": [".", ".."]},
    "description": "letters, digits and _.+-",
}
# A URL in a body: one token of printable text (kopers.api.fields.url).
LINK: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_URL, "format": "uri"}
HTTP_URL: Schema = {
    **LINK,
    "pattern": "^https?://",
    "description": "an http or https URL with a host",
}
_TRUE_FALSE = ["True", "False", "true", "false", "1", "0", "yes", "no", "on", "off"]
COPR_BOOL: Schema = {
    "type": "string",
    "enum": _TRUE_FALSE,
    "description": "python-copr sends Python's True and False; the others are taken too",
}
# JSON flags: true/false, or the text forms copr-cli's options take; null: not given.
FLAG: Schema = {
    "anyOf": [{"type": "boolean"}, {"type": "string", "enum": _TRUE_FALSE}, {"type": "null"}]
}


def text(max_bytes: int, lines: bool = True) -> Schema:
    """Free text of at most `max_bytes` of UTF-8; line breaks and tabs only if `lines`."""
    controls = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f" if lines else _CONTROLS
    return {"type": "string", "maxLength": max_bytes, "pattern": f"^[^{controls}]*$"}


def number_or_digits(minimum: int, maximum: int) -> Schema:
    """A whole number; copr-cli sends several as strings of digits. null or "": not given."""
    return {
        "anyOf": [
            {"type": "integer", "minimum": minimum, "maximum": maximum},
            {"type": "string", "pattern": "^[0-9]{1,19}$", "description": f"{minimum}..{maximum}"},
            {"type": "string", "enum": [""]},
            {"type": "null"},
        ]
    }


def name_list(item: Schema) -> Schema:
    """A list, or copr-cli's space-separated string of the same items; null: not given."""
    return nullable({"anyOf": [{"type": "array", "items": item}, {"type": "string"}]})


def page_of(item: str, order: str = "id") -> Schema:
    return obj(
        {
            "items": {"type": "array", "items": ref(item)},
            "meta": obj(
                {
                    "limit": nullable(COUNT),
                    "offset": COUNT,
                    "order": {"type": "string", "enum": [order]},
                    "order_type": {"type": "string", "enum": ["ASC", "DESC"]},
                }
            ),
        }
    )


# Response objects ---------------------------------------------------------------

PROJECT = obj(
    {
        "id": ID,
        "name": STRING,
        "ownername": STRING,
        "full_name": STRING,
        "description": nullable(STRING),
        "instructions": nullable(STRING),
        "homepage": nullable(STRING),
        "contact": nullable(STRING),
        "devel_mode": {"const": False},
        "persistent": BOOL,
        "unlisted_on_hp": BOOL,
        "auto_prune": BOOL,
        "enable_net": BOOL,
        "bootstrap": {"const": "default"},
        "isolation": {"const": "default"},
        "module_hotfixes": BOOL,
        "appstream": {"const": False},
        "packit_forge_projects_allowed": STRINGS,
        "follow_fedora_branching": BOOL,
        "repo_priority": nullable({"type": "integer", "minimum": 1, "maximum": MAX_INT4}),
        "runtime_dependencies": {
            "type": "array",
            "items": STRING,
            "description": "repositories enabled with this one: URLs or copr://owner/project",
        },
        "chroot_repos": {"type": "object", "additionalProperties": URL},
        "additional_repos": STRINGS,
        "storage": {"const": "backend"},
    }
)

_BUILD_FIELDS: dict[str, Schema] = {
    "id": ID,
    "state": {"type": "string", "enum": BUILD_STATES},
    "ownername": STRING,
    "projectname": STRING,
    "project_dirname": STRING,
    "repo_url": URL,
    "source_package": obj(
        {"name": nullable(STRING), "version": nullable(STRING), "url": nullable(STRING)}
    ),
    "submitted_on": TIMESTAMP,
    "started_on": TIMESTAMP,
    "ended_on": TIMESTAMP,
    "submitter": nullable(STRING),
    "chroots": STRINGS,
    "is_background": BOOL,
}
BUILD = obj(_BUILD_FIELDS)
SECONDS: Schema = {"type": "number", "minimum": 0}
# One timed step of a task's run; "builder" steps are timed between the builder's own lines.
TASK_STEP = obj(
    {
        "name": STRING,
        "seconds": SECONDS,
        "source": {"type": "string", "enum": ["kopers", "builder"]},
        "offset": SECONDS,
    }
)
REBUILD = obj(
    {
        "generation": COUNT,
        "trigger": obj({"build": nullable(ID), "package": STRING}),
        "source_build": ID,
        "chain": {"type": "array", "items": ID},
        "because": {
            "type": "array",
            "items": obj({"package": STRING, "chroot": STRING, "provides": STRINGS}),
        },
        "broken_cycles": {"type": "array", "items": STRINGS},
    }
)
BUILD_DETAIL = obj(
    {
        **_BUILD_FIELDS,
        "tasks": {
            "type": "array",
            "items": obj(
                {
                    "chroot": STRING,
                    "state": {"type": "string", "enum": BUILD_STATES},
                    "reason": nullable(STRING),
                    "attempts": COUNT,
                    "started_on": ISO_TIME,
                    "ended_on": ISO_TIME,
                    "steps": {"type": "array", "items": TASK_STEP},
                }
            ),
        },
        "rebuild": nullable(REBUILD),
    }
)
BUILD_CHROOT = obj(
    {
        "name": STRING,
        "state": {"type": "string", "enum": BUILD_STATES},
        "started_on": TIMESTAMP,
        "ended_on": TIMESTAMP,
        "result_url": nullable(URL),
        "reason": nullable(STRING),
        "attempts": COUNT,
    }
)
NEVRA = obj(
    {
        "name": STRING,
        "epoch": nullable({"type": "integer", "minimum": 0}),
        "version": STRING,
        "release": STRING,
        "arch": STRING,
    }
)
PACKAGE = obj(
    {
        "id": ID,
        "name": STRING,
        "ownername": STRING,
        "projectname": STRING,
        "source_type": {
            "type": "string",
            "enum": ["unset", "scm", "pypi", "rubygems", "custom", "distgit", "upload", "link"],
        },
        "source_dict": {"type": "object", "description": "the definition; {} when unset"},
        "auto_rebuild": BOOL,
        "webhook_rebuild": BOOL,
        "max_builds": nullable({"type": "integer", "minimum": 1, "maximum": 100}),
        "timeout": nullable({"type": "integer", "minimum": 60, "maximum": MAX_TIMEOUT}),
        "chroot_denylist": STRINGS,
        "builds": obj(
            {"latest": nullable(ref("Build")), "latest_succeeded": nullable(ref("Build"))}
        ),
    }
)
PROJECT_CHROOT = obj(
    {
        "mock_chroot": STRING,
        "ownername": STRING,
        "projectname": STRING,
        "comps_name": nullable(STRING),
        "additional_repos": STRINGS,
        "additional_packages": STRINGS,
        "additional_modules": STRINGS,
        "with_opts": STRINGS,
        "without_opts": STRINGS,
        "delete_after_days": nullable({"type": "integer"}),
        "isolation": STRING,
    }
)
BUILD_CONFIG = obj(
    {
        "chroot": STRING,
        "repos": {
            "type": "array",
            "items": obj(
                {
                    "id": STRING,
                    "name": STRING,
                    "baseurl": URL,
                    "priority": nullable({"type": "integer"}),
                    "module_hotfixes": BOOL,
                    "repo_gpgcheck": BOOL,
                }
            ),
        },
        "additional_repos": STRINGS,
        "additional_packages": STRINGS,
        "additional_modules": STRINGS,
        "with_opts": STRINGS,
        "without_opts": STRINGS,
        "enable_net": BOOL,
        "isolation": STRING,
    }
)
PERM_STATE: Schema = {"type": "string", "enum": PERM_STATES}
PERMISSIONS = obj(
    {
        "permissions": {
            "type": "object",
            "additionalProperties": obj({"admin": PERM_STATE, "builder": PERM_STATE}),
        }
    }
)
EVENT = obj(
    {
        "id": ID,
        "at": {"type": "string", "format": "date-time"},
        "user": nullable(STRING),
        "address": nullable(STRING),
        "action": STRING,
        "object": STRING,
        "details": {"type": "object"},
    },
    {"buildroot_url": URL},
)
STATUS = obj(
    {
        "version": STRING,
        "public_url": URL,
        "chroots": STRINGS,
        "vm": {
            "type": "object",
            "required": ["enabled", "slots", "booting", "warm", "busy", "waiting", "vms"],
            "properties": {
                "enabled": BOOL,
                "domain_type": nullable({"type": "string", "enum": ["kvm", "qemu"]}),
                "domain_type_reason": STRING,
                "slots": COUNT,
                "booting": COUNT,
                "warm": COUNT,
                "busy": COUNT,
                "waiting": COUNT,
                "hosts": {"type": "array", "items": {"type": "object"}},
                "templates": {"type": "object", "additionalProperties": {"type": "object"}},
                "vms": {"type": "array", "items": {"type": "object"}},
            },
        },
        "scheduler": obj({"queued": COUNT, "running": STRINGS}),
    }
)
PROJECT_SETTINGS = obj(
    {
        "full_name": STRING,
        "keep_builds": nullable({"type": "integer", "minimum": 1, "maximum": MAX_INT4}),
        "quota_mib": nullable({"type": "integer", "minimum": 1, "maximum": MAX_INT4}),
        "delete_after": ISO_TIME,
        "build_timeout": nullable({"type": "integer", "minimum": 60, "maximum": MAX_TIMEOUT}),
        "rebuild_dependents": BOOL,
        "storage_bytes": COUNT,
    },
    {"webhook_secret": {"type": "string", "format": "uuid", "description": "for editors only"}},
)
ERROR = obj(
    {
        "output": {"type": "string", "enum": ["notok"]},
        "error": {"type": "string", "description": "one line naming what was wrong"},
    }
)


def response_schemas() -> dict[str, Schema]:
    """Every answer's object, by name."""
    builds = {"type": "array", "items": ref("Build")}
    return {
        "Error": ERROR,
        "Version": obj({"version": {"const": 3}}),
        "Whoami": obj({"id": ID, "name": STRING}),
        "MockChroots": {"type": "object", "additionalProperties": STRING},
        "CheckResult": obj({"message": STRING}),
        "UrlBuilds": obj({"items": builds, "meta": {"type": "object", "maxProperties": 0}}),
        "Builds": obj({"builds": builds}),
        "DeletedBuilds": obj({"builds": {"type": "array", "items": ID}}),
        "BuiltPackages": {
            "type": "object",
            "additionalProperties": obj({"packages": {"type": "array", "items": ref("Nevra")}}),
            "description": "chroot -> the packages built there",
        },
        "PermissionsSetResult": obj({"updated": STRINGS}),
        "PermissionsRequestResult": obj({"updated": BOOL}),
        "EventList": obj(
            {
                "items": {"type": "array", "items": ref("Event")},
                "meta": obj(
                    {
                        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                        "project": nullable(STRING),
                        "user": nullable(STRING),
                    }
                ),
            }
        ),
        "TokenRevoked": obj({"login": STRING, "revoked": {"const": True}}),
        "Buildroot": obj(
            {
                "build_id": ID,
                "chroots": {"type": "object", "additionalProperties": STRINGS},
            }
        ),
        "Project": PROJECT,
        "ProjectList": page_of("Project"),
        "Build": BUILD,
        "BuildList": page_of("Build"),
        "BuildDetail": BUILD_DETAIL,
        "BuildChroot": BUILD_CHROOT,
        "BuildChrootList": page_of("BuildChroot", order="name"),
        "Nevra": NEVRA,
        "Package": PACKAGE,
        "PackageList": page_of("Package", order="name"),
        "ProjectChroot": PROJECT_CHROOT,
        "BuildConfig": BUILD_CONFIG,
        "Permissions": PERMISSIONS,
        "Event": EVENT,
        "Status": STATUS,
        "ProjectSettings": PROJECT_SETTINGS,
    }
