"""docker-compose.yml's services, checked without Docker: Kafka in KRaft mode and PostgreSQL 16 with its init
script, and the four app services (what they wait for, migrate then serve, their environment, health checks, one
image)."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest

from tests.kit.compose import APP_SERVICES, DOCKERFILE, REPO, environment_of

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
