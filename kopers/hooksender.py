"""The hook sender: the supervised loop that empties the outbox of webhook deliveries.

Each pass takes the hooks whose oldest pending delivery (their head) is due
and works through each hook's deliveries in notification order, up to the
first one that fails: a failing head holds back the hook's later events, so
a receiver gets them in order. Different hooks go on independently, a few at
once. A delivery is a POST of the event's JSON, signed (kopers.notifications);
a 2xx answer delivers it, anything else (another status, a refused or timed
out connection, an address the policy refuses) is tried again after
`[webhooks] retry_initial` seconds, the pause doubling up to `retry_max`.
A delivery that fails when its event is older than `give_up_hours` fails
for good, and takes the hook's other deliveries of such old events with it.

A delivery is marked delivered only after the receiver's 2xx, so a crash
between the two sends it again (at least once; the X-Kopers-Delivery header
lets a receiver drop the repeat). Redirects are not followed: a 3xx is a
failed try. Every connection goes through the address policy
(`[network] allow`), checked again at each try, as URL imports do.

The loop wakes when the event bus hears of a new notification, when the next
retry is due, and at least every POLL_S seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp

from kopers.config import Config
from kopers.db.store import Store
from kopers.eventbus import EventBus
from kopers.net.connect import policy_connector
from kopers.net.policy import AddressPolicy, AddressRefused
from kopers.notifications import (
    Attempt,
    DeliveryState,
    Outgoing,
    answer_text,
    body_bytes,
    delivery_headers,
    event_json,
    retry_delay,
)

log = logging.getLogger(__name__)

POLL_S = 5.0  # the longest sleep between passes
CONCURRENT_HOOKS = 8  # hooks sent to at once
HOOKS_PER_PASS = 100
PER_HOOK_PER_PASS = 50  # then the other hooks get their turn
READ_ANSWER_BYTES = 2048
PRUNE_EVERY = timedelta(hours=1)
KEEP_NOTIFICATIONS = timedelta(days=7)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HookSender:
    def __init__(
        self,
        config: Config,
        store: Store,
        policy: AddressPolicy,
        *,
        bus: EventBus | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.config = config
        self.store = store
        self.policy = policy
        self.bus = bus
        self.clock = clock
        self._wake = asyncio.Event()
        self._pass = asyncio.Lock()  # one pass at a time: a hook's order depends on it
        self._pruned: datetime | None = None

    async def run(self) -> None:
        """The loop: a pass, then sleep until woken or the next delivery is due."""
        if self.bus is not None:
            self.bus.add_waker(self._wake)
        try:
            async with self._session() as session:
                while True:
                    self._wake.clear()
                    await self.deliver_due(session)
                    await self._prune_now_and_then()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), await self._sleep_s())
        finally:
            if self.bus is not None:
                self.bus.remove_waker(self._wake)

    async def deliver_due(self, session: aiohttp.ClientSession | None = None) -> int:
        """One pass over every hook with a due delivery; how many tries were made."""
        async with self._pass, contextlib.AsyncExitStack() as stack:
            if session is None:
                session = await stack.enter_async_context(self._session())
            hooks = await self.store.due_hooks(self.clock(), HOOKS_PER_PASS)
            slots = asyncio.Semaphore(CONCURRENT_HOOKS)

            async def drain(hook_id: int) -> int:
                async with slots:
                    return await self._drain(session, hook_id)

            # Every hook's run ends before the session closes, even when one fails.
            results = await asyncio.gather(*(drain(h) for h in hooks), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            return sum(r for r in results if isinstance(r, int))

    def _session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=self.config.webhooks.timeout_s)
        return aiohttp.ClientSession(
            connector=policy_connector(self.policy), timeout=timeout, auto_decompress=False
        )

    async def _drain(self, session: aiohttp.ClientSession, hook_id: int) -> int:
        """Send a hook's due deliveries in order until one fails; how many were tried."""
        tried = 0
        while tried < PER_HOOK_PER_PASS:
            head = await self.store.head_delivery(hook_id)
            if head is None or head.delivery.next_at > self.clock():
                break
            tried += 1
            attempt = await self._send(session, head)
            if not await self._record(head, attempt):
                break
        return tried

    async def _send(self, session: aiohttp.ClientSession, out: Outgoing) -> Attempt:
        """POST one delivery; never raises for what the receiver or the network does."""
        d = out.delivery
        body = body_bytes(event_json(d.notification, d.id, self.config.server.public_url))
        headers = delivery_headers(d.notification.kind, d.id, out.secret, body)
        try:
            async with session.post(
                out.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                raw = await resp.content.read(READ_ANSWER_BYTES)
                ok = 200 <= resp.status < 300
                error = None if ok else f"the receiver answered HTTP {resp.status}"
                return Attempt(ok, resp.status, answer_text(raw), error)
        except AddressRefused as exc:
            return Attempt(False, error=exc.message)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                return Attempt(False, error=exc.os_error.message)
            return Attempt(False, error=_connect_failure(exc))
        except TimeoutError:
            return Attempt(False, error=f"no answer within {self.config.webhooks.timeout_s} s")
        except aiohttp.ClientError as exc:
            return Attempt(False, error=f"the request failed: {type(exc).__name__}")
        except ValueError as exc:  # a URL aiohttp will not take after all
            return Attempt(False, error=f"cannot send to this URL: {exc}"[:200])
        except Exception as exc:  # a failed try, not a failed loop: the others go on
            log.exception("webhook %d: sending delivery %d failed", d.hook_id, d.id)
            return Attempt(False, error=f"the request failed: {type(exc).__name__}")

    async def _record(self, out: Outgoing, attempt: Attempt) -> bool:
        """Store a try's outcome; True if the hook's next delivery may go now."""
        now = self.clock()
        d = out.delivery
        cfg = self.config.webhooks
        if attempt.delivered:
            state = DeliveryState.DELIVERED
        elif d.notification.at < now - timedelta(hours=cfg.give_up_hours):
            state = DeliveryState.FAILED
        else:
            state = DeliveryState.PENDING
        delay = retry_delay(d.attempts + 1, cfg.retry_initial_s, cfg.retry_max_s)
        await self.store.record_attempt(
            d.id,
            now,
            state,
            attempt.status,
            attempt.answer,
            attempt.error,
            now + timedelta(seconds=delay),
        )
        if state == DeliveryState.FAILED:
            log.warning("webhook %d: gave up delivery %d: %s", d.hook_id, d.id, attempt.error)
            older = now - timedelta(hours=cfg.give_up_hours)
            await self.store.give_up_behind(d.hook_id, older, now)
        elif state == DeliveryState.PENDING:
            log.info("webhook %d: delivery %d failed: %s", d.hook_id, d.id, attempt.error)
        # Once the head is settled for good, the next one may go at once.
        return state != DeliveryState.PENDING

    async def _sleep_s(self) -> float:
        """Until the next retry is due, at most POLL_S."""
        due = await self.store.next_due()
        if due is None:
            return POLL_S
        return min(POLL_S, max(0.05, (due - self.clock()).total_seconds()))

    async def _prune_now_and_then(self) -> None:
        now = self.clock()
        if self._pruned is not None and now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        gone = await self.store.prune_notifications(now - KEEP_NOTIFICATIONS)
        if gone:
            log.info("pruned %d old notifications", gone)


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """A short category for a failed connection (the receiver's own words are not in it)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "the receiver's name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate verification failed"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc.os_error, ConnectionRefusedError):
        return "connection refused"
    return "cannot connect to the receiver"
