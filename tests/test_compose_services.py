"""docker-compose.yml's services, checked without Docker: Kafka in KRaft mode and PostgreSQL 16 with its init
script, the one-shot migration, the four app services (what they wait for, serve only, their environment, health
checks, one image) and the `cluster` profile's three Kafka brokers."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from services import load
from shared.settings import KafkaSettings
from tests.kit.compose import APP_SERVICES, DOCKERFILE, REPO, container_environment, environment_of

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
def test_app_service_waits_for_healthy_kafka_and_postgres_and_the_migration(compose: dict[str, Any], name: str) -> None:
    depends_on = compose["services"][name]["depends_on"]
    assert isinstance(depends_on, dict), "the long form is needed for conditions"
    for dependency in ("kafka", "postgres"):
        assert depends_on[dependency]["condition"] == "service_healthy"
        assert "healthcheck" in compose["services"][dependency]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_serves_and_never_migrates(compose: dict[str, Any], name: str) -> None:
    """Replicas of a service started together must not race each other's migrations: `migrate` did them."""
    assert compose["services"][name]["command"] == ["kaenkhun", "serve", name]


def test_one_migrate_job_migrates_every_database_once_per_deployment(
        compose: dict[str, Any], raw_compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-shot service of the same image runs `kaenkhun migrate` (every service) once and is not restarted;
    it waits for PostgreSQL only, and its environment names each service's own database."""
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["kaenkhun", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["image"] == compose["services"]["registry"]["image"]
    assert migrate["build"] == compose["services"]["registry"]["build"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "ports" not in migrate and "healthcheck" not in migrate
    environment = container_environment(raw_compose, "migrate", {})
    for name in APP_SERVICES:
        key = f"KAENKHUN_{name.upper()}_DATABASE_URL"
        assert environment[key] == environment_of(compose["services"][name])[key]
    for name in list(os.environ):
        if name.startswith(("KAENKHUN_", "KAFKA_", "POSTGRES_")):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    urls = {name: load(name).settings().db_url for name in APP_SERVICES}
    assert {name: url.rsplit("/", 1)[1] for name, url in urls.items()} == {name: name for name in APP_SERVICES}


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
    for anchor in anchors:  # every shared block is shared: by the app services, or by the cluster's brokers
        assert raw_text.count(f"<<: *{anchor}") >= 3, anchor
    extensions = [value for key, value in raw_compose.items() if key.startswith("x-")]
    common = next(value for value in extensions if isinstance(value, dict) and "depends_on" in value)
    for name in APP_SERVICES:
        service = raw_compose["services"][name]
        assert {key: service[key] for key in common} == common


def test_compose_environment_names_are_read_by_the_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in environment_of(compose["services"]["registry"]).items():
        if value is not None:
            monkeypatch.setenv(key, str(value))
    kafka = KafkaSettings()
    assert kafka.idempotent_producer is True
    assert kafka.bootstrap_servers == "kafka:9092"


# --- the `cluster` profile: three Kafka brokers --------------------------------------------------------------

CLUSTER = ("kafka-1", "kafka-2", "kafka-3")
# What README ("Running several replicas") and the top of docker-compose.yml say to put in `.env` for it.
CLUSTER_SHELL = {"KAENKHUN_KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092,kafka-3:9092",
                 "KAENKHUN_KAFKA_TOPIC_REPLICATION_FACTOR": "3", "KAENKHUN_KAFKA_TOPIC_MIN_INSYNC_REPLICAS": "2"}


def test_cluster_profile_is_three_kraft_brokers_replicating_three_times(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "profiles" not in services["kafka"]  # the single broker stays the default
    voters_seen, cluster_ids = set(), set()
    for n, name in enumerate(CLUSTER, start=1):
        node = services[name]
        assert node["profiles"] == ["cluster"]
        assert node["image"] == services["kafka"]["image"]
        assert node["hostname"] == name
        environment = {key: str(value) for key, value in environment_of(node).items()}
        assert environment["KAFKA_NODE_ID"] == str(n)
        assert {r.strip() for r in environment["KAFKA_PROCESS_ROLES"].split(",")} == {"broker", "controller"}
        voters = environment["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        assert sorted(voters.split(",")) == [f"{i}@kafka-{i}:9093" for i in (1, 2, 3)]
        voters_seen.add(voters)
        assert environment["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        listeners = environment["KAFKA_LISTENERS"].split(",")
        assert "PLAINTEXT://:9092" in listeners
        assert f"{environment['KAFKA_CONTROLLER_LISTENER_NAMES']}://:9093" in listeners
        assert environment["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert environment["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert environment["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert environment["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        cluster_ids.add(environment["CLUSTER_ID"])
        (volume,) = node["volumes"]
        source, target = volume.split(":")
        assert target == environment["KAFKA_LOG_DIRS"] and source in compose["volumes"]
        assert "kafka-broker-api-versions.sh --bootstrap-server localhost:9092" in " ".join(node["healthcheck"]["test"])
    assert len(voters_seen) == 1  # one quorum
    assert len(cluster_ids) == 1 and cluster_ids != {str(environment_of(services["kafka"])["CLUSTER_ID"])}
    assert len({services[name]["volumes"][0] for name in CLUSTER}) == 3  # a log each


def test_services_replicate_their_topics_on_the_cluster_and_not_on_one_broker(
        raw_compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """By default a topic has 12 partitions and one copy (one broker); with the cluster's `.env`, three copies of
    which two must hold a write, on the cluster's brokers."""
    cases: list[tuple[dict[str, str], list[str], int, int]] = [
        ({}, ["kafka:9092"], 1, 1), (CLUSTER_SHELL, [f"{name}:9092" for name in CLUSTER], 3, 2)]
    for shell, bootstrap, replicas, min_isr in cases:
        environment = container_environment(raw_compose, "assistance", shell)
        for name in list(os.environ):
            if name.startswith(("KAENKHUN_", "KAFKA_")):
                monkeypatch.delenv(name)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        kafka = KafkaSettings()
        assert kafka.bootstrap_servers.split(",") == bootstrap
        assert (kafka.topic_partitions, kafka.topic_replication_factor, kafka.topic_min_insync_replicas) == (
            12, replicas, min_isr)
        hosts = {server.split(":")[0] for server in bootstrap}
        assert hosts <= set(raw_compose["services"])
