"""The reporting read models, kept from every service's events.

Each stream folds to the newest fact about one thing: a household's highest registry version, an
assessment's highest revision per survey year, a referral's highest version, a budget's newest setting;
payments, visits and help are written once, keyed by their ids. An older or repeated fact changes nothing, so
redelivery, reordering across topics and a full replay give the same figures.

The area rows are maintained by difference: when a household's row changes, its old contribution leaves
its old village's sums and its new one joins the new village's, in the same transaction. The sums are
exact (integers, and fractions as text), so they always equal a recount from the household rows.

Replicas share the partitions of a topic (one consumer group), so one thing's events reach one replica, but
the households of a village are on every partition: two replicas add to the same area rows at once. Those
writes are gathered while the handlers run (`Shared`) and made by `finish`, at the end of the transaction, in
one fixed order (villages, then survey years and villages, then the feed; keys sorted), each an upsert that
adds in SQL (`events = events + excluded.events`): no update is lost to a concurrent one, and two replicas
lock rows in the same order, so they wait for each other but never deadlock. The feed is kept per topic
and partition, rows that one replica at a time writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pydantic import BaseModel
from sqlalchemy import bindparam, case, delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.reporting.models import (
    DIMENSIONS,
    YEAR_COUNTS,
    Budget,
    Centre,
    Help,
    Payment,
    Team,
    Visit,
    metadata,
)
from shared import clock
from shared.bus import Handlers
from shared.bus.handlers import Delivery
from shared.db import adding_upsert, as_utc, bulk_insert, insert_new, newer_upsert, update_many
from shared.events.assessment import (
    ASSESSMENT_RECORDED,
    POVERTY_STATUS_CHANGED,
    AssessmentRecorded,
    PovertyStatusChanged,
)
from shared.events.assistance import (
    BUDGET_SET,
    CENTRE_REGISTERED,
    CENTRE_SUBSIDY_RECORDED,
    CENTRE_SUBSIDY_REVERSED,
    DISBURSEMENT_RECORDED,
    DISBURSEMENT_REVERSED,
    HELP_RECORDED,
    REFERRAL_CREATED,
    REFERRAL_UPDATED,
    VISIT_RECORDED,
    BudgetSet,
    CentreRegistered,
    CentreSubsidyRecorded,
    CentreSubsidyReversed,
    DisbursementRecorded,
    DisbursementReversed,
    HelpRecorded,
    ReferralCreated,
    VisitRecorded,
)
from shared.events.catalogue import Catalogue
from shared.events.envelope import CloudEvent
from shared.events.registry import HOUSEHOLD_EVENTS, TEAM_CREATED, TeamCreated, newest_snapshots

handlers = Handlers(Catalogue())
PAYMENT_EVENTS = (DisbursementRecorded, DisbursementReversed, CentreSubsidyRecorded, CentreSubsidyReversed)
Items = Sequence[tuple[CloudEvent, BaseModel]]
VILLAGE_COUNTS = ("households", "persons", "welfare_card_households", "welfare_card_persons")
VILLAGE, AREA_YEAR, FEED, HOUSEHOLD, ASSESSMENT = (metadata.tables[name] for name in (
    "rpt_village", "rpt_area_year", "rpt_feed", "rpt_household", "rpt_assessment"))
REFERRAL = metadata.tables["rpt_referral"]
Row = dict[str, Any]  # a row of a read model's table, by column


async def _feed(session: AsyncSession, deliveries: Sequence[Delivery]) -> None:
    """Add the events applied and the newest event time per topic and partition (`as_of`, freshness)."""
    newest: dict[tuple[str, int], tuple[datetime, int]] = {}
    for delivery in deliveries:
        assert delivery.event is not None
        key, time = (delivery.record.topic, delivery.record.partition), delivery.event.time
        held = newest.get(key)
        newest[key] = (max(held[0], time) if held else time, (held[1] if held else 0) + 1)
    if not newest:
        return
    kept = FEED.c.newest_event_at
    await session.execute(
        adding_upsert(session, FEED, ("topic", "partition"), ("events",), newest_event_at=lambda new: case(
            (new.newest_event_at > kept, new.newest_event_at), else_=kept)),
        [{"topic": topic, "partition": partition, "newest_event_at": time, "events": count}
         for (topic, partition), (time, count) in sorted(newest.items())])


class Shared:
    """What a transaction's events add to the area rows, which other replicas add to too: written by `finish`."""

    def __init__(self) -> None:
        self.villages: dict[str, list[int]] = {}
        self.years = YearSums()

    @staticmethod
    def of(session: AsyncSession) -> Shared:
        shared: Shared = session.info.setdefault("reporting.shared", Shared())
        return shared


@handlers.finally_
async def finish(session: AsyncSession, deliveries: Sequence[Delivery]) -> None:
    """The writes replicas share, last, in one order: villages, survey years and villages, the feed."""
    shared: Shared | None = session.info.pop("reporting.shared", None)
    if shared is not None:
        await _add_to_villages(session, shared.villages)
        await shared.years.write(session)
    await _feed(session, deliveries)


async def _new_only(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert the rows whose id is not there yet (a team, centre, payment or help is recorded once): one
    statement for the batch."""
    if rows:
        fresh = {row["id"]: row for row in rows}  # the first of each id in the batch
        await session.execute(insert_new(session, model.__table__, ("id",)), [fresh[i] for i in sorted(fresh)])


# -- registry: households and the villages' sums, teams ---------------------------------------------


def _village_part(household: Mapping[str, Any] | None) -> tuple[str, tuple[int, int, int, int]] | None:
    """What an open household adds to its village: households, persons, and the same on the welfare-card
    register."""
    if household is None or household["status"] != "open":
        return None
    card, members = int(household["welfare_card"]), household["members"]
    return household["village_code"], (1, members, card, card * members)


async def _add_to_villages(session: AsyncSession, deltas: dict[str, list[int]]) -> None:
    if deltas:
        await session.execute(adding_upsert(session, VILLAGE, ("village_code",), VILLAGE_COUNTS), [
            dict(zip(("village_code", *VILLAGE_COUNTS), (code, *deltas[code]), strict=True))
            for code in sorted(deltas)])


@handlers.on_batch(*HOUSEHOLD_EVENTS)
async def household_changed(session: AsyncSession, items: Items) -> None:
    """The newest snapshot of each household: one read, one insert and one update for the batch."""
    newest = newest_snapshots(payload for _, payload in items)
    existing = {row["id"]: dict(row) for row in (await session.execute(
        select(HOUSEHOLD).where(HOUSEHOLD.c.id.in_(list(newest))))).mappings()}
    deltas = Shared.of(session).villages
    inserted: list[Row] = []
    updated: list[Row] = []
    for household_id, facts in newest.items():
        before = existing.get(household_id)
        if before is not None and before["version"] >= facts.version:
            continue
        row = {"id": household_id, "version": facts.version, "status": facts.status,
               "village_code": facts.village_code, "members": len(facts.members), "welfare_card": facts.welfare_card}
        (inserted if before is None else updated).append(row)
        for part, sign in ((_village_part(before), -1), (_village_part(row), 1)):
            if part is not None:
                delta = deltas.setdefault(part[0], [0, 0, 0, 0])
                for i, value in enumerate(part[1]):
                    delta[i] += sign * value
    await bulk_insert(session, HOUSEHOLD, inserted)
    await update_many(session, HOUSEHOLD, ("id",), updated)


@handlers.on_batch(TEAM_CREATED)
async def team_created(session: AsyncSession, items: Items) -> None:
    rows = []
    for _, team in items:
        assert isinstance(team, TeamCreated)
        rows.append({"id": team.team_id, "district_code": team.district_code,
                     "subdistrict_codes": team.subdistrict_codes, "members": team.member_count})
    await _new_only(session, Team, rows)


# -- assessment: current assessments and the (survey year, village) sums -------------------------------


class YearSums:
    """Deltas of the (survey year, village) sums a batch makes."""

    def __init__(self) -> None:
        self.counts: dict[tuple[int, str], dict[str, int]] = {}
        self.scores: dict[tuple[int, str], Fraction] = {}
        self.indicators: dict[tuple[int, str], dict[str, Fraction]] = {}

    def add(self, row: Mapping[str, Any], sign: int) -> None:
        """Add (sign 1) or take away (-1) what an assessment row (`rpt_assessment`'s columns) counts for."""
        key = (row["survey_year"], row["village_code"])
        persons, poor, target_poor, deprived = row["persons"], row["poor"], row["target_poor"], row["deprived"]
        counts = self.counts.setdefault(key, dict.fromkeys(YEAR_COUNTS, 0))
        for name, value in (("assessed_households", 1), ("assessed_persons", persons),
                            ("poor_households", poor), ("poor_persons", persons * poor),
                            ("target_poor_households", target_poor),
                            ("target_poor_persons", persons * target_poor),
                            ("entered", row["change"] == "entered"), ("exited", row["change"] == "exited"),
                            *((f"deprived_{d}", d in deprived) for d in DIMENSIONS),
                            *((f"target_poor_households_{d}", target_poor and d in deprived) for d in DIMENSIONS),
                            *((f"target_poor_persons_{d}", persons * (target_poor and d in deprived))
                              for d in DIMENSIONS)):
            counts[name] += sign * int(value)
        if poor:  # censoring: only the poor's scores count towards M0
            self.scores[key] = self.scores.get(key, Fraction(0)) + sign * persons * Fraction(row["score"])
            by_indicator = self.indicators.setdefault(key, {})
            for code, weight in row["failed"].items():
                by_indicator[code] = by_indicator.get(code, Fraction(0)) + sign * persons * Fraction(weight)

    async def write(self, session: AsyncSession) -> None:
        """Add the counts in SQL, then the exact fractions to the rows the upsert has locked; delete the rows
        no assessment is left in."""
        if not self.counts:
            return
        table = AREA_YEAR
        found = await session.execute(
            adding_upsert(session, table, ("survey_year", "village_code"), YEAR_COUNTS).returning(
                table.c.survey_year, table.c.village_code, table.c.assessed_households, table.c.censored_score,
                table.c.censored_by_indicator),
            [{"survey_year": year, "village_code": village, **self.counts[(year, village)], "censored_score": "0",
              "censored_score_value": 0.0, "censored_by_indicator": {}} for year, village in sorted(self.counts)])
        fractions, emptied = [], []
        for year, village, assessed, held_score, held_by_indicator in found.all():
            key = (year, village)
            if assessed == 0:
                emptied.append(key)
                continue
            if key not in self.scores and key not in self.indicators:
                continue
            score = Fraction(held_score) + self.scores.get(key, Fraction(0))
            merged = {code: Fraction(value) for code, value in held_by_indicator.items()}
            for code, part in self.indicators.get(key, {}).items():
                merged[code] = merged.get(code, Fraction(0)) + part
            fractions.append({"year": year, "village": village, "score": str(score), "value": float(score),
                              "by_indicator": {code: str(v) for code, v in sorted(merged.items()) if v}})
        if fractions:
            await session.execute(
                update(table).where(table.c.survey_year == bindparam("year"),
                                    table.c.village_code == bindparam("village"))
                .values(censored_score=bindparam("score"), censored_score_value=bindparam("value"),
                        censored_by_indicator=bindparam("by_indicator")), fractions)
        if emptied:
            await session.execute(delete(table).where(
                tuple_(table.c.survey_year, table.c.village_code).in_(emptied)))


async def _assessments(session: AsyncSession, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Row]:
    wanted = list(keys)
    if not wanted:
        return {}
    found = await session.execute(select(ASSESSMENT).where(
        tuple_(ASSESSMENT.c.household_id, ASSESSMENT.c.survey_year).in_(wanted)))
    return {(row["household_id"], row["survey_year"]): dict(row) for row in found.mappings()}


@handlers.on_batch(ASSESSMENT_RECORDED, POVERTY_STATUS_CHANGED)
async def assessment_events(session: AsyncSession, items: Items) -> None:
    """Current assessments (newest revision per survey year) and their change against the previous year: one
    read, one insert and one update for the batch.

    One handler for both types: the assessment service publishes them alternately, household by household,
    so a batch of its topic is taken as a whole."""
    recorded: dict[tuple[str, int], tuple[CloudEvent, AssessmentRecorded]] = {}
    changes: dict[tuple[str, int], PovertyStatusChanged] = {}
    for event, payload in items:
        if isinstance(payload, AssessmentRecorded):
            key = (payload.household_id, payload.survey_year)
            if key not in recorded or payload.revision > recorded[key][1].revision:
                recorded[key] = (event, payload)
        else:
            assert isinstance(payload, PovertyStatusChanged)
            key = (payload.household_id, payload.survey_year)
            if key not in changes or payload.revision > changes[key].revision:
                changes[key] = payload
    existing = await _assessments(session, set(recorded) | set(changes))
    sums = Shared.of(session).years
    touched: set[tuple[str, int]] = set()
    inserted: set[tuple[str, int]] = set()

    def touch(key: tuple[str, int], row: Row) -> None:
        if key not in touched:  # the row's contribution before this batch leaves the sums once
            touched.add(key)
            sums.add(row, -1)

    for key, (event, new) in recorded.items():
        row = existing.get(key)
        if row is not None and row["revision"] >= new.revision:
            continue
        fields: Row = {
            "revision": new.revision, "village_code": new.village_code, "surveyed_on": new.surveyed_on,
            "indicator_set": new.indicator_set, "persons": new.member_count, "score": new.score, "poor": new.poor,
            "target_poor": new.target_poor, "deprived": sorted(d for d, deprived in new.dimensions.items() if deprived),
            "failed": {code: o.weight for code, o in sorted(new.indicators.items()) if o.status == "fail"},
            "recorded_at": event.time}
        if row is None:
            existing[key] = {"household_id": key[0], "survey_year": key[1], **fields, "change": None,
                             "change_revision": None}
            inserted.add(key)
            touched.add(key)
        else:
            touch(key, row)
            row.update(fields)
    for key, changed in changes.items():
        row = existing.get(key)
        # The assessment comes first on the same partition; a status older than the row's is stale.
        if row is None or changed.revision < row["revision"] or (row["change_revision"] or 0) >= changed.revision:
            continue
        touch(key, row)
        row["change"], row["change_revision"] = changed.change.value, changed.revision
    for key in touched:
        sums.add(existing[key], 1)
    await bulk_insert(session, ASSESSMENT, [existing[key] for key in sorted(inserted)])
    await update_many(session, ASSESSMENT, ("household_id", "survey_year"),
                      [existing[key] for key in sorted(touched - inserted)])


# -- assistance: payments, budgets, visits, referrals, help, centres -----------------------------------------


@handlers.on_batch(BUDGET_SET)
async def budget_set(session: AsyncSession, items: Items) -> None:
    for event, payload in items:
        assert isinstance(payload, BudgetSet)
        row = await session.get(Budget, payload.budget_id)
        if row is None:
            row = Budget(id=payload.budget_id, programme=payload.programme, fiscal_year=payload.fiscal_year,
                         area_code=payload.area_code, set_at=event.time)
            session.add(row)
        elif as_utc(row.set_at) > event.time:
            continue
        row.amount, row.disbursed = Decimal(payload.amount), Decimal(payload.disbursed)
        row.reversed = Decimal(payload.reversed)
        row.set_at = event.time
    await session.flush()


@handlers.on_batch(CENTRE_REGISTERED)
async def centre_registered(session: AsyncSession, items: Items) -> None:
    rows = []
    for _, centre in items:
        assert isinstance(centre, CentreRegistered)
        rows.append({"id": centre.centre_id, "kind": centre.kind, "subdistrict_code": centre.subdistrict_code})
    await _new_only(session, Centre, rows)


async def _payments(session: AsyncSession, items: Items) -> None:
    rows: list[dict[str, Any]] = []
    for event, paid in items:
        if isinstance(paid, DisbursementRecorded):
            rows.append({"id": paid.disbursement_id, "programme": paid.programme, "household_id": paid.household_id,
                         "area_code": paid.village_code, "budget_id": paid.budget_id, "fiscal_year": paid.fiscal_year,
                         "paid_on": paid.paid_on,
                         "amount": Decimal(paid.amount), "recorded_at": event.time})
        elif isinstance(paid, CentreSubsidyRecorded):
            rows.append({"id": paid.disbursement_id, "programme": paid.programme, "centre_id": paid.centre_id,
                         "area_code": paid.subdistrict_code, "budget_id": paid.budget_id,
                         "fiscal_year": paid.fiscal_year, "paid_on": paid.paid_on,
                         "amount": Decimal(paid.amount), "recorded_at": event.time})
    await _new_only(session, Payment, rows)
    reversed_ids = [p.disbursement_id for _, p in items if isinstance(p, DisbursementReversed | CentreSubsidyReversed)]
    if reversed_ids:
        await session.execute(update(Payment).where(col(Payment.id).in_(reversed_ids)).values(reversed=True))


async def _logbook(session: AsyncSession, items: Items) -> None:
    helped: list[dict[str, Any]] = []
    visits: list[dict[str, Any]] = []
    referrals: dict[str, tuple[ReferralCreated, date]] = {}
    for event, payload in items:
        if isinstance(payload, VisitRecorded):  # a visit is recorded once: its dimensions, never the descriptions
            visits.append({"id": payload.visit_id, "household_id": payload.household_id,
                           "village_code": payload.village_code, "team_id": payload.team_id,
                           "visited_on": payload.visited_on, "stage": payload.stage,
                           "dimensions": sorted({p.dimension for p in payload.problems})})
            continue
        if isinstance(payload, HelpRecorded):
            helped.append({"id": payload.help_id, "household_id": payload.household_id,
                           "village_code": payload.village_code, "partner_sector": payload.partner_sector,
                           "kind": payload.kind, "given_on": payload.given_on,
                           "value": None if payload.value is None else Decimal(payload.value)})
            continue
        assert isinstance(payload, ReferralCreated)
        held = referrals.get(payload.referral_id)
        if held is None:  # the day of its first event in the batch, should the referral be new
            referrals[payload.referral_id] = (payload, clock.thai_date(event.time))
        elif payload.version > held[0].version:
            referrals[payload.referral_id] = (payload, held[1])
    if referrals:  # a referral's newest version wins; its first row keeps the day it was created
        await session.execute(newer_upsert(session, REFERRAL, ("id",), ("status", "version"),
                                           lambda new: REFERRAL.c.version < new.version), [
            {"id": r.referral_id, "household_id": r.household_id, "village_code": r.village_code,
             "dimension": r.dimension, "partner_sector": r.partner_sector, "status": r.status, "due_on": r.due_on,
             "version": r.version, "created_on": created_on} for r, created_on in
            (referrals[i] for i in sorted(referrals))])
    await _new_only(session, Help, helped)
    await _new_only(session, Visit, visits)


@handlers.on_batch(DISBURSEMENT_RECORDED, DISBURSEMENT_REVERSED, CENTRE_SUBSIDY_RECORDED, CENTRE_SUBSIDY_REVERSED,
                   VISIT_RECORDED, REFERRAL_CREATED, REFERRAL_UPDATED, HELP_RECORDED)
async def assistance_events(session: AsyncSession, items: Items) -> None:
    """Payments, reversals, visits, referrals and help: one handler, so a batch of the topic is taken as a whole (a
    reversal or a referral's update always comes after what it changes, and is applied after it here)."""
    await _payments(session, [i for i in items if isinstance(i[1], PAYMENT_EVENTS)])
    await _logbook(session, [i for i in items if not isinstance(i[1], PAYMENT_EVENTS)])
