"""`kaenkhun rekey`: bring every stored citizen ID under the current keys, while the services run.

After a key rotation (SECURITY.md) some members are still encrypted with an older encryption key or hashed
with an older hash key. This job walks the households in id order, a batch per transaction, and for each
member decrypts the ID, encrypts it again with the active key if it was not, and hashes it again with the
current hash key if its hash was made with another. A household whose current members got new hashes takes
its next version and publishes `household.updated` (changed: `members.citizen_id_hash`), so assistance keeps
the new pseudonyms; until it has them, payments still match under the previous key (`CitizenIdProtector.
hashes`). A household changed by someone else at the same moment is retried. Running it again changes
nothing; `--check` only counts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from services.registry.households.commands import take_next_version
from services.registry.households.events import publish
from services.registry.households.queries import HouseholdRecord
from services.registry.models import Household, Member
from shared.db import transaction
from shared.errors import PreconditionFailed
from shared.events.registry import HOUSEHOLD_UPDATED
from shared.pii import CitizenIdProtector

# -- rules --

CHANGED = ["members.citizen_id_hash"]


@dataclass
class RekeyCounts:
    members: int = 0
    reencrypted: int = 0
    rehashed: int = 0
    households_published: int = 0

    @property
    def stale(self) -> int:
        return self.reencrypted + self.rehashed

    def add(self, other: RekeyCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


async def _batch(session: AsyncSession, *, protector: CitizenIdProtector, household_ids: list[str],
                 counts: RekeyCounts, write: bool) -> None:
    # The households first: a writer that commits after this read moves the version on, so the claim below
    # fails (412) and the batch is read again, never publishing a snapshot older than the members it lists.
    households = {h.id: h for h in (await session.execute(
        select(Household).where(col(Household.id).in_(household_ids)))).scalars()}
    members = list((await session.execute(
        select(Member).where(col(Member.household_id).in_(household_ids))
        .order_by(col(Member.household_id), col(Member.position)))).scalars())
    changes: list[tuple[Member, dict[str, str]]] = []
    moved: set[str] = set()  # households whose current members' hashes change
    for member in members:
        counts.members += 1
        digits = protector.decrypt(member.citizen_id_enc)
        values: dict[str, str] = {}
        if protector.needs_rotation(member.citizen_id_enc):
            values["citizen_id_enc"] = protector.encrypt(digits)
            counts.reencrypted += 1
        current_hash = protector.hash(digits)
        if member.citizen_id_hash != current_hash:
            values["citizen_id_hash"] = current_hash
            counts.rehashed += 1
            if member.removed_at is None:
                moved.add(member.household_id)
        if values:
            changes.append((member, values))
    if not write or not changes:
        return
    for household_id in sorted(moved):
        await take_next_version(session, households[household_id])  # a concurrent writer gets 412, or we do
    for member, values in changes:
        for name, value in values.items():
            setattr(member, name, value)
    await session.flush()
    for household_id in sorted(moved):
        current = [m for m in members if m.household_id == household_id and m.removed_at is None]
        await publish(session, HOUSEHOLD_UPDATED, HouseholdRecord(households[household_id], current),
                      changed=CHANGED)
        counts.households_published += 1


async def rekey(maker: async_sessionmaker[AsyncSession], protector: CitizenIdProtector, *, batch: int = 200,
                write: bool = True, attempts: int = 5) -> RekeyCounts:
    """Re-encrypt and re-hash what older keys made (or with `write=False` count it); returns the counts."""
    counts, after = RekeyCounts(), ""
    while True:
        async with transaction(maker) as session:
            ids = list((await session.execute(select(col(Household.id)).where(col(Household.id) > after)
                                              .order_by(col(Household.id)).limit(batch))).scalars())
        if not ids:
            return counts
        for attempt in range(attempts):
            tried = RekeyCounts()
            try:
                async with transaction(maker) as session:
                    await _batch(session, protector=protector, household_ids=ids, counts=tried, write=write)
            except PreconditionFailed:  # a household of the batch changed meanwhile: read the batch again
                if attempt == attempts - 1:
                    raise
                continue
            break
        counts.add(tried)  # the counts of the attempt that committed
        after = ids[-1]
