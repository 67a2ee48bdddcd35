"""Webhook receipts: the record of each delivery that reached a project, and its answer.

One row per delivery from a forge (or a custom webhook) whose URL named an
existing project with its right secret: accepted or refused, with the HTTP
status and message of the answer, the forge's event and delivery id, the
SHA-256 of the body and the builds it started. A forge's accepted delivery
claims its body's digest: `add_webhook_receipt` answers None when the same
body was accepted before (the unique index decides, so two copies arriving
at once cannot both pass). Each project keeps its newest `KEEP` receipts,
refused ones pruned first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from kopers.db.base import StoreBase
from kopers.forgehook import Forge
from kopers.models import User

KEEP = 500  # receipts kept per project
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
    async def add_webhook_receipt(self, receipt: NewReceipt) -> int | None:
        """Record a delivery; None (and nothing written) if it replays an accepted one."""
        async with self.atomic() as conn:
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
            if receipt_id is not None:
                await conn.execute(self.q.prune_webhook_receipts, receipt.project_id, KEEP)
        return int(receipt_id) if receipt_id is not None else None

    async def set_webhook_receipt_builds(self, receipt_id: int, build_ids: Sequence[int]) -> None:
        await self.db.execute(self.q.set_webhook_receipt_builds, receipt_id, list(build_ids))

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
