"""Test fixtures: a real broker (started here, on a free loopback port) and real databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from shared.broker import LocalBroker
from shared.settings import KafkaSettings

POSTGRES_URL_ENV = "KAENKHUN_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """One Tansu broker for the session; tests isolate themselves with unique topic names."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with LocalBroker(log_path=log) as running:
        yield running


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of the test's own, for tests that stop and restart it."""
    with LocalBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


def kafka_settings(bootstrap: str, **overrides: object) -> KafkaSettings:
    """Kafka settings tuned for tests: short backoffs so outages resolve quickly."""
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "topic_partitions": 4,
        "relay_backoff_initial_s": 0.1,
        "relay_backoff_max_s": 1.0,
        "consumer_retry_backoff_s": 0.01,
        "consumer_max_attempts": 3,
        "request_timeout_ms": 5000,
    }
    values.update(overrides)
    return KafkaSettings.model_validate(values)


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or None


class DatabaseFactory:
    """Makes fresh, empty databases of one kind (a SQLite file, or a new PostgreSQL database)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.created: list[str] = []

    async def new(self, name: str = "db") -> str:
        if self.kind == "sqlite":
            return f"sqlite+aiosqlite:///{self.tmp_path / (name + '-' + uuid.uuid4().hex[:8] + '.db')}"
        import asyncpg

        admin = _asyncpg_dsn(postgres_admin_url() or "")
        database = f"kk_{name}_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()
        self.created.append(database)
        return str(make_url(postgres_admin_url() or "").set(database=database, drivername="postgresql+asyncpg"))

    async def drop_all(self) -> None:
        if self.kind != "postgres" or not self.created:
            return
        import asyncpg

        conn = await asyncpg.connect(_asyncpg_dsn(postgres_admin_url() or ""))
        try:
            for database in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
async def databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DatabaseFactory]:
    """Runs the test on SQLite and on PostgreSQL (the latter when KAENKHUN_TEST_POSTGRES_URL is set)."""
    if request.param == "postgres" and postgres_admin_url() is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_URL_ENV} (set by .ci/run)")
    factory = DatabaseFactory(request.param, tmp_path)
    yield factory
    await factory.drop_all()
