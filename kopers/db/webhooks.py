"""Webhook receipts: the record of each delivery that reached a project, and its answer.

One row per delivery from a forge (or a custom webhook) whose URL named an
existing project with its right secret: accepted or refused, with the HTTP
status and message of the answer, the forge's event and delivery id, the
SHA-256 of the body and the builds it started. Each project keeps its
newest `KEEP_ACCEPTED` accepted and `KEEP_REFUSED` refused receipts, so
neither kind pushes the other out of the record.

A forge's delivery that starts builds claims its body's digest
(`add_webhook_receipt(..., claim=True)`), which answers None when the body
was claimed before: the primary key of webhook_digests decides, so two
copies arriving at once cannot both pass. Claims live in their own table,
for `DIGEST_DAYS` whatever happens to the receipts: pruning a receipt
never lets a captured delivery build again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from kopers.db.base import StoreBase
from kopers.forgehook import Forge
from kopers.models import User

KEEP_ACCEPTED = 400  # accepted receipts kept per project
KEEP_REFUSED = 100  # refused receipts kept per project
KEEP = KEEP_ACCEPTED + KEEP_REFUSED  # receipts kept per project, at most
DIGEST_DAYS = 30  # how long a body that started builds is refused if it comes again
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class NewReceipt:
    project_id: int
    forge: Forge
    status: int
    reason: str
    event: str
    delivery_id: str | None
    digest: str


@dataclass(frozen=True, slots=True)
class Receipt:
    id: int
    project_id: int
    forge: Forge
    received_on: datetime
    status: int
    accepted: bool
    reason: str
    event: str
    delivery_id: str | None
    digest: str
    builds: tuple[int, ...]


def one_line(text: str) -> str:
    """A message as a receipt keeps it: one line of printable text, at most MAX_REASON long."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= MAX_REASON else flat[: MAX_REASON - 1] + "…"


class WebhookStore(StoreBase):
    async def add_webhook_receipt(self, receipt: NewReceipt, *, claim: bool = False) -> int | None:
        """Record a delivery and answer the receipt's id.

        With `claim`, the delivery also claims its body's digest: None (and
        nothing written) when the body was claimed within DIGEST_DAYS.
        """
        async with self.atomic() as conn:
            if claim:
                await conn.execute(self.q.forget_webhook_digests, receipt.project_id, DIGEST_DAYS)
                claimed = await conn.fetchval(
                    self.q.claim_webhook_digest,
                    receipt.project_id,
                    str(receipt.forge),
                    receipt.digest,
                )
                if claimed is None:
                    return None
            receipt_id = await conn.fetchval(
                self.q.add_webhook_receipt,
                receipt.project_id,
                str(receipt.forge),
                receipt.status,
                one_line(receipt.reason),
                receipt.event,
                receipt.delivery_id,
                receipt.digest,
            )
            await conn.execute(
                self.q.prune_webhook_receipts, receipt.project_id, KEEP_ACCEPTED, KEEP_REFUSED
            )
        return int(receipt_id)

    async def set_webhook_receipt_builds(
        self, receipt_id: int, build_ids: Sequence[int], reason: str
    ) -> None:
        """The builds an accepted delivery started, and its final message."""
        await self.db.execute(
            self.q.set_webhook_receipt_builds, receipt_id, list(build_ids), one_line(reason)
        )

    async def refuse_webhook_receipt(self, receipt_id: int, status: int, reason: str) -> bool:
        """Turn an accepted receipt into a refused one (its builds did not go through).

        False when the receipt is not there: its transaction was rolled back.
        """
        done = await self.db.fetchval(
            self.q.refuse_webhook_receipt, receipt_id, status, one_line(reason)
        )
        return done is not None

    async def webhook_receipts(self, project_id: int, limit: int) -> list[Receipt]:
        """The project's receipts, newest first."""
        rows = await self.db.fetch(self.q.list_webhook_receipts, project_id, limit)
        return [_receipt(r) for r in rows]

    async def webhook_user(self, project_id: int) -> User | None:
        """Who the project's webhooks build as: its owner, or the creator of a group's project."""
        row = await self.db.fetchrow(self.q.webhook_user, project_id)
        return User(row["id"], row["name"], row["is_admin"]) if row is not None else None


def _receipt(row: asyncpg.Record) -> Receipt:
    return Receipt(
        id=row["id"],
        project_id=row["project_id"],
        forge=Forge(row["forge"]),
        received_on=row["received_on"],
        status=row["status"],
        accepted=row["accepted"],
        reason=row["reason"],
        event=row["event"],
        delivery_id=row["delivery_id"],
        digest=row["digest"],
        builds=tuple(row["builds"]),
    )
