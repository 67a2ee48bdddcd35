"""The request bodies of a project's create, modify and edit-chroot calls, and the webhook answer.

They follow kopers.api.bodies: every option copr-cli and python-copr send,
with the values this server takes. An option it can honour only at its
default (multilib, appstream, mock's bootstrap and isolation, pulp storage)
lists that default alone. Pure.
"""

from __future__ import annotations

from kopers.api.openapi_schemas import (
    FLAG,
    ID,
    LINK,
    MAX_DAYS,
    MAX_INT4,
    NAME,
    PROJECT_NAME,
    STRING,
    Schema,
    name_list,
    nullable,
    number_or_digits,
    obj,
    open_obj,
    text,
)

# A flag this server honours only when off (multilib, appstream, ...): true is refused.
_OFF: Schema = {
    "anyOf": [
        {"const": False},
        {"type": "string", "enum": ["False", "false", "0", "no", "off"]},
        {"type": "null"},
    ],
    "description": "only off: this server cannot honour it",
}


def _only(*values: str) -> Schema:
    """A mock or storage option this server takes only at its default (null: not given)."""
    return {
        "anyOf": [{"type": "string", "enum": [*values, ""]}, {"type": "null"}],
        "description": "only the default: builds run rpmbuild in a contained VM, not mock",
    }


def _project_fields(chroot: Schema, max_text_bytes: int) -> dict[str, Schema]:
    """What create and modify both send (modify names the repository list `repos`)."""
    free = nullable(text(max_text_bytes))
    days = number_or_digits(1, MAX_DAYS)
    return {
        "chroots": nullable(
            {"anyOf": [{"type": "array", "minItems": 1, "items": chroot}, {"type": "string"}]}
        ),
        "description": free,
        "instructions": free,
        "homepage": free,
        "contact": free,
        "enable_net": FLAG,
        "delete_after_days": {
            "anyOf": [*days["anyOf"], {"const": -1}, {"const": "-1"}],
            "description": f"1..{MAX_DAYS} days; -1: no expiry",
        },
        "unlisted_on_hp": FLAG,
        "auto_prune": {**FLAG, "description": "off: only by a server admin"},
        "module_hotfixes": FLAG,
        "follow_fedora_branching": FLAG,
        "repo_priority": number_or_digits(1, MAX_INT4),
        "runtime_dependencies": name_list({**LINK, "pattern": "^(https?|copr)://"}),
        "packit_forge_projects_allowed": name_list(
            {"type": "string", "minLength": 1, "pattern": "^\\S+$"}
        ),
        "bootstrap": _only("default", "unchanged", "untouched"),
        "bootstrap_image": _only(),
        "isolation": _only("default", "unchanged"),
        "devel_mode": _OFF,
        "multilib": _OFF,
        "fedora_review": _OFF,
        "appstream": _OFF,
    }


def project_schemas(chroots: list[str], max_text_bytes: int) -> dict[str, Schema]:
    """The bodies of create, modify and edit-chroot, each with an example."""
    chroot: Schema = {"type": "string", "enum": chroots} if chroots else NAME
    example_chroot = chroots[0] if chroots else "fedora-40-x86_64"
    both = _project_fields(chroot, max_text_bytes)
    add = open_obj(
        {
            **both,
            "name": PROJECT_NAME,
            "additional_repos": name_list(LINK),
            "persistent": {**FLAG, "description": "on: only by a server admin"},
            "storage": {
                "anyOf": [{"type": "string", "enum": ["backend", ""]}, {"type": "null"}],
                "description": "only backend: results are kept on this server's disk",
            },
        },
        ("name", "chroots"),
    )
    edit = open_obj({**both, "repos": name_list(LINK), "additional_repos": name_list(LINK)})
    chroot_edit = open_obj(
        {
            "additional_repos": name_list(LINK),
            **{
                key: {
                    "anyOf": [
                        {"type": "array", "maxItems": 0},
                        {"type": "string", "enum": [""]},
                        {"type": "null"},
                    ],
                    "description": "not kept by Kopers yet: refused unless empty",
                }
                for key in (
                    "additional_packages",
                    "additional_modules",
                    "with_opts",
                    "without_opts",
                )
            },
            "delete_comps": FLAG,
            "bootstrap": _only("default", "unchanged", "untouched"),
            "bootstrap_image": _only(),
            "isolation": _only("default", "unchanged"),
            "reset_fields": nullable(
                {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "enum": [
                            "additional_repos",
                            "additional_packages",
                            "additional_modules",
                            "with_opts",
                            "without_opts",
                            "comps_name",
                            "delete_after_days",
                            "isolation",
                            "bootstrap",
                            "bootstrap_image",
                        ],
                    },
                }
            ),
        }
    )
    return {
        "ProjectAdd": {
            **add,
            "examples": [
                {
                    "name": "demo",
                    "chroots": [example_chroot],
                    "description": "A demo project",
                    "additional_repos": [],
                    "enable_net": False,
                    "unlisted_on_hp": None,
                    "module_hotfixes": False,
                    "repo_priority": "10",
                    "runtime_dependencies": ["copr://alice/base"],
                    "bootstrap": "default",
                    "isolation": "default",
                    "delete_after_days": "30",
                }
            ],
        },
        "ProjectEdit": {
            **edit,
            "examples": [
                {"description": "New text", "repos": None, "chroots": None, "bootstrap": "default"}
            ],
        },
        "ProjectChrootEdit": {
            **chroot_edit,
            "examples": [{"additional_repos": "https://example.org/repo/", "reset_fields": None}],
        },
        "WebhookSecret": obj(
            {
                "id": ID,
                "name": STRING,
                "ownername": STRING,
                "full_name": STRING,
                "webhook_secret": {"type": "string", "format": "uuid"},
            }
        ),
    }
