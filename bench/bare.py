"""Baselines: a bare FastAPI app doing the services' database work and nothing else.

For the HTTP benchmark (bench/http.py), the registry's: `POST /households` inserts the household row, its member
rows and one outbox row in one transaction (the same tables, on a database migrated like the registry's, through
the same engine); `GET /households/{id}` reads the household and its members. Run:
`KAENKHUN_BENCH_DB=path uvicorn bench.bare:app`.

For the capacity search (bench/capacity.py), the load test's whole partner mix (bench/load_mix.py): every
operation at the path the mix sends it to, under `/registry`, `/assessment`, `/assistance` and `/reporting`, so
that the mix's requests go unchanged to one bare process instead of four services, on the four services' own
databases (`KAENKHUN_BENCH_<SERVICE>_URL`, SQLAlchemy URLs, SQLite or PostgreSQL). The same database work:

- reads: the rows the service reads, by the same conditions (so through the same indexes), answered as they are:
  a household and its members; a page of 50 households of a sub-district, or of a district with a member whose
  name contains the surname, and their members; the household as the registry announced it and its assessments,
  newest first (a page of 100); a partner's open referrals with their partner (a page of 50); a referral with its
  partner, its steps and the help given;
- `POST …/assessments`: the household as the registry announced it, its score (`scoring.score`: what the row
  holds), the current and the previous year's revision, the current one set aside, the new row, the MPI's
  village sums (`aggregates.change`) and two outbox rows, in one transaction;
- `POST …/help`: the referral with its partner, the Idempotency-Key looked up, the help row and one outbox row;
- the two reports: their counts summed by district in SQL (GROUP BY over the read models the report is cut
  from: villages and village-years; payments, help, budgets and target-poor assessments), for every request.

Left out, everywhere: validation beyond JSON parsing, token verification (the partner is found by the token's
`client_id`, read without checking the signature), rate limits, encryption and keyed hashing, audit rows,
masking, the event bus (no relay, no consumer: the outbox rows stay unpublished), the reporting service's
cache of its trees and its disclosure control, response models, middleware.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from sqlalchemy import and_, case, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import SERVICES
from services.assessment import aggregates
from services.assessment import models as assessment
from services.assessment.assessments.service import new_revision
from services.assessment.projection import persons
from services.assessment.scoring import score
from services.assessment.sets.schemas import IndicatorSet
from services.assistance import models as assistance
from services.registry.models import Household, Member, outbox
from services.reporting import models as reporting
from services.reporting.reports.publication import CENTRE_SUBSIDY
from shared.clock import utcnow
from shared.db import create_engine, read_transaction, sessionmaker, transaction
from shared.ids import new_id
from shared.money import fiscal_year_bounds
from shared.text import name_key

HOUSEHOLDS, MEMBERS = Household.__table__, Member.__table__  # type: ignore[attr-defined]
SOURCES = ("tpmap", "exclusion_error", "vulnerable", "other")
KNOWN, ASSESSMENTS = assessment.KnownHousehold.__table__, assessment.Assessment.__table__  # type: ignore[attr-defined]
PARTNERS, REFERRALS = assistance.Partner.__table__, assistance.Referral.__table__  # type: ignore[attr-defined]
CHANGES, HELP = assistance.ReferralChange.__table__, assistance.Help.__table__  # type: ignore[attr-defined]
AREA_YEARS, VILLAGES = reporting.AreaYear.__table__, reporting.Village.__table__  # type: ignore[attr-defined]
PAYMENTS, BUDGETS = reporting.Payment.__table__, reporting.Budget.__table__  # type: ignore[attr-defined]
GIVEN, TARGETS = reporting.Help.__table__, reporting.Assessment.__table__  # type: ignore[attr-defined]
PROVINCE = "40%"  # the load's tokens hold area 40: the services read that province's rows only


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    urls = {name: os.environ[f"KAENKHUN_BENCH_{name.upper()}_URL"] for name in SERVICES
            if f"KAENKHUN_BENCH_{name.upper()}_URL" in os.environ}
    if "KAENKHUN_BENCH_DB" in os.environ:
        urls["registry"] = f"sqlite+aiosqlite:///{os.environ['KAENKHUN_BENCH_DB']}"
    # As the services: writes in transactions, reads on read-only engines (no SQLite write lock).
    engines = [(name, create_engine(url), create_engine(url, read_only=True)) for name, url in urls.items()]
    app.state.makers = {name: sessionmaker(engine) for name, engine, _ in engines}
    app.state.readers = {name: sessionmaker(reader) for name, _, reader in engines}
    app.state.indicator_sets = {}
    yield
    for _, engine, reader in engines:
        await engine.dispose()
        await reader.dispose()


app = FastAPI(lifespan=lifespan)


def _writer(request: Request, service: str) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.makers[service]
    return maker


def _reader(request: Request, service: str) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.readers[service]
    return maker


def _outbox_row(topic: str, key: str, event_type: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": new_id(), "topic": topic, "key": key, "event_type": event_type, "value": json.dumps(value),
            "created_at": utcnow()}


def _client_id(request: Request) -> str:
    """The token's client_id, read without verifying the token (no auth: only who the partner is)."""
    payload = request.headers["Authorization"].split()[-1].split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["client_id"])


def _found(row: Any) -> Any:
    if row is None:
        raise HTTPException(404)
    return row


# -- registry ----------------------------------------------------------------------------------------------


@app.post("/households", status_code=201)
@app.post("/registry/v1/households", status_code=201)
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
    async with transaction(_writer(request, "registry")) as session:
        await session.execute(insert(HOUSEHOLDS), [household])
        await session.execute(insert(MEMBERS), members)
        await session.execute(insert(outbox.table), [_outbox_row(
            "registry.household", household_id, "household.registered",
            {"household_id": household_id, "members": len(members)})])
    return {"id": household_id}


async def _members(session: AsyncSession, household_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    by_household: dict[str, list[dict[str, Any]]] = {hid: [] for hid in household_ids}
    if household_ids:
        for m in (await session.execute(select(MEMBERS).where(
                MEMBERS.c.household_id.in_(household_ids), MEMBERS.c.removed_at.is_(None))
                .order_by(MEMBERS.c.household_id, MEMBERS.c.position))).all():
            by_household[m.household_id].append(m._asdict())
    return by_household


@app.get("/households/{household_id}")
@app.get("/registry/v1/households/{household_id}")
async def read(household_id: str, request: Request) -> dict[str, Any]:
    async with read_transaction(_reader(request, "registry")) as session:
        household = _found((await session.execute(select(HOUSEHOLDS).where(HOUSEHOLDS.c.id == household_id))).first())
        members = (await _members(session, [household_id]))[household_id]
    return {**household._asdict(), "members": members}


@app.get("/registry/v1/households")
async def list_households(request: Request) -> dict[str, Any]:
    q = request.query_params
    conditions = [HOUSEHOLDS.c.village_code.like(PROVINCE), HOUSEHOLDS.c.status == "open"]
    for name in ("district", "subdistrict"):
        if name in q:
            conditions.append(HOUSEHOLDS.c[f"{name}_code"] == q[name])
    for word in name_key(q.get("q", "")).split():
        conditions.append(exists().where(MEMBERS.c.household_id == HOUSEHOLDS.c.id, MEMBERS.c.removed_at.is_(None),
                                         or_(MEMBERS.c.first_name_key.contains(word, autoescape=True),
                                             MEMBERS.c.last_name_key.contains(word, autoescape=True))))
    limit = int(q.get("limit", 100))
    async with read_transaction(_reader(request, "registry")) as session:
        households = (await session.execute(select(HOUSEHOLDS).where(*conditions).order_by(HOUSEHOLDS.c.id)
                                            .limit(limit + 1))).all()
        members = await _members(session, [h.id for h in households[:limit]])
    return {"items": [{**h._asdict(), "members": members[h.id]} for h in households[:limit]],
            "next_cursor": households[limit - 1].id if len(households) > limit else None}


# -- assessment --------------------------------------------------------------------------------------------


async def _indicator_set(request: Request, session: AsyncSession, set_id: str) -> IndicatorSet:
    """The newest version of a set, read from the database once (as the service loads its sets at start)."""
    found: dict[str, IndicatorSet] = request.app.state.indicator_sets
    if set_id not in found:
        table = assessment.IndicatorSetVersion.__table__  # type: ignore[attr-defined]
        definition = (await session.execute(select(table.c.definition).where(table.c.id == set_id)
                                            .order_by(table.c.version.desc()).limit(1))).scalar_one()
        found[set_id] = IndicatorSet.model_validate(definition)
    return found[set_id]


@app.get("/assessment/v1/households/{household_id}/assessments")
async def list_assessments(household_id: str, request: Request) -> dict[str, Any]:
    async with read_transaction(_reader(request, "assessment")) as session:
        _found((await session.execute(select(KNOWN).where(KNOWN.c.id == household_id))).first())
        rows = (await session.execute(select(ASSESSMENTS).where(ASSESSMENTS.c.household_id == household_id)
                                      .order_by(ASSESSMENTS.c.survey_year.desc(), ASSESSMENTS.c.revision.desc(),
                                                ASSESSMENTS.c.id.desc()).limit(101))).all()
    return {"items": [r._asdict() for r in rows[:100]], "next_cursor": rows[99].id if len(rows) > 100 else None}


@app.post("/assessment/v1/households/{household_id}/assessments", status_code=201)
async def record_assessment(household_id: str, request: Request) -> dict[str, Any]:
    body = json.loads(await request.body())
    given = SimpleNamespace(survey_year=body["survey_year"], surveyed_on=date.fromisoformat(body["surveyed_on"]),
                            answers=body["answers"], measurements=body["measurements"])
    async with transaction(_writer(request, "assessment")) as session:
        household = _found((await session.execute(select(KNOWN).where(KNOWN.c.id == household_id))).first())
        indicator_set = await _indicator_set(request, session, body["indicator_set"])
        result = score(indicator_set, members=persons(household), welfare_card=household.welfare_card,
                       surveyed_on=given.surveyed_on, answers=given.answers,
                       measurements={k: Decimal(v) for k, v in given.measurements.items()})
        this_year = and_(ASSESSMENTS.c.household_id == household_id, ASSESSMENTS.c.current.is_(True))
        current = (await session.execute(select(ASSESSMENTS).where(
            this_year, ASSESSMENTS.c.survey_year == given.survey_year))).first()
        previous = (await session.execute(select(ASSESSMENTS).where(
            this_year, ASSESSMENTS.c.survey_year < given.survey_year)
            .order_by(ASSESSMENTS.c.survey_year.desc()).limit(1))).first()
        if current is not None:
            await session.execute(update(ASSESSMENTS).where(ASSESSMENTS.c.id == current.id).values(current=False))
        row = new_revision(household, given, indicator_set, result, current, "bare")  # type: ignore[arg-type]
        await session.execute(insert(ASSESSMENTS), [row])
        await aggregates.change(session, added=[SimpleNamespace(**row)], removed=[current] if current else [])
        await session.execute(insert(assessment.outbox.table), [_outbox_row(
            "assessment.household", household_id, event_type, {"assessment_id": row["id"], "poor": row["poor"],
                                                               "previous": previous.id if previous else None})
            for event_type in ("assessment.recorded", "household.poverty_status_changed")])
    return {"id": row["id"], "revision": row["revision"]}


# -- assistance --------------------------------------------------------------------------------------------


def _referral_with_partner() -> Any:
    return select(REFERRALS, PARTNERS.c.name.label("partner_name"), PARTNERS.c.sector.label("partner_sector"),
                  PARTNERS.c.client_id.label("partner_client_id")).join(PARTNERS)


@app.get("/assistance/v1/referrals")
async def list_referrals(request: Request) -> dict[str, Any]:
    q = request.query_params
    limit = int(q.get("limit", 200))
    async with read_transaction(_reader(request, "assistance")) as session:
        partner = _found((await session.execute(select(PARTNERS).where(
            PARTNERS.c.client_id == _client_id(request)))).first())
        query = _referral_with_partner().where(REFERRALS.c.village_code.like(PROVINCE),
                                               REFERRALS.c.partner_id == partner.id)
        if "status" in q:
            query = query.where(REFERRALS.c.status == q["status"])
        rows = (await session.execute(query.order_by(REFERRALS.c.id).limit(limit + 1))).all()
    return {"items": [r._asdict() for r in rows[:limit]], "next_cursor": rows[limit - 1].id if len(rows) > limit
            else None}


async def _partners_referral(session: AsyncSession, request: Request, referral_id: str) -> Any:
    found = _found((await session.execute(_referral_with_partner().where(REFERRALS.c.id == referral_id))).first())
    if found.partner_client_id != _client_id(request):
        raise HTTPException(404)
    return found


@app.get("/assistance/v1/referrals/{referral_id}")
async def read_referral(referral_id: str, request: Request) -> dict[str, Any]:
    async with read_transaction(_reader(request, "assistance")) as session:
        referral = await _partners_referral(session, request, referral_id)
        changes = (await session.execute(select(CHANGES).where(CHANGES.c.referral_id == referral_id)
                                         .order_by(CHANGES.c.changed_at, CHANGES.c.id))).all()
        given = (await session.execute(select(HELP).where(HELP.c.referral_id == referral_id)
                                       .order_by(HELP.c.given_on, HELP.c.id))).all()
    return {**referral._asdict(), "changes": [c._asdict() for c in changes], "help": [h._asdict() for h in given]}


@app.post("/assistance/v1/referrals/{referral_id}/help", status_code=201)
async def record_help(referral_id: str, request: Request) -> dict[str, Any]:
    raw = await request.body()
    body, key = json.loads(raw), request.headers["Idempotency-Key"]
    async with transaction(_writer(request, "assistance")) as session:
        referral = await _partners_referral(session, request, referral_id)
        earlier = (await session.execute(select(HELP.c.id).where(HELP.c.referral_id == referral_id,
                                                                 HELP.c.idempotency_key == key))).first()
        if earlier is not None:
            return {"id": earlier.id}
        help_id = new_id()
        await session.execute(insert(HELP), [{
            "id": help_id, "referral_id": referral_id, "household_id": referral.household_id,
            "partner_id": referral.partner_id, "kind": body["kind"],
            "value": Decimal(body["value"]) if "value" in body else None,
            "given_on": date.fromisoformat(body["given_on"]), "notes": body.get("notes"), "recorded_by": "bare",
            "recorded_at": utcnow(), "idempotency_key": key, "request_hash": hashlib.sha256(raw).hexdigest()}])
        await session.execute(insert(assistance.outbox.table), [_outbox_row(
            "assistance.household", referral.household_id, "help.recorded",
            {"help_id": help_id, "referral_id": referral_id, "kind": body["kind"], "value": body.get("value")})])
    return {"id": help_id}


# -- reporting ---------------------------------------------------------------------------------------------


def _by_district(rows: Any, into: dict[str, dict[str, Any]]) -> None:
    for row in rows:
        district, *_ = row
        into.setdefault(district, {}).update({k: v for k, v in row._asdict().items() if k != "district"})


@app.get("/reporting/v1/reports/poverty")
async def poverty_report(request: Request) -> dict[str, Any]:
    year, rows = int(request.query_params["survey_year"]), {}  # type: ignore[var-annotated]
    counts = [c for c in AREA_YEARS.c if c.name not in ("survey_year", "village_code", "censored_score",
                                                          "censored_by_indicator")]
    async with read_transaction(_reader(request, "reporting")) as session:
        district = func.substr(AREA_YEARS.c.village_code, 1, 4).label("district")
        _by_district(await session.execute(select(district, *(func.sum(c).label(c.name) for c in counts)).where(
            AREA_YEARS.c.survey_year == year, AREA_YEARS.c.village_code.like(PROVINCE)).group_by(district)), rows)
        district = func.substr(VILLAGES.c.village_code, 1, 4).label("district")
        _by_district(await session.execute(select(district, *(func.sum(VILLAGES.c[c]).label(c) for c in (
            "households", "persons", "welfare_card_households", "welfare_card_persons"))).where(
            VILLAGES.c.village_code.like(PROVINCE)).group_by(district)), rows)
    return {"rows": [{"area_code": code, **sums} for code, sums in sorted(rows.items())]}


@app.get("/reporting/v1/reports/assistance")
async def assistance_report(request: Request) -> dict[str, Any]:
    year, rows = int(request.query_params["fiscal_year"]), {}  # type: ignore[var-annotated]
    start, end = fiscal_year_bounds(year)
    async with read_transaction(_reader(request, "reporting")) as session:
        district = func.substr(PAYMENTS.c.area_code, 1, 4).label("district")
        centre, grant = PAYMENTS.c.programme == CENTRE_SUBSIDY, PAYMENTS.c.programme != CENTRE_SUBSIDY
        standing = PAYMENTS.c.reversed.is_(False)
        _by_district(await session.execute(select(
            district, func.count(func.distinct(case((grant & standing, PAYMENTS.c.household_id)))).label(
                "families_granted"),
            func.sum(case((grant & standing, PAYMENTS.c.amount), else_=0)).label("grant_amount"),
            func.sum(case((grant & ~standing, 1), else_=0)).label("grants_reversed"),
            func.count(func.distinct(case((centre & standing, PAYMENTS.c.centre_id)))).label("centres_subsidised"),
            func.sum(case((centre & standing, PAYMENTS.c.amount), else_=0)).label("subsidy_amount"),
        ).where(PAYMENTS.c.fiscal_year == year, PAYMENTS.c.area_code.like(PROVINCE)).group_by(district)), rows)
        district = func.substr(BUDGETS.c.area_code, 1, 4).label("district")
        _by_district(await session.execute(select(district, func.sum(BUDGETS.c.amount).label("budget_allocated"))
                                           .where(BUDGETS.c.fiscal_year == year, BUDGETS.c.area_code.like(PROVINCE))
                                           .group_by(district)), rows)
        helped = or_(TARGETS.c.household_id.in_(select(GIVEN.c.household_id).where(
            GIVEN.c.given_on >= start, GIVEN.c.given_on <= end)), TARGETS.c.household_id.in_(
            select(PAYMENTS.c.household_id).where(PAYMENTS.c.fiscal_year == year, standing)))
        district = func.substr(TARGETS.c.village_code, 1, 4).label("district")
        _by_district(await session.execute(select(
            district, func.count().label("target_poor_households"),
            func.sum(case((helped, 1), else_=0)).label("target_poor_helped")).where(
            TARGETS.c.survey_year == year, TARGETS.c.target_poor.is_(True), TARGETS.c.village_code.like(PROVINCE))
            .group_by(district)), rows)
    return {"rows": [{"area_code": code, **sums} for code, sums in sorted(rows.items())]}
