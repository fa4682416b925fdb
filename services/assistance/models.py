"""Tables of the assistance service: its own metadata, with the outbox and inbox of the event bus."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.bus import Outbox, inbox_table, outbox_table
from shared.db import new_metadata, timestamp_column
from shared.money import money_column
from shared.webhooks.models import webhook_tables

metadata = new_metadata()


class Base(SQLModel, registry=registry(metadata=metadata)):
    """SQLModel base of the assistance service's tables: they go into its own metadata."""


outbox = Outbox("assistance", outbox_table(metadata))
inbox = inbox_table(metadata)
webhook = webhook_tables(metadata)  # event subscriptions and their deliveries (shared/webhooks)


def _money(default: Decimal | None = None) -> Any:
    return Field(default=default, sa_type=money_column(), nullable=False)


class KnownHousehold(Base, table=True):
    """What the registry and the assessment service have said about a household (their events)."""

    __tablename__ = "household"

    id: str = Field(primary_key=True, max_length=36)
    version: int = 0  # the registry's version of the snapshot below; 0 = only an assessment seen so far
    status: str = Field(default="unknown", max_length=10)
    province_code: str = Field(default="", max_length=2)
    district_code: str = Field(default="", max_length=4)
    subdistrict_code: str = Field(default="", max_length=6)
    village_code: str = Field(default="", max_length=8, index=True)
    sources: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Target poor in the household's latest assessment (newest survey year, newest revision).
    target_poor: bool | None = None
    assessed_year: int | None = None
    assessed_revision: int | None = None
    updated_at: datetime = Field(sa_column=timestamp_column())


class MemberHash(Base, table=True):
    """The keyed hash of each current member's citizen ID: how a payment by citizen ID finds its household."""

    __tablename__ = "member_hash"

    citizen_id_hash: str = Field(primary_key=True, max_length=64)
    household_id: str = Field(primary_key=True, max_length=36, index=True)


class Budget(Base, table=True):
    """Money allocated to a programme for a fiscal year in an area; disbursements draw it down."""

    __tablename__ = "budget"
    __table_args__ = (UniqueConstraint("programme", "fiscal_year", "area_code"),)

    id: str = Field(primary_key=True, max_length=36)
    programme: str = Field(max_length=40)
    fiscal_year: int
    area_code: str = Field(max_length=8)
    amount: Decimal = _money()
    disbursed: Decimal = _money(Decimal("0.00"))
    reversed: Decimal = _money(Decimal("0.00"))
    version: int = 1
    updated_at: datetime = Field(sa_column=timestamp_column())


class Allowance(Base, table=True):
    """Payments a household has received from a programme in a fiscal year (the yearly cap counts these)."""

    __tablename__ = "allowance"

    household_id: str = Field(primary_key=True, max_length=36)
    programme: str = Field(primary_key=True, max_length=40)
    fiscal_year: int = Field(primary_key=True)
    payments: int = 0


class IdempotencyRecord(Base, table=True):
    """One Idempotency-Key of a push: the request's hash while it runs, its response once done."""

    __tablename__ = "idempotency"

    scope: str = Field(primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=255)
    request_sha256: str = Field(max_length=64)
    status: str = Field(max_length=10)  # processing, done
    locked_at: datetime = Field(sa_column=timestamp_column())
    response_status: int | None = None
    response_body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(sa_column=timestamp_column())


class DisbursementBatch(Base, table=True):
    """A batch of payments the ministry pushed; `created_at` is when it was received (the list's order)."""

    __tablename__ = "disbursement_batch"
    __table_args__ = (Index("ix_disbursement_batch_created_at", "created_at", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    batch_ref: str = Field(max_length=100, unique=True)
    programme: str = Field(max_length=40)
    fiscal_year: int
    paid_on: date
    webhook_id: str = Field(max_length=255)
    idempotency_key: str = Field(max_length=255)
    items: int
    accepted: int
    rejected: int
    accepted_amount: Decimal = _money()
    created_at: datetime = Field(sa_column=timestamp_column())


class Disbursement(Base, table=True):
    """One item of a batch: a payment accepted (drawn from a budget) or rejected with a reason code; an item that
    matched no household is kept too (no household, no village). `updated_at` moves when its state does (the
    feed's order)."""

    __tablename__ = "disbursement"
    __table_args__ = (UniqueConstraint("batch_id", "item_ref"),
                      Index("ix_disbursement_updated_at", "updated_at", "id"))

    id: str = Field(primary_key=True, max_length=36)
    batch_id: str = Field(foreign_key="disbursement_batch.id", max_length=36, index=True)
    item_ref: str = Field(max_length=100)
    programme: str = Field(max_length=40)
    fiscal_year: int
    paid_on: date
    household_id: str | None = Field(default=None, max_length=36, index=True)
    centre_id: str | None = Field(default=None, max_length=36, index=True)
    village_code: str | None = Field(default=None, max_length=8)  # the household's village, the centre's tambon
    budget_id: str | None = Field(default=None, max_length=36)
    amount: Decimal = _money()
    status: str = Field(max_length=10)  # accepted, rejected, reversed
    reason: str | None = Field(default=None, max_length=40)
    note: str | None = Field(default=None, max_length=500)
    reversed_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    reversal_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_column=timestamp_column())
    updated_at: datetime = Field(sa_column=timestamp_column())


class Centre(Base, table=True):
    """A centre that receives subsidies: a sub-district social assistance centre or a community family
    development centre (ศพค.)."""

    __tablename__ = "centre"

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=40)
    name: str = Field(max_length=300)
    local_government: str = Field(max_length=300)
    province_code: str = Field(max_length=2)
    district_code: str = Field(max_length=4)
    subdistrict_code: str = Field(max_length=6, index=True)
    created_at: datetime = Field(sa_column=timestamp_column())


class Visit(Base, table=True):
    """A field visit to a household: what the team found in each dimension and where the household stands."""

    __tablename__ = "visit"

    id: str = Field(primary_key=True, max_length=36)
    household_id: str = Field(max_length=36, index=True)
    village_code: str = Field(max_length=8, index=True)
    visited_on: date
    team_id: str | None = Field(default=None, max_length=36)
    buddy_official: str | None = Field(default=None, max_length=200)
    stage: str = Field(max_length=12)  # survive, sufficient, sustainable
    notes: str | None = Field(default=None, max_length=4000)
    problems: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = Field(sa_column=timestamp_column())


class Partner(Base, table=True):
    """A partner agency from one of the seven sectors that households are referred to."""

    __tablename__ = "partner"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=300)
    sector: str = Field(max_length=20)
    areas: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The OAuth client (token `sub`) that acts for this partner: it sees only the partner's referrals.
    client_id: str | None = Field(default=None, max_length=200, unique=True)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=timestamp_column())


class Referral(Base, table=True):
    """An action of a household's development plan, referred to a partner: open → in_progress → done, or
    cancelled, or declined by the partner."""

    __tablename__ = "referral"

    id: str = Field(primary_key=True, max_length=36)
    household_id: str = Field(max_length=36, index=True)
    village_code: str = Field(max_length=8, index=True)
    dimension: str = Field(max_length=12)
    action: str = Field(max_length=2000)
    partner_id: str = Field(foreign_key="partner.id", max_length=36, index=True)
    due_on: date
    status: str = Field(max_length=12, index=True)
    outcome: str | None = Field(default=None, max_length=4000)
    decline_reason: str | None = Field(default=None, max_length=2000)
    version: int = 1
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=timestamp_column())
    updated_at: datetime = Field(sa_column=timestamp_column())


class ReferralChange(Base, table=True):
    """Each step of a referral (its creation and every status change): who, when, and what they wrote."""

    __tablename__ = "referral_change"

    id: str = Field(primary_key=True, max_length=36)
    referral_id: str = Field(foreign_key="referral.id", max_length=36, index=True)
    household_id: str = Field(max_length=36, index=True)
    status_before: str | None = Field(default=None, max_length=12)
    status: str = Field(max_length=12)
    note: str | None = Field(default=None, max_length=4000)
    changed_by: str = Field(max_length=200)
    changed_at: datetime = Field(sa_column=timestamp_column())


class Help(Base, table=True):
    """Help a household received under a referral: its kind, its value in baht if it has one, and when. The
    partner's Idempotency-Key (and a hash of what it sent) makes a retry a replay, not a second record."""

    __tablename__ = "help"
    __table_args__ = (UniqueConstraint("referral_id", "idempotency_key"),)

    id: str = Field(primary_key=True, max_length=36)
    referral_id: str = Field(foreign_key="referral.id", max_length=36, index=True)
    household_id: str = Field(max_length=36, index=True)
    partner_id: str = Field(max_length=36)
    kind: str = Field(max_length=12)
    value: Decimal | None = Field(default=None, sa_type=money_column(), nullable=True)
    given_on: date
    notes: str | None = Field(default=None, max_length=4000)
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = Field(sa_column=timestamp_column())
    idempotency_key: str | None = Field(default=None, max_length=255)
    request_hash: str | None = Field(default=None, max_length=64)


class HistoryEntry(Base, table=True):
    """An event another service published about a household, kept for the household's timeline."""

    __tablename__ = "household_history"

    event_id: str = Field(primary_key=True, max_length=64)
    household_id: str = Field(max_length=36, index=True)
    type: str = Field(max_length=60)
    source: str = Field(max_length=20)
    occurred_at: datetime = Field(sa_column=timestamp_column())
    happened_on: date | None = None  # the date it happened in the field, when the event says (surveyed_on)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
