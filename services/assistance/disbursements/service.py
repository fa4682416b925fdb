"""Family grants pushed by the ministry, item by item: matched, checked, accepted or rejected; reversals.

Each item of a batch is matched to a household (by household id, or by citizen ID through the keyed hash
the registry publishes), then checked in order: the household is open, the amount is within the
programme's maximum, the household is eligible (target poor in its latest assessment, or registered from
an eligible source), it has not reached the programme's yearly cap, and a budget for its area has the
money left. The first failed check is the item's reason code; a rejected item does not stop the others.
A batch locks the budgets of its programme and year and the yearly counts of the households it may pay,
decides every item in memory and writes each budget and count back once, so no race can exceed them; the
whole batch takes the same few statements whatever its size (matching, locks, one bulk insert each of
items and events). Centre subsidies (`centres`) are pushed, checked and written the same way, with the
rules here.
"""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Row, literal, update
from sqlalchemy import select as sql_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assistance.budgets import FAMILY_GRANT, Ledger, give_back, programmes
from services.assistance.disbursements.reads import batch_out, item_out
from services.assistance.disbursements.schemas import BatchIn, BatchOut, ItemOut, Reason
from services.assistance.models import (
    Allowance,
    Budget,
    Disbursement,
    DisbursementBatch,
    KnownHousehold,
    MemberHash,
    outbox,
)
from services.assistance.pushes import Push
from services.assistance.settings import AssistanceSettings
from shared.auth import Principal
from shared.bus import PendingEvent
from shared.clock import utcnow
from shared.db import adding_upsert, bulk_insert, listed, rowcount
from shared.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable
from shared.events.assistance import (
    CENTRE_SUBSIDY_REVERSED,
    DISBURSEMENT_RECORDED,
    DISBURSEMENT_REVERSED,
    CentreSubsidyReversed,
    DisbursementRecorded,
    DisbursementReversed,
)
from shared.ids import new_id
from shared.money import ZERO, fiscal_year
from shared.pii import CitizenIdProtector, validate_citizen_id

DISBURSEMENT_TABLE = Disbursement.__table__  # type: ignore[attr-defined]
ALLOWANCE_TABLE = Allowance.__table__  # type: ignore[attr-defined]
HOUSEHOLD_TABLE = KnownHousehold.__table__  # type: ignore[attr-defined]
MEMBER_HASH_TABLE = MemberHash.__table__  # type: ignore[attr-defined]
# What the checks read of a household (its columns, not ORM objects: a batch reads 10,000 of them).
HOUSEHOLD_FACTS = tuple(HOUSEHOLD_TABLE.c[name] for name in (
    "id", "version", "status", "province_code", "district_code", "subdistrict_code", "village_code", "sources",
    "target_poor"))


async def check_batch(session: AsyncSession, *, settings: AssistanceSettings, batch_ref: str, year: int,
                      paid_on: date, refs: list[str]) -> None:
    """What every pushed batch must be: paid in its fiscal year, not too long, item refs unique, new."""
    if fiscal_year(paid_on) != year:
        raise Unprocessable(f"paid_on {paid_on.isoformat()} is in fiscal year {fiscal_year(paid_on)}, not {year}",
                            errors=[{"field": "body.paid_on", "code": "fiscal_year",
                                     "message": "not in the batch's fiscal year"}])
    if len(refs) > settings.batch_max_items:
        raise Unprocessable(f"A batch holds at most {settings.batch_max_items} items; split it.",
                            errors=[{"field": "body.items", "code": "too_long", "message": "too many items"}])
    if len(set(refs)) != len(refs):
        twice = sorted({r for r in refs if refs.count(r) > 1})[:10]
        raise Unprocessable(f"item_ref must be unique in a batch: {', '.join(twice)} appear more than once",
                            errors=[{"field": "body.items", "code": "duplicate_item_ref",
                                     "message": f"repeated: {', '.join(twice)}"}])
    if (await session.execute(select(DisbursementBatch.id).where(
            col(DisbursementBatch.batch_ref) == batch_ref))).first() is not None:
        raise Conflict(f"Batch {batch_ref} was already recorded under another Idempotency-Key; send a retry "
                       "with the first key, or give a new batch a new batch_ref.", type_slug="batch-exists")


def new_batch(push: Push, batch_ref: str, programme: str, year: int, paid_on: date, items: int
              ) -> DisbursementBatch:
    """A new batch's row; write_batch sets its totals from its decided items."""
    return DisbursementBatch(id=new_id(), batch_ref=batch_ref, programme=programme, fiscal_year=year,
                             paid_on=paid_on, webhook_id=push.webhook_id, idempotency_key=push.key, items=items,
                             accepted=0, rejected=0, accepted_amount=ZERO, created_at=utcnow())


def _eligible(household: Row[Any], sources: tuple[str, ...]) -> bool:
    return bool(household.target_poor) or any(s in sources for s in household.sources)


class Allowances:
    """Each recipient's payments from a programme in a fiscal year (what the yearly cap counts): read for the
    batch, counted in memory, and added back by one conditional upsert that refuses any recipient whose count
    would pass the cap, so no race can exceed it. (Two batches of one programme and year never interleave: each
    holds its budgets' locks until it commits. The condition holds the cap whoever else writes a count.)"""

    def __init__(self, programme: str, fiscal_year: int, cap: int, payments: dict[str, int]) -> None:
        self.programme, self.fiscal_year, self.cap = programme, fiscal_year, cap
        self._payments = payments
        self._taken: dict[str, int] = {}

    @classmethod
    async def read(cls, session: AsyncSession, recipients: set[str], *, programme: str, fiscal_year: int, cap: int
                   ) -> Allowances:
        """The recipients' counts (none yet: 0), in one statement for any number of them."""
        payments = dict.fromkeys(recipients, 0)
        if recipients:
            found = await session.execute(
                sql_select(ALLOWANCE_TABLE.c.household_id, ALLOWANCE_TABLE.c.payments).where(
                    ALLOWANCE_TABLE.c.programme == programme, ALLOWANCE_TABLE.c.fiscal_year == fiscal_year,
                    ALLOWANCE_TABLE.c.household_id.in_(listed(session, recipients))))
            payments |= {h: int(n) for h, n in found.all()}
        return cls(programme, fiscal_year, cap, payments)

    def take(self, recipient: str) -> bool:
        """Count one more payment if the recipient is under the cap."""
        if self._payments[recipient] >= self.cap:
            return False
        self._payments[recipient] += 1
        self._taken[recipient] = self._taken.get(recipient, 0) + 1
        return True

    def give_back(self, recipient: str) -> None:
        self._payments[recipient] -= 1
        self._taken[recipient] -= 1

    async def write(self, session: AsyncSession) -> None:
        """Add what was taken, making the rows missing, only where the count stays within the cap: one INSERT …
        SELECT … ON CONFLICT DO UPDATE … WHERE per number of payments taken (one, mostly), in recipient order.
        Should a count have grown since it was read, past what the cap leaves, the batch is refused whole (503,
        retry: the retry reads the counts again)."""
        by_count: dict[int, list[str]] = {}
        for recipient, taken in self._taken.items():
            if taken:
                by_count.setdefault(taken, []).append(recipient)
        for taken, recipients in sorted(by_count.items()):
            stmt = adding_upsert(session, ALLOWANCE_TABLE, ("household_id", "programme", "fiscal_year"), ("payments",),
                                 only_if=lambda new: ALLOWANCE_TABLE.c.payments + new.payments <= self.cap)
            written = await session.execute(stmt.from_select(
                ["household_id", "programme", "fiscal_year", "payments"],
                listed(session, sorted(recipients), literal(self.programme), literal(self.fiscal_year),
                       literal(taken))).returning(ALLOWANCE_TABLE.c.household_id))
            if len(written.all()) != len(recipients):
                raise ServiceUnavailable("Another payment to a recipient of this batch was recorded while it was "
                                         "decided; retry shortly.", type_slug="busy", headers={"Retry-After": "1"})


async def _give_allowance_back(session: AsyncSession, household_id: str, programme: str, year: int) -> None:
    await session.execute(
        update(Allowance).where(col(Allowance.household_id) == household_id, col(Allowance.programme) == programme,
                                col(Allowance.fiscal_year) == year)
        .values(payments=col(Allowance.payments) - 1).execution_options(synchronize_session=False))


async def write_batch(session: AsyncSession, *, batch: DisbursementBatch, ledger: Ledger, allowances: Allowances,
                      rows: list[dict[str, Any]], events: list[PendingEvent]) -> tuple[int, BatchOut]:
    """Write a decided batch: what it took from the budgets and the yearly counts, the batch with its totals, its
    items and the events of those accepted; answer 201 with the batch."""
    await allowances.write(session)
    await ledger.write(session)
    accepted = [row["amount"] for row in rows if row["status"] == "accepted"]
    batch.accepted, batch.rejected = len(accepted), len(rows) - len(accepted)
    batch.accepted_amount = sum(accepted, ZERO)
    session.add(batch)
    await session.flush()
    for row in rows:  # a new item's state moved when it was recorded
        row.setdefault("updated_at", row["created_at"])
    await bulk_insert(session, DISBURSEMENT_TABLE, rows)
    await outbox.add_many(session, events)
    return 201, batch_out(batch, [SimpleNamespace(**r) for r in rows])


async def _households(session: AsyncSession, hashes: set[str], ids: set[str]
                      ) -> tuple[dict[str, Row[Any]], dict[str, Row[Any]]]:
    """What is known of the households the items name, by a member's citizen-ID hash (one join over every hash)
    and by household id (one query over every id)."""
    by_hash: dict[str, Row[Any]] = {}
    if hashes:
        found = await session.execute(
            sql_select(MEMBER_HASH_TABLE.c.citizen_id_hash, *HOUSEHOLD_FACTS)
            .join_from(MEMBER_HASH_TABLE, HOUSEHOLD_TABLE, HOUSEHOLD_TABLE.c.id == MEMBER_HASH_TABLE.c.household_id)
            .where(MEMBER_HASH_TABLE.c.citizen_id_hash.in_(listed(session, hashes))))
        by_hash = {row.citizen_id_hash: row for row in found}
    by_id: dict[str, Row[Any]] = {}
    if ids:
        found = await session.execute(
            sql_select(*HOUSEHOLD_FACTS).where(HOUSEHOLD_TABLE.c.id.in_(listed(session, ids))))
        by_id = {row.id: row for row in found}
    return by_hash, by_id


async def record_batch(session: AsyncSession, *, settings: AssistanceSettings, protector: CitizenIdProtector,
                       push: Push) -> tuple[int, BatchOut]:
    """Record a pushed batch of family grants, every item accepted or rejected with its reason."""
    body: BatchIn = push.body
    programme = programmes(settings).get(body.programme)
    if programme is None or programme.pays != "household":
        raise Unprocessable(f"Programme {body.programme!r} does not pay households; use {FAMILY_GRANT} "
                            "(centre subsidies go to POST /v1/centre-subsidies).",
                            errors=[{"field": "body.programme", "message": "not a household programme",
                                     "code": "programme"}])
    await check_batch(session, settings=settings, batch_ref=body.batch_ref, year=body.fiscal_year,
                      paid_on=body.paid_on, refs=[i.item_ref for i in body.items])

    # Match every item to a household, in two queries for the whole batch.
    hashes: list[tuple[str, ...] | None] = []  # an item's under the current hash key, then any previous one
    for item in body.items:
        try:
            hashes.append(() if item.citizen_id is None else protector.hashes(validate_citizen_id(item.citizen_id)))
        except ValueError:
            hashes.append(None)
    by_hash, by_id = await _households(session, {h for candidates in hashes if candidates for h in candidates},
                                       {i.household_id for i in body.items if i.household_id})

    # The checks that need no lock, item by item; then the yearly cap and the budget of those still payable.
    matched: list[Row[Any] | None] = []
    reasons: list[Reason | None] = []
    for item, candidates in zip(body.items, hashes, strict=True):
        household = by_id.get(item.household_id or "") if item.citizen_id is None else next(
            (by_hash[h] for h in candidates or () if h in by_hash), None)
        if household is not None and not household.version:
            household = None  # only an assessment seen so far: not a household of the registry yet
        matched.append(household)
        if candidates is None:
            reasons.append(Reason.invalid_citizen_id)
        elif household is None:
            reasons.append(Reason.unknown_household)
        elif household.status != "open":
            reasons.append(Reason.household_closed)
        elif programme.max_amount is not None and item.amount > programme.max_amount:
            reasons.append(Reason.amount_above_maximum)
        elif not _eligible(household, programme.eligible_sources):
            reasons.append(Reason.not_eligible)
        else:
            reasons.append(None)
    ledger = await Ledger.lock(session, programme=programme.code, fiscal_year=body.fiscal_year)
    allowances = await Allowances.read(
        session, {h.id for h, reason in zip(matched, reasons, strict=True) if h is not None and reason is None},
        programme=programme.code, fiscal_year=body.fiscal_year, cap=programme.yearly_cap or 1)

    batch = new_batch(push, body.batch_ref, body.programme, body.fiscal_year, body.paid_on, len(body.items))
    now = utcnow()
    rows: list[dict[str, Any]] = []
    events: list[PendingEvent] = []
    for item, household, reason in zip(body.items, matched, reasons, strict=True):
        budget: Budget | None = None
        if reason is None:
            assert household is not None  # matched, open and eligible
            if not allowances.take(household.id):
                reason = Reason.yearly_cap_reached
            elif (budget := ledger.budget_for(household.village_code)) is None or not ledger.draw(budget,
                                                                                                   item.amount):
                allowances.give_back(household.id)
                reason = Reason.no_budget if budget is None else Reason.budget_exhausted
        row: dict[str, Any] = {
               "id": new_id(), "batch_id": batch.id, "item_ref": item.item_ref, "programme": body.programme,
               "fiscal_year": body.fiscal_year, "paid_on": body.paid_on, "centre_id": None,
               "household_id": household.id if household is not None else None,
               "village_code": household.village_code if household is not None else None,
               "budget_id": budget.id if budget is not None and reason is None else None, "amount": item.amount,
               "status": "rejected" if reason else "accepted", "reason": reason.value if reason else None,
               "note": item.note, "reversed_at": None, "reversal_reason": None, "created_at": now}
        rows.append(row)
        if reason is None:
            assert household is not None and budget is not None
            events.append(PendingEvent(DISBURSEMENT_RECORDED, DisbursementRecorded(
                disbursement_id=row["id"], household_id=household.id, batch_ref=body.batch_ref,
                item_ref=item.item_ref, programme=body.programme, fiscal_year=body.fiscal_year,
                paid_on=body.paid_on, amount=f"{item.amount:.2f}", budget_id=budget.id,
                budget_area_code=budget.area_code, province_code=household.province_code,
                district_code=household.district_code, subdistrict_code=household.subdistrict_code,
                village_code=household.village_code), household.id))
    return await write_batch(session, batch=batch, ledger=ledger, allowances=allowances, rows=rows, events=events)


async def reverse(session: AsyncSession, *, principal: Principal, disbursement_id: str, reason: str) -> ItemOut:
    """Reverse an accepted payment: its money goes back to the budget, the recipient's yearly count down; the
    household's `disbursement.reversed` or the centre's `centre_subsidy.reversed` tells the others."""
    payment = await session.get(Disbursement, disbursement_id)
    if payment is None or not principal.can_see(payment.village_code or ""):
        raise NotFound(f"There is no payment {disbursement_id} in your areas.")
    done = await session.execute(
        update(Disbursement).where(col(Disbursement.id) == disbursement_id, col(Disbursement.status) == "accepted")
        .values(status="reversed", reversed_at=(now := utcnow()), reversal_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False))
    if rowcount(done) != 1:
        raise Conflict(f"Payment {disbursement_id} is {payment.status}; only an accepted payment can be reversed.",
                       type_slug="not-reversible")
    await session.refresh(payment)
    recipient = payment.household_id or payment.centre_id
    if recipient is None or payment.budget_id is None:  # an accepted payment has both: a broken row
        raise RuntimeError(f"accepted payment {payment.id} has no recipient or no budget")
    await give_back(session, budget_id=payment.budget_id, amount=payment.amount)
    await _give_allowance_back(session, recipient, payment.programme, payment.fiscal_year)
    undone: BaseModel
    if payment.household_id is not None:
        event_type, undone = DISBURSEMENT_REVERSED, DisbursementReversed(
            disbursement_id=payment.id, household_id=payment.household_id, programme=payment.programme,
            fiscal_year=payment.fiscal_year, amount=f"{payment.amount:.2f}", budget_id=payment.budget_id,
            reason=reason, village_code=payment.village_code or "")
    else:
        event_type, undone = CENTRE_SUBSIDY_REVERSED, CentreSubsidyReversed(
            disbursement_id=payment.id, centre_id=recipient, programme=payment.programme,
            fiscal_year=payment.fiscal_year, amount=f"{payment.amount:.2f}", budget_id=payment.budget_id,
            reason=reason, subdistrict_code=payment.village_code or "")
    await outbox.add_many(session, [PendingEvent(event_type, undone, recipient)])
    return item_out(payment)
