"""The baseline of the HTTP benchmark: a bare FastAPI app doing the registry's database work and nothing else.

`POST /households` inserts the household row, its member rows and one outbox row in one transaction (the
same tables, on a database migrated like the registry's, through the same engine); `GET /households/{id}`
reads the household and its members. No validation beyond JSON parsing, no auth, no encryption or keyed
hashing, no audit, no middleware. Run: `KAENKHUN_BENCH_DB=path uvicorn bench.bare:app`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from sqlalchemy import insert, select

from services.registry.models import Household, Member, outbox
from shared.clock import utcnow
from shared.db import create_engine, sessionmaker, transaction
from shared.ids import new_id
from shared.text import name_key

HOUSEHOLDS, MEMBERS = Household.__table__, Member.__table__  # type: ignore[attr-defined]
SOURCES = ("tpmap", "exclusion_error", "vulnerable", "other")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = create_engine(f"sqlite+aiosqlite:///{os.environ['KAENKHUN_BENCH_DB']}")
    app.state.maker = sessionmaker(engine)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.post("/households", status_code=201)
async def create(request: Request) -> dict[str, Any]:
    body = json.loads(await request.body())
    address, now, household_id = body["address"], utcnow(), new_id()
    village = f"{address['subdistrict_code']}{address['village_no']:02d}"
    household = {"id": household_id, "province_code": village[:2], "district_code": village[:4],
                 "subdistrict_code": village[:6], "village_no": address["village_no"], "village_code": village,
                 "house_no": address["house_no"], **{f"source_{s}": s in body["sources"] for s in SOURCES},
                 "welfare_card": body["welfare_card"], "status": "open", "version": 1, "created_at": now,
                 "updated_at": now}
    members = [{"id": new_id(), "household_id": household_id, "position": n, "citizen_id_enc": m["citizen_id"],
                "citizen_id_hash": hashlib.sha256(m["citizen_id"].encode()).hexdigest(), "title": m["title"],
                "first_name": m["first_name"], "last_name": m["last_name"], "first_name_key": name_key(m["first_name"]),
                "last_name_key": name_key(m["last_name"]), "sex": m["sex"],
                "birth_date": date.fromisoformat(m["birth_date"]), "relation": m["relation"], "disability": False,
                "active": True, "created_at": now} for n, m in enumerate(body["members"])]
    async with transaction(request.app.state.maker) as session:
        await session.execute(insert(HOUSEHOLDS), [household])
        await session.execute(insert(MEMBERS), members)
        await session.execute(insert(outbox.table), [{
            "event_id": new_id(), "topic": "registry.household", "key": household_id,
            "event_type": "household.registered", "value": json.dumps({"household_id": household_id,
                                                                       "members": len(members)}),
            "created_at": now}])
    return {"id": household_id}


@app.get("/households/{household_id}")
async def read(household_id: str, request: Request) -> dict[str, Any]:
    async with transaction(request.app.state.maker) as session:
        household = (await session.execute(select(HOUSEHOLDS).where(HOUSEHOLDS.c.id == household_id))).first()
        if household is None:
            raise HTTPException(404)
        members = (await session.execute(select(MEMBERS).where(MEMBERS.c.household_id == household_id)
                                         .order_by(MEMBERS.c.position))).all()
    return {**household._asdict(), "members": [m._asdict() for m in members]}
