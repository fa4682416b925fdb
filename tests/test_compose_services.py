"""docker-compose.yml, Dockerfile and the PostgreSQL init script, checked without Docker.

The Compose file is validated against the Compose Specification JSON schema, vendored as
tests/data/compose-spec.json: repository compose-spec/compose-spec, path
schema/compose-spec.json, commit b2835e8acc1e42e7aecbc27a9bc4a1fc66ef21ba (copied verbatim).
Its `$schema` is draft 2019-09, so the validator is the one that `$schema` names.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"

APP_SERVICES = {"registry": 8001, "assessment": 8002, "assistance": 8003, "reporting": 8004}

# $$ | ${NAME} | ${NAME:-default} ${NAME-default} ${NAME:?err} ${NAME?err} ${NAME:+alt} | $NAME
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def _interpolate_string(value: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        if op in (":-", "-"):
            unset = current is None or (op == ":-" and current == "")
            return arg if unset else current  # type: ignore[return-value]
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise ValueError(f"required variable {name} is unset: {arg}")
            return current
        if op in (":+", "+"):
            present = current is not None and (op == "+" or current != "")
            return arg if present else ""
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def interpolate(node: Any, env: dict[str, str] | None = None) -> Any:
    """Resolve Compose `${VAR:-default}` interpolation in every string value, as `docker compose` does."""
    env = env or {}
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if isinstance(node, str):
        return _interpolate_string(node, env)
    return node


def environment_of(service: dict[str, Any]) -> dict[str, Any]:
    """A service's `environment`, list or mapping form, as a mapping."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in environment)
        return {name: value for name, value in pairs}
    return dict(environment)


@pytest.fixture(scope="module")
def raw_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def raw_compose(raw_text: str) -> dict[str, Any]:
    document = yaml.safe_load(raw_text)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    """The Compose model with every variable at its default (no shell environment, no .env)."""
    return interpolate(raw_compose)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


# --- the vendored schema and schema validation ----------------------------------------


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


# --- infrastructure -------------------------------------------------------------------


def test_kafka_is_apache_kafka_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka"
    assert tag and tag != "latest"
    environment = {name: str(value) for name, value in environment_of(kafka).items()}
    roles = {role.strip() for role in environment["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}
    node_id = environment["KAFKA_NODE_ID"]
    assert node_id == "1"
    voters = environment["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert any(voter.startswith(f"{node_id}@") for voter in voters)
    controller_listener = environment["KAFKA_CONTROLLER_LISTENER_NAMES"]
    listeners = environment["KAFKA_LISTENERS"].split(",")
    assert any(listener.startswith(f"{controller_listener}://") for listener in listeners)
    assert any(listener.startswith("PLAINTEXT://") and listener.endswith(":9092") for listener in listeners)
    assert "PLAINTEXT://kafka:9092" in environment["KAFKA_ADVERTISED_LISTENERS"].split(",")
    security_map = dict(
        pair.split(":") for pair in environment["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    listener_names = {listener.split("://")[0] for listener in listeners}
    assert listener_names <= set(security_map)
    assert environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert environment["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert environment["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"


def test_kafka_healthcheck_and_storage(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    test = kafka["healthcheck"]["test"]
    command = " ".join(test[1:]) if isinstance(test, list) else test
    assert "/opt/kafka/bin/kafka-" in command
    assert "--bootstrap-server localhost:9092" in command
    log_dirs = str(environment_of(kafka)["KAFKA_LOG_DIRS"])
    volume_names = {volume.split(":")[0]: volume.split(":")[1] for volume in kafka["volumes"]}
    assert log_dirs in volume_names.values()
    assert set(volume_names) <= set(compose["volumes"])


def test_postgres_is_version_16_with_init_script_and_volume(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    image, _, tag = postgres["image"].partition(":")
    assert image == "postgres"
    assert tag.split(".")[0].split("-")[0] == "16"
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in postgres["volumes"]}
    init_source = mounts["/docker-entrypoint-initdb.d"]
    assert (REPO / init_source).resolve() == (REPO / "deploy" / "postgres-init").resolve()
    assert mounts["/var/lib/postgresql/data"] in compose["volumes"]
    test = postgres["healthcheck"]["test"]
    assert "pg_isready" in (" ".join(test) if isinstance(test, list) else test)


def test_init_script_creates_one_database_per_service() -> None:
    scripts = sorted((REPO / "deploy" / "postgres-init").glob("*"))
    assert scripts, "no init script"
    assert all(script.suffix in {".sql", ".sh", ".gz"} for script in scripts)
    text = "\n".join(script.read_text(encoding="utf-8") for script in scripts)
    statements = [line.split("--", 1)[0] for line in text.splitlines()]
    created = set(re.findall(r"CREATE\s+DATABASE\s+\"?(\w+)\"?", "\n".join(statements), re.IGNORECASE))
    assert created == set(APP_SERVICES)


# --- the four services ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_waits_for_healthy_kafka_and_postgres(compose: dict[str, Any], name: str) -> None:
    depends_on = compose["services"][name]["depends_on"]
    assert isinstance(depends_on, dict), "the long form is needed for conditions"
    for dependency in ("kafka", "postgres"):
        assert depends_on[dependency]["condition"] == "service_healthy"
        assert "healthcheck" in compose["services"][dependency]


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_migrates_before_serving(compose: dict[str, Any], name: str) -> None:
    command = compose["services"][name]["command"]
    assert isinstance(command, list) and command[:2] == ["sh", "-c"], command
    steps = [shlex.split(step) for step in command[2].split("&&")]
    assert len(steps) == 2, "serve only when migrate succeeded"
    assert steps[0] == ["kaenkhun", "migrate", name]
    assert steps[1] == ["exec", "kaenkhun", "serve", name]


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_environment(compose: dict[str, Any], name: str) -> None:
    port = APP_SERVICES[name]
    prefix = f"KAENKHUN_{name.upper()}_"
    environment = environment_of(compose["services"][name])
    assert environment["KAENKHUN_ENV"] == "development"
    assert str(environment["KAENKHUN_KAFKA_IDEMPOTENT_PRODUCER"]).lower() == "true"
    assert environment["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert environment[prefix + "HOST"] == "0.0.0.0"
    assert str(environment[prefix + "PORT"]) == str(port)
    url = environment[prefix + "DATABASE_URL"]
    match = re.fullmatch(r"postgresql\+asyncpg://([^:@/]+):([^@/]*)@postgres:5432/(\w+)", url)
    assert match, url
    assert match[3] == name
    postgres_environment = environment_of(compose["services"]["postgres"])
    assert match[1] == postgres_environment["POSTGRES_USER"]
    assert match[2] == postgres_environment["POSTGRES_PASSWORD"]
    # No other service's settings leak in: each service has only its own prefix.
    for other in set(APP_SERVICES) - {name}:
        assert not any(key.startswith(f"KAENKHUN_{other.upper()}_") for key in environment)


def test_environment_defaults_to_development_but_is_overridable(raw_compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        environment = environment_of(raw_compose["services"][name])
        assert environment["KAENKHUN_ENV"] == "${KAENKHUN_ENV:-development}"
        # Keys are passed through from the shell/.env only when set: an empty string would
        # replace the development keys with nothing.
        for key in ("KAENKHUN_AUTH_PUBLIC_KEY_PEM", "KAENKHUN_AUTH_PRIVATE_KEY_PEM", "KAENKHUN_AUTH_CLIENTS"):
            assert key in environment and environment[key] is None


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_healthcheck_probes_readyz(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    port = APP_SERVICES[name]
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python" and test[2] == "-c"
    assert f"http://127.0.0.1:{port}/readyz" in test[3]
    compile(test[3], f"<{name} healthcheck>", "exec")
    assert "curl" not in test and "wget" not in test
    published = {str(mapping).rsplit(":", 1)[1] for mapping in service["ports"]}
    assert str(port) in published


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_services_share_one_image_built_from_the_dockerfile(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["build"]["context"] == "."
    assert (REPO / service["build"].get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    assert service["image"] == compose["services"]["registry"]["image"]


def test_common_service_config_is_shared_by_anchor(raw_text: str, raw_compose: dict[str, Any]) -> None:
    anchors = set(re.findall(r"^[\w-]+:\s+&([\w-]+)\s*$", raw_text, re.MULTILINE))
    assert anchors
    for anchor in anchors:
        assert raw_text.count(f"<<: *{anchor}") >= len(APP_SERVICES), anchor
    extensions = [value for key, value in raw_compose.items() if key.startswith("x-")]
    common = next(value for value in extensions if isinstance(value, dict) and "depends_on" in value)
    for name in APP_SERVICES:
        service = raw_compose["services"][name]
        assert {key: service[key] for key in common} == common


def test_compose_environment_names_are_read_by_the_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.settings import KafkaSettings

    for key, value in environment_of(compose["services"]["registry"]).items():
        if value is not None:
            monkeypatch.setenv(key, str(value))
    kafka = KafkaSettings()
    assert kafka.idempotent_producer is True
    assert kafka.bootstrap_servers == "kafka:9092"


# --- image ----------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_uses_python_311_slim_and_a_non_root_user() -> None:
    instructions = _dockerfile_instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms
    for base in froms:
        assert re.match(r"python:3\.11(\.\d+)?-slim\b", base), base
    last_from = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    users = [rest for keyword, rest in instructions[last_from:] if keyword == "USER"]
    assert users, "the runtime stage must switch to an unprivileged user"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_installs_the_package_without_dev_extras() -> None:
    runs = " ".join(rest for keyword, rest in _dockerfile_instructions() if keyword == "RUN")
    assert re.search(r"pip install[^&;]*\s\.(\s|$)", runs), runs
    assert "[dev]" not in DOCKERFILE.read_text(encoding="utf-8")


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", "var"} <= patterns
    for needed in ("pyproject.toml", "README.md", "shared", "services"):
        assert needed not in patterns
