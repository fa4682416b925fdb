"""Bulk import of households from a CSV file (one row per person), in the background, in flat memory.

The shared import machinery (`shared.imports`) stores the upload and runs the job; this module reads the
file a household at a time (its rows are consecutive), validates each row with the API's schemas, and
registers `import_chunk_households` households per transaction by the API's own rule
(`households.registration`: the same checks, conflicts, rows, event and audit), written in bulk. A household
whose people are all already in one open household is counted as unchanged, so importing the same file again
creates nothing.

A household's `household_key` is kept on it (its importer's own key, which the assessment import takes in place
of the household's id): one household per key in the whole registry. A new household whose key another
household already has is refused; a household already on the register without a key (registered before keys
were kept) gets the file's key when its file is imported again; one with another key is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.households import commands, registration
from services.registry.households.queries import CallerWithPurpose
from services.registry.households.registration import Registration
from services.registry.households.schemas import Address, HouseholdCreate, MemberIn
from services.registry.imports.schemas import (
    COLUMNS,
    HOUSEHOLD_COLUMNS,
    KEY_LENGTH,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
)
from services.registry.models import ImportChunk, ImportJob, ImportRowError
from shared import imports
from shared.auth import Principal
from shared.clock import utcnow
from shared.db import no_table_scans
from shared.errors import PreconditionFailed
from shared.events.registry import Source
from shared.imports import RowError, csv_rows, missing_columns, parse_flag
from shared.pii import CitizenIdProtector

# -- reading the file ------------------------------------------------------------------------------------


@dataclass
class Group:
    """The consecutive rows of one household key, validated."""

    key: str
    first_row: int
    address: Address | None = None
    sources: list[Source] = field(default_factory=list)
    welfare_card: bool = False
    members: list[tuple[int, MemberIn]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0


def _errors(row: int, exc: ValidationError) -> list[RowError]:
    found = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        column = loc[-1] if loc else None
        found.append(RowError(row, column if column in COLUMNS else None, error["msg"].removeprefix("Value error, ")))
    return found


def _household_fields(row_no: int, row: dict[str, str]) -> tuple[Address | None, list[Source], bool,
                                                                  list[RowError]]:
    errors: list[RowError] = []
    address = None
    try:
        village = row["village_no"].strip()
        address = Address.model_validate({
            "subdistrict_code": row["subdistrict_code"].strip(),
            "village_no": int(village) if village.isdigit() else village,
            "house_no": row["house_no"],
            "lat": row["lat"].strip() or None, "lon": row["lon"].strip() or None,
        })
        registration.subdistrict(address.subdistrict_code)
    except ValidationError as exc:
        errors += _errors(row_no, exc)
    except registration.UnknownSubdistrict as exc:
        errors.append(RowError(row_no, "subdistrict_code", f"unknown sub-district {exc.code}"))
    sources: list[Source] = []
    for part in (p.strip() for p in row["sources"].split(";") if p.strip()):
        try:
            sources.append(Source(part))
        except ValueError:
            errors.append(RowError(row_no, "sources", f"unknown source {part!r}; use {', '.join(Source)}"))
    if not sources and not any(e.column == "sources" for e in errors):
        errors.append(RowError(row_no, "sources", "at least one source (e.g. tpmap;vulnerable)"))
    try:
        welfare_card = parse_flag(row["welfare_card"])
    except ValueError as exc:
        errors.append(RowError(row_no, "welfare_card", str(exc)))
        welfare_card = False
    return address, sources, welfare_card, errors


def _member(row_no: int, row: dict[str, str]) -> tuple[MemberIn | None, list[RowError]]:
    try:
        disability = parse_flag(row["disability"])
    except ValueError as exc:
        return None, [RowError(row_no, "disability", str(exc))]
    try:
        return MemberIn.model_validate({
            "citizen_id": row["citizen_id"].strip(), "title": row["title"], "first_name": row["first_name"],
            "last_name": row["last_name"], "sex": row["sex"].strip(), "birth_date": row["birth_date"].strip(),
            "relation": row["relation"].strip(), "disability": disability, "phone": row["phone"].strip() or None,
        }), []
    except ValidationError as exc:
        return None, _errors(row_no, exc)


def read_groups(stream: IO[bytes], header_errors: list[RowError]) -> Iterator[Group]:
    """Households from a CSV byte stream, one at a time (UTF-8, with or without BOM)."""
    group: Group | None = None
    first: dict[str, str] = {}
    absent = dict.fromkeys(OPTIONAL_COLUMNS, "")  # an optional column the file leaves out reads as empty
    for row_no, row in csv_rows(stream, header_errors, missing_columns(REQUIRED_COLUMNS)):
        if not isinstance(row, RowError) and not absent.keys() <= row.keys():
            row = absent | row
        if isinstance(row, RowError):
            if group is not None:
                yield group
                group = None
            yield Group(key=f"\0row{row_no}", first_row=row_no, rows=1, errors=[row])
            continue
        key = row["household_key"].strip()
        if group is None or key != group.key:
            if group is not None:
                yield group
            group = Group(key=key, first_row=row_no)
            if not key:
                group.errors.append(RowError(row_no, "household_key", "empty"))
            elif len(key) > KEY_LENGTH:
                group.errors.append(RowError(row_no, "household_key", f"at most {KEY_LENGTH} characters"))
            group.address, group.sources, group.welfare_card, errors = _household_fields(row_no, row)
            group.errors += errors
            first = {c: row[c].strip() for c in HOUSEHOLD_COLUMNS[1:]}
        else:
            differs = [c for c in HOUSEHOLD_COLUMNS[1:] if (v := row[c].strip()) and v != first[c]]
            group.errors += [RowError(row_no, c, "differs from the household's first row") for c in differs]
        group.rows += 1
        member, errors = _member(row_no, row)
        group.errors += errors
        if member is not None:
            group.members.append((row_no, member))
    if group is not None:
        yield group


def _household(group: Group) -> HouseholdCreate | None:
    """The household as the API takes it, whole-household rules checked (exactly one head, no ID twice, at
    most 60 people); None, with the reasons in `group.errors`, if it is not valid."""
    if group.errors or group.address is None:
        return None
    try:
        return HouseholdCreate.model_validate({"address": group.address, "sources": group.sources,
                                               "welfare_card": group.welfare_card,
                                               "members": [m for _, m in group.members]})
    except ValidationError as exc:
        group.errors += [RowError(group.first_row, None,
                                  f"household {group.key}: {e['msg'].removeprefix('Value error, ')}")
                         for e in exc.errors()]
        return None


# -- writing ---------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A household ready to register, or the reasons it cannot be."""

    group: Group
    errors: list[RowError] = field(default_factory=list)
    registration: Registration | None = None

    @property
    def rows(self) -> int:
        return self.group.rows


def prepare(group: Group, importer: Principal, protector: CitizenIdProtector, now: datetime) -> Prepared:
    """Everything about a household that does not need the database (pure CPU: runs in a thread)."""
    body = _household(group)
    if body is None:
        errors = list(group.errors)
        if group.rows > 1 or not errors:
            errors.append(RowError(group.first_row, "household_key", f"household {group.key!r} not imported: its "
                                   f"{group.rows} rows go in together once all are valid"))
        return Prepared(group, errors)
    try:
        return Prepared(group, registration=registration.prepare(importer, body, protector, now,
                                                                 household_key=group.key))
    except registration.OutsideAreas as exc:
        return Prepared(group, [RowError(group.first_row, "subdistrict_code",
                                         f"area {exc.code} is outside the importing client's areas")])


@dataclass
class Counts(imports.Counts):
    households_created: int = 0
    persons_created: int = 0
    households_unchanged: int = 0


class Importer(imports.ImportJobs[Group, Prepared, Counts]):
    """The registry's import jobs: households with their members."""

    job_model, error_model, chunk_model, counts_type = ImportJob, ImportRowError, ImportChunk, Counts
    analyze = ("household", "member")
    analyze_as_it_grows = False  # `apply` looks people and keys up through their indexes whatever the statistics

    def __init__(self, maker: Any, protector: CitizenIdProtector, settings: imports.ImportSettings, *, chunk: int,
                 max_errors: int) -> None:
        super().__init__(maker, settings, chunk=chunk, max_errors=max_errors)
        self.protector = protector

    def units(self, stream: IO[bytes], header_errors: list[RowError]) -> Iterator[Group]:
        return read_groups(stream, header_errors)

    def prepare(self, units: list[Group], importer: Principal) -> list[Prepared]:
        now = utcnow()
        return [prepare(group, importer, self.protector, now) for group in units]

    def conflict_errors(self, item: Prepared) -> list[RowError]:
        return [RowError(row_no, "citizen_id", "registered elsewhere while this file was imported")
                for row_no, _ in item.group.members]

    async def apply(self, session: AsyncSession, chunk: list[Prepared], counts: Counts, importer: Principal
                    ) -> list[RowError]:
        """Register the chunk's new households (their areas were checked in `prepare`); report the rest. The
        lookups go through the indexes whatever PostgreSQL's statistics say, however much the chunks before this
        one grew the tables since they were last analyzed."""
        errors: list[RowError] = []
        await no_table_scans(session)
        wanted = {h for p in chunk if p.registration is not None for hashes in p.registration.lookups for h in hashes}
        holders = await registration.find_holders(session, wanted)
        keyed = await registration.find_keys(session, {p.group.key for p in chunk if p.registration is not None})
        caller = CallerWithPurpose(importer, "bulk import")
        new: list[Registration] = []
        to_key: list[tuple[Prepared, str]] = []
        conflicts: list[tuple[int, str]] = []
        for p in chunk:
            if p.registration is None:
                errors += p.errors
                counts.rows_rejected += p.rows
                continue
            key = p.group.key
            held = holders.of(p.registration.lookups)
            owners = set(held)
            if owners != {None}:
                [owner, *others] = owners
                if not others and owner and holders.visible(owner, importer):
                    # Everyone already in one open household it sees: imported, under this key or (before keys
                    # were kept) none yet.
                    problem = self._key_problem(key, keyed.get(key), holders.keys.get(owner), owner, importer)
                    if problem is None:
                        counts.households_unchanged += 1
                        if holders.keys.get(owner) is None:
                            to_key.append((p, owner))
                            keyed[key] = (owner, holders.villages[owner])
                        continue
                    errors.append(RowError(p.group.first_row, "household_key", problem))
                    counts.rows_rejected += p.rows
                    continue
                conflicts += [(row_no, holder) for (row_no, _), holder in zip(p.group.members, held, strict=True)
                              if holder]
                counts.rows_rejected += p.rows
                continue
            if key in keyed:
                errors.append(RowError(p.group.first_row, "household_key",
                                       self._key_problem(key, keyed[key], None, None, importer) or ""))
                counts.rows_rejected += p.rows
                continue
            keyed[key] = (p.registration.household["id"], p.registration.household["village_code"])
            new.append(p.registration)
            counts.households_created += 1
            counts.persons_created += len(p.registration.members)
        # Rows whose person is already registered elsewhere: said as POST /v1/households says it (the holder
        # named only inside the importer's areas), and written to the audit log as the lookup it is.
        registration.audit_conflicts(session, caller=caller, holder_ids=[holder for _, holder in conflicts])
        errors += [RowError(row_no, "citizen_id",
                            registration.conflict_message(holder, holders.visible(holder, importer)))
                   for row_no, holder in conflicts]
        await registration.write_many(session, new)
        for p, owner in to_key:
            try:
                await commands.set_key(session, caller=caller, household_id=owner, household_key=p.group.key)
            except PreconditionFailed:
                errors.append(RowError(p.group.first_row, "household_key", f"household {owner} changed while this "
                                       "file was imported; import the file again to give it its key"))
        return errors

    @staticmethod
    def _key_problem(key: str, holder: tuple[str, str] | None, owner_key: str | None, owner: str | None,
                     importer: Principal) -> str | None:
        """Why `key` cannot be the key of the household `owner` (None: a new one), or None if it can: one
        household per key, one key per household. The other household is named inside the importer's areas."""
        if owner is not None and owner_key is not None:
            return None if owner_key == key else f"these people's household {owner} has the key {owner_key!r}"
        if holder is None or holder[0] == owner:
            return None
        named = f" (household {holder[0]})" if importer.can_see(holder[1]) else ""
        return f"the key {key!r} already belongs to another household{named}"


@contextlib.asynccontextmanager
async def importer_extension(app: FastAPI) -> AsyncIterator[None]:
    """The registry's background importer: runs the jobs this replica claims, stops with the app."""
    settings = app.state.settings
    jobs = Importer(app.state.sessionmaker, app.state.protector, settings,
                    chunk=settings.import_chunk_households, max_errors=settings.import_max_errors)
    async with imports.running_jobs(app, jobs):
        yield
