"""The event bus: new notifications, from one LISTEN connection, to subscribers in memory.

The notification triggers (sql/0010) `pg_notify('kopers_events', id)` as their
transaction commits. The bus (a supervised loop) holds the one connection
that listens, and on each wake-up, or every POLL_S seconds in case one was
missed, reads the notifications after the last one it saw and hands each to
the subscribers whose filter it passes: the live event streams. It also sets
the wakers of whoever only needs to know that something happened (the hook
sender).

Notification ids follow commit order (see the migration), so reading on
after the last id misses nothing. A subscriber's queue is bounded: one that
does not keep up is dropped, not allowed to grow memory, and a stream client
then reconnects with its Last-Event-ID and catches up from the database.
When the bus restarts after losing its connection it goes on from the same
id, so subscribers see no gap.

At most MAX_SUBSCRIBERS subscribers are open at once (past it a 503), and at
most the cap its caller gives of one client's (past it a 429): one client,
which needs no credentials for a stream, cannot take every slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any

import asyncpg

from kopers.db.store import Store
from kopers.errors import KopersError
from kopers.notifications import Notification

log = logging.getLogger(__name__)

CHANNEL = "kopers_events"
POLL_S = 5.0
BATCH = 500
QUEUE_SIZE = 1000  # notifications a subscriber may be behind before it is dropped
MAX_SUBSCRIBERS = 1000


class TooManySubscribers(KopersError):
    status = 503


class TooManyFromClient(KopersError):
    status = 429


class Subscription:
    """One subscriber's queue of notifications (of one project, or of all)."""

    def __init__(
        self, bus: EventBus, project_id: int | None, size: int, client: str | None
    ) -> None:
        self.project_id = project_id
        self.client = client  # whose subscription it is, for the per-client cap
        self.dropped = False  # fell behind by a whole queue
        self.ended = False
        self._bus = bus
        self._queue: asyncio.Queue[Notification | None] = asyncio.Queue(size)

    async def get(self) -> Notification | None:
        """The next notification; None once the subscription ended (dropped or closed)."""
        if self.ended:
            return None
        item = await self._queue.get()
        return None if self.ended else item

    def close(self) -> None:
        self._bus._remove(self)
        self._end()

    def _offer(self, n: Notification) -> None:
        if self.project_id is not None and n.project_id != self.project_id:
            return
        try:
            self._queue.put_nowait(n)
        except asyncio.QueueFull:
            self.dropped = True
            self.close()

    def _end(self) -> None:
        self.ended = True
        with contextlib.suppress(asyncio.QueueFull):  # a full queue's reader is not waiting
            self._queue.put_nowait(None)


class EventBus:
    def __init__(self, dsn: str, store: Store, max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self.dsn = dsn
        self.store = store
        self.max_subscribers = max_subscribers
        self.subscribers: list[Subscription] = []
        self._of_client: Counter[str] = Counter()
        self._wakers: set[asyncio.Event] = set()
        self._signal = asyncio.Event()
        self._cursor: int | None = None  # the last notification handed out

    async def subscribe(
        self,
        project_id: int | None,
        size: int = QUEUE_SIZE,
        *,
        client: str | None = None,
        client_cap: int = 0,
    ) -> Subscription:
        """A new subscriber to the notifications of `project_id` (None: of every project).

        It gets every notification committed after it subscribed, and maybe a few
        from just before (a reader of stored ones drops those by id). `client` is
        whose it is (kopers.api.guard.client_key; None: Kopers' own), who may hold
        at most `client_cap` subscriptions (0: no cap).
        """
        # Before the loop has started, it must begin where this subscriber begins.
        await self._start_cursor()
        # Counted after the await, with none between the count and the append.
        if len(self.subscribers) >= self.max_subscribers:
            raise TooManySubscribers("too many event streams are open; try again later")
        if client is not None and client_cap and self._of_client[client] >= client_cap:
            raise TooManyFromClient(
                f"at most {client_cap} event streams may be open from one address; close one first"
            )
        sub = Subscription(self, project_id, size, client)
        self.subscribers.append(sub)
        if client is not None:
            self._of_client[client] += 1
        return sub

    def add_waker(self, event: asyncio.Event) -> None:
        """Set `event` whenever new notifications have been read."""
        self._wakers.add(event)

    def remove_waker(self, event: asyncio.Event) -> None:
        self._wakers.discard(event)

    def end_subscribers(self) -> None:
        """End every subscription (Kopers or the HTTP server is stopping)."""
        subs, self.subscribers = self.subscribers, []
        self._of_client.clear()
        for sub in subs:
            sub._end()

    def _remove(self, sub: Subscription) -> None:
        try:
            self.subscribers.remove(sub)
        except ValueError:
            return  # removed already
        if sub.client is not None:
            self._of_client[sub.client] -= 1
            if self._of_client[sub.client] <= 0:
                del self._of_client[sub.client]  # a client with nothing open takes no memory

    async def run(self) -> None:
        """The loop: listen, and hand out what is new at each wake-up."""
        conn = await asyncpg.connect(self.dsn)
        try:
            conn.add_termination_listener(self._lost)
            await conn.add_listener(CHANNEL, self._heard)
            await self._start_cursor()
            while True:
                self._signal.clear()
                await self.catch_up()
                # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a
                # cancel that arrives as the event is set, and the loop never stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_S):
                        await self._signal.wait()
                if conn.is_closed():
                    raise ConnectionError("the LISTEN connection to Postgres was lost")
        except asyncio.CancelledError:
            self.end_subscribers()
            raise
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    async def catch_up(self) -> None:
        """Hand out every notification after the last one handed out."""
        before = cursor = await self._start_cursor()
        # Read even with nobody subscribed: one may subscribe while this waits,
        # and it must get what commits from then on.
        while True:
            batch = await self.store.notifications_after(cursor, None, BATCH)
            for n in batch:
                for sub in list(self.subscribers):
                    sub._offer(n)
                self._cursor = cursor = n.id
            if len(batch) < BATCH:
                break
        if cursor != before:
            for event in self._wakers:
                event.set()

    async def _start_cursor(self) -> int:
        """The last notification handed out; the newest stored one, the first time."""
        if self._cursor is None:
            last = await self.store.last_notification_id()
            if self._cursor is None:  # set while this waited: that one came first
                self._cursor = last
        return self._cursor

    def _heard(self, *_: Any) -> None:
        self._signal.set()

    def _lost(self, *_: Any) -> None:
        self._signal.set()
