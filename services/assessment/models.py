"""Tables of the assessment service: its own metadata, with the outbox and inbox of the event bus."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.bus import Outbox, inbox_table, outbox_table
from shared.db import new_metadata, timestamp_column
from shared.imports import ImportChunkColumns, ImportJobColumns, ImportRowErrorColumns
from shared.webhooks.models import webhook_tables

metadata = new_metadata()


class Base(SQLModel, registry=registry(metadata=metadata)):
    """SQLModel base of the assessment service's tables: they go into its own metadata."""


outbox = Outbox("assessment", outbox_table(metadata))
inbox = inbox_table(metadata)
webhook = webhook_tables(metadata)  # event subscriptions and their deliveries (shared/webhooks)


def _json() -> Column:  # type: ignore[type-arg]
    return Column(JSON, nullable=False)


class IndicatorSetVersion(Base, table=True):
    """One version of an indicator set, loaded from its data file; assessments point at the version they used."""

    __tablename__ = "indicator_set"

    id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    name_th: str = Field(max_length=300)
    name_en: str = Field(max_length=300)
    definition: dict[str, Any] = Field(sa_column=_json())
    sha256: str = Field(max_length=64)
    loaded_at: datetime = Field(sa_column=timestamp_column())


class KnownHousehold(Base, table=True):
    """What the registry has told this service about a household (its events' latest snapshot)."""

    __tablename__ = "household"

    id: str = Field(primary_key=True, max_length=36)
    # The registry importer's own key of the household (unique in the registry): the assessment import takes it
    # in place of the id.
    household_key: str | None = Field(default=None, max_length=64, index=True)
    version: int
    status: str = Field(max_length=10)
    province_code: str = Field(max_length=2)
    district_code: str = Field(max_length=4)
    subdistrict_code: str = Field(max_length=6)
    village_code: str = Field(max_length=8, index=True)
    welfare_card: bool
    sources: list[str] = Field(sa_column=_json())
    members: list[dict[str, Any]] = Field(sa_column=_json())
    updated_at: datetime = Field(sa_column=timestamp_column())


class Assessment(Base, table=True):
    """One revision of a household's assessment for a survey year; the `current` one counts."""

    __tablename__ = "assessment"
    __table_args__ = (
        UniqueConstraint("household_id", "survey_year", "revision"),
        # One counting revision per household and year, enforced by the database.
        Index("uq_assessment_current", "household_id", "survey_year", unique=True,
              sqlite_where=text("current"), postgresql_where=text("current")),
        Index("ix_assessment_year_area", "survey_year", "current", "village_code"),
    )

    id: str = Field(primary_key=True, max_length=36)
    household_id: str = Field(max_length=36, index=True)
    survey_year: int
    revision: int
    current: bool = True
    indicator_set_id: str = Field(max_length=64)
    indicator_set_version: int
    surveyed_on: date
    answers: dict[str, bool] = Field(sa_column=_json())
    measurements: dict[str, str] = Field(sa_column=_json())  # decimal text, exactly as given
    indicators: list[dict[str, Any]] = Field(sa_column=_json())  # code, dimension, status, reason, weight
    dimensions: dict[str, bool | None] = Field(sa_column=_json())
    score_num: int
    score_den: int
    poor: bool
    severity: str = Field(max_length=10)
    target_poor: bool
    welfare_card: bool
    member_count: int
    province_code: str = Field(max_length=2)
    district_code: str = Field(max_length=4)
    subdistrict_code: str = Field(max_length=6)
    village_code: str = Field(max_length=8)
    household_version: int
    recorded_at: datetime = Field(sa_column=timestamp_column())
    recorded_by: str = Field(max_length=200)


def _sum() -> Column:  # type: ignore[type-arg]
    return Column(BigInteger, nullable=False, server_default="0")


class MpiVillage(Base, table=True):
    """The sums behind the MPI of one village's current assessments of a survey year on an indicator set, kept in
    the transaction that changes them (`services.assessment.aggregates`). Scores and weights are fractions:
    `censored_score` is Σ persons × c(k) × `denominator`, an integer (a multiple of every weight's denominator of
    the set's version), so sums stay exact; a set whose versions need different denominators has one row each."""

    __tablename__ = "mpi_village"

    survey_year: int = Field(primary_key=True)
    indicator_set: str = Field(primary_key=True, max_length=64)
    village_code: str = Field(primary_key=True, max_length=8)
    denominator: int = Field(primary_key=True)
    households: int = Field(sa_column=_sum())
    persons: int = Field(sa_column=_sum())
    poor_households: int = Field(sa_column=_sum())
    poor_persons: int = Field(sa_column=_sum())
    target_poor_households: int = Field(sa_column=_sum())
    target_poor_persons: int = Field(sa_column=_sum())
    censored_score: int = Field(sa_column=_sum())


class MpiVillageIndicator(Base, table=True):
    """Per indicator, the poor households of the village that fail it and Σ persons × w_j × `denominator` over
    them (its censored contribution's numerator); same key as `mpi_village` with the indicator's code."""

    __tablename__ = "mpi_village_indicator"

    survey_year: int = Field(primary_key=True)
    indicator_set: str = Field(primary_key=True, max_length=64)
    village_code: str = Field(primary_key=True, max_length=8)
    denominator: int = Field(primary_key=True)
    indicator: str = Field(primary_key=True, max_length=64)
    households: int = Field(sa_column=_sum())
    censored: int = Field(sa_column=_sum())


class MpiSubdistrict(Base, table=True):
    """`mpi_village`'s sums added up per sub-district, kept by the same changes in the same transaction: what a
    report of a province or a district reads (a twelfth of the rows), for callers who see whole sub-districts."""

    __tablename__ = "mpi_subdistrict"

    survey_year: int = Field(primary_key=True)
    indicator_set: str = Field(primary_key=True, max_length=64)
    subdistrict_code: str = Field(primary_key=True, max_length=6)
    denominator: int = Field(primary_key=True)
    households: int = Field(sa_column=_sum())
    persons: int = Field(sa_column=_sum())
    poor_households: int = Field(sa_column=_sum())
    poor_persons: int = Field(sa_column=_sum())
    target_poor_households: int = Field(sa_column=_sum())
    target_poor_persons: int = Field(sa_column=_sum())
    censored_score: int = Field(sa_column=_sum())


class MpiSubdistrictIndicator(Base, table=True):
    """`mpi_village_indicator`'s sums added up per sub-district."""

    __tablename__ = "mpi_subdistrict_indicator"

    survey_year: int = Field(primary_key=True)
    indicator_set: str = Field(primary_key=True, max_length=64)
    subdistrict_code: str = Field(primary_key=True, max_length=6)
    denominator: int = Field(primary_key=True)
    indicator: str = Field(primary_key=True, max_length=64)
    households: int = Field(sa_column=_sum())
    censored: int = Field(sa_column=_sum())


class ImportJob(ImportJobColumns, Base, table=True):
    """One bulk import of a CSV file of assessments; the columns
    every service's import job has are in `shared.imports`."""

    __tablename__ = "import_job"

    assessments_created: int = 0
    assessments_unchanged: int = 0


class ImportRowError(ImportRowErrorColumns, Base, table=True):
    __tablename__ = "import_row_error"


class ImportChunk(ImportChunkColumns, Base, table=True):
    __tablename__ = "import_chunk"
