"""Receiving a forge's delivery: find the project, check it, record it, build what it asks.

A webhook URL names a project by its id and carries the project's webhook
secret (Copr's URLs: `/webhooks/<forge>/<project id>/<secret>/`). A wrong id
and a wrong secret get the same 404, the secret compared in constant time,
and leave no trace: such a delivery reached no project.

Every other delivery is recorded (kopers.db.webhooks), accepted or refused,
with the answer's status and message. A forge's delivery is checked
(kopers.forgehook), its pushes matched to the project's packages
(kopers.forgeplan), and the packages to build are submitted as one
`Kopers.submit`: their rows, their `build.submit` events and the receipt
naming them commit together, then the scheduler gets them. The receipt
claims the body's digest in that transaction, so the same body accepted
twice (a replay, or a copy sent at the same moment) builds once.

Builds are submitted as the project's owner (a group's project: as the
user who made it), who must still be allowed to build there.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kopers import forgehook, forgeplan
from kopers.buildrequest import BuildRequest
from kopers.db.webhooks import NewReceipt
from kopers.errors import Conflict, Forbidden, KopersError, NotFound
from kopers.forgehook import Delivery, Forge, Ignored
from kopers.forgeplan import Planned
from kopers.models import Build, Project, User

if TYPE_CHECKING:
    from kopers.service import Kopers

MAX_PROJECT_ID = (1 << 63) - 1
# A name a package may have (the CHECK of sql/0008_packages.sql).
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,127}")
# Compared against when the project does not exist, so that both refusals take alike.
_NO_SECRET = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True, slots=True)
class Answer:
    """What a delivery got: 200 and a message, the builds it started, and its receipt."""

    message: str
    builds: tuple[int, ...]
    receipt: int


async def find_project(kopers: Kopers, project_id: str, secret: str) -> Project:
    """The project the URL names, if the URL carries its webhook secret; else one 404."""
    project: Project | None = None
    digits = project_id.isascii() and project_id.isdigit() and len(project_id) <= 19
    if digits and 0 < int(project_id) <= MAX_PROJECT_ID:
        try:
            project = await kopers.store.project_by_id(int(project_id))
        except NotFound:
            project = None
    expected = project.webhook_secret if project is not None else _NO_SECRET
    right = hmac.compare_digest(secret.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))
    if project is None or not right:
        raise NotFound("no webhook at this address: check the project id and the secret")
    return project


async def receive(
    kopers: Kopers,
    project: Project,
    delivery: Delivery,
    address: str | None,
    package: str | None = None,
) -> Answer:
    """Handle a delivery to `project`'s webhook; every outcome is recorded.

    A refusal raises the KopersError the client gets (after recording it).
    `package` is the custom webhook's package name.
    """
    receiver = _Receiver(kopers, project, delivery, address)
    try:
        if delivery.forge is Forge.CUSTOM:
            return await receiver.custom(package or "")
        return await receiver.push()
    except KopersError as exc:
        await receiver.refused(exc.status, exc.message)
        raise
    except Exception:
        await receiver.refused(500, "internal server error; see the server log")
        raise


async def submit_planned(
    kopers: Kopers,
    project: Project,
    planned: Sequence[Planned],
    address: str | None,
    record: Callable[[], Awaitable[int]],
) -> tuple[int, list[Build]]:
    """Build each planned package (at its commit, if it has one) as one submission.

    `record` writes the delivery's receipt and answers its id; it runs in the
    submission's transaction, before the build rows, and may raise (a
    replay) to refuse it all. Returns the receipt's id and the builds.
    """
    user = await acting_user(kopers, project)
    makers = [
        await kopers.packages.submission_for(
            user, project, p.package, BuildRequest(), committish=p.commit or None
        )
        for p in planned
    ]
    receipt: list[int] = []

    async def submission() -> list[Build]:
        receipt.append(await record())
        builds = [await make() for make in makers]
        await kopers.store.set_webhook_receipt_builds(receipt[0], [b.id for b in builds])
        return builds

    builds = await kopers.submit(user, address, submission)
    return receipt[0], builds


async def acting_user(kopers: Kopers, project: Project) -> User:
    """The user a project's webhooks build as."""
    user = await kopers.store.webhook_user(project.id)
    if user is None:
        raise Forbidden(f"the owner of {project.full_name} has no account here to build as")
    return user


class _Receiver:
    """One delivery on its way: records its receipt once, whatever happens."""

    def __init__(
        self, kopers: Kopers, project: Project, delivery: Delivery, address: str | None
    ) -> None:
        self.kopers = kopers
        self.project = project
        self.delivery = delivery
        self.address = address
        self.recorded = False

    def _receipt(self, status: int, reason: str) -> NewReceipt:
        d = self.delivery
        return NewReceipt(
            self.project.id, d.forge, status, reason, d.event, d.delivery_id, d.digest
        )

    async def _accepted(self, reason: str) -> int:
        """Record the delivery as accepted; 409 if its body was accepted before."""
        receipt_id = await self.kopers.store.add_webhook_receipt(self._receipt(200, reason))
        if receipt_id is None:
            raise Conflict(
                "this delivery was accepted before (same body): it is not acted on again"
            )
        return receipt_id

    async def refused(self, status: int, reason: str) -> None:
        if not self.recorded:
            self.recorded = True
            await self.kopers.store.add_webhook_receipt(self._receipt(status, reason))

    async def _build(self, planned: Sequence[Planned], summary: str) -> Answer:
        written: list[int] = []

        async def record() -> int:
            written.append(await self._accepted(summary))
            return written[0]

        try:
            receipt, builds = await submit_planned(
                self.kopers, self.project, planned, self.address, record
            )
        except Exception as exc:
            # If the receipt committed, the builds did too and were then withdrawn
            # (the scheduler did not take them): the receipt says so. If it rolled
            # back with them, the refusal gets a receipt of its own.
            status, why = (exc.status, exc.message) if isinstance(exc, KopersError) else (503, "")
            why = why or "the scheduler did not take the builds"
            if written and await self.kopers.store.refuse_webhook_receipt(written[0], status, why):
                self.recorded = True
            raise
        self.recorded = True
        return Answer(summary, tuple(b.id for b in builds), receipt)

    async def _nothing(self, reason: str) -> Answer:
        """Accept a delivery that builds nothing (a ping, a deleted branch, another branch)."""
        receipt = await self._accepted(reason)
        self.recorded = True
        return Answer(reason, (), receipt)

    async def custom(self, name: str) -> Answer:
        if not _PACKAGE_NAME.fullmatch(name) or ".." in name:
            raise NotFound(f"no package {repr(name)[:60]} in {self.project.full_name}")
        package = await self.kopers.store.get_package(self.project.id, name)
        return await self._build([Planned(package, "", "custom webhook")], f"building {name}")

    async def push(self) -> Answer:
        delivery = self.delivery
        forgehook.authenticate(delivery, self.project.webhook_secret)
        pushes = forgehook.parse(delivery)
        if isinstance(pushes, Ignored):
            return await self._nothing(pushes.reason)
        packages = await self.kopers.store.list_packages(self.project.id, None, 0)
        plan = forgeplan.plan(pushes, packages)
        if not plan.matched:
            raise NotFound(
                f"no package of this project builds from {forgeplan.shown(pushes[0])} "
                "with webhook_rebuild on"
            )
        if not plan.builds:
            return await self._nothing(plan.summary)
        return await self._build(plan.builds, plan.summary)
