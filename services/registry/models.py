"""Tables of the registry service: its own metadata, with the outbox and inbox of the event bus."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Index, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.bus import Outbox, inbox_table, outbox_table
from shared.db import new_metadata, timestamp_column
from shared.imports import ImportChunkColumns, ImportJobColumns, ImportRowErrorColumns
from shared.webhooks.models import webhook_tables

metadata = new_metadata()


class Base(SQLModel, registry=registry(metadata=metadata)):
    """SQLModel base of the registry service's tables: they go into its own metadata."""


outbox = Outbox("registry", outbox_table(metadata))
inbox = inbox_table(metadata)
webhook = webhook_tables(metadata)  # event subscriptions and their deliveries (shared/webhooks)


class Household(Base, table=True):
    """A household on the register; `version` guards concurrent edits (ETag / If-Match)."""

    __tablename__ = "household"

    id: str = Field(primary_key=True, max_length=36)
    province_code: str = Field(max_length=2, index=True)
    district_code: str = Field(max_length=4, index=True)
    subdistrict_code: str = Field(max_length=6, index=True)
    village_no: int
    village_code: str = Field(max_length=8, index=True)
    house_no: str = Field(max_length=40)
    lat: float | None = None
    lon: float | None = None
    source_tpmap: bool = False
    source_exclusion_error: bool = False
    source_vulnerable: bool = False
    source_other: bool = False
    welfare_card: bool = False
    status: str = Field(default="open", max_length=10, index=True)
    closed_reason: str | None = Field(default=None, max_length=200)
    closed_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    team_id: str | None = Field(default=None, max_length=36, index=True)
    buddy_official: str | None = Field(default=None, max_length=200)
    import_id: str | None = Field(default=None, max_length=36)
    # The importer's own key of the household (the import file's `household_key`): one household per key.
    household_key: str | None = Field(default=None, max_length=64, unique=True, index=True)
    version: int = 1
    created_at: datetime = Field(sa_column=timestamp_column())
    updated_at: datetime = Field(sa_column=timestamp_column())


class Member(Base, table=True):
    """A person in a household. `active` while in an open household: one active row per citizen ID."""

    __tablename__ = "member"
    __table_args__ = (
        # A citizen ID belongs to at most one open household: enforced by the database, race-free.
        Index("uq_member_active_citizen", "citizen_id_hash", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
        Index("ix_member_name_keys_birth", "first_name_key", "last_name_key", "birth_date"),
    )

    id: str = Field(primary_key=True, max_length=36)
    household_id: str = Field(foreign_key="household.id", max_length=36, index=True)
    position: int
    citizen_id_enc: str = Field(max_length=120)
    citizen_id_hash: str = Field(max_length=64, index=True)
    title: str = Field(max_length=60)
    first_name: str = Field(max_length=120)
    last_name: str = Field(max_length=120)
    # The names as compared and searched (`shared.text.name_key`); the names themselves stay as entered.
    first_name_key: str = Field(max_length=120)
    last_name_key: str = Field(max_length=120)
    sex: str = Field(max_length=6)
    birth_date: date
    relation: str = Field(max_length=10)
    disability: bool = False
    # A contact phone, normalised to its national digits (0812345678); personal data: masked in reads, never
    # in events.
    phone: str | None = Field(default=None, max_length=10)
    active: bool = True
    removed_reason: str | None = Field(default=None, max_length=20)
    removed_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    transferred_to: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(sa_column=timestamp_column())


class Team(Base, table=True):
    """A field operations team of a district (ทีมปฏิบัติการ) and the sub-districts it covers."""

    __tablename__ = "team"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    province_code: str = Field(max_length=2, index=True)
    district_code: str = Field(max_length=4, index=True)
    subdistrict_codes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    members: list[dict[str, str]] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=timestamp_column())


class AuditEntry(Base, table=True):
    """One read of personal data: who, when, which household, and the purpose they declared."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=timestamp_column())
    client_id: str = Field(max_length=200, index=True)
    action: str = Field(max_length=40)
    household_id: str | None = Field(default=None, max_length=36, index=True)
    purpose: str | None = Field(default=None, max_length=500)
    correlation_id: str | None = Field(default=None, max_length=128)


class ReferralAccess(Base, table=True):
    """What the registry knows of a referral from the assistance service's events: which household, which
    partner (and the OAuth client acting for it), its status now. A partner's client may read a household's
    contact while a referral addressed to it is open or in progress."""

    __tablename__ = "referral_access"

    referral_id: str = Field(primary_key=True, max_length=36)
    household_id: str = Field(max_length=36, index=True)
    partner_id: str = Field(max_length=36)
    partner_client_id: str | None = Field(default=None, max_length=200, index=True)
    status: str = Field(max_length=12)
    version: int
    updated_at: datetime = Field(sa_column=timestamp_column())


class ImportJob(ImportJobColumns, Base, table=True):
    """One bulk import of a CSV file of households; the columns
    every service's import job has are in `shared.imports`."""

    __tablename__ = "import_job"

    households_created: int = 0
    persons_created: int = 0
    households_unchanged: int = 0


class ImportRowError(ImportRowErrorColumns, Base, table=True):
    __tablename__ = "import_row_error"


class ImportChunk(ImportChunkColumns, Base, table=True):
    __tablename__ = "import_chunk"
