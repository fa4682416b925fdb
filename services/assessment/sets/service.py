"""Indicator sets in the database: read from their files (versioned) and stored at start-up, then held parsed.

A new set or version is a new file, no code change; a changed file must raise its version.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from services.assessment.models import IndicatorSetVersion
from services.assessment.sets.schemas import IndicatorSet, SetDetail, SetSummary
from shared.clock import utcnow
from shared.db import transaction
from shared.errors import NotFound, ServiceUnavailable
from shared.indicators import SETS_DIR

log = structlog.get_logger("kaenkhun.assessment.sets")


@dataclass(frozen=True)
class SetFile:
    definition: IndicatorSet
    sha256: str


def load_files(directory: Path = SETS_DIR) -> list[SetFile]:
    """Every indicator set file in the folder (`*.toml`), validated."""
    found = []
    for path in sorted(directory.glob("*.toml")):
        raw = path.read_bytes()
        try:
            definition = IndicatorSet.model_validate(tomllib.loads(raw.decode("utf-8")))
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"indicator set file {path.name}: {exc}") from exc
        found.append(SetFile(definition, hashlib.sha256(definition.model_dump_json().encode()).hexdigest()))
    return found


class SetChanged(RuntimeError):
    """A set file differs from the same id and version already in the database."""


class Sets:
    """Every version of every indicator set the database holds, parsed once."""

    def __init__(self) -> None:
        self.loaded = False
        self._versions: dict[tuple[str, int], IndicatorSet] = {}

    def _require_loaded(self) -> None:
        if not self.loaded:
            raise ServiceUnavailable("The indicator sets are not loaded yet; try again shortly.",
                                     headers={"Retry-After": "2"})

    def get(self, set_id: str, version: int | None = None) -> IndicatorSet | None:
        """A given version, or the latest one."""
        self._require_loaded()
        if version is not None:
            return self._versions.get((set_id, version))
        versions = [v for (i, v) in self._versions if i == set_id]
        return self._versions[(set_id, max(versions))] if versions else None

    def all(self) -> list[IndicatorSet]:
        self._require_loaded()
        return [self._versions[key] for key in sorted(self._versions)]

    async def sync(self, maker: async_sessionmaker[AsyncSession], directory: Path) -> None:
        """Store each file's set version if new (a changed file must raise its version), then load all."""
        files = await asyncio.to_thread(load_files, directory)
        async with transaction(maker) as session:
            for file in files:
                d = file.definition
                row = await session.get(IndicatorSetVersion, (d.id, d.version))
                if row is None:
                    session.add(IndicatorSetVersion(id=d.id, version=d.version, name_th=d.name_th, name_en=d.name_en,
                                                    definition=d.model_dump(mode="json"), sha256=file.sha256,
                                                    loaded_at=utcnow()))
                    log.info("indicator set loaded", indicator_set=d.id, version=d.version)
                elif row.sha256 != file.sha256:
                    raise SetChanged(f"indicator set {d.id} version {d.version} differs from the one stored; "
                                     "a changed set needs a new version number")
            rows = (await session.execute(select(IndicatorSetVersion))).scalars().all()
        self._versions = {(r.id, r.version): IndicatorSet.model_validate(r.definition) for r in rows}
        self.loaded = True


@contextlib.asynccontextmanager
async def sets_extension(app: FastAPI) -> AsyncIterator[None]:
    """Load the indicator sets once the database is migrated (retrying until it is)."""
    sets: Sets = app.state.sets

    async def load() -> None:
        while True:
            try:
                await sets.sync(app.state.sessionmaker, app.state.settings.indicator_sets_dir)
                return
            except SetChanged as exc:
                log.error("indicator sets not loaded", error=str(exc))
                return
            except Exception as exc:
                log.info("indicator sets not loaded yet", error=type(exc).__name__, retry_in_s=2)
                await asyncio.sleep(2)

    task = asyncio.create_task(load(), name="indicator-sets")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def summaries(*, sets: Sets) -> list[SetSummary]:
    """Every version of every set, each marked whether it is its set's latest."""
    out = []
    for s in sets.all():
        latest = sets.get(s.id)
        out.append(SetSummary(id=s.id, version=s.version, latest=latest is not None and latest.version == s.version,
                              name_th=s.name_th, name_en=s.name_en, dimensions=len(s.dimensions),
                              indicators=len(s.indicators)))
    return out


def detail(*, sets: Sets, set_id: str, version: int | None) -> SetDetail:
    """A set's given version (default: the latest) in full; 404 if there is no such set or version."""
    found = sets.get(set_id, version)
    if found is None:
        raise NotFound(f"There is no indicator set {set_id}" + (f" version {version}." if version else "."))
    latest = sets.get(set_id)
    data: dict[str, Any] = found.model_dump()
    return SetDetail(**data, latest=latest is not None and latest.version == found.version)
