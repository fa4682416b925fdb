"""Test fixtures: a real broker (started here, on a free loopback port) and real databases."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.broker import LocalBroker
from shared.scratchdb import ScratchDatabases
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


@pytest.fixture(params=["sqlite", "postgres"])
async def databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabases]:
    """Runs the test on SQLite and on PostgreSQL (the latter when KAENKHUN_TEST_POSTGRES_URL is set)."""
    if request.param == "postgres" and postgres_admin_url() is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_URL_ENV} (set by .ci/run)")
    factory = ScratchDatabases(request.param, tmp_path, postgres_admin_url())
    yield factory
    await factory.drop_all()
