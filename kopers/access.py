"""The one authorization check: may user U do action A on project P? Pure.

Every handler asks `require` and carries no checks of its own.
"""

from __future__ import annotations

import enum

from kopers.errors import Forbidden
from kopers.models import Project, User


class Action(enum.StrEnum):
    CREATE_PROJECT = "create project"
    EDIT_PROJECT = "edit project"
    DELETE_PROJECT = "delete project"
    BUILD = "build in"
    CANCEL_BUILD = "cancel builds in"
    DELETE_BUILD = "delete builds in"


def may(user: User, action: Action, owner: str, project: Project | None = None) -> bool:
    """Whether `user` may do `action` on a project owned by `owner`."""
    del action, project  # every action needs ownership until roles and groups exist
    if user.is_admin:
        return True
    return owner == user.name


def require(user: User, action: Action, owner: str, project: Project | None = None) -> None:
    if not may(user, action, owner, project):
        target = project.full_name if project else owner
        raise Forbidden(f"User '{user.name}' may not {action} {target}.")
