"""The sender: a background task of the service that POSTs due deliveries, signed as Standard Webhooks do.

Each turn takes due deliveries (`next_attempt_at` passed, not delivered, not leased by another replica) that are
the oldest undelivered of their household for their subscription (a household's events arrive in order), at
most `per_subscription` in flight per subscription and `max_in_flight` in all, leases them (`claimed_until`;
on PostgreSQL under `FOR UPDATE SKIP LOCKED`, so replicas never take the same one) and sends each in a task of
its own: one slow or failing receiver holds only its own slots. A 2xx marks the delivery delivered; a 410
disables the subscription at once; anything else (another status, a time-out, a refused connection) schedules
the next attempt after an exponential backoff with jitter, and a subscription failing for `retry_hours`
is disabled with the reason. A process killed mid-delivery leaves the row undelivered: it is sent again when
the lease ends (at once on SQLite, which has one process), with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utcnow
from shared.db import as_utc, transaction
from shared.webhooks import signed_headers
from shared.webhooks.models import WebhookTables
from shared.webhooks.settings import WebhookSettings
from shared.webhooks.targets import TargetRefused, check_target

log = structlog.get_logger("kaenkhun.webhooks")

CONTENT_TYPE = "application/cloudevents+json"
USER_AGENT = "kaenkhun-webhooks/1"
_SQLITE_STARTED: set[str] = set()  # SQLite databases a sender of this process has started on


def current_secrets(secrets: list[dict[str, Any]], now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one until its expiry."""
    return [s["secret"] for s in secrets
            if s.get("expires_at") is None or datetime.fromisoformat(s["expires_at"]) > now]


def backoff_s(attempts: int, settings: WebhookSettings) -> float:
    """Delay before the next attempt after `attempts` failures: base·2^(attempts-1), capped, × [0.5, 1)."""
    delay: float = min(settings.backoff_max_s, settings.backoff_base_s * 2.0 ** max(attempts - 1, 0))
    return delay * random.uniform(0.5, 1)


class Sender:
    def __init__(self, tables: WebhookTables, maker: async_sessionmaker[AsyncSession], settings: WebhookSettings,
                 *, production: bool, wakeup: asyncio.Event | None = None) -> None:
        self.tables = tables
        self.maker = maker
        self.settings = settings
        self.allow_private = settings.private_allowed(production)
        self.wakeup = wakeup or asyncio.Event()
        self._in_flight: Counter[str] = Counter()
        self._outcomes: list[tuple[Any, int | None, str | None, asyncio.Future[None]]] = []
        self._settle_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="webhook-sender")

    async def stop(self, timeout_s: float = 10.0) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=timeout_s)  # never wait for ever on the loop's end
            self._task = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)
            for task in self._tasks:
                task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def kill(self) -> None:
        """Stop abruptly, as a crash would: deliveries in flight are abandoned, leased (tests use it)."""
        for task in [*self._tasks, *([self._task] if self._task else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._task] if self._task else []), return_exceptions=True)
        self._task = None
        self._tasks.clear()
        self._in_flight.clear()

    async def run(self) -> None:
        async with transaction(self.maker) as session:
            bind = session.get_bind()
            database = str(bind.engine.url) if hasattr(bind, "engine") else ""
            if bind.dialect.name == "sqlite" and database not in _SQLITE_STARTED:
                # One process per SQLite database: whatever a process killed before this one had leased is free
                # now (a second sender in this same process, as in tests, leaves the first one's leases alone).
                _SQLITE_STARTED.add(database)
                d = self.tables.deliveries
                await session.execute(update(d).where(d.c.claimed_until.is_not(None)).values(claimed_until=None))
        while True:
            try:
                started = await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook sender turn failed", error=repr(exc))
                started = 0
            if started and len(self._tasks) < self.settings.max_in_flight:
                continue
            self.wakeup.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as
            # the wait ends, and stop() then waited on this loop for ever (seen once in CI).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval_s):
                    await self.wakeup.wait()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until the deliveries in flight are settled (tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    # -- one turn ------------------------------------------------------------------------------------

    async def send_due(self) -> int:
        """Lease the due deliveries there is room for and start sending them; returns how many started."""
        room = self.settings.max_in_flight - len(self._tasks)
        if room <= 0 or (self._tasks and room < max(1, self.settings.max_in_flight // 4)):
            return 0  # a turn costs a transaction: take a few at a time, not one each time one settles
        d, s = self.tables.deliveries, self.tables.subscriptions
        now = utcnow()
        older = d.alias("older")
        full = [sid for sid, n in self._in_flight.items() if n >= self.settings.per_subscription]
        query = (
            select(d.c.id, d.c.subscription_id, d.c.event_id, d.c.body, d.c.attempts, s.c.url, s.c.secrets,
                   s.c.failing_since)
            .join(s, s.c.id == d.c.subscription_id)
            .where(d.c.delivered_at.is_(None), d.c.next_attempt_at <= now,
                   or_(d.c.claimed_until.is_(None), d.c.claimed_until < now), s.c.status == "active",
                   ~exists().where(older.c.subscription_id == d.c.subscription_id, older.c.key == d.c.key,
                                   older.c.delivered_at.is_(None), older.c.id < d.c.id))
            .order_by(d.c.id).limit(room * 2)
            .with_for_update(of=d, skip_locked=True)
        )
        if full:
            query = query.where(d.c.subscription_id.not_in(full))
        taken: list[Any] = []
        async with transaction(self.maker) as session:
            per_sub = Counter(self._in_flight)
            for row in (await session.execute(query)).all():
                if len(taken) >= room or per_sub[row.subscription_id] >= self.settings.per_subscription:
                    continue
                per_sub[row.subscription_id] += 1
                taken.append(row)
            if taken:
                await session.execute(update(d).where(d.c.id.in_([r.id for r in taken])).values(
                    claimed_until=now + timedelta(seconds=self.settings.lease_s)))
        for row in taken:
            self._in_flight[row.subscription_id] += 1
            task = asyncio.create_task(self._deliver(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(taken)

    async def _deliver(self, row: Any) -> None:
        try:
            status, error = await self._post(row)
            settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._outcomes.append((row, status, error, settled))
            async with self._settle_lock:  # outcomes that arrived meanwhile are settled together, in one transaction
                if not settled.done():
                    batch, self._outcomes = self._outcomes, []
                    try:
                        async with transaction(self.maker) as session:
                            for outcome in batch:
                                await self._settle(session, *outcome[:3])
                    except Exception as exc:
                        for *_, future in batch:
                            future.set_exception(exc)
                    else:
                        for *_, future in batch:
                            future.set_result(None)
            await settled
        except Exception as exc:  # the row stays leased: sent again when the lease ends
            log.warning("webhook delivery not settled", delivery=row.id, error=repr(exc))
        finally:
            self._in_flight[row.subscription_id] -= 1
            if self._in_flight[row.subscription_id] <= 0:
                del self._in_flight[row.subscription_id]
            self.wakeup.set()

    async def _post(self, row: Any) -> tuple[int | None, str | None]:
        try:
            await check_target(row.url, allow_private=self.allow_private)
        except TargetRefused as exc:
            return None, f"target refused: {exc}"
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_s, follow_redirects=False,
                                             headers={"user-agent": USER_AGENT})
        body = row.body.encode()
        headers = signed_headers(current_secrets(row.secrets, utcnow()), row.event_id, body)
        headers["content-type"] = CONTENT_TYPE
        try:
            response = await self._client.post(row.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return None, f"no answer within {self.settings.timeout_s:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:2000]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, response.text[:500] or None

    async def _settle(self, session: AsyncSession, row: Any, status: int | None, error: str | None) -> None:
        d, s = self.tables.deliveries, self.tables.subscriptions
        now = utcnow()
        attempts = row.attempts + 1
        outcome = {"attempts": attempts, "last_status": status, "claimed_until": None}
        if status is not None and 200 <= status < 300:
            await session.execute(update(d).where(d.c.id == row.id).values(
                **outcome, last_error=None, delivered_at=now))
            if row.failing_since is not None:  # as it was when taken; a later failure set it again: cleared later
                await session.execute(update(s).where(s.c.id == row.subscription_id).values(failing_since=None))
            return
        await session.execute(update(d).where(d.c.id == row.id).values(
            **outcome, last_error=error or f"HTTP {status}",
            next_attempt_at=now + timedelta(seconds=backoff_s(attempts, self.settings))))
        if status == 410:
            await self._disable(session, row.subscription_id, "The receiver answered 410 Gone.")
            return
        await session.execute(update(s).where(s.c.id == row.subscription_id, s.c.failing_since.is_(None))
                              .values(failing_since=now))
        since = (await session.execute(select(s.c.failing_since).where(s.c.id == row.subscription_id))).scalar()
        if since is not None and now - as_utc(since) >= timedelta(hours=self.settings.retry_hours):
            await self._disable(session, row.subscription_id,
                                f"Deliveries have failed since {as_utc(since).isoformat()} (more than "
                                f"{self.settings.retry_hours:g} h); last: {error or f'HTTP {status}'}"[:2000])

    async def _disable(self, session: AsyncSession, subscription_id: str, reason: str) -> None:
        s = self.tables.subscriptions
        await session.execute(update(s).where(s.c.id == subscription_id, s.c.status == "active")
                               .values(status="disabled", disabled_reason=reason))
        log.warning("webhook subscription disabled", subscription=subscription_id, reason=reason)


