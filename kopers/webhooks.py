"""Receiving a forge's delivery: find the project, check it, record it, build what it asks.

A webhook URL names a project by its id and carries the project's webhook
secret (Copr's URLs: `/webhooks/<forge>/<project id>/<secret>/`). A wrong id
and a wrong secret get the same 404, the secret compared in constant time,
and leave no trace: such a delivery reached no project.

Every other delivery is recorded (kopers.db.webhooks), accepted or refused,
with the answer's status and message. A forge's delivery is checked
(kopers.forgehook), its pushes matched to the project's packages
(kopers.forgeplan), and the packages to build are submitted as one
`Kopers.submit`: their rows, their `build.submit` events (which name the
webhook, the forge and the receipt) and the receipt naming them commit
together, then the scheduler gets them. A package whose submission is
refused is skipped, with the reason in the receipt and the answer; only if
none can be built is the delivery refused. A delivery that starts builds
claims its body's digest in that transaction, so the same body (a replay,
or a copy sent at the same moment) builds once; one that builds nothing
claims nothing. Receipts' reasons are scrubbed of host paths, as answers
are.

Builds are submitted as the project's owner (a group's project: as the
user who made it), who must still be allowed to build there.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kopers import forgehook, forgeplan
from kopers.buildrequest import BuildRequest
from kopers.db.webhooks import NewReceipt, one_line
from kopers.errors import Conflict, Forbidden, KopersError, NotFound
from kopers.forgehook import Delivery, Forge, Ignored
from kopers.forgeplan import Planned, Skipped
from kopers.models import Build, Project, User
from kopers.redact import host_roots, scrub

if TYPE_CHECKING:
    from kopers.service import Kopers

MAX_PROJECT_ID = (1 << 63) - 1
# A name a package may have (the CHECK of sql/0008_packages.sql).
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,127}")
# Compared against when the project does not exist, so that both refusals take alike.
_NO_SECRET = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True, slots=True)
class Answer:
    """What a delivery got: 200 and a message, the builds it started, and its receipt.

    `skipped`: the packages the push would have built but whose submission
    was refused (each with the reason); the others built.
    """

    message: str
    builds: tuple[int, ...]
    receipt: int
    skipped: tuple[Skipped, ...] = ()


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

    def _said(self, text: str) -> str:
        """A message as a receipt or an answer gives it: one line, no host paths in it."""
        return one_line(scrub(text, host_roots(self.kopers.config)))

    def _receipt(self, status: int, reason: str) -> NewReceipt:
        d = self.delivery
        return NewReceipt(
            self.project.id, d.forge, status, self._said(reason), d.event, d.delivery_id, d.digest
        )

    async def _accepted(self, reason: str, *, claim: bool) -> int:
        """Record the delivery as accepted; with `claim`, 409 if its body was acted on before."""
        receipt_id = await self.kopers.store.add_webhook_receipt(
            self._receipt(200, reason), claim=claim
        )
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
        """Submit the planned builds as one submission, skipping packages that cannot build.

        A forge's delivery claims its body (a custom webhook is a button:
        pressed twice, it builds twice). If no package can be built, the
        first refusal is the answer and nothing is written but its receipt.
        """
        claim = self.delivery.forge is not Forge.CUSTOM
        written: list[int] = []
        try:
            builds, skipped = await self._submit(
                planned, lambda: self._accepted(summary, claim=claim), written
            )
        except Exception as exc:
            # If the receipt committed, the builds did too and were then withdrawn
            # (the scheduler did not take them): the receipt says so. If it rolled
            # back with them, the refusal gets a receipt of its own.
            status, why = (exc.status, exc.message) if isinstance(exc, KopersError) else (503, "")
            why = self._said(why or "the scheduler did not take the builds")
            if written and await self.kopers.store.refuse_webhook_receipt(written[0], status, why):
                self.recorded = True
            raise
        self.recorded = True
        message = self._message(planned, builds, skipped)
        return Answer(message, tuple(b.id for _, b in builds), written[0], skipped)

    def _message(
        self,
        planned: Sequence[Planned],
        builds: Sequence[tuple[Planned, Build]],
        skipped: Sequence[Skipped],
    ) -> str:
        """What was built, and which packages could not be, and why: one line."""
        text = forgeplan.building([p for p, _ in builds])
        if skipped:
            text += "; not built: " + "; ".join(f"{s.package}: {s.why}" for s in skipped)
        return self._said(text)

    async def _submit(
        self,
        planned: Sequence[Planned],
        record: Callable[[], Awaitable[int]],
        written: list[int],
    ) -> tuple[list[tuple[Planned, Build]], tuple[Skipped, ...]]:
        """Build each planned package (at its commit, on its ref) as one `Kopers.submit`.

        A package whose submission is refused (a source this server cannot
        build from, every chroot denied to it, ...) is skipped with its
        reason, and its rows taken back alone (a savepoint). `record` writes
        the receipt (appended to `written`) first in the transaction, and may
        raise (a replay) to refuse it all. Returns the builds and the skipped.
        """
        kopers, project = self.kopers, self.project
        user = await acting_user(kopers, project)
        refusals: dict[int, KopersError] = {}
        makers: list[tuple[int, Planned, Callable[[], Awaitable[Build]]]] = []
        for i, p in enumerate(planned):
            try:
                make = await kopers.packages.submission_for(
                    user, project, p.package, BuildRequest(), committish=p.commit or None, on=p.on
                )
            except KopersError as exc:
                refusals[i] = exc
                continue
            makers.append((i, p, make))
        if not makers:
            raise refusals[min(refusals)]
        built: list[tuple[Planned, Build]] = []

        async def submission() -> list[Build]:
            written.append(await record())
            for i, p, make in makers:
                try:
                    async with kopers.store.atomic():
                        built.append((p, await make()))
                except KopersError as exc:
                    refusals[i] = exc
            if not built:
                raise refusals[min(refusals)]
            skipped = self._skipped(planned, refusals)
            await kopers.store.set_webhook_receipt_builds(
                written[0], [b.id for _, b in built], self._message(planned, built, skipped)
            )
            return [b for _, b in built]

        def details() -> dict[str, Any]:
            # Known once `record` has run: the audit says which delivery started the build.
            return {"via": "webhook", "forge": str(self.delivery.forge), "receipt": written[0]}

        await kopers.submit(user, self.address, submission, details=details)
        return built, self._skipped(planned, refusals)

    def _skipped(
        self, planned: Sequence[Planned], refusals: Mapping[int, KopersError]
    ) -> tuple[Skipped, ...]:
        return tuple(
            Skipped(planned[i].package.name, self._said(refusals[i].message))
            for i in sorted(refusals)
        )

    async def _nothing(self, reason: str) -> Answer:
        """Accept a delivery that builds nothing (a ping, a deleted branch, another branch).

        It claims nothing: the same body sent again, once a package follows
        that branch, builds.
        """
        receipt = await self._accepted(reason, claim=False)
        self.recorded = True
        return Answer(self._said(reason), (), receipt)

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
        # Pure, but a delivery of 100 refs against thousands of packages is
        # enough work to keep off the event loop.
        plan = await asyncio.to_thread(forgeplan.plan, pushes, packages)
        if not plan.matched:
            raise NotFound(
                f"no package of this project builds from {forgeplan.shown(pushes[0])} "
                "with webhook_rebuild on"
            )
        if not plan.builds:
            return await self._nothing(plan.summary)
        return await self._build(plan.builds, plan.summary)
