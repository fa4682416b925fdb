"""Bulk import of households from a CSV file (one row per person), in the background, in flat memory.

The shared import machinery (`shared.imports`) stores the upload and runs the job; this module reads the
file a household at a time (its rows are consecutive), validates each row with the same rules as the API,
and writes `import_chunk_households` households per transaction: households, members (citizen IDs
encrypted and hashed) and one `household.registered` event each. A household whose people are all already
in one open household is counted as unchanged, so importing the same file again creates nothing.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import IO, Any

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.registry import areas
from services.registry.households.commands import conflict_message
from services.registry.households.events import facts
from services.registry.households.queries import SOURCE_COLUMNS
from services.registry.households.schemas import Address, MemberIn, one_head_and_distinct_ids
from services.registry.imports.schemas import COLUMNS, HOUSEHOLD_COLUMNS
from services.registry.models import AuditEntry, Household, ImportJob, ImportRowError, Member, metadata, outbox
from shared import imports
from shared.auth import Principal
from shared.bus import PendingEvent
from shared.db import bulk_insert
from shared.events.envelope import utcnow
from shared.events.registry import HOUSEHOLD_REGISTERED, Source
from shared.ids import new_id
from shared.imports import RowError, csv_rows, missing_columns, parse_flag
from shared.observability import get_correlation_id
from shared.pii import CitizenIdProtector
from shared.text import name_key

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
        if areas.find(address.subdistrict_code) is None:
            errors.append(RowError(row_no, "subdistrict_code", f"unknown sub-district {address.subdistrict_code}"))
    except ValidationError as exc:
        errors += _errors(row_no, exc)
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
            "relation": row["relation"].strip(), "disability": disability,
        }), []
    except ValidationError as exc:
        return None, _errors(row_no, exc)


def read_groups(stream: IO[bytes], header_errors: list[RowError]) -> Iterator[Group]:
    """Households from a CSV byte stream, one at a time (UTF-8, with or without BOM)."""
    group: Group | None = None
    first: dict[str, str] = {}
    for row_no, row in csv_rows(stream, header_errors, missing_columns(COLUMNS)):
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


def _household_rules(group: Group) -> None:
    """The whole-household rules of the API (exactly one head, no ID twice), as row errors."""
    if group.errors or group.address is None:
        return
    try:
        one_head_and_distinct_ids([m for _, m in group.members])
    except ValueError as exc:
        group.errors.append(RowError(group.first_row, None, f"household {group.key}: {exc}"))


# -- writing ---------------------------------------------------------------------------------------------

HOUSEHOLD_TABLE = metadata.tables["household"]
MEMBER_TABLE = metadata.tables["member"]


@dataclass
class Prepared:
    """A household ready to write (rows, event, citizen-ID hashes), or the reasons it cannot be."""

    group: Group
    errors: list[RowError] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)  # each member's, under the current key: stored
    household: dict[str, Any] = field(default_factory=dict)
    members: list[dict[str, Any]] = field(default_factory=list)
    event: PendingEvent | None = None
    lookups: list[tuple[str, ...]] = field(default_factory=list)  # each member's under every key: searched

    @property
    def rows(self) -> int:
        return self.group.rows


def prepare(group: Group, importer: Principal, protector: CitizenIdProtector, now: datetime) -> Prepared:
    """Everything about a household that does not need the database (pure CPU: runs in a thread)."""
    _household_rules(group)
    if group.errors or group.address is None:
        errors = list(group.errors)
        if group.rows > 1 or not errors:
            errors.append(RowError(group.first_row, "household_key", f"household {group.key!r} not imported: its "
                                   f"{group.rows} rows go in together once all are valid"))
        return Prepared(group, errors)
    address = group.address
    code = areas.village_code(address.subdistrict_code, address.village_no)
    if not importer.can_see(code):
        return Prepared(group, [RowError(group.first_row, "subdistrict_code",
                                         f"area {code} is outside the importing client's areas")])
    household_id = new_id()
    household = {"id": household_id, "province_code": code[:2], "district_code": code[:4],
                 "subdistrict_code": address.subdistrict_code, "village_no": address.village_no, "village_code": code,
                 "house_no": address.house_no, "lat": address.lat, "lon": address.lon,
                 "welfare_card": group.welfare_card, "status": "open", "version": 1, "created_at": now,
                 "updated_at": now, "closed_reason": None, "closed_at": None, "team_id": None,
                 "buddy_official": None, "import_id": None}
    household.update({column: source in group.sources for source, column in SOURCE_COLUMNS.items()})
    hashes = [protector.hash(m.citizen_id) for _, m in group.members]
    members = [{
        "id": new_id(), "household_id": household_id, "position": position,
        "citizen_id_enc": protector.encrypt(m.citizen_id), "citizen_id_hash": hashes[position - 1],
        "title": m.title, "first_name": m.first_name, "last_name": m.last_name,
        "first_name_key": name_key(m.first_name), "last_name_key": name_key(m.last_name), "sex": m.sex.value,
        "birth_date": m.birth_date, "relation": m.relation.value, "disability": m.disability, "active": True,
        "removed_reason": None, "removed_at": None, "transferred_to": None, "created_at": now,
    } for position, (_, m) in enumerate(group.members, start=1)]
    snapshot = facts(SimpleNamespace(**household), [SimpleNamespace(**m) for m in members])
    event = PendingEvent(HOUSEHOLD_REGISTERED, HOUSEHOLD_REGISTERED.payload.model_validate(snapshot), household_id)
    lookups = [protector.hashes(m.citizen_id) for _, m in group.members]
    return Prepared(group, [], hashes, household, members, event, lookups)


@dataclass
class Counts(imports.Counts):
    households_created: int = 0
    persons_created: int = 0
    households_unchanged: int = 0


class Importer(imports.ImportJobs[Prepared, Counts]):
    """The registry's import jobs: households with their members."""

    job_model, error_model, counts_type = ImportJob, ImportRowError, Counts
    analyze = ("member",)

    def __init__(self, maker: Any, protector: CitizenIdProtector, directory: Any, *, chunk: int,
                 max_errors: int) -> None:
        super().__init__(maker, directory, chunk=chunk, max_errors=max_errors)
        self.protector = protector

    def prepare(self, stream: IO[bytes], importer: Principal, header_errors: list[RowError]
                ) -> Generator[list[Prepared], None, None]:
        groups = read_groups(stream, header_errors)
        while chunk := list(itertools.islice(groups, self.chunk)):
            now = utcnow()
            yield [prepare(group, importer, self.protector, now) for group in chunk]

    def conflict_errors(self, item: Prepared) -> list[RowError]:
        return [RowError(row_no, "citizen_id", "registered elsewhere while this file was imported")
                for row_no, _ in item.group.members]

    async def apply(self, session: AsyncSession, chunk: list[Prepared], counts: Counts, importer: Principal
                    ) -> list[RowError]:
        """Write the chunk's new households (their areas were checked in `prepare`); report the rest."""
        errors: list[RowError] = []
        wanted = {h for p in chunk for candidates in p.lookups for h in candidates}
        holders: dict[str, str] = {}
        if wanted:
            found = await session.execute(select(col(Member.citizen_id_hash), col(Member.household_id)).where(
                col(Member.citizen_id_hash).in_(wanted), col(Member.active).is_(True)))
            holders = {hash_: household_id for hash_, household_id in found.all()}
        villages: dict[str, str] = {}
        if holders:
            found = await session.execute(select(col(Household.id), col(Household.village_code)).where(
                col(Household.id).in_(set(holders.values()))))
            villages = {household_id: village for household_id, village in found.all()}
        households: list[dict[str, Any]] = []
        members: list[dict[str, Any]] = []
        events: list[PendingEvent] = []
        conflicts: list[tuple[int, str]] = []
        for p in chunk:
            if p.errors or p.event is None:
                errors += p.errors
                counts.rows_rejected += p.rows
                continue
            held = [next((holders[h] for h in candidates if h in holders), None) for candidates in p.lookups]
            owners = set(held)
            if owners != {None}:
                [owner, *others] = owners
                if not others and owner and importer.can_see(villages.get(owner, "")):
                    counts.households_unchanged += 1  # everyone already in one open household it sees: imported
                    continue
                conflicts += [(row_no, holder) for (row_no, _), holder in zip(p.group.members, held, strict=True)
                              if holder]
                counts.rows_rejected += p.rows
                continue
            households.append(p.household)
            members += p.members
            events.append(p.event)
            counts.households_created += 1
            counts.persons_created += len(p.members)
        errors += self._conflicts(session, conflicts, villages, importer)
        if households:
            await bulk_insert(session, HOUSEHOLD_TABLE, households)
            await bulk_insert(session, MEMBER_TABLE, members)
            await outbox.add_many(session, events)
        return errors


    @staticmethod
    def _conflicts(session: AsyncSession, conflicts: list[tuple[int, str]], villages: dict[str, str],
                   importer: Principal) -> list[RowError]:
        """Rows whose person is already registered elsewhere: said as POST /v1/households says it (the holder
        named only inside the importer's areas), and each written to the audit log as the lookup it is."""
        now = utcnow()
        for holder in sorted({h for _, h in conflicts}):
            session.add(AuditEntry(at=now, client_id=importer.client_id, action="registration_conflict",
                                   household_id=holder, purpose="bulk import", correlation_id=get_correlation_id()))
        return [RowError(row_no, "citizen_id", conflict_message(holder, importer.can_see(villages.get(holder, ""))))
                for row_no, holder in conflicts]


@contextlib.asynccontextmanager
async def importer_extension(app: FastAPI) -> AsyncIterator[None]:
    """The registry's background importer: resumes unfinished jobs at start, stops with the app."""
    settings = app.state.settings
    jobs = Importer(app.state.sessionmaker, app.state.protector,
                    settings.data_dir / "imports" / settings.service_name,
                    chunk=settings.import_chunk_households, max_errors=settings.import_max_errors)
    async with imports.running_jobs(app, jobs):
        yield
