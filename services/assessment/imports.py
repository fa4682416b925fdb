"""Bulk import of assessments from a CSV file: one row per household and survey year.

Columns: `household_id` or `household_key` (the registry's id of the household, or the key its registry import
gave it: exactly one of them per row), `indicator_set`, `survey_year`, `surveyed_on` (and optionally
`indicator_set_version`), then one column per indicator code (true/false, 1/0, ใช่/ไม่ใช่; empty = not
answered, as for an indicator that does not apply or is decided by a measurement) and one per measurement
(a number; empty = not measured). Every row goes through the same rules as
`POST /v1/households/{id}/assessments` (`assessments.service.check`), and the same revision logic: a row
identical to the household's counting assessment of that year is unchanged (importing the same file twice
creates nothing), a different one is a new revision. The shared machinery (`shared.imports`) stores the upload,
runs the job in the background and keeps the rejected rows with their column and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import IO, Any

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment import aggregates
from services.assessment.assessments.schemas import AssessmentIn
from services.assessment.assessments.service import Stored, check, events, is_repeat, new_revision
from services.assessment.models import ImportChunk, ImportJob, ImportRowError, metadata, outbox
from services.assessment.projection import Known
from services.assessment.security import can_write
from services.assessment.sets.service import Sets
from shared import imports
from shared.auth import Principal
from shared.bus import PendingEvent
from shared.db import bulk_insert
from shared.errors import Problem
from shared.ids import ID_PATTERN
from shared.imports import RowError, csv_rows, parse_flag

FIXED_COLUMNS = ("household_id", "household_key", "indicator_set", "indicator_set_version", "survey_year",
                 "surveyed_on")
REQUIRED_COLUMNS = ("indicator_set", "survey_year", "surveyed_on")  # and household_id or household_key, or both
HOUSEHOLD_COLUMNS = ("household_id", "household_key")
ASSESSMENT_TABLE = metadata.tables["assessment"]
HOUSEHOLD_TABLE = metadata.tables["household"]


# -- schemas --


class ImportOut(imports.ImportOut):
    assessments_created: int
    assessments_unchanged: int


# -- rules --


@dataclass
class Line:
    """One row of the file as read: its cells, or why they cannot be read."""

    row: int
    cells: dict[str, str] | RowError
    rows: int = 1


@dataclass
class Row:
    """One row of the file, parsed (no database yet), or why it cannot be."""

    row: int
    household_id: str  # when the row gives `household_key`, filled once the key is found
    body: AssessmentIn | None
    errors: list[RowError] = field(default_factory=list)
    rows: int = 1
    household_key: str | None = None

    @property
    def household_column(self) -> str:
        return "household_key" if self.household_key else "household_id"


@dataclass
class Counts(imports.Counts):
    assessments_created: int = 0
    assessments_unchanged: int = 0


@dataclass
class Scored:
    """What a chunk changes, decided without the database: the rows' errors, the new assessments' rows (and the
    ids of the stored ones they stop counting), their events and the MPI sums' changes."""

    errors: list[RowError] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    events: list[PendingEvent] = field(default_factory=list)
    sums: aggregates.Deltas = field(default_factory=aggregates.Deltas)


def _column(location: str) -> str | None:
    """The file's column for a field path such as `body.answers.housing` or `survey_year`."""
    parts = location.split(".")
    parts = parts[1:] if parts[0] == "body" else parts
    if parts and parts[0] in ("answers", "measurements") and len(parts) > 1:
        return parts[1]
    return parts[0] if parts and parts[0] in FIXED_COLUMNS else None


class AssessmentImporter(imports.ImportJobs[Line, Row, Counts]):
    """The assessment service's import jobs."""

    job_model, error_model, chunk_model, counts_type = ImportJob, ImportRowError, ImportChunk, Counts
    analyze = ("assessment",)

    def __init__(self, maker: Any, sets: Sets, settings: imports.ImportSettings, *, chunk: int,
                 max_errors: int) -> None:
        super().__init__(maker, settings, chunk=chunk, max_errors=max_errors)
        self.sets = sets

    def check_ready(self) -> None:
        self.sets.all()  # 503 until the indicator sets are loaded: the file's columns need them

    # -- reading (in a thread) -------------------------------------------------------------------------------

    def _known_columns(self) -> tuple[set[str], set[str]]:
        """Indicator codes and measurement names of every loaded set."""
        sets = self.sets.all()
        return ({i.code for s in sets for i in s.indicators}, {m for s in sets for m in s.measurements})

    def _check_header(self, header: list[str]) -> list[str]:
        codes, measurements = self._known_columns()
        problems = []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if not any(c in header for c in HOUSEHOLD_COLUMNS):
            missing.insert(0, " or ".join(HOUSEHOLD_COLUMNS))
        if missing:
            problems.append(f"missing columns: {', '.join(missing)}")
        unknown = [c for c in header if c not in FIXED_COLUMNS and c not in codes and c not in measurements]
        if unknown:
            problems.append(f"unknown columns (not an indicator or measurement of any set): {', '.join(unknown)}")
        if len(set(header)) != len(header):
            problems.append("a column appears twice")
        return problems

    def _parse(self, row_no: int, row: dict[str, str], codes: set[str]) -> Row:
        household_id, household_key = (row.get(c, "").strip() for c in HOUSEHOLD_COLUMNS)
        errors: list[RowError] = []
        answers: dict[str, bool] = {}
        measurements: dict[str, str] = {}
        for name, cell in row.items():
            value = cell.strip()
            if name in FIXED_COLUMNS or not value:
                continue
            if name in codes:
                try:
                    answers[name] = parse_flag(value)
                except ValueError as exc:
                    errors.append(RowError(row_no, name, str(exc)))
            else:
                measurements[name] = value
        try:
            body = AssessmentIn.model_validate({
                "indicator_set": row["indicator_set"].strip(),
                "indicator_set_version": row.get("indicator_set_version", "").strip() or None,
                "survey_year": row["survey_year"].strip(), "surveyed_on": row["surveyed_on"].strip(),
                "answers": answers, "measurements": measurements})
        except ValidationError as exc:
            errors += [RowError(row_no, _column(".".join(str(p) for p in e["loc"])),
                                e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
            body = None
        if household_id and household_key:
            errors.insert(0, RowError(row_no, "household_key", "give household_id or household_key, not both"))
        elif not household_id and not household_key:
            column = "household_id" if "household_id" in row else "household_key"
            errors.insert(0, RowError(row_no, column, "empty: give household_id or household_key"))
        elif household_id and not re.fullmatch(ID_PATTERN, household_id):
            errors.insert(0, RowError(row_no, "household_id", "not a household id of the registry"))
        return Row(row_no, household_id, None if errors else body, errors, household_key=household_key or None)

    def units(self, stream: IO[bytes], header_errors: list[RowError]) -> Iterator[Line]:
        return (Line(row_no, cells) for row_no, cells in csv_rows(stream, header_errors, self._check_header))

    def prepare(self, units: list[Line], importer: Principal) -> list[Row]:
        codes, _ = self._known_columns()
        return [Row(line.row, "", None, [line.cells]) if isinstance(line.cells, RowError)
                else self._parse(line.row, line.cells, codes) for line in units]

    # -- writing ---------------------------------------------------------------------------------------------

    def conflict_errors(self, item: Row) -> list[RowError]:
        return [RowError(item.row, item.household_column, "this household's assessment was recorded at the same moment "
                                                   "by someone else; import the file again")]

    async def apply(self, session: AsyncSession, chunk: list[Row], counts: Counts, importer: Principal
                    ) -> list[RowError]:
        """Score and store the chunk's new assessments and revisions; report the rest.

        The database is read (the households, their counting assessments) and written here, on the event loop;
        what lies between (checking and scoring every row, the new rows, their events and the sums' changes) is
        pure CPU and runs in a thread, so that the loop stays free for other requests meanwhile."""
        households = await self._households(session, chunk)
        wanted = {r.household_id for r in chunk if r.body is not None and r.household_id in households}
        stored = [SimpleNamespace(**row) for row in (await session.execute(select(ASSESSMENT_TABLE).where(
            ASSESSMENT_TABLE.c.household_id.in_(wanted), ASSESSMENT_TABLE.c.current.is_(True)))).mappings()
                  ] if wanted else []
        scored = await asyncio.to_thread(self._score, chunk, households, stored, counts, importer)
        if scored.superseded:
            # Free the "current" slots first: the partial unique index allows one per household-year.
            await session.execute(update(ASSESSMENT_TABLE).where(ASSESSMENT_TABLE.c.id.in_(scored.superseded))
                                  .values(current=False))
        if scored.created:
            await bulk_insert(session, ASSESSMENT_TABLE, scored.created)
            await outbox.add_many(session, scored.events)
        # The MPI's village and sub-district sums: one upsert per table for the whole chunk.
        await aggregates.write(session, scored.sums)
        return scored.errors

    def _score(self, chunk: list[Row], households: dict[str, Known], stored: list[SimpleNamespace],
               counts: Counts, importer: Principal) -> Scored:
        """What the chunk changes, given its households and their counting assessments (`stored`): every row
        through the rules of `POST /v1/households/{id}/assessments`, in file order (pure CPU: run in a thread)."""
        # Each household's counting assessment per survey year, kept up to date as the chunk goes on.
        counting: dict[str, dict[int, Stored]] = {}
        for a in stored:
            counting.setdefault(a.household_id, {})[a.survey_year] = a
        before = {a.id: a for a in stored}
        scored = Scored()
        superseded: dict[str, Stored] = {}
        for item in chunk:
            if item.body is None:
                scored.errors += item.errors
                counts.rows_rejected += 1
                continue
            household = households.get(item.household_id)
            if household is None or not importer.can_see(household.village_code):
                message = ("there is no such household in your areas" if household is not None else
                           "no household with this key has reached the assessment service from the registry (a "
                           "key of the registry's import; if just imported, import this file again shortly)"
                           if item.household_key else
                           "the registry's household has not reached the assessment service yet; import the file "
                           "again shortly")
                scored.errors.append(RowError(item.row, item.household_column, message))
                counts.rows_rejected += 1
                continue
            try:
                indicator_set, result = check(self.sets, household, item.body)
            except Problem as problem:
                found = problem.extensions.get("errors") or [{"field": "", "message": problem.detail or ""}]
                scored.errors += [RowError(item.row, _column(e["field"]), e["message"]) for e in found]
                counts.rows_rejected += 1
                continue
            years = counting.setdefault(household.id, {})
            current = years.get(item.body.survey_year)
            if is_repeat(current, household, indicator_set, item.body):
                counts.assessments_unchanged += 1
                continue
            if current is not None and current.id in before:  # one written earlier in this chunk is below
                superseded[current.id] = current
            earlier = [y for y in years if y < item.body.survey_year]
            previous = years[max(earlier)] if earlier else None
            row = new_revision(household, item.body, indicator_set, result, current, importer.client_id)
            scored.created.append(row)
            years[item.body.survey_year] = assessment = SimpleNamespace(**row)
            scored.events += events(assessment, previous, validated=False)
            counts.assessments_created += 1
        for row in scored.created:  # a row that a later one of this chunk revised no longer counts
            row["current"] = counting[row["household_id"]][row["survey_year"]].id == row["id"]
        scored.superseded = list(superseded)
        scored.sums = aggregates.deltas(added=[SimpleNamespace(**row) for row in scored.created if row["current"]],
                                        removed=superseded.values())
        return scored

    @staticmethod
    async def _households(session: AsyncSession, chunk: list[Row]) -> dict[str, Known]:
        """The chunk's households by id, found by their id or their key (one query); a row that gives a key
        found here gets its household's id."""
        ids = {r.household_id for r in chunk if r.body is not None and r.household_id}
        keys = {r.household_key for r in chunk if r.body is not None and r.household_key}
        if not ids and not keys:
            return {}
        found = [SimpleNamespace(**row) for row in (await session.execute(select(HOUSEHOLD_TABLE).where(
            or_(HOUSEHOLD_TABLE.c.id.in_(ids), HOUSEHOLD_TABLE.c.household_key.in_(keys))))).mappings()]
        by_key = {h.household_key: h for h in found if h.household_key}
        for r in chunk:
            if r.household_key and (household := by_key.get(r.household_key)) is not None:
                r.household_id = household.id
        return {h.id: h for h in found}


@contextlib.asynccontextmanager
async def importer_extension(app: FastAPI) -> AsyncIterator[None]:
    """The assessment service's background importer: runs the jobs this replica claims, stops with the app."""
    settings = app.state.settings
    jobs = AssessmentImporter(app.state.sessionmaker, app.state.sets, settings,
                              chunk=settings.import_chunk_rows, max_errors=settings.import_max_errors)
    async with imports.running_jobs(app, jobs):
        yield


# -- routes --

router = imports.import_router("/v1/assessment-imports", ImportOut, can_write,
                                summary="Import assessments from a CSV file (one row per household and year)")
