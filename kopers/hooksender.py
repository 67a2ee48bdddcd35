"""The hook sender: the supervised loop that empties the outbox of webhook deliveries.

Each hook is drained on its own. Whenever a hook's oldest pending delivery
(its head) is due and no drain of that hook is running, the loop starts one,
as slots allow: at most CONCURRENT_DRAINS at once, and at most
DRAINS_PER_PROJECT of one project's hooks, so neither a slow receiver nor a
project with many hooks holds back the others. The loop never waits for the
drains: it looks for due work again as soon as anything changes.

A drain sends its hook's deliveries one at a time in notification order, up
to the first one that fails: a failing head holds back the hook's later
events, so a receiver gets them in order. It ends when nothing of its hook is
due, or after DRAIN_BUDGET_S seconds; a hook with more to send then waits
for a slot behind the hooks that were due before it made way (`pick_drains`).

A delivery is a POST of the event's JSON, signed (kopers.notifications); a
2xx answer delivers it, anything else (another status, a refused or timed out
connection, an address the policy refuses) is tried again after `[webhooks]
retry_initial` seconds, the pause doubling up to `retry_max`. A delivery that
fails when its event is older than `give_up_hours` fails for good, and takes
the hook's other deliveries of such old events with it.

A delivery is marked delivered only after the receiver's 2xx, so a crash, or
a stop in the middle of a try, sends it again (at least once; the
X-Kopers-Delivery header lets a receiver drop the repeat). Redirects are not
followed: a 3xx is a failed try. Every connection goes through the address
policy (`[network] allow`), checked again at each try, as URL imports do.

The loop wakes when the event bus hears of a new notification, when a drain
ends, when the next retry is due, and at least every POLL_S seconds.
Cancelling it cancels its drains and waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    DueHook,
    Outgoing,
    answer_text,
    body_bytes,
    delivery_headers,
    event_json,
    retry_delay,
)

log = logging.getLogger(__name__)

POLL_S = 5.0  # the longest sleep between looks for due work
CONCURRENT_DRAINS = 16  # hooks sent to at once
DRAINS_PER_PROJECT = 4  # of them, hooks of one project
DRAIN_BUDGET_S = 10.0  # then a hook with more to send makes way for those waiting
DUE_CANDIDATES = 100  # due hooks looked at per look
FORGET_TURN = timedelta(hours=1)  # then when a hook made way no longer matters
READ_ANSWER_BYTES = 2048
PRUNE_EVERY = timedelta(hours=1)
KEEP_NOTIFICATIONS = timedelta(days=7)
DRAIN_TASK = "hook-drain-"  # and the hook's id: the drain tasks' names


def _utcnow() -> datetime:
    return datetime.now(UTC)


def pick_drains(
    due: Sequence[DueHook],
    running: Mapping[int, int],
    served: Mapping[int, datetime],
    total: int,
    per_project: int,
) -> list[DueHook]:
    """The due hooks to start draining now, in the order to start them. Pure.

    `running` maps each hook being drained to its project; `served` maps a hook
    whose drain made way with more to send to when it did. A hook waits from
    when its head fell due or, if later, from when it made way; the longest
    waiting go first. No hook is drained twice at once, at most `total` drains
    run, and at most `per_project` of them are one project's.
    """
    free = total - len(running)
    busy = Counter(running.values())
    chosen: list[DueHook] = []

    def waiting_since(h: DueHook) -> tuple[datetime, int]:
        return (max(h.due_at, served.get(h.hook_id, h.due_at)), h.hook_id)

    for hook in sorted(due, key=waiting_since):
        if free <= 0:
            break
        if hook.hook_id in running or busy[hook.project_id] >= per_project:
            continue
        chosen.append(hook)
        busy[hook.project_id] += 1
        free -= 1
    return chosen


@dataclass(frozen=True, slots=True)
class _Drain:
    project_id: int
    task: asyncio.Task[bool]  # True: it made way with more to send


class HookSender:
    def __init__(
        self,
        config: Config,
        store: Store,
        policy: AddressPolicy,
        *,
        bus: EventBus | None = None,
        clock: Callable[[], datetime] = _utcnow,
        concurrency: int = CONCURRENT_DRAINS,
        per_project: int = DRAINS_PER_PROJECT,
        budget_s: float = DRAIN_BUDGET_S,
    ) -> None:
        self.config = config
        self.store = store
        self.policy = policy
        self.bus = bus
        self.clock = clock
        self.concurrency = concurrency
        self.per_project = per_project
        self.budget_s = budget_s
        self.tries = 0  # deliveries tried since start
        self._wake = asyncio.Event()
        # One drain per hook at a time: a hook's order depends on it.
        self._drains: dict[int, _Drain] = {}
        self._served: dict[int, datetime] = {}  # hook -> when it last made way for others
        self._crash: BaseException | None = None  # a drain's unexpected error, for the loop
        self._pruned: datetime | None = None

    async def run(self) -> None:
        """The loop: start drains of due hooks, then sleep until something changes."""
        if self.bus is not None:
            self.bus.add_waker(self._wake)
        try:
            async with self._session() as session:
                try:
                    while True:
                        self._wake.clear()
                        self._raise_crash()
                        await self._start_due(session)
                        await self._prune_now_and_then()
                        sleep_s = await self._sleep_s()
                        with contextlib.suppress(TimeoutError):  # see EventBus.run
                            async with asyncio.timeout(sleep_s):
                                await self._wake.wait()
                finally:
                    # Every drain ends before the session closes, on a stop as on a crash.
                    await self._cancel_drains()
        finally:
            if self.bus is not None:
                self.bus.remove_waker(self._wake)

    async def deliver_due(self, session: aiohttp.ClientSession | None = None) -> int:
        """Drain every hook with a due delivery until none is due; how many tries were made.

        What the loop does, waited for: in a quiet world, one pass over the outbox.
        """
        before = self.tries
        async with contextlib.AsyncExitStack() as stack:
            if session is None:
                session = await stack.enter_async_context(self._session())
            try:
                while True:
                    self._raise_crash()
                    # A look while drains run leaves their hooks and projects out; one
                    # that ended during the look may have left due work behind.
                    whole = not self._drains
                    await self._start_due(session)
                    if not self._drains:
                        if whole:
                            break
                        continue
                    tasks = [d.task for d in self._drains.values()]
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                await self._cancel_drains()  # none outlives the session
                raise
        return self.tries - before

    def _session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=self.config.webhooks.timeout_s)
        return aiohttp.ClientSession(
            connector=policy_connector(self.policy), timeout=timeout, auto_decompress=False
        )

    async def _start_due(self, session: aiohttp.ClientSession) -> None:
        """Start a drain of each due hook that the slots allow."""
        due = await self.store.due_hooks(
            self.clock(), DUE_CANDIDATES, list(self._drains), self._full_projects()
        )
        running = {hook: d.project_id for hook, d in self._drains.items()}
        for hook in pick_drains(due, running, self._served, self.concurrency, self.per_project):
            self._start(session, hook)
        # A turn is forgotten when the hook's next drain ends; this is for deleted hooks.
        forget = self.clock() - FORGET_TURN
        self._served = {h: t for h, t in self._served.items() if t > forget}

    def _full_projects(self) -> list[int]:
        """The projects with their fill of drains: none of their hooks can start now."""
        busy = Counter(d.project_id for d in self._drains.values())
        return [project for project, count in busy.items() if count >= self.per_project]

    def _start(self, session: aiohttp.ClientSession, hook: DueHook) -> None:
        task = asyncio.create_task(
            self._drain(session, hook.hook_id), name=f"{DRAIN_TASK}{hook.hook_id}"
        )
        self._drains[hook.hook_id] = _Drain(hook.project_id, task)
        task.add_done_callback(functools.partial(self._ended, hook.hook_id))

    def _ended(self, hook_id: int, task: asyncio.Task[bool]) -> None:
        """A drain ended: its slot is free, and the loop looks for due work again."""
        drain = self._drains.get(hook_id)
        if drain is not None and drain.task is task:
            del self._drains[hook_id]
        self._wake.set()
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            if self._crash is None:
                self._crash = error
        elif task.result():  # it made way: behind those waiting, next time
            self._served[hook_id] = self.clock()
        else:
            self._served.pop(hook_id, None)

    def _raise_crash(self) -> None:
        """A drain failed in a way a try does not (the database went): the loop fails too."""
        crash, self._crash = self._crash, None
        if crash is not None:
            raise crash

    async def _cancel_drains(self) -> None:
        tasks = [d.task for d in self._drains.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._crash = None  # of a drain that ended as the others were stopped

    async def _drain(self, session: aiohttp.ClientSession, hook_id: int) -> bool:
        """Send a hook's due deliveries in order until one fails, none is due, or time is up.

        True if time was up (the hook may have more to send), False if it has nothing due.
        """
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.budget_s
        while True:
            head = await self.store.head_delivery(hook_id)
            if head is None or head.delivery.next_at > self.clock():
                return False
            self.tries += 1
            attempt = await self._send(session, head)
            if not await self._record(head, attempt):
                return False
            if loop.time() >= ends:
                return True

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
        """Until the next head that could be started is due, at most POLL_S.

        Hooks being drained, and those of projects with their fill of drains,
        are left out: a drain's end wakes the loop. With every slot taken, only
        a drain's end can change anything.
        """
        if len(self._drains) >= self.concurrency:
            return POLL_S
        due = await self.store.next_due(list(self._drains), self._full_projects())
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
