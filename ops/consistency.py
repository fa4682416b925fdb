"""The history checker (`kaenkhun check-consistency`): what every service wrote, compared across services.

It reads the four services' databases (never the broker, whose log may be gone) and checks:
- delivery: every event a producer published on a topic a consumer subscribes to is in that consumer's
  inbox (none lost), the inbox holds no event no producer wrote, and none was dead-lettered;
- order: for each key (a household, a centre, a budget, a team), a consumer took the producer's events in
  the order the producer wrote them. One exception is counted apart, not as a failure: a broker that lost
  its log (a restarted Tansu; never Apache Kafka) while a key's older events were published and not yet
  taken. The relay publishes everything again (shared.bus.relay), but a newer event it sent as the broker came
  back can reach a consumer before the older ones do again. Those are told by the outbox's `replayed_at`: an
  event a consumer took after a newer one of its key, and only from a replay. The projections keep each
  thing's newest fact, so the figures do not depend on that order; the checks of reporting below show it;
- reporting equals the sources: every open household with its village and persons, every counting
  assessment's target-poor status and persons, every payment with its amount and reversal, and the
  village sums the reports add up against a recount of the household rows;
- money: no budget pays out more than it holds, and no household is paid more often than its programme's
  yearly cap allows.
A check that fails lists its first examples. Events still in an outbox (not yet published) or published
but not yet consumed are reported as in flight, not as lost: run it on a quiet system, or with `--settle`.

With a retention (`KAENKHUN_KAFKA_OUTBOX_RETENTION_DAYS`, `..._INBOX_RETENTION_DAYS`; see shared.bus.retention)
old rows leave the outboxes and the inboxes, each side on its own schedule, and the delivery checks judge only
what both sides must still hold: an event published since the inbox's retention (less a day) must be in the
inbox; an inbox event taken since the outbox's retention (less a day) must be in an outbox. Older ones are
counted as past the retention, not judged.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services import SERVICES, load
from shared.bus.kafka import group_lag
from shared.clock import utcnow
from shared.db import as_utc, read_only
from shared.settings import KafkaSettings

EXAMPLES = 5
# How far inside a retention the checker starts judging: a purge runs once an interval, a consumer may take an
# event late, and the services' clocks differ, so the last day before a retention's edge may hold rows one
# side has deleted and the other not yet.
RETENTION_EDGE = timedelta(days=1)


@dataclass
class Finding:
    check: str
    ok: bool
    summary: str
    examples: list[str] = field(default_factory=list)


@dataclass
class Outboxed:
    producer: str
    id: int
    event_id: str
    topic: str
    key: str
    event_type: str
    published_at: datetime | None
    replayed_at: datetime | None

    @property
    def published(self) -> bool:
        return self.published_at is not None


@dataclass(frozen=True)
class Horizons:
    """Since when each side of the bus must still hold every row, given the services' retention (None: for ever)."""

    published: datetime | None  # an event published since then must be in its consumers' inboxes
    taken: datetime | None  # an event a consumer took since then must be in its producer's outbox

    @classmethod
    def of(cls, kafka: KafkaSettings | None) -> Horizons:
        """From the retention the services run with (`kafka`; None: read from the environment, as they do)."""
        kafka = kafka if kafka is not None else KafkaSettings()
        now = utcnow()

        def since(days: float | None) -> datetime | None:
            return None if days is None else now - timedelta(days=days) + RETENTION_EDGE

        return cls(since(kafka.inbox_retention_days), since(kafka.outbox_retention_days))

    @property
    def kept_for_ever(self) -> bool:
        return self.published is None and self.taken is None

    def must_be_taken(self, event: Outboxed) -> bool:
        return event.published_at is not None and (self.published is None
                                                    or as_utc(event.published_at) >= self.published)

    def must_be_outboxed(self, processed_at: datetime) -> bool:
        return self.taken is None or as_utc(processed_at) >= self.taken


async def _rows(engine: AsyncEngine, query: Any) -> Sequence[Any]:
    async with read_only(engine) as conn:
        return (await conn.execute(query)).all()


def _table(service: str, name: str) -> Table:
    table: Table = load(service).spec.metadata.tables[name]
    return table


def _finding(check: str, problems: list[str], ok_summary: str, bad_summary: str) -> Finding:
    if problems:
        return Finding(check, False, bad_summary.format(n=len(problems)), problems[:EXAMPLES])
    return Finding(check, True, ok_summary)


# -- delivery and order --------------------------------------------------------------------------------


async def _outboxes(engines: Mapping[str, AsyncEngine]) -> dict[str, Outboxed]:
    found: dict[str, Outboxed] = {}
    for producer, engine in engines.items():
        t = load(producer).spec.outbox.table
        for row in await _rows(engine, select(t.c.id, t.c.event_id, t.c.topic, t.c.key, t.c.event_type,
                                              t.c.published_at, t.c.replayed_at)):
            found[row.event_id] = Outboxed(producer, row.id, row.event_id, row.topic, row.key, row.event_type,
                                           row.published_at, row.replayed_at)
    return found


async def delivery(engines: Mapping[str, AsyncEngine], *, kafka: KafkaSettings | None = None) -> list[Finding]:
    """Per consumer: no event lost, none from nowhere, none dead-lettered, order kept per key. `kafka`: the
    services' settings, for their retention (None: from the environment)."""
    horizons = Horizons.of(kafka)
    outboxed = await _outboxes(engines)
    findings = []
    for consumer, engine in engines.items():
        handlers = load(consumer).spec.handlers
        if handlers is None:
            continue
        topics = set(handlers.topics())
        inbox = load(consumer).spec.inbox
        # Only this consumer's rows: the inbox is shared with the service's other consumer groups (its webhooks').
        taken = await _rows(engine, select(inbox.c.event_id, inbox.c.topic, inbox.c.outcome, inbox.c.processed_at,
                                           inbox.c.partition, inbox.c.offset).where(inbox.c.consumer == consumer))
        seen = {row.event_id for row in taken}
        wanted = [e for e in outboxed.values() if e.topic in topics]
        judged = [e for e in wanted if horizons.must_be_taken(e)]
        lost = [f"{e.producer} {e.event_type} {e.event_id} (key {e.key})" for e in judged if e.event_id not in seen]
        pending = sum(1 for e in wanted if not e.published)
        origins = [row for row in taken if horizons.must_be_outboxed(row.processed_at)]
        phantom = [f"{row.event_id} on {row.topic}" for row in origins if row.event_id not in outboxed]
        dead = [f"{row.event_id} on {row.topic}" for row in taken if row.outcome == "dead_lettered"]
        in_flight = f"; {pending:,} still in an outbox, not yet published" if pending else ""
        in_flight += _past(len(wanted) - pending - len(judged), "published", horizons.published)
        findings.append(_finding(f"{consumer}: no event lost", lost,
                                 f"all {len(judged):,} published events of {len(topics)} topics are in "
                                 f"its inbox{in_flight}",
                                 "{n:,} published events are not in its inbox" + in_flight))
        findings.append(_finding(f"{consumer}: no event from nowhere", phantom,
                                 f"every one of its {len(origins):,} inbox events was written by a producer"
                                 + _past(len(taken) - len(origins), "taken", horizons.taken),
                                 "{n:,} inbox events are in no producer's outbox"))
        findings.append(_finding(f"{consumer}: none dead-lettered", dead, "no event was dead-lettered",
                                 "{n:,} events were dead-lettered (see the topic's .dlq)"))
        findings.append(_order(consumer, taken, outboxed))
    return findings


def _past(count: int, what: str, horizon: datetime | None) -> str:
    """What a check left out as past the retention (nothing without one)."""
    if horizon is None or not count:
        return ""
    return f"; {count:,} {what} before {horizon:%Y-%m-%d %H:%M} UTC not judged (past the retention)"


def _order(consumer: str, taken: Iterable[Any], outboxed: Mapping[str, Outboxed]) -> Finding:
    """Per key, the producer's write order (outbox id) must be the order the consumer took the events in. An
    event taken after a newer one of its key, from a replay after the broker lost its log (taken at or after
    its `replayed_at`), is counted apart (see the module's docstring); any other is a failure."""
    by_key: dict[tuple[str, str], list[tuple[Any, int, int, Outboxed]]] = defaultdict(list)
    for row in taken:
        event = outboxed.get(row.event_id)
        if event is not None:
            by_key[(event.producer, event.key)].append((as_utc(row.processed_at), row.partition, row.offset, event))
    problems, replayed = [], 0
    for (producer, key), events in by_key.items():
        events.sort(key=lambda e: e[:3])
        late, newest = [], -1
        for processed_at, _, _, event in events:
            if event.id < newest:
                late.append((processed_at, event))
            newest = max(newest, event.id)
        if not late:
            continue
        if all(e.replayed_at is not None and at >= as_utc(e.replayed_at) for at, e in late):
            replayed += 1
        else:
            ids = [e.id for *_, e in events]
            problems.append(f"{producer} key {key}: outbox order {sorted(ids)}, taken as {ids}")
    apart = (f"; {replayed:,} taken out of order only from a replay after the broker lost its log"
             if replayed else "")
    return _finding(f"{consumer}: order kept per key", problems,
                    f"{len(by_key):,} keys, each taken in the order written{apart}",
                    "{n:,} keys were taken out of order" + apart)


# -- reporting against the sources ------------------------------------------------------------------------


async def reporting(engines: Mapping[str, AsyncEngine]) -> list[Finding]:
    if not all(name in engines for name in SERVICES):
        return []
    household, member = _table("registry", "household"), _table("registry", "member")
    people: Counter[str] = Counter(r.household_id for r in await _rows(engines["registry"], select(
        member.c.household_id).where(member.c.active.is_(True))))
    registered = {(r.id, r.village_code, people[r.id]) for r in await _rows(engines["registry"], select(
        household.c.id, household.c.village_code).where(household.c.status == "open"))}
    rpt_household = _table("reporting", "rpt_household")
    reported = {(r.id, r.village_code, r.members) for r in await _rows(engines["reporting"], select(
        rpt_household.c.id, rpt_household.c.village_code, rpt_household.c.members).where(
        rpt_household.c.status == "open"))}

    assessment, rpt_assessment = _table("assessment", "assessment"), _table("reporting", "rpt_assessment")
    assessed = {(r.household_id, r.survey_year, r.village_code, r.target_poor, r.member_count)
                for r in await _rows(engines["assessment"], select(
                    assessment.c.household_id, assessment.c.survey_year, assessment.c.village_code,
                    assessment.c.target_poor, assessment.c.member_count).where(assessment.c.current.is_(True)))}
    assessed_reported = {(r.household_id, r.survey_year, r.village_code, r.target_poor, r.persons)
                         for r in await _rows(engines["reporting"], select(
                             rpt_assessment.c.household_id, rpt_assessment.c.survey_year, rpt_assessment.c.village_code,
                             rpt_assessment.c.target_poor, rpt_assessment.c.persons))}

    disbursement, rpt_payment = _table("assistance", "disbursement"), _table("reporting", "rpt_payment")
    paid = {(r.id, r.programme, _money(r.amount), r.status == "reversed") for r in await _rows(
        engines["assistance"], select(disbursement.c.id, disbursement.c.programme, disbursement.c.amount,
                                      disbursement.c.status).where(disbursement.c.status != "rejected"))}
    paid_reported = {(r.id, r.programme, _money(r.amount), bool(r.reversed)) for r in await _rows(
        engines["reporting"], select(rpt_payment.c.id, rpt_payment.c.programme, rpt_payment.c.amount,
                                     rpt_payment.c.reversed))}
    return [
        _same("reporting = registry: open households, villages, persons", registered, reported),
        _same("reporting = assessment: counting assessments, target poor, persons", assessed, assessed_reported),
        _same("reporting = assistance: payments, amounts, reversals", paid, paid_reported),
        await _village_sums(engines["reporting"]),
    ]


def _same(check: str, source: set[tuple[Any, ...]], reported: set[tuple[Any, ...]]) -> Finding:
    missing = [f"missing in reporting: {row}" for row in sorted(source - reported, key=str)]
    extra = [f"only in reporting: {row}" for row in sorted(reported - source, key=str)]
    return _finding(check, missing + extra, f"{len(source):,} rows, identical",
                    "{n:,} rows differ" + f" (source {len(source):,}, reporting {len(reported):,})")


async def _village_sums(engine: AsyncEngine) -> Finding:
    """The (survey year, village) sums, kept by difference as assessments come and change, equal the same sums
    taken afresh from the household rows."""
    from services.reporting.models import YEAR_COUNTS
    from services.reporting.projection import YearSums

    rows, sums = _table("reporting", "rpt_assessment"), _table("reporting", "rpt_area_year")
    afresh = YearSums()
    for row in await _rows(engine, select(rows)):
        afresh.add(row._mapping, +1)
    recount = {key: (counts, afresh.scores.get(key, Fraction(0))) for key, counts in afresh.counts.items()}
    kept = {(r.survey_year, r.village_code): ({name: getattr(r, name) for name in YEAR_COUNTS},
                                              Fraction(r.censored_score))
            for r in await _rows(engine, select(sums))}
    problems = [f"{key}: kept {kept.get(key)}, recount {value}" for key, value in recount.items()
                if kept.get(key) != value]
    problems += [f"{key}: kept {value} for no assessment" for key, value in kept.items() if key not in recount]
    return _finding("reporting: village sums = recount of households", problems,
                    f"{len(recount):,} (survey year, village) sums equal their recount",
                    "{n:,} village sums differ from their recount")


# -- money ------------------------------------------------------------------------------------------------


async def money(engines: Mapping[str, AsyncEngine]) -> list[Finding]:
    if "assistance" not in engines:
        return []
    from services.assistance.settings import AssistanceSettings

    engine = engines["assistance"]
    budget, disbursement = _table("assistance", "budget"), _table("assistance", "disbursement")
    drawn: dict[str, Decimal] = defaultdict(Decimal)
    counts: Counter[tuple[str, str, int]] = Counter()
    for r in await _rows(engine, select(disbursement.c.budget_id, disbursement.c.amount, disbursement.c.household_id,
                                        disbursement.c.programme, disbursement.c.fiscal_year).where(
            disbursement.c.status == "accepted")):
        if r.budget_id:
            drawn[r.budget_id] += _money(r.amount)
        if r.household_id:
            counts[(r.household_id, r.programme, r.fiscal_year)] += 1
    over = []
    for b in await _rows(engine, select(budget.c.id, budget.c.programme, budget.c.fiscal_year, budget.c.area_code,
                                        budget.c.amount)):
        if drawn[b.id] > _money(b.amount):
            over.append(f"{b.programme} {b.fiscal_year} {b.area_code}: holds {_money(b.amount)}, "
                        f"pays {drawn[b.id]}")
    cap = AssistanceSettings().family_grant_yearly_cap
    twice = [f"household {h} paid {n} times by {p} in FY {y} (cap {cap})" for (h, p, y), n in counts.items()
             if p == "family_grant" and cap is not None and n > cap]
    return [_finding("assistance: no budget below zero", over, "every budget holds what it paid out",
                     "{n:,} budgets paid out more than they hold"),
            _finding("assistance: no family paid beyond its yearly cap", twice,
                     f"{len(counts):,} household-programme-years, none above the cap",
                     "{n:,} households were paid beyond the cap")]


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


async def check(engines: Mapping[str, AsyncEngine], *, kafka: KafkaSettings | None = None) -> list[Finding]:
    """Every check; `kafka`: the services' settings, for their retention (None: from the environment)."""
    return [*await delivery(engines, kafka=kafka), *await reporting(engines), *await money(engines)]


@dataclass
class Settled:
    """Whether the system caught up, and if not, what it was still waiting for when the time ran out."""

    ok: bool
    waiting_for: str = ""

    def __bool__(self) -> bool:
        return self.ok


async def settle(engines: Mapping[str, AsyncEngine], *, kafka: KafkaSettings | None = None,
                 timeout_s: float = 300.0) -> Settled:
    """Wait until the system has caught up: no outbox holds an unpublished event, every consumer's inbox holds
    as many events as its topics' producers published (with a retention: every event they published since the
    inbox's horizon), and (given `kafka`) every consumer group has committed its topics up to their end
    offsets. False (saying what it still waited for) if not within `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    waiting = "nothing checked yet"
    while True:
        waiting = await _still_moving(engines, kafka)
        if not waiting:
            return Settled(True)
        if loop.time() >= deadline:
            return Settled(False, waiting)
        await asyncio.sleep(0.5)


async def _still_moving(engines: Mapping[str, AsyncEngine], kafka: KafkaSettings | None) -> str:
    """What the system is still doing ('' when nothing): unpublished events, inboxes behind, consumer lag."""
    horizons = Horizons.of(kafka)
    published: Counter[str] = Counter()
    # With a retention, counts no longer compare (each side deletes on its own schedule): the ids published
    # since the inbox's horizon, per topic, must all be in the inbox.
    must_take: dict[str, set[str]] = defaultdict(set)
    for name, engine in engines.items():
        table = load(name).spec.outbox.table
        counts = await _rows(engine, select(table.c.topic, func.count(), func.count(table.c.published_at))
                             .group_by(table.c.topic))
        unpublished = sum(total - done for _, total, done in counts)
        if unpublished:
            return f"{name}'s outbox still has {unpublished:,} events to publish"
        published.update({topic: done for topic, _, done in counts})
        if not horizons.kept_for_ever:
            recent = select(table.c.topic, table.c.event_id).where(table.c.published_at.is_not(None))
            if horizons.published is not None:
                recent = recent.where(table.c.published_at >= horizons.published)
            for topic, event_id in await _rows(engine, recent):
                must_take[topic].add(event_id)
    groups: dict[str, list[str]] = {}
    for name, engine in engines.items():
        handlers = load(name).spec.handlers
        if handlers is None:
            continue
        groups[name] = topics = handlers.topics()
        inbox = load(name).spec.inbox
        if horizons.kept_for_ever:
            taken = (await _rows(engine, select(func.count()).select_from(inbox).where(inbox.c.consumer == name)))[0][0]
            wanted = sum(published[t] for t in topics)
            if taken < wanted:
                return f"{name} has taken {taken:,} of the {wanted:,} events published on its topics"
        else:
            seen = {event_id for (event_id,) in await _rows(engine, select(inbox.c.event_id)
                                                            .where(inbox.c.consumer == name))}
            missing = sum(len(must_take[t] - seen) for t in topics)
            if missing:
                return f"{name} has yet to take {missing:,} of the events published on its topics"
    if kafka is not None:
        for group, lag in (await group_lag(kafka, groups)).items():
            if lag:
                return f"consumer group {group} has {lag:,} records not yet committed"
    return ""
