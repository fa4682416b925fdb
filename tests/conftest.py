"""Test fixtures: a real broker (started here, on a free loopback port) and real databases."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from shared.settings import KafkaSettings

POSTGRES_URL_ENV = "KAENKHUN_TEST_POSTGRES_URL"
REQUIRE_TOOLS_ENV = "KAENKHUN_TEST_REQUIRE"


def system_tool(*names: str, install: str) -> str:
    """The path of an optional system tool (e.g. a browser); the test skips with how to install it when it is
    missing, unless KAENKHUN_TEST_REQUIRE names it (comma-separated, as .ci/run sets it): then it fails."""
    for name in names:
        if found := shutil.which(name):
            return found
    required = {t.strip() for t in os.environ.get(REQUIRE_TOOLS_ENV, "").split(",") if t.strip()}
    reason = f"{names[0]} is not installed ({install}); set {REQUIRE_TOOLS_ENV}={names[0]} to make this a failure"
    if names[0] in required:
        pytest.fail(f"{names[0]} is required by {REQUIRE_TOOLS_ENV} but not installed ({install})")
    pytest.skip(reason)


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
