"""deploy/kubernetes: the Kustomize base and its production and development overlays, checked without a cluster.

Every manifest file is validated against the Kubernetes JSON schemas (kubernetes-validate, strict, for the oldest
and a recent supported Kubernetes version) on every run. The overlays are rendered with `kubectl kustomize`
(Debian's kubernetes-client or any newer kubectl) and what they render is held to the deployment's rules: probes
on the services' own ports and paths, a preStop hook and a grace period longer than it plus uvicorn's graceful
shutdown, resources, a locked-down security context with a writable emptyDir only where the image writes, the
image the same everywhere (production by digest), the migration Job over every service, an autoscaler and a
disruption budget per Deployment in production. Each container's environment is resolved from the ConfigMap and
the Secret it names, the way the kubelet does, and the service's settings are built from exactly that: with the
operator's production Secret every service starts in production, and without any key it takes from the Secret
(but the documented optional ones) it does not start, naming the key. checkov (`make checkov`, its own
virtualenv) scans the files and both renderings and must find nothing.

kubectl and checkov are optional here (the tests that need them skip, saying how to install them); .ci/run
requires both (KAENKHUN_TEST_REQUIRE).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml

from ops.cli import app as cli
from services import SERVICES, load
from shared.app import uvicorn_options
from shared.settings import Environment, KafkaSettings
from tests.kit.compose import DOCKERFILE, REPO
from tests.kit.env import system_tool
from tests.kit.production import only_environment, production_secrets

KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ("production", "development")
# The oldest Kubernetes the manifests are meant for, and a recent one.
KUBERNETES_VERSIONS = ("1.30", "1.33")
CHECKOV = REPO / "build" / "tools" / "checkov" / "bin" / "checkov"

SECRET = "kaenkhun"  # the Secret the base refers to by name; production creates it (README.md, "Kubernetes")
AUTH = {"KAENKHUN_AUTH_PUBLIC_KEY_PEM", "KAENKHUN_AUTH_PRIVATE_KEY_PEM", "KAENKHUN_AUTH_CLIENTS"}
PII = {"KAENKHUN_PII_ENCRYPTION_KEYS", "KAENKHUN_PII_ACTIVE_KEY_ID", "KAENKHUN_PII_HASH_KEY",
       "KAENKHUN_PII_PREVIOUS_HASH_KEYS"}
# What each service takes from the Secret besides its own database URL: only what its settings read.
SERVICE_SECRETS = {
    "registry": AUTH | PII,
    "assessment": AUTH,
    "assistance": AUTH | PII | {"KAENKHUN_ASSISTANCE_MINISTRY_WEBHOOK_SECRETS"},
    "reporting": AUTH | {"KAENKHUN_BI_PASSWORD"},
}
# Keys a service starts without in production: the built-in token endpoint is off without its signing key (an
# external issuer signs), previous hash keys exist only during a rotation, the BI password only for `bi-role`.
OPTIONAL_SECRETS = {"KAENKHUN_AUTH_PRIVATE_KEY_PEM", "KAENKHUN_PII_PREVIOUS_HASH_KEYS", "KAENKHUN_BI_PASSWORD"}

Resource = dict[str, Any]


def _database_url_key(name: str) -> str:
    return f"KAENKHUN_{name.upper()}_DATABASE_URL"


def operator_secret() -> dict[str, str]:
    """The Secret `kaenkhun` as README.md, "Kubernetes", has the operator create it: the production keys and
    secrets, and each service's database URL with its password."""
    values = production_secrets()
    password = values.pop("POSTGRES_PASSWORD")
    for not_secret in ("KAENKHUN_ENV", "KAENKHUN_AUTH_ISSUER", "KAENKHUN_REPORTING_PUBLIC_AREAS"):
        values.pop(not_secret)  # the ConfigMap's
    for name in SERVICES:
        values[_database_url_key(name)] = f"postgresql+asyncpg://kaenkhun:{password}@postgres:5432/{name}"
    return values


# -- the files, without kubectl ------------------------------------------------------------------------------------

def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _yaml_files() -> list[Path]:
    return sorted(p for p in KUBERNETES.rglob("*") if p.suffix in (".yaml", ".yml"))


def _is_kustomization(path: Path) -> bool:
    return path.name == "kustomization.yaml"


def test_every_manifest_file_is_valid_against_the_kubernetes_schemas() -> None:
    manifests = 0
    for path in _yaml_files():
        if _is_kustomization(path):
            continue
        for document in _documents(path):
            if isinstance(document, list):  # a JSON 6902 patch
                assert all(op["op"] in {"add", "remove", "replace", "test"} and op["path"].startswith("/")
                           for op in document), path
                continue
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(document, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{path.relative_to(REPO)}: {document['kind']} {document['metadata']['name']} "
                                f"(Kubernetes {version}): {exc.message} at {list(exc.absolute_path)}")
            manifests += 1
    assert manifests >= 20  # namespace, policies, Job, 4 Deployments + 4 Services, 4 HPAs, 4 PDBs


def test_every_file_is_used_by_a_kustomization_and_every_reference_exists() -> None:
    used: set[Path] = set()
    for path in _yaml_files():
        if not _is_kustomization(path):
            continue
        kustomization = _documents(path)[0]
        for entry in kustomization.get("resources", []) + kustomization.get("bases", []):
            target = (path.parent / entry).resolve()
            assert target.exists(), f"{path.relative_to(REPO)}: {entry} does not exist"
            used.add(target / "kustomization.yaml" if target.is_dir() else target)
        for patch in kustomization.get("patchesJson6902", []):
            target = (path.parent / patch["path"]).resolve()
            assert target.exists(), f"{path.relative_to(REPO)}: {patch['path']} does not exist"
            used.add(target)
        assert "secretGenerator" not in kustomization or path.parent.name == "development", (
            "only the development overlay may generate a Secret (with public development values)")
    stray = [p.relative_to(REPO) for p in _yaml_files() if not _is_kustomization(p) and p.resolve() not in used]
    assert not stray, f"files no kustomization uses: {stray}"


# -- the overlays as kubectl renders them --------------------------------------------------------------------------

def _render(kubectl: str, directory: Path) -> list[Resource]:
    done = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, f"kubectl kustomize {directory}: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Resource]]:
    kubectl = system_tool("kubectl", install="apt-get install kubernetes-client")
    return {overlay: _render(kubectl, KUBERNETES / "overlays" / overlay) for overlay in OVERLAYS}


def _of(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _deployments(resources: list[Resource]) -> dict[str, Resource]:
    deployments = _of(resources, "Deployment")
    assert set(deployments) == set(SERVICES)
    return deployments


def _migration_job(resources: list[Resource]) -> Resource:
    jobs = _of(resources, "Job")
    assert list(jobs) == ["kaenkhun-migrate"]
    return jobs["kaenkhun-migrate"]


def _workloads(resources: list[Resource]) -> list[Resource]:
    return [*_deployments(resources).values(), _migration_job(resources)]


def _containers(workload: Resource) -> list[Resource]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _service_container(deployment: Resource) -> Resource:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _dockerfile(pattern: str) -> str:
    found = re.search(pattern, DOCKERFILE.read_text(encoding="utf-8"))
    assert found, pattern
    return found.group(1)


def _bytes(quantity: str) -> int:
    parsed = re.fullmatch(r"(\d+)([KMG]i)?", quantity)
    assert parsed, quantity
    number, unit = parsed.groups()
    return int(number) * {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}.get(unit or "", 1)


def _cpu(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_are_valid(overlay: str, version: str, rendered: dict[str, list[Resource]]) -> None:
    for resource in rendered[overlay]:
        kubernetes_validate.validate(resource, version, strict=True)
        assert resource["kind"] == "Namespace" or resource["metadata"]["namespace"] == "kaenkhun"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_listens_on_its_port_and_is_probed_there(overlay: str,
                                                             rendered: dict[str, list[Resource]]) -> None:
    services = _of(rendered[overlay], "Service")
    commands = typer.main.get_command(cli).commands
    assert {"serve", "migrate"} <= set(commands)
    for name, deployment in _deployments(rendered[overlay]).items():
        port = load(name).settings.default_port
        container = _service_container(deployment)
        assert container["command"] == ["kaenkhun", "serve", name]
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        values = {v["name"]: v.get("value") for v in container["env"]}
        assert values[f"KAENKHUN_{name.upper()}_HOST"] == "0.0.0.0"
        assert values[f"KAENKHUN_{name.upper()}_PORT"] == str(port)
        for probe, path in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, (name, probe)
        # The Service of the same name sends its port to these pods only.
        service = services[name]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        for other, other_deployment in _deployments(rendered[overlay]).items():
            if other != name:
                assert not service["spec"]["selector"].items() <= \
                    other_deployment["spec"]["template"]["metadata"]["labels"].items()
        assert service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_stop_gracefully(overlay: str, rendered: dict[str, list[Resource]]) -> None:
    for name, deployment in _deployments(rendered[overlay]).items():
        container = _service_container(deployment)
        sleep, seconds = container["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep == "sleep" and int(seconds) >= 3
        graceful = uvicorn_options(load(name).settings())["timeout_graceful_shutdown"]
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > int(seconds) + graceful
        rollout = deployment["spec"]["strategy"]
        assert rollout["rollingUpdate"]["maxUnavailable"] == 0  # old pods serve until new ones are ready


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(overlay: str, rendered: dict[str, list[Resource]]) -> None:
    uid = int(_dockerfile(r"--uid (\d+)"))
    data_dir = _dockerfile(r"KAENKHUN_DATA_DIR=(\S+)")
    for workload in _workloads(rendered[overlay]):
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
                                          "fsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}}
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
        empty_dirs = {v["name"] for v in pod["volumes"] if set(v) == {"name", "emptyDir"} and
                      _bytes(v["emptyDir"]["sizeLimit"]) <= 2**30}
        assert {v["name"] for v in pod["volumes"]} == empty_dirs  # nothing from the node, nothing unbounded
        for container in _containers(workload):
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
                "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
            writable = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs}
            expected = {data_dir, "/tmp"} if workload["kind"] == "Deployment" else {"/tmp"}
            assert writable == expected, workload["metadata"]["name"]
            resources = container["resources"]
            assert _bytes(resources["limits"]["memory"]) <= 512 * 2**20
            assert _bytes(resources["requests"]["memory"]) <= _bytes(resources["limits"]["memory"])
            assert 0 < _cpu(resources["requests"]["cpu"]) <= _cpu(resources["limits"]["cpu"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_image_everywhere(overlay: str, rendered: dict[str, list[Resource]]) -> None:
    images = {c["image"] for w in _workloads(rendered[overlay]) for c in _containers(w)}
    assert len(images) == 1, images
    [image] = images
    if overlay == "production":
        assert re.fullmatch(r"[a-z0-9.-]+(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}", image), image
    else:
        assert image == "kaenkhun:dev"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_job_migrates_every_service(overlay: str, rendered: dict[str, list[Resource]]) -> None:
    job = _migration_job(rendered[overlay])
    [container] = _containers(job)
    assert container["command"] == ["kaenkhun", "migrate", *SERVICES]
    urls = {v["name"]: v["valueFrom"]["secretKeyRef"]["key"] for v in container["env"]}
    assert urls == {_database_url_key(name): _database_url_key(name) for name in SERVICES}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] > 0


def test_production_scales_each_service_and_keeps_one_through_disruptions(
        rendered: dict[str, list[Resource]]) -> None:
    resources = rendered["production"]
    autoscalers = _of(resources, "HorizontalPodAutoscaler")
    budgets = _of(resources, "PodDisruptionBudget")
    deployments = _deployments(resources)
    assert set(autoscalers) == set(budgets) == set(deployments)
    for name, deployment in deployments.items():
        assert "replicas" not in deployment["spec"]  # the autoscaler owns it: an apply does not reset it
        autoscaler = autoscalers[name]["spec"]
        assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= autoscaler["minReplicas"] < autoscaler["maxReplicas"]
        # A consumer beyond the topics' partitions would have nothing to read.
        assert autoscaler["maxReplicas"] <= KafkaSettings().topic_partitions
        [metric] = autoscaler["metrics"]
        assert metric["resource"]["name"] == "cpu" and "cpu" in _service_container(deployment)["resources"]["requests"]
        budget = budgets[name]["spec"]
        assert budget["minAvailable"] == 1
        for other, other_deployment in deployments.items():
            selected = budget["selector"]["matchLabels"].items() <= \
                other_deployment["spec"]["template"]["metadata"]["labels"].items()
            assert selected == (other == name)


def test_development_runs_one_replica_of_each_service(rendered: dict[str, list[Resource]]) -> None:
    resources = rendered["development"]
    assert all(d["spec"]["replicas"] == 1 for d in _deployments(resources).values())
    assert not _of(resources, "HorizontalPodAutoscaler") and not _of(resources, "PodDisruptionBudget")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_all_but_what_the_services_need(overlay: str,
                                                               rendered: dict[str, list[Resource]]) -> None:
    resources = rendered[overlay]
    policies = _of(resources, "NetworkPolicy")
    deny = policies.pop("default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    [allow] = policies.values()
    selector = allow["spec"]["podSelector"]["matchLabels"].items()
    assert all(selector <= w["spec"]["template"]["metadata"]["labels"].items() for w in _workloads(resources))
    ingress = {p["port"] for rule in allow["spec"]["ingress"] for p in rule["ports"]}
    assert ingress == {load(name).settings.default_port for name in SERVICES}
    egress = {(p["port"], p["protocol"]) for rule in allow["spec"]["egress"] for p in rule["ports"]}
    [config] = _of(resources, "ConfigMap").values()
    kafka_port = int(config["data"]["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    assert {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (kafka_port, "TCP"), (443, "TCP")} == egress
    [https] = [rule for rule in allow["spec"]["egress"] if rule["ports"] == [{"port": 443, "protocol": "TCP"}]]
    [block] = https["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(block["ipBlock"]["except"])


# -- each container's environment, resolved as the kubelet does --------------------------------------------------

class PodWouldNotStart(Exception):
    """A required key of a Secret is missing: the kubelet does not start the container (CreateContainerConfigError)."""


def _environment(container: Resource, resources: list[Resource], secrets: dict[str, dict[str, str]]
                 ) -> dict[str, str]:
    """The container's variables: its ConfigMaps' (envFrom) first, then `env`, which wins."""
    configmaps = _of(resources, "ConfigMap")
    environment: dict[str, str] = {}
    for source in container["envFrom"]:
        assert set(source) == {"configMapRef"}, "settings come from a ConfigMap; secrets key by key"
        environment.update(configmaps[source["configMapRef"]["name"]]["data"])
    for variable in container["env"]:
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
            continue
        ref = variable["valueFrom"]["secretKeyRef"]
        secret = secrets[ref["name"]]
        if ref["key"] in secret:
            environment[variable["name"]] = secret[ref["key"]]
        elif not ref.get("optional", False):
            raise PodWouldNotStart(f"secret {ref['name']!r} has no key {ref['key']!r}")
    return environment


def _secret_keys(container: Resource) -> set[str]:
    return {v["valueFrom"]["secretKeyRef"]["key"] for v in container["env"] if "valueFrom" in v}


def test_every_secret_comes_from_the_secret_and_each_service_gets_only_its_own(
        rendered: dict[str, list[Resource]]) -> None:
    resources = rendered["production"]
    assert not _of(resources, "Secret"), "production's Secret is created in the cluster, never rendered"
    [config] = _of(resources, "ConfigMap").values()
    secret_keys = set(operator_secret())
    assert not set(config["data"]) & secret_keys
    for name, deployment in _deployments(resources).items():
        container = _service_container(deployment)
        refs = [v["valueFrom"]["secretKeyRef"] for v in container["env"] if "valueFrom" in v]
        assert all(ref["name"] == SECRET for ref in refs)
        assert all(v["name"] == v["valueFrom"]["secretKeyRef"]["key"] for v in container["env"] if "valueFrom" in v)
        assert _secret_keys(container) == SERVICE_SECRETS[name] | {_database_url_key(name)}
        assert not [v for v in container["env"] if "value" in v and v["name"] in secret_keys]
    kubernetes_section = re.search(r"^## Kubernetes\n(.*?)^## ", (REPO / "README.md").read_text(encoding="utf-8"),
                                   re.S | re.M)
    assert kubernetes_section, "README.md has a Kubernetes section"
    for key in set().union(*(_secret_keys(c) for w in _workloads(resources) for c in _containers(w))):
        assert key in kubernetes_section.group(1), f"README.md, Kubernetes, does not say to create {key}"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_starts_in_production_from_the_operators_secret(
        name: str, rendered: dict[str, list[Resource]], monkeypatch: pytest.MonkeyPatch) -> None:
    resources = rendered["production"]
    secret = operator_secret()
    container = _service_container(_deployments(resources)[name])
    only_environment(monkeypatch, _environment(container, resources, {SECRET: secret}))
    service = load(name)
    settings = service.settings()
    assert settings.env is Environment.production
    assert settings.uses_development_material() == []
    assert (settings.host, settings.port) == ("0.0.0.0", service.settings.default_port)
    assert settings.db_url == secret[_database_url_key(name)]
    [config] = _of(resources, "ConfigMap").values()
    assert settings.kafka.bootstrap_servers == config["data"]["KAFKA_BOOTSTRAP_SERVERS"]
    assert settings.kafka.idempotent_producer is True
    service.create_app(settings)  # create_service_app's check_production: raises if it refuses


@pytest.mark.parametrize("name", SERVICES)
def test_without_any_key_it_needs_a_service_does_not_start_in_production_and_says_which(
        name: str, rendered: dict[str, list[Resource]], monkeypatch: pytest.MonkeyPatch) -> None:
    resources = rendered["production"]
    container = _service_container(_deployments(resources)[name])
    needed = _secret_keys(container) - OPTIONAL_SECRETS
    assert _database_url_key(name) in needed
    for missing in sorted(needed):
        secret = operator_secret()
        del secret[missing]
        if missing == "KAENKHUN_AUTH_PUBLIC_KEY_PEM":
            del secret["KAENKHUN_AUTH_PRIVATE_KEY_PEM"]  # a pair: without both, the development pair is used
        try:
            only_environment(monkeypatch, _environment(container, resources, {SECRET: secret}))
            service = load(name)
            service.create_app(service.settings())
        except PodWouldNotStart as refused:
            assert missing in str(refused)
        except (RuntimeError, ValueError) as refused:  # the settings' validation, or the production check
            assert missing in str(refused), refused
        else:
            pytest.fail(f"{name} starts in production without {missing}")


def test_development_starts_with_its_generated_secret(rendered: dict[str, list[Resource]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    resources = rendered["development"]
    [secret] = _of(resources, "Secret").values()
    values = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert set(values) == {_database_url_key(name) for name in SERVICES}  # no key, only public development URLs
    for name, deployment in _deployments(resources).items():
        only_environment(monkeypatch, _environment(_service_container(deployment), resources,
                                                   {secret["metadata"]["name"]: values}))
        service = load(name)
        settings = service.settings()
        assert settings.env is Environment.development
        assert settings.db_url == values[_database_url_key(name)]
        service.create_app(settings)


# -- the policy checker --------------------------------------------------------------------------------------------

def _checkov(target: list[str]) -> dict[str, Any]:
    checkov = system_tool("checkov", str(CHECKOV), install="make checkov")
    done = subprocess.run([checkov, *target, "--framework", "kubernetes", "--skip-download", "--output", "json"],
                          capture_output=True, text=True, timeout=600, check=False, cwd=REPO)
    report = json.loads(done.stdout)
    assert isinstance(report, dict), report
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
    assert not failed and done.returncode == 0, failed or done.stderr
    assert report["summary"]["parsing_errors"] == 0 and report["summary"]["resource_count"] > 0
    skipped = report["results"].get("skipped_checks", [])
    assert all(c["check_result"]["suppress_comment"] != "No comment provided" for c in skipped)
    return report


def test_checkov_finds_nothing_in_the_files() -> None:
    _checkov(["--directory", str(KUBERNETES.relative_to(REPO))])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_finds_nothing_in_what_an_overlay_renders(overlay: str, rendered: dict[str, list[Resource]],
                                                           tmp_path: Path) -> None:
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered[overlay]), encoding="utf-8")
    report = _checkov(["--file", str(manifest)])
    skipped = {c["check_id"] for c in report["results"].get("skipped_checks", [])}
    # Production skips only the one check the services cannot meet (their settings are environment variables);
    # the image checks the base skips run again there, on the digest.
    expected = {"CKV_K8S_35"} if overlay == "production" else {"CKV_K8S_14", "CKV_K8S_15", "CKV_K8S_35",
                                                                "CKV_K8S_43"}
    assert skipped == expected
