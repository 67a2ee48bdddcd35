"""The authorization policy (pure): who may do what, and Copr's permission rules.

The expected table below is written out by hand rather than derived from
`access.POLICY`, so a change to the policy has to change this test too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kopers import access, tokens
from kopers.access import Action, Facts, Grant, PermState, Relation, Role, Target
from kopers.errors import AuthenticationError, BadRequest, Forbidden
from kopers.models import User

A = PermState.APPROVED
R = PermState.REQUEST
USER_PROJECT = Target("olga", "tools", 1)
GROUP_PROJECT = Target("@sig", "tools", 2)

# Who, in terms of facts, for each principal; the same principals as the
# integration matrix. For a group project, "owner" is the group's admin.
PRINCIPALS = ("anonymous", "other", "builder", "project_admin", "owner", "member", "site_admin")


def facts(principal: str, target: Target) -> Facts:
    grants = {"bea": Grant(builder=A), "pat": Grant(admin=A), "rita": Grant(R, R)}
    group = target.group is not None
    user, groups = {
        "anonymous": (None, {}),
        "other": (User(2, "eve", False), {"other-sig": True}),
        "builder": (User(3, "bea", False), {}),
        "project_admin": (User(4, "pat", False), {}),
        "owner": (User(5, "gadm", False), {"sig": True}) if group else (User(1, "olga", False), {}),
        "member": (User(6, "gmem", False), {"sig": False}),
        "site_admin": (User(7, "root", True), {}),
    }[principal]
    return Facts(user, target, groups, grants)


EDITORS = {"project_admin", "owner", "site_admin"}
BUILDERS = EDITORS | {"builder"}
USERS = set(PRINCIPALS) - {"anonymous"}
# Allowed principals per action on (a user's project, a group's project).
EXPECTED: dict[Action, tuple[set[str], set[str]]] = {
    Action.CREATE_PROJECT: ({"owner", "site_admin"}, {"owner", "member", "site_admin"}),
    Action.EDIT_PROJECT: (EDITORS, EDITORS),
    Action.DELETE_PROJECT: ({"owner", "site_admin"}, {"owner", "site_admin"}),
    Action.BUILD: (BUILDERS, BUILDERS | {"member"}),
    Action.CANCEL_BUILD: (BUILDERS, BUILDERS | {"member"}),
    Action.DELETE_BUILD: (EDITORS, EDITORS),
    Action.READ_PERMISSIONS: (EDITORS, EDITORS),
    Action.SET_PERMISSIONS: (EDITORS, EDITORS),
    Action.REQUEST_PERMISSIONS: (USERS, USERS),
    Action.READ_EVENTS: (USERS, USERS),
    Action.REVOKE_TOKEN: ({"owner", "site_admin"}, {"site_admin"}),
}


def test_every_action_has_a_policy_and_an_expectation() -> None:
    assert set(access.POLICY) == set(Action) == set(EXPECTED)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("principal", PRINCIPALS)
def test_matrix(action: Action, principal: str) -> None:
    on_user, on_group = EXPECTED[action]
    for target, allowed in ((USER_PROJECT, on_user), (GROUP_PROJECT, on_group)):
        if action is Action.CREATE_PROJECT:
            target = Target(target.owner)  # no project yet: only the owner is known
        if action is Action.REVOKE_TOKEN:
            target = Target(target.owner)  # tokens belong to a user, never to a group
        f = facts(principal, target)
        assert access.may(f, action) == (principal in allowed), (principal, action, target)


def test_requested_roles_grant_nothing() -> None:
    rita = Facts(User(9, "rita", False), USER_PROJECT, {}, {"rita": Grant(R, R)})
    assert access.relations(rita) == {Relation.USER}
    assert not access.may(rita, Action.BUILD)


def test_roles_count_only_on_their_project() -> None:
    # The facts of another project: no project id, so no grants apply.
    bea = Facts(User(3, "bea", False), Target("olga"), {}, {"bea": Grant(builder=A)})
    assert Relation.BUILDER not in access.relations(bea)


def test_group_membership_counts_only_for_that_group() -> None:
    f = Facts(User(6, "gmem", False), Target("@other", "p", 3), {"sig": True})
    assert access.relations(f) == {Relation.USER}
    # A user named like the group gains nothing: `@` always means a group.
    sig = Facts(User(8, "sig", False), Target("@sig", "p", 3))
    assert not access.may(sig, Action.BUILD)


def test_require_says_401_for_anonymous_and_why_for_others() -> None:
    with pytest.raises(AuthenticationError):
        access.require(facts("anonymous", USER_PROJECT), Action.BUILD)
    with pytest.raises(Forbidden, match=r"User 'eve' may not build in @sig/tools\. Only members"):
        access.require(facts("other", GROUP_PROJECT), Action.BUILD)
    with pytest.raises(Forbidden, match="may not delete olga/tools"):
        access.require(facts("project_admin", USER_PROJECT), Action.DELETE_PROJECT)
    with pytest.raises(Forbidden, match=r"may not create projects owned by @sig\. Only members"):
        access.require(facts("other", Target("@sig")), Action.CREATE_PROJECT)


async def test_authorize_loads_the_facts_once_and_decides() -> None:
    calls = []

    class Loader:
        async def access_facts(self, user: User | None, target: Target) -> Facts:
            calls.append((user, target))
            return Facts(user, target)

    olga = User(1, "olga", False)
    got = await access.authorize(Loader(), olga, Action.BUILD, USER_PROJECT)
    assert got.user == olga and calls == [(olga, USER_PROJECT)]
    with pytest.raises(Forbidden):
        await access.authorize(Loader(), User(2, "eve", False), Action.BUILD, USER_PROJECT)


# Copr's permission requests and edits -------------------------------------------


def test_parse_set_and_request() -> None:
    assert access.parse_set({"eve": {"builder": "approved", "admin": "request"}}) == {
        "eve": {Role.BUILDER: A, Role.ADMIN: R}
    }
    assert access.parse_request({"builder": True, "admin": False}) == {
        Role.BUILDER: R,
        Role.ADMIN: PermState.NOTHING,
    }
    for bad in (None, [], {}, {"eve": "approved"}, {"eve": {"root": "approved"}}):
        with pytest.raises(BadRequest):
            access.parse_set(bad)
    with pytest.raises(BadRequest, match="use nothing, request or approved"):
        access.parse_set({"eve": {"builder": "yes"}})
    for bad in (None, {}, {"builder": "request"}, {"owner": True}):
        with pytest.raises(BadRequest):
            access.parse_request(bad)


def test_plan_set_changes_only_the_given_roles() -> None:
    new = access.plan_set(USER_PROJECT, "eve", Grant(admin=R), {Role.BUILDER: A})
    assert new == Grant(builder=A, admin=R)
    with pytest.raises(BadRequest, match="is owner"):
        access.plan_set(USER_PROJECT, "olga", Grant(), {Role.BUILDER: A})
    # A group project has no owning user: any user may be given roles.
    assert access.plan_set(GROUP_PROJECT, "sig", Grant(), {Role.ADMIN: A}) == Grant(admin=A)


def test_plan_request_cannot_approve_or_re_request() -> None:
    assert access.plan_request(USER_PROJECT, "eve", Grant(), {Role.BUILDER: R}) == Grant(R)
    with pytest.raises(BadRequest, match="already are 'builder'"):
        access.plan_request(USER_PROJECT, "bea", Grant(builder=A), {Role.BUILDER: R})
    # Giving up an approved role is allowed.
    dropped = access.plan_request(USER_PROJECT, "bea", Grant(A, A), {Role.ADMIN: PermState.NOTHING})
    assert dropped == Grant(builder=A)
    with pytest.raises(BadRequest, match="is owner"):
        access.plan_request(USER_PROJECT, "olga", Grant(), {Role.BUILDER: R})


def test_grant_json_is_coprs_shape() -> None:
    assert Grant(builder=A).as_json() == {"admin": "nothing", "builder": "approved"}


def test_token_lifetimes() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert tokens.expires_on(now, 0) is None
    end = tokens.expires_on(now, 0.5)
    assert end == now + timedelta(hours=12)
    assert not tokens.expired(None, now) and not tokens.expired(end, now)
    assert tokens.expired(end, end) and tokens.expired(end, end + timedelta(seconds=1))
    with pytest.raises(ValueError):
        tokens.expires_on(now, -1)
