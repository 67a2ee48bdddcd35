"""Which repositories a build may install from, and how they are rewritten for the VM."""

import ipaddress
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from kopers.api.bodies import chain_steps as parse_chain
from kopers.errors import BadRequest
from kopers.models import Project
from kopers.net.connect import resolve_checked
from kopers.net.policy import AddressPolicy
from kopers.worker.repos import forward_repos, plan_repos

ALLOW_LOOPBACK = AddressPolicy(allow=(ipaddress.ip_network("127.0.0.0/8"),))


def resolver(policy: AddressPolicy) -> Callable[[str, int], Awaitable[str]]:
    """What the pipeline does: resolve once, check, hand back the address."""

    async def resolve(host: str, port: int) -> str:
        return str((await resolve_checked(host, port, policy))[0])

    return resolve


class Forwards:
    """Records the forwards a build would open; VM ports count up from 40001."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> int:
        self.opened.append((host, port))
        return 40000 + len(self.opened)


def project(repos: tuple[str, ...]) -> Project:
    return Project(
        id=1,
        owner="alice",
        name="tools",
        description="",
        instructions="",
        homepage=None,
        contact=None,
        chroots=("debian-12-x86_64",),
        additional_repos=repos,
        enable_net=False,
        created_by=1,
        created_on=datetime.now(UTC),
    )


def test_own_repo_first_then_copr_and_http_repos() -> None:
    plans, notes = plan_repos(
        project(("copr://@sig/base", "http://127.0.0.1:9000/repo/$chroot/", "https://x.org/r/")),
        "debian-12-x86_64",
        ("127.0.0.1", 8080),
    )
    assert [p.path for p in plans] == [
        "/results/alice/tools/debian-12-x86_64/",
        "/results/@sig/base/debian-12-x86_64/",
        "/repo/debian-12-x86_64/",
    ]
    assert plans[0].gpgkey_path == "/results/alice/tools/pubkey.gpg"
    assert (plans[2].host, plans[2].port, plans[2].gpgkey_path) == ("127.0.0.1", 9000, None)
    assert [n.url for n in notes] == ["https://x.org/r/"]


async def test_one_forward_per_server_and_rewritten_urls() -> None:
    plans, _ = plan_repos(
        project(("copr://bob/lib", "http://127.0.0.1:9000/r/")),
        "debian-12-x86_64",
        ("127.0.0.1", 8080),
    )
    forward = Forwards()
    refs, notes = await forward_repos(plans, forward, resolver(ALLOW_LOOPBACK))
    assert notes == []
    assert forward.opened == [("127.0.0.1", 8080), ("127.0.0.1", 9000)]
    assert refs[0].baseurl == "http://127.0.0.1:40001/results/alice/tools/debian-12-x86_64/"
    assert (
        refs[0].gpgcheck
        and refs[0].gpgkey == "http://127.0.0.1:40001/results/alice/tools/pubkey.gpg"
    )
    assert refs[1].baseurl == "http://127.0.0.1:40001/results/bob/lib/debian-12-x86_64/"
    assert refs[2].baseurl == "http://127.0.0.1:40002/r/" and not refs[2].gpgcheck


async def test_a_user_repository_on_a_refused_address_is_left_out_with_a_note() -> None:
    """Kopers' own repositories (on loopback) stay; a user's loopback repository goes."""
    user_repos = (
        "copr://bob/lib",
        "http://127.0.0.1:9000/r/",
        "http://[::1]:9001/r/",
        "http://169.254.169.254/latest/",
        "http://10.0.2.2:8080/r/",
        "http://localhost:22/r/",
        "http://2130706433/r/",  # 127.0.0.1 written as one number
    )
    plans, _ = plan_repos(project(user_repos), "debian-12-x86_64", ("127.0.0.1", 8080))
    forward = Forwards()
    refs, notes = await forward_repos(plans, forward, resolver(AddressPolicy()))
    assert forward.opened == [("127.0.0.1", 8080)]
    assert [r.id for r in refs] == ["kopers-alice-tools", "kopers-bob-lib"]
    assert [n.url for n in notes] == list(user_repos[1:])
    assert notes[0].reason == "127.0.0.1 is refused by the address policy (loopback)"
    assert notes[2].reason == "169.254.169.254 is refused by the address policy (link-local)"
    assert notes[3].reason == "10.0.2.2 is refused by the address policy (private)"
    assert all("refused by the address policy" in n.reason for n in notes)


async def test_the_forward_targets_the_checked_address_not_the_name() -> None:
    plans, _ = plan_repos(
        project(("http://localhost:9000/r/",)), "debian-12-x86_64", ("127.0.0.1", 8080)
    )
    forward = Forwards()
    allow = AddressPolicy(
        allow=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    )
    refs, notes = await forward_repos(plans, forward, resolver(allow))
    assert notes == [] and len(refs) == 2
    host, port = forward.opened[1]
    assert port == 9000 and ipaddress.ip_address(host).is_loopback  # an address, not "localhost"


async def test_a_user_repository_whose_name_does_not_resolve_is_left_out() -> None:
    plans, _ = plan_repos(
        project(("http://repo.invalid/r/",)), "debian-12-x86_64", ("127.0.0.1", 8080)
    )
    refs, notes = await forward_repos(plans, Forwards(), resolver(AddressPolicy()))
    assert len(refs) == 1
    assert [(n.url, n.reason) for n in notes] == [
        ("http://repo.invalid/r/", "repo.invalid does not resolve")
    ]


def test_chain_defaults_to_sequential_and_checks_indexes() -> None:
    steps = parse_chain(
        {
            "builds": [
                {"url": "http://h/a.src.rpm"},
                {"url": "http://h/b.src.rpm"},
                {"url": "http://h/c.src.rpm", "after": [0]},
            ]
        }
    )
    assert [s.after for s in steps] == [(), (0,), (0,)]
    with pytest.raises(BadRequest, match="earlier steps"):
        parse_chain({"builds": [{"url": "http://h/a.src.rpm", "after": [0]}]})
    with pytest.raises(BadRequest, match="http"):
        parse_chain({"builds": [{"url": "file:///etc/passwd"}]})
