"""docker-compose.yml against the Compose Specification, and its variables, checked without Docker.

The Compose file is validated against the Compose Specification JSON schema, vendored as
tests/data/compose-spec.json: repository compose-spec/compose-spec, path
schema/compose-spec.json, commit b2835e8acc1e42e7aecbc27a9bc4a1fc66ef21ba (copied verbatim).
Its `$schema` is draft 2019-09, so the validator is the one that `$schema` names.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.kit.compose import environment_of, interpolate
from tests.kit.compose import interpolate_string as _interpolate_string

SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_vendored_schema_is_the_compose_specification(schema: dict[str, Any]) -> None:
    assert schema["title"] == "Compose Specification"
    assert "json-schema.org" in schema["$schema"]
    assert {"service", "healthcheck", "network", "volume"} <= set(schema["definitions"])
    depends_on = schema["definitions"]["service"]["properties"]["depends_on"]
    conditions = depends_on["oneOf"][1]["patternProperties"]["^[a-zA-Z0-9._-]+$"]["properties"]["condition"]
    assert "service_healthy" in conditions["enum"]


def test_compose_file_is_valid_against_the_specification(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    errors = sorted(validator.iter_errors(compose), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_raw_compose_file_is_valid_before_interpolation(
    raw_compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    validator.validate(raw_compose)


def _misspell_depends_on(document: dict[str, Any]) -> None:
    service = document["services"]["registry"]
    service["depends_onn"] = service.pop("depends_on")


def _ports_as_string(document: dict[str, Any]) -> None:
    document["services"]["assessment"]["ports"] = "8002:8002"


def _bad_condition(document: dict[str, Any]) -> None:
    document["services"]["assistance"]["depends_on"]["kafka"]["condition"] = "service_ready"


def _interval_as_number(document: dict[str, Any]) -> None:
    document["services"]["reporting"]["healthcheck"]["interval"] = 10


def _unknown_top_level_key(document: dict[str, Any]) -> None:
    document["service"] = document.pop("services")


def _environment_value_as_mapping(document: dict[str, Any]) -> None:
    document["services"]["kafka"]["environment"]["KAFKA_NODE_ID"] = {"id": 1}


def _misspelled_healthcheck_key(document: dict[str, Any]) -> None:
    healthcheck = document["services"]["postgres"]["healthcheck"]
    healthcheck["retry"] = healthcheck.pop("retries")


@pytest.mark.parametrize(
    "breakage",
    [
        _misspell_depends_on,
        _ports_as_string,
        _bad_condition,
        _interval_as_number,
        _unknown_top_level_key,
        _environment_value_as_mapping,
        _misspelled_healthcheck_key,
    ],
)
def test_broken_compose_fails_schema_validation(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator, breakage: Any
) -> None:
    broken = copy.deepcopy(compose)
    breakage(broken)
    assert not validator.is_valid(broken)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
    # The fixture itself is untouched and still valid.
    assert validator.is_valid(compose)


def test_every_variable_has_a_default(raw_text: str) -> None:
    """`docker compose up` works with no .env: every `${VAR}` carries a `:-default`."""
    uncommented = "\n".join(
        line.split(" #", 1)[0] for line in raw_text.splitlines() if not line.lstrip().startswith("#")
    )
    references = re.findall(r"\$\{([^}]*)\}", uncommented)
    assert references, "expected ${VAR:-default} interpolation"
    for reference in references:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*:-.+", reference), reference


def test_interpolation_uses_the_environment_when_set(raw_compose: dict[str, Any]) -> None:
    resolved = interpolate(raw_compose, {"KAENKHUN_ENV": "production", "POSTGRES_PASSWORD": "s3cret"})
    registry = environment_of(resolved["services"]["registry"])
    assert registry["KAENKHUN_ENV"] == "production"
    assert registry["KAENKHUN_REGISTRY_DATABASE_URL"] == (
        "postgresql+asyncpg://kaenkhun:s3cret@postgres:5432/registry"
    )
    assert _interpolate_string("$$HOME ${X:-a} ${Y-b}", {"Y": ""}) == "$HOME a "
