"""What the test environment provides: the PostgreSQL server to test against, optional system tools, Kafka
settings tuned for tests and the bootstrap address of no broker at all."""

from __future__ import annotations

import os
import shutil

import pytest

from shared.settings import KafkaSettings

POSTGRES_URL_ENV = "KAENKHUN_TEST_POSTGRES_URL"
REQUIRE_TOOLS_ENV = "KAENKHUN_TEST_REQUIRE"
NO_BROKER = "127.0.0.1:1"  # nothing listens there: for apps run with the bus off, which never connect


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


REDIS_URL_ENV = "KAENKHUN_TEST_REDIS_URL"
REQUIRE_REDIS_ENV = "KAENKHUN_TEST_REQUIRE_REDIS"


def redis_url() -> str:
    """The Redis server the shared rate-limit tests use (KAENKHUN_TEST_REDIS_URL, default the local one at
    127.0.0.1:6379). The test skips, saying why, when it (or the `redis` package) is not there, unless
    KAENKHUN_TEST_REQUIRE_REDIS=1 (as .ci/run sets it): then it fails."""
    url = os.environ.get(REDIS_URL_ENV) or "redis://127.0.0.1:6379/0"
    try:
        import redis

        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            client.ping()
    except Exception as exc:  # the package missing, the server refusing, or any error of the package's own
        reason = f"Redis at {url} is not usable ({exc!r}); set {REQUIRE_REDIS_ENV}=1 to make this a failure"
        if os.environ.get(REQUIRE_REDIS_ENV) == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return url
