"""Reading back what the ministry pushed: a batch with each item's state now, every batch received, and the feed
of payments in the order their state last moved.

A batch's totals are the whole batch's for every reader, so they agree with the push's answer: `items` and
`amount` never change, and a reversal only moves a payment from accepted to reversed. Its items are listed to a
reader as far as the reader's areas go: a reader of every area (the ministry's client) sees every item, those
that matched no household among them; a reader of some areas sees the items of households in them and only the
number of the others (`outside_view.items`) — never which, where or whose.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, case, func, or_
from sqlalchemy import select as sql_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.assistance.disbursements.schemas import (
    REASONS,
    BatchOut,
    BatchSummary,
    ItemOut,
    OutsideView,
    PaymentOut,
    PaymentStatus,
    Reason,
    Totals,
)
from services.assistance.models import Disbursement, DisbursementBatch
from shared.auth import Principal, area_clause
from shared.db import as_utc
from shared.errors import BadRequest, NotFound
from shared.money import ZERO
from shared.pagination import Page, PageRequest, decode_key, encode_key, fetch_page

Row = Disbursement | SimpleNamespace  # a stored item, or one just decided (a dict of its columns)


# -- rules --


def item_out(d: Row) -> ItemOut:
    """An item as it is now: accepted, rejected with its reason, or reversed with when and why."""
    return ItemOut(item_ref=d.item_ref, status=PaymentStatus(d.status), reason=d.reason,
                   reason_text=REASONS[Reason(d.reason)] if d.reason else None, disbursement_id=d.id,
                   household_id=d.household_id, centre_id=d.centre_id, amount=d.amount,
                   reversed_at=as_utc(d.reversed_at) if d.reversed_at else None, reversal_reason=d.reversal_reason)


def totals_of(sums: dict[str, tuple[int, Decimal]]) -> Totals:
    """Totals from each status's (count, amount)."""
    count = {s: sums.get(s, (0, ZERO))[0] for s in PaymentStatus}
    amount = {s: sums.get(s, (0, ZERO))[1] for s in PaymentStatus}
    return Totals(items=sum(count.values()), amount=sum(amount.values(), ZERO), accepted=count[PaymentStatus.accepted],
                  rejected=count[PaymentStatus.rejected], reversed=count[PaymentStatus.reversed],
                  accepted_amount=amount[PaymentStatus.accepted], rejected_amount=amount[PaymentStatus.rejected],
                  reversed_amount=amount[PaymentStatus.reversed])


def _sums(items: Sequence[Row]) -> dict[str, tuple[int, Decimal]]:
    return {s: (sum(d.status == s for d in items), sum((d.amount for d in items if d.status == s), ZERO))
            for s in PaymentStatus}


def batch_out(batch: DisbursementBatch, items: Sequence[Row], visible: Sequence[Row] | None = None) -> BatchOut:
    """The batch with the whole batch's totals, listing `visible` of its items (all of them by default)."""
    shown = items if visible is None else visible
    return BatchOut(batch_ref=batch.batch_ref, programme=batch.programme, fiscal_year=batch.fiscal_year,
                    paid_on=batch.paid_on, received_at=as_utc(batch.created_at), items=[item_out(d) for d in shown],
                    totals=totals_of(_sums(items)), outside_view=OutsideView(items=len(items) - len(shown)))


def batch_location(body: Any) -> str:
    """Where a pushed batch (family grants or centre subsidies) is read as it is now."""
    return f"/v1/disbursement-batches/{body.batch_ref}"


def _sees(principal: Principal, d: Row) -> bool:
    return principal.sees_all_areas or principal.can_see(d.village_code or "")


async def get_batch(session: AsyncSession, *, principal: Principal, batch_ref: str) -> BatchOut:
    """A batch and each of its items in the caller's areas, as they are now; the totals of all of them."""
    batch = (await session.execute(select(DisbursementBatch).where(
        col(DisbursementBatch.batch_ref) == batch_ref))).scalar_one_or_none()
    if batch is None:
        raise NotFound(f"There is no batch {batch_ref}.")
    items = (await session.execute(select(Disbursement).where(col(Disbursement.batch_id) == batch.id)
                                   .order_by(col(Disbursement.item_ref)))).scalars().all()
    return batch_out(batch, items, [d for d in items if _sees(principal, d)])


async def list_batches(session: AsyncSession, *, principal: Principal, since: datetime | None,
                       page: PageRequest) -> Page[BatchSummary]:
    """Every batch received (since a time), oldest first, each with its totals now and what the caller does not
    see of it."""
    query = select(DisbursementBatch)
    if since is not None:
        query = query.where(col(DisbursementBatch.created_at) >= since.astimezone(UTC))
    batches, next_cursor = await fetch_page(session, query, order=[col(DisbursementBatch.created_at)],
                                            id_column=col(DisbursementBatch.id), page=page)
    sums: dict[str, dict[str, tuple[int, Decimal]]] = {}
    outside: dict[str, int] = {}
    if batches:
        hidden = case((area_clause(principal, col(Disbursement.village_code)), 0), else_=1)
        found = await session.execute(
            sql_select(col(Disbursement.batch_id), col(Disbursement.status), func.count(),
                       func.sum(col(Disbursement.amount)), func.sum(hidden))
            .where(col(Disbursement.batch_id).in_([b.id for b in batches]))
            .group_by(col(Disbursement.batch_id), col(Disbursement.status)))
        for batch_id, status, count, amount, unseen in found.all():
            sums.setdefault(batch_id, {})[status] = (int(count), Decimal(amount).quantize(Decimal("0.01")))
            outside[batch_id] = outside.get(batch_id, 0) + int(unseen or 0)
    return Page(items=[BatchSummary(
        batch_ref=b.batch_ref, programme=b.programme, fiscal_year=b.fiscal_year, paid_on=b.paid_on,
        received_at=as_utc(b.created_at), totals=totals_of(sums.get(b.id, {})),
        outside_view=OutsideView(items=outside.get(b.id, 0))) for b in batches], next_cursor=next_cursor)


def _feed_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The (updated_at, id) a feed cursor names: the key values themselves, not a row to look up, since a row's
    `updated_at` moves when it is reversed (a cursor naming it would then jump past the rows between)."""
    key = decode_key(cursor, 2)
    if key is None:
        return None
    try:
        at = datetime.fromisoformat(key[0])
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise BadRequest("The cursor is not one this API gave out.", type_slug="bad-cursor")
    return at.astimezone(UTC), key[1]


async def feed(session: AsyncSession, *, principal: Principal, status: PaymentStatus | None,
               updated_since: datetime | None, cursor: str | None, limit: int) -> Page[PaymentOut]:
    """Payments in the caller's areas (every one, unmatched items too, for a reader of every area) in the order
    their state last moved, (updated_at, id) ascending, from `updated_since` (inclusive)."""
    updated = col(Disbursement.updated_at)
    query: Any = (select(Disbursement, DisbursementBatch.batch_ref)
                  .join(DisbursementBatch, col(DisbursementBatch.id) == col(Disbursement.batch_id))
                  .where(area_clause(principal, col(Disbursement.village_code))))
    if not principal.sees_all_areas:
        query = query.where(col(Disbursement.village_code).is_not(None))
    if status is not None:
        query = query.where(col(Disbursement.status) == status.value)
    if updated_since is not None:
        query = query.where(updated >= updated_since.astimezone(UTC))
    if (after := _feed_cursor(cursor)) is not None:
        at, last_id = after
        query = query.where(or_(updated > at, and_(updated == at, col(Disbursement.id) > last_id)))
    rows = (await session.execute(query.order_by(updated, col(Disbursement.id)).limit(limit + 1))).all()
    items = [PaymentOut(**item_out(d).model_dump(), batch_ref=batch_ref, programme=d.programme,
                        fiscal_year=d.fiscal_year, paid_on=d.paid_on, updated_at=as_utc(d.updated_at))
             for d, batch_ref in rows[:limit]]
    next_cursor = encode_key([items[-1].updated_at.isoformat(), items[-1].disbursement_id]) \
        if len(rows) > limit and items else None
    return Page(items=items, next_cursor=next_cursor)
