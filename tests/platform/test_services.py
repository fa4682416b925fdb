"""Each service's minimal app: migrations, health, readiness, metrics, auth and problem+json, on a real broker."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from services import SERVICES, load
from shared import migrations
from shared.auth import issue_token
from shared.db import create_engine
from tests.kit.apps import make_settings, running, wait_ready
from tests.kit.env import NO_BROKER


@pytest.mark.parametrize("name", SERVICES)
async def test_migrations_create_exactly_the_models(name: str, databases: ScratchDatabases) -> None:
    engine = create_engine(await databases.new(name))
    spec = load(name).spec
    try:
        assert not await migrations.is_current(engine, spec.migrations_dir)
        await migrations.upgrade(engine, spec.migrations_dir)
        await migrations.upgrade(engine, spec.migrations_dir)  # a second run changes nothing
        assert await migrations.is_current(engine, spec.migrations_dir)

        def _diff(connection):  # type: ignore[no-untyped-def]
            return compare_metadata(MigrationContext.configure(connection), spec.metadata)

        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
        assert diff == [], f"{name}: models and migrations disagree: {diff}"
    finally:
        await engine.dispose()


@pytest.mark.parametrize("name", SERVICES)
async def test_service_is_ready_and_guarded(name: str, broker: LocalBroker, databases: ScratchDatabases) -> None:
    url = await databases.new(name)
    settings = make_settings(name, url, broker.bootstrap_servers)
    app = load(name).create_app(settings)
    async with running(app) as client:
        # Not ready before migrations run.
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["migrations"].startswith("pending")
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        response = await wait_ready(client)
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}
        assert (await client.get("/healthz")).json() == {"status": "ok", "service": name}

        # The bus status needs a token with the service's admin scope.
        response = await client.get("/v1/bus")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "Bearer" in response.headers["www-authenticate"]
        weak = issue_token(settings.auth, client_id="t", scopes=["other:read"], areas=["40"])
        response = await client.get("/v1/bus", headers={"Authorization": f"Bearer {weak}"})
        assert response.status_code == 403
        assert response.json()["status"] == 403
        admin = issue_token(settings.auth, client_id="t", scopes=[f"{name}:admin"], areas=["*"])
        response = await client.get("/v1/bus", headers={"Authorization": f"Bearer {admin}"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["outbox_pending"] == 0 and body["relay_connected"] is True
        # An operation on every area (the whole outbox) needs a token for every area, not one district's.
        district_admin = issue_token(settings.auth, client_id="t", scopes=[f"{name}:admin"], areas=["4001"])
        for method, path, json in (("GET", "/v1/bus", None),
                                   ("POST", "/v1/bus/replay", {"since": "2026-01-01T00:00:00+07:00"})):
            response = await client.request(method, path, json=json,
                                            headers={"Authorization": f"Bearer {district_admin}"})
            assert response.status_code == 403 and "every area" in response.json()["detail"], response.text

        # Validation errors and unknown routes are problem+json too.
        response = await client.post("/v1/bus/replay", json={"since": "yesterday"},
                                     headers={"Authorization": f"Bearer {admin}"})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == "body.since"
        response = await client.get("/v1/nothing-here")
        assert response.status_code == 404
        assert response.json()["type"].endswith("/not-found")

        # The client-credentials flow and the operation's scope are declared in OpenAPI.
        openapi = (await client.get("/openapi.json")).json()
        scheme = openapi["components"]["securitySchemes"]["OAuth2ClientCredentials"]
        flow = scheme["flows"]["clientCredentials"]
        assert flow["tokenUrl"] == "/oauth/token"
        assert f"{name}:admin" in flow["scopes"]
        assert openapi["paths"]["/v1/bus"]["get"]["security"] == [{"OAuth2ClientCredentials": [f"{name}:admin"]}]

        # Prometheus metrics, including the bus gauges.
        metrics = (await client.get("/metrics")).text
        assert "http_requests_total" in metrics
        assert "outbox_pending" in metrics


async def test_token_endpoint_issues_tokens_the_services_accept(broker: LocalBroker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings("registry", f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", broker.bootstrap_servers)
    app = load("registry").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        response = await client.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "kaenkhun-admin",
            "client_secret": "dev-secret-change-me", "scope": "registry:admin"})
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert response.json()["scope"] == "registry:admin"
        response = await client.get("/v1/bus", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200


def test_production_refuses_development_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings("registry", f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", "127.0.0.1:1",
                             env="production")
    with pytest.raises(RuntimeError, match="refuses development secrets or keys"):
        load("registry").create_app(settings)


async def test_unexpected_error_is_a_problem_without_stack_trace(broker: LocalBroker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings("registry", f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", broker.bootstrap_servers)
    app = load("registry").create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("secret internals")

    async with running(app) as client:
        response = await client.get("/boom", headers={"X-Correlation-ID": "req-42"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["correlation_id"] == "req-42"
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_cli_replay_requeues_outbox_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from shared.db import sessionmaker, transaction
    from shared.settings import REPO_ROOT

    url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    env = dict(os.environ, KAENKHUN_REGISTRY_DATABASE_URL=url)
    subprocess.run([sys.executable, "-m", "ops.cli", "migrate", "registry"], env=env, cwd=REPO_ROOT, check=True)
    table = load("registry").spec.outbox.table

    async def seed_and_count(seed: bool) -> int:
        engine = create_engine(url)
        try:
            async with transaction(sessionmaker(engine)) as session:
                if seed:
                    old, new = datetime(2022, 1, 27, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
                    await session.execute(insert(table), [
                        {"event_id": str(i), "topic": "t", "key": "k", "event_type": "x", "value": "{}",
                         "created_at": created, "published_at": created}
                        for i, created in enumerate([old, new, new])])
                rows = await session.execute(select(table.c.event_id).where(table.c.published_at.is_(None)))
                return len(rows.all())
        finally:
            await engine.dispose()

    assert asyncio.run(seed_and_count(True)) == 0
    result = subprocess.run([sys.executable, "-m", "ops.cli", "replay", "registry", "--since", "2026-01-01"],
                            env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    assert "2 outbox events queued" in result.stdout
    assert asyncio.run(seed_and_count(False)) == 2


@pytest.mark.parametrize("databases", ["postgres"], indirect=True)
async def test_a_write_is_committed_before_its_answer_is_sent(
        databases: ScratchDatabases, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over real HTTP, with every commit slowed down: the 201 arrives only once the transaction is committed, so
    the client that reads right after it finds what it wrote (FastAPI's default would send the answer first).
    PostgreSQL: on SQLite a read waits behind the writer's lock anyway."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from tests.kit.apps import serving
    from tests.kit.registry import ALL, citizen_id, household, person

    settings = make_settings("registry", await databases.new("registry"), NO_BROKER, run_bus=False)
    app = load("registry").create_app(settings)
    commit = AsyncSession.commit

    async def slow_commit(self: AsyncSession) -> None:
        await asyncio.sleep(0.3)
        await commit(self)

    async with serving(app) as base:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        monkeypatch.setattr(AsyncSession, "commit", slow_commit)
        token = issue_token(settings.auth, client_id="t", scopes=list(ALL), areas=["*"])
        headers = {"Authorization": f"Bearer {token}"}
        # Two clients, two connections (as a pool would use): the read does not wait behind the write's task.
        async with httpx.AsyncClient(base_url=base, headers=headers) as writer, \
                httpx.AsyncClient(base_url=base, headers=headers) as reader:
            created = await writer.post("/v1/households", json=household(person(citizen_id(random.Random(5)))))
            assert created.status_code == 201, created.text
            assert (await reader.get(f"/v1/households/{created.json()['id']}")).status_code == 200
