"""Which repositories a build may install from, and how they are rewritten for the VM."""

from datetime import UTC, datetime

import pytest

from kopers.errors import BadRequest
from kopers.models import Project
from kopers.submission import parse_chain
from kopers.worker.repos import forward_repos, plan_repos


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
    opened: list[tuple[str, int]] = []

    async def forward(host: str, port: int) -> int:
        opened.append((host, port))
        return 40000 + len(opened)

    refs = await forward_repos(plans, forward)
    assert opened == [("127.0.0.1", 8080), ("127.0.0.1", 9000)]
    assert refs[0].baseurl == "http://127.0.0.1:40001/results/alice/tools/debian-12-x86_64/"
    assert (
        refs[0].gpgcheck
        and refs[0].gpgkey == "http://127.0.0.1:40001/results/alice/tools/pubkey.gpg"
    )
    assert refs[1].baseurl == "http://127.0.0.1:40001/results/bob/lib/debian-12-x86_64/"
    assert refs[2].baseurl == "http://127.0.0.1:40002/r/" and not refs[2].gpgcheck


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
