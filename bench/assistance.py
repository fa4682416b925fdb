"""Assistance benchmark: one pushed batch of N family grants (default 10,000 items) through the real service
path — signature, Idempotency-Key claim, matching by citizen-ID hash, eligibility, yearly cap and budget
(each a conditional UPDATE), one disbursement row and one outbox event per item — on SQLite and PostgreSQL,
beside a raw bulk insert of the same number of disbursement rows in the same run. Prints figures, asserts
no time."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from bench import prepare
from ops.scratchdb import ScratchDatabases
from services import load
from services.assistance.models import metadata
from shared import migrations, webhooks
from shared.auth import issue_token
from shared.bus.consumer import Consumer
from shared.clock import utcnow
from shared.db import bulk_insert, transaction
from shared.events.assessment import ASSESSMENT_RECORDED
from shared.events.registry import HOUSEHOLD_REGISTERED
from shared.ids import new_id
from shared.pii import CitizenIdProtector
from tests.kit.apps import consumer_record, make_settings, running
from tests.kit.registry import citizen_id


@asynccontextmanager
async def service(url: str) -> AsyncIterator[tuple[Any, httpx.AsyncClient, dict[str, str]]]:
    settings = make_settings("assistance", url, "127.0.0.1:1", run_bus=False, log_level="WARNING")
    app = load("assistance").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        token = issue_token(settings.auth, client_id="bench", scopes=["assistance:read", "assistance:write"],
                            areas=["*"])
        yield app, client, {"Authorization": f"Bearer {token}"}


async def announce(app: Any, n: int, rng: random.Random) -> list[str]:
    """N target-poor households of one person in Khon Kaen, through the real consumer; their citizen IDs."""
    protector = CitizenIdProtector(app.state.settings.pii)
    consumer: Consumer = app.state.consumer
    ids: list[str] = []
    for start in range(0, n, 1000):
        records = []
        for k in range(start, min(n, start + 1000)):
            household_id, cid = new_id(), citizen_id(rng)
            ids.append(cid)
            village = f"4001{1 + k % 20:02d}0{1 + k % 9}"
            area = {"province_code": "40", "district_code": "4001", "subdistrict_code": village[:6],
                    "village_code": village}
            records.append(consumer_record(HOUSEHOLD_REGISTERED, {
                "household_id": household_id, "version": 1, "status": "open", "village_no": int(village[6:]),
                "sources": ["tpmap"], "welfare_card": True, "team_id": None, **area,
                "members": [{"member_id": new_id(), "citizen_id_hash": protector.hash(cid), "sex": "female",
                             "birth_date": "1970-05-01", "relation": "head", "disability": False}]}))
            records.append(consumer_record(ASSESSMENT_RECORDED, {
                "assessment_id": new_id(), "household_id": household_id, "survey_year": 2565, "revision": 1,
                "surveyed_on": "2022-01-15", "indicator_set": "tpmap-2560", "indicator_set_version": 1,
                **area, "dimensions": {"income": True}, "indicators": {}, "score": "1/4", "score_value": 0.25,
                "poor": False, "severity": "vulnerable", "target_poor": True, "welfare_card": True,
                "member_count": 1}))
        await consumer.process([consumer.handlers.decode(r) for r in records])
    return ids


async def push(app: Any, client: httpx.AsyncClient, headers: dict[str, str], cids: list[str]) -> float:
    n = len(cids)
    budget = await client.put("/v1/budgets/family_grant/2565/40", json={"amount": f"{3000 * n}.00"},
                              headers=headers)
    assert budget.status_code == 200, budget.text
    body = json.dumps({"batch_ref": "BENCH-1", "programme": "family_grant", "fiscal_year": 2565,
                       "paid_on": "2022-01-27", "items": [{"item_ref": f"I{k:06d}", "citizen_id": cid,
                                                           "amount": "3000.00"} for k, cid in enumerate(cids)]})
    secrets = [s.get_secret_value() for s in app.state.settings.ministry_webhook_secrets]
    signed = webhooks.signed_headers(secrets, f"msg_{new_id()}", body.encode())
    started = time.perf_counter()
    response = await client.post("/v1/disbursement-batches", content=body, timeout=600,
                                 headers=signed | {"Idempotency-Key": "bench", "Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.text[:500]
    totals = response.json()["totals"]
    assert totals["accepted"] == n and Decimal(totals["accepted_amount"]) == 3000 * n, totals
    return elapsed


async def raw_insert(app: Any, n: int) -> float:
    """The baseline: N disbursement rows (and one batch row) by the driver's bulk path, built beforehand."""
    batch_id, now = new_id(), utcnow()
    batch = {"id": batch_id, "batch_ref": "RAW-1", "programme": "family_grant", "fiscal_year": 2565,
             "paid_on": now.date(), "webhook_id": "raw", "idempotency_key": "raw", "items": n, "accepted": n,
             "rejected": 0, "accepted_amount": Decimal(3000 * n), "created_at": now}
    rows = [{"id": new_id(), "batch_id": batch_id, "item_ref": f"R{k:06d}", "programme": "family_grant",
             "fiscal_year": 2565, "paid_on": now.date(), "household_id": new_id(), "centre_id": None,
             "village_code": "40010101", "budget_id": None, "amount": Decimal("3000.00"), "status": "accepted",
             "reason": None, "note": None, "reversed_at": None, "reversal_reason": None, "created_at": now,
             "updated_at": now}
            for k in range(n)]
    started = time.perf_counter()
    async with transaction(app.state.sessionmaker) as session:
        await bulk_insert(session, metadata.tables["disbursement_batch"], [batch])
        await bulk_insert(session, metadata.tables["disbursement"], rows)
    return time.perf_counter() - started


async def measure(items: int, postgres_url: str | None) -> list[tuple[str, float, float]]:
    """(database, pushed items/s, raw inserted rows/s) on SQLite and, given its admin URL, PostgreSQL."""
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ["sqlite"] + (["postgres"] if postgres_url else []):
            dbs = ScratchDatabases(kind, Path(tmp), postgres_url, prefix="kk_bench")
            try:
                async with service(await dbs.new("assistance")) as (app, client, headers):
                    cids = await announce(app, items, random.Random(2565))
                    elapsed = await push(app, client, headers, cids)
                    raw = await raw_insert(app, items)
                figures.append((kind, items / elapsed, items / raw))
            finally:
                await dbs.drop_all()
    return figures


async def run(args: argparse.Namespace) -> None:
    from shared.observability import configure_logging

    configure_logging(level="WARNING", json=False)
    print(f"assistance benchmark: one signed batch of {args.items:,} family grants by citizen ID, all eligible, "
          "beside a raw bulk insert of as many disbursement rows")
    for kind, rate, raw_rate in await measure(args.items, args.postgres_url):
        print(f"  {kind:9} push {rate:8,.0f} items/s   raw insert {raw_rate:8,.0f} rows/s   ratio "
              f"{rate / raw_rate:.3f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.assistance", description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"),
                        help="admin URL for throwaway databases; PostgreSQL is measured when given")
    args = parser.parse_args(argv)
    prepare()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
