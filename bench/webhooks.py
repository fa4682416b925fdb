"""Webhook benchmark: deliveries/s from the sender (shared/webhooks/sender.py) to a local receiver, beside raw
httpx POSTs of the same bodies to the same receiver, in the same run (prints, asserts no time).

The receiver is a bare ASGI app under uvicorn in a process of its own, answering 204 to every POST. The sender
runs on an assistance database (SQLite) holding one subscription and `deliveries` deliveries over `keys`
households; it leases, signs, POSTs and settles each (one transaction per outcome), at most `concurrency` in
flight (`per_subscription` = `max_in_flight` = concurrency). The baseline POSTs the same bodies with one httpx
client and the same number of concurrent workers, unsigned, with no database. Both check every body arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from bench import prepare
from ops.broker import free_port
from services.assistance.app import SPEC
from services.assistance.models import webhook
from shared import migrations
from shared.clock import utcnow
from shared.db import create_engine, sessionmaker, transaction
from shared.events.assistance import REFERRAL_CREATED
from shared.events.envelope import CloudEvent, source_for
from shared.ids import new_id
from shared.settings import REPO_ROOT
from shared.webhooks import new_secret
from shared.webhooks.sender import Sender
from shared.webhooks.settings import WebhookSettings


async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The receiving end: reads the body, answers 204."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@dataclass
class Result:
    deliveries: int
    sender_s: float
    raw_s: float

    @property
    def rate(self) -> float:
        return self.deliveries / self.sender_s

    @property
    def raw_rate(self) -> float:
        return self.deliveries / self.raw_s


def bodies(count: int, keys: int) -> list[tuple[str, str, str]]:
    """(event id, key, CloudEvent JSON) of `count` referral.created events over `keys` households."""
    households = [new_id() for _ in range(keys)]
    out = []
    for n in range(count):
        household = households[n % keys]
        event = CloudEvent(source=source_for("assistance"), type=REFERRAL_CREATED.type, subject=household,
                           partitionkey=household, data={
                               "referral_id": new_id(), "household_id": household, "village_code": "40010103",
                               "dimension": "health", "partner_id": new_id(), "partner_sector": "government",
                               "due_on": "2022-03-01", "status": "open", "version": 1})
        out.append((event.id, household, event.to_json().decode()))
    return out


async def raw_posts(url: str, events: list[tuple[str, str, str]], concurrency: int) -> float:
    queue = list(reversed(events))
    async with httpx.AsyncClient(timeout=10) as client:
        async def worker() -> None:
            while queue:
                _, _, body = queue.pop()
                response = await client.post(url, content=body.encode(),
                                             headers={"content-type": "application/cloudevents+json"})
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def sender_posts(url: str, events: list[tuple[str, str, str]], concurrency: int, folder: Path) -> float:
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'assistance.db'}")
    try:
        await migrations.upgrade(engine, SPEC.migrations_dir)
        maker = sessionmaker(engine)
        now, subscription_id = utcnow(), new_id()
        async with transaction(maker) as session:
            await session.execute(insert(webhook.subscriptions).values(
                id=subscription_id, owner="bench", url=url, event_types=["referral.created"], areas=["*"],
                partner_id=None, secrets=[{"secret": new_secret(), "expires_at": None}], status="active",
                disabled_reason=None, created_at=now, failing_since=None))
            await session.execute(insert(webhook.deliveries), [
                {"subscription_id": subscription_id, "event_id": event_id, "event_type": "referral.created",
                 "key": key, "body": body, "attempts": 0, "next_attempt_at": now, "created_at": now}
                for event_id, key, body in events])
        settings = WebhookSettings(per_subscription=concurrency, max_in_flight=concurrency, poll_interval_s=0.01,
                                   allow_private_targets=True)
        sender = Sender(webhook, maker, settings, production=False)
        d = webhook.deliveries
        started = time.perf_counter()
        sender.start()
        try:
            while True:
                async with transaction(maker) as session:
                    left = (await session.execute(select(func.count()).where(d.c.delivered_at.is_(None)))).scalar()
                if not left:
                    break
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            await sender.stop()
        return elapsed
    finally:
        await engine.dispose()


async def measure(deliveries: int = 2_000, keys: int = 500, concurrency: int = 16, rounds: int = 3) -> Result:
    """`rounds` alternating runs of the baseline and the sender (each sender run on a fresh database); the
    median of each, so a burst of load from elsewhere on the machine moves one run, not the figure."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "bench.webhooks:receiver", "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log", cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}/hook"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    await client.post(url, content=b"{}")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        events = bodies(deliveries, keys)
        raw, sent = [], []
        for _ in range(rounds):
            raw.append(await raw_posts(url, events, concurrency))
            with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-webhooks-") as tmp:
                sent.append(await sender_posts(url, events, concurrency, Path(tmp)))
        return Result(deliveries, statistics.median(sent), statistics.median(raw))
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("--deliveries", type=int, default=2_000)
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    prepare()
    result = asyncio.run(measure(args.deliveries, args.keys, args.concurrency, args.rounds))
    print(f"sender: {result.rate:,.0f} deliveries/s; raw httpx: {result.raw_rate:,.0f} POSTs/s; "
          f"ratio {result.rate / result.raw_rate:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
