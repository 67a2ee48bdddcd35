"""The one authorization check: may user U do action A on target T? Pure.

Every handler and operation asks `authorize` (which loads the facts and calls
`require`) and carries no checks of its own. The decision itself, `may`, is a
pure function of `Facts`: the caller, the target's owner, the caller's group
memberships and the project's permission rows. `POLICY` is the whole
policy as one table: which relations to the target allow which action.

Relations to a target (a project, or a would-be owner for project creation,
or the user whose tokens are touched):
- the owner: the user named as owner (`alice/p`);
- for a group-owned project (`@sig/p`): the group's members, and among
  them the group's admins (a member flag, `kopers group member add --admin`);
- Copr's per-project roles, `builder` and `admin`, when `approved`;
- any authenticated user;
- site admins (`kopers user add --admin`), who may do everything.

This module also holds the pure rules of Copr's permission requests and
edits (`plan_set`, `plan_request`), because they are part of the same policy.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from kopers.errors import AuthenticationError, BadRequest, Forbidden
from kopers.models import Project, User


class Action(enum.StrEnum):
    """What a caller wants to do; the value reads as "may not <value> <target>"."""

    CREATE_PROJECT = "create projects owned by"
    EDIT_PROJECT = "edit"
    DELETE_PROJECT = "delete"
    BUILD = "build in"
    CANCEL_BUILD = "cancel builds in"
    DELETE_BUILD = "delete builds in"
    READ_PERMISSIONS = "see the permissions of"
    SET_PERMISSIONS = "change the permissions of"
    REQUEST_PERMISSIONS = "request permissions in"
    READ_EVENTS = "read the audit log of"
    REVOKE_TOKEN = "revoke the tokens of"


class Relation(enum.StrEnum):
    """How a caller stands to a target; `relations()` computes the set."""

    SITE_ADMIN = "site admin"
    OWNER = "owner"
    GROUP_ADMIN = "group admin"
    GROUP_MEMBER = "group member"
    PROJECT_ADMIN = "project admin"
    BUILDER = "builder"
    USER = "any user"


class Role(enum.StrEnum):
    """Copr's per-project roles."""

    BUILDER = "builder"
    ADMIN = "admin"


class PermState(enum.StrEnum):
    """A role's state for one user on one project; only APPROVED grants anything."""

    NOTHING = "nothing"
    REQUEST = "request"
    APPROVED = "approved"


_R = Relation
_EDITORS = frozenset({_R.OWNER, _R.GROUP_ADMIN, _R.PROJECT_ADMIN})
_BUILDERS = _EDITORS | {_R.GROUP_MEMBER, _R.BUILDER}

# The policy. Site admins are allowed everything and are not listed. As in
# upstream Copr: a project admin may edit but not delete the project; a
# builder may build and cancel, but deleting builds is for editors.
POLICY: Mapping[Action, frozenset[Relation]] = {
    Action.CREATE_PROJECT: frozenset({_R.OWNER, _R.GROUP_ADMIN, _R.GROUP_MEMBER}),
    Action.EDIT_PROJECT: _EDITORS,
    Action.DELETE_PROJECT: frozenset({_R.OWNER, _R.GROUP_ADMIN}),
    Action.BUILD: _BUILDERS,
    Action.CANCEL_BUILD: _BUILDERS,
    Action.DELETE_BUILD: _EDITORS,
    Action.READ_PERMISSIONS: _EDITORS,
    Action.SET_PERMISSIONS: _EDITORS,
    Action.REQUEST_PERMISSIONS: frozenset({_R.USER}),
    Action.READ_EVENTS: frozenset({_R.USER}),
    Action.REVOKE_TOKEN: frozenset({_R.OWNER}),
}


@dataclass(frozen=True, slots=True)
class Grant:
    """One user's Copr roles on one project (a `project_permissions` row)."""

    builder: PermState = PermState.NOTHING
    admin: PermState = PermState.NOTHING

    def state(self, role: Role) -> PermState:
        return self.builder if role is Role.BUILDER else self.admin

    def with_state(self, role: Role, state: PermState) -> Grant:
        return replace(self, **{str(role): state})

    def as_json(self) -> dict[str, str]:
        return {"admin": str(self.admin), "builder": str(self.builder)}


@dataclass(frozen=True, slots=True)
class Target:
    """What an action is on: a project, or just an owner (user or `@group`)."""

    owner: str
    project: str | None = None
    project_id: int | None = None

    @classmethod
    def of(cls, project: Project) -> Target:
        return cls(project.owner, project.name, project.id)

    @property
    def group(self) -> str | None:
        """The owning group's name for `@group` owners, else None."""
        return self.owner[1:] if self.owner.startswith("@") else None

    @property
    def label(self) -> str:
        return f"{self.owner}/{self.project}" if self.project else self.owner


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the decision depends on, gathered by a `FactLoader`."""

    user: User | None  # None: anonymous
    target: Target
    groups: Mapping[str, bool] = field(default_factory=dict)  # the user's groups -> is admin
    grants: Mapping[str, Grant] = field(default_factory=dict)  # project's rows, by user name


class FactLoader(Protocol):
    """Gathers `Facts` (the store implements it)."""

    async def access_facts(self, user: User | None, target: Target) -> Facts: ...


def relations(facts: Facts) -> frozenset[Relation]:
    """How the caller stands to the target."""
    user = facts.user
    if user is None:
        return frozenset()
    out = {Relation.USER}
    if user.is_admin:
        out.add(Relation.SITE_ADMIN)
    group = facts.target.group
    if group is None:
        if facts.target.owner == user.name:
            out.add(Relation.OWNER)
    elif group in facts.groups:
        out.add(Relation.GROUP_MEMBER)
        if facts.groups[group]:
            out.add(Relation.GROUP_ADMIN)
    if facts.target.project_id is not None:
        grant = facts.grants.get(user.name, Grant())
        if grant.admin is PermState.APPROVED:
            out.add(Relation.PROJECT_ADMIN)
        if grant.builder is PermState.APPROVED:
            out.add(Relation.BUILDER)
    return frozenset(out)


def may(facts: Facts, action: Action) -> bool:
    """Whether the caller in `facts` may do `action` on its target."""
    held = relations(facts)
    return Relation.SITE_ADMIN in held or bool(held & POLICY[action])


def require(facts: Facts, action: Action) -> None:
    """Raise unless `may`: 401 for anonymous callers, 403 with a reason otherwise."""
    if may(facts, action):
        return
    if facts.user is None:
        raise AuthenticationError("This operation requires API authentication (a login and token).")
    raise Forbidden(
        f"User '{facts.user.name}' may not {action} {facts.target.label}.{_hint(facts, action)}"
    )


def _hint(facts: Facts, action: Action) -> str:
    # Say who may, so a refused user knows whom to ask.
    group = facts.target.group
    if action in (Action.BUILD, Action.CANCEL_BUILD) and facts.target.project:
        who = f"members of group {group}" if group else f"user {facts.target.owner}"
        return (
            f" Only {who} and users with an approved builder or admin role may;"
            " ask for the role with `copr-cli request-permissions --builder`."
        )
    if action is Action.CREATE_PROJECT and group:
        return f" Only members of group {group} may."
    return ""


async def authorize(loader: FactLoader, user: User | None, action: Action, target: Target) -> Facts:
    """Load the facts about `user` and `target`, require `action`; return the facts."""
    facts = await loader.access_facts(user, target)
    require(facts, action)
    return facts


# Copr's permission requests and edits -----------------------------------------


def parse_set(body: Any) -> dict[str, dict[Role, PermState]]:
    """`permissions/set` body `{user: {role: state}}` -> validated changes."""
    if not isinstance(body, dict) or not body:
        raise BadRequest(
            "expected a non-empty object {'username': {'admin': 'nothing', 'builder': 'request'}}"
        )
    out: dict[str, dict[Role, PermState]] = {}
    for name, roles in body.items():
        if not isinstance(roles, dict) or not roles:
            raise BadRequest(f"the roles for {name!r} must be a non-empty object")
        out[str(name)] = {_role(r): _state(s, r) for r, s in roles.items()}
    return out


def parse_request(body: Any) -> dict[Role, PermState]:
    """`permissions/request` body `{role: bool}` -> wanted states (True: request)."""
    if not isinstance(body, dict) or not body:
        raise BadRequest("expected a non-empty object {'admin': true, 'builder': false}")
    out: dict[Role, PermState] = {}
    for role, wanted in body.items():
        if not isinstance(wanted, bool):
            raise BadRequest(
                f"invalid {role!r} permission request {wanted!r}, expected true or false"
            )
        out[_role(role)] = PermState.REQUEST if wanted else PermState.NOTHING
    return out


def plan_set(target: Target, name: str, current: Grant, changes: Mapping[Role, PermState]) -> Grant:
    """The grant after an owner's or admin's edit of `name`'s roles."""
    _not_owner(target, name)
    new = current
    for role, state in changes.items():
        new = new.with_state(role, state)
    return new


def plan_request(
    target: Target, name: str, current: Grant, wanted: Mapping[Role, PermState]
) -> Grant:
    """The grant after `name` asks for (or gives up) roles; approving is for editors."""
    _not_owner(target, name)
    new = current
    for role, state in wanted.items():
        if state is PermState.REQUEST and current.state(role) is PermState.APPROVED:
            raise BadRequest(f"You already are '{role}' in '{target.label}'")
        new = new.with_state(role, state)
    return new


def _not_owner(target: Target, name: str) -> None:
    if target.group is None and target.owner == name:
        raise BadRequest(f"user '{name}' is owner of the '{target.label}' project")


def _role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise BadRequest(f"invalid permission {value!r}, use builder or admin") from None


def _state(value: Any, role: Any) -> PermState:
    try:
        return PermState(value)
    except ValueError:
        raise BadRequest(
            f"invalid {role!r} permission state {value!r}, use nothing, request or approved"
        ) from None
