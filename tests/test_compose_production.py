"""docker-compose.yml starts in production: each service's settings, built with KAENKHUN_ENV=production from only
the environment compose gives its container (plus the secrets README, "Configuration", says to supply), are
accepted, and the app is built; without one of those secrets the service refuses to start and names it."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from services import SERVICES, load
from shared.settings import Environment
from tests.kit.compose import container_environment
from tests.kit.production import only_environment, production_secrets


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_starts_in_production_from_the_compose_environment(
    name: str, raw_compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = production_secrets()
    environment = container_environment(raw_compose, name, shell)
    only_environment(monkeypatch, environment)
    service = load(name)
    settings = service.settings()
    assert settings.env is Environment.production
    assert settings.uses_development_material() == []
    assert settings.db_url.startswith("postgresql+asyncpg://") and shell["POSTGRES_PASSWORD"] in settings.db_url
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    service.create_app(settings)  # create_service_app's check_production: raises if it refuses
    if name == "assistance":
        assert [s.get_secret_value() for s in settings.ministry_webhook_secrets] == json.loads(
            shell["KAENKHUN_ASSISTANCE_MINISTRY_WEBHOOK_SECRETS"])
    if name == "reporting":
        assert settings.public() == ["40"]
        assert environment["KAENKHUN_BI_PASSWORD"] == shell["KAENKHUN_BI_PASSWORD"]


@pytest.mark.parametrize(("missing", "service"), [
    ("KAENKHUN_ASSISTANCE_MINISTRY_WEBHOOK_SECRETS", "assistance"),
    ("KAENKHUN_PII_HASH_KEY", "registry"),
    ("KAENKHUN_PII_HASH_KEY", "assistance"),
    ("KAENKHUN_AUTH_PUBLIC_KEY_PEM", "assessment"),
    ("KAENKHUN_AUTH_CLIENTS", "reporting"),
])
def test_a_missing_production_secret_is_refused_by_name(
    missing: str, service: str, raw_compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = production_secrets()
    del shell[missing]
    if missing == "KAENKHUN_AUTH_PUBLIC_KEY_PEM":
        del shell["KAENKHUN_AUTH_PRIVATE_KEY_PEM"]  # both fall back to the development pair
    only_environment(monkeypatch, container_environment(raw_compose, service, shell))
    loaded = load(service)
    with pytest.raises(RuntimeError, match="KAENKHUN_ENV=production refuses") as refused:
        loaded.create_app(loaded.settings())
    assert missing in str(refused.value)


def test_public_areas_default_to_none_in_production(raw_compose: dict[str, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    shell = production_secrets()
    del shell["KAENKHUN_REPORTING_PUBLIC_AREAS"]
    only_environment(monkeypatch, container_environment(raw_compose, "reporting", shell))
    settings = load("reporting").settings()
    assert "KAENKHUN_REPORTING_PUBLIC_AREAS" not in os.environ
    assert settings.public() == []
