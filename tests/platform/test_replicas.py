"""Several replicas of a service on one PostgreSQL: pools sized by settings, a database out of connections answered
503 with Retry-After (never 500), and `kaenkhun migrate` run from several places at once migrating exactly once."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ops.scratchdb import ScratchDatabases
from services import load
from shared import migrations
from shared.db import create_engine
from shared.settings import REPO_ROOT, DatabaseSettings
from tests.kit.apps import bearer, make_settings, running, serving
from tests.kit.env import NO_BROKER, postgres_admin_url
from tests.kit.registry import ALL, citizen_id, household, person

POSTGRES = pytest.mark.parametrize("databases", ["postgres"], indirect=True)
_rng = random.Random(40)


def _dsn(url: str) -> str:
    """asyncpg's plain DSN for a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_pool_sizes_come_from_the_settings_and_the_defaults_fit_two_replicas_of_four_services(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAENKHUN_DB_POOL_SIZE", "3")
    monkeypatch.setenv("KAENKHUN_DB_MAX_OVERFLOW", "2")
    monkeypatch.setenv("KAENKHUN_DB_POOL_TIMEOUT_S", "7.5")
    settings = load("registry").settings()
    assert (settings.db.pool_size, settings.db.max_overflow, settings.db.pool_timeout_s) == (3, 2, 7.5)
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool=settings.db)
    try:
        assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._timeout) == (3, 2, 7.5)  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
    # README, "Running several replicas": 2 replicas × 4 services × 2 engines × (4 + 1) = 80 of PostgreSQL's
    # default 100, leaving room for its 3 reserved superuser connections, the migrate job and operators.
    monkeypatch.delenv("KAENKHUN_DB_POOL_SIZE")
    monkeypatch.delenv("KAENKHUN_DB_MAX_OVERFLOW")
    assert 2 * 4 * DatabaseSettings().connections_per_process() == 80


async def _register(base: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        return await client.post("/v1/households", headers=headers,
                                 json=household(person(citizen_id(_rng))))


def _saturated(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/database-saturated")
    assert int(response.headers["retry-after"]) >= 1


@POSTGRES
async def test_a_role_out_of_connections_is_answered_503_with_retry_after_not_500(
        databases: ScratchDatabases) -> None:
    """PostgreSQL refuses the connection a request needs (SQLSTATE 53300, too_many_connections: here the role's
    CONNECTION LIMIT, in the issue `max_connections`): the request is answered 503 with Retry-After, over real
    HTTP, and the same request succeeds once a connection is free again."""
    async with _role_owning_a_database(databases, limit=1) as url:
        settings = make_settings("registry", url, NO_BROKER, run_bus=False)
        app = load("registry").create_app(settings)
        headers = bearer(settings.auth, *ALL)
        async with serving(app) as base:
            engines = [app.state.engine, app.state.read_sessionmaker.kw["bind"]]
            holder: Any = None
            for _ in range(50):  # the app's pools give back their idle connections; then the one slot is ours
                for engine in engines:
                    await engine.dispose()
                try:
                    holder = await asyncpg.connect(_dsn(url))
                    break
                except asyncpg.TooManyConnectionsError:
                    await asyncio.sleep(0.1)
            assert holder is not None
            try:
                _saturated(await _register(base, headers))
            finally:
                await holder.close()
            assert (await _register(base, headers)).status_code == 201


@POSTGRES
async def test_a_full_pool_is_answered_503_with_retry_after_not_500(databases: ScratchDatabases) -> None:
    """Every connection of the process's own pool is in use for longer than KAENKHUN_DB_POOL_TIMEOUT_S
    (SQLAlchemy's "QueuePool limit … reached"): 503 with Retry-After."""
    settings = make_settings("registry", await databases.new("registry"), NO_BROKER, run_bus=False,
                             db={"pool_size": 1, "max_overflow": 0, "pool_timeout_s": 0.5})
    app = load("registry").create_app(settings)
    headers = bearer(settings.auth, *ALL)
    async with serving(app) as base:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        async with app.state.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            _saturated(await _register(base, headers))
        assert (await _register(base, headers)).status_code == 201


@POSTGRES
async def test_three_concurrent_migrations_of_an_empty_database_all_succeed_and_migrate_once(
        databases: ScratchDatabases) -> None:
    """Three `kaenkhun migrate registry` processes at once on a new, empty database (as replicas or jobs started
    together would): the migration lock is held while they start, so all three wait for it; then one migrates
    and the other two find nothing to do; all exit 0, and the database is at the head revision once."""
    url = await databases.new("registry")
    database = make_url(url).database
    env = {**os.environ, "KAENKHUN_REGISTRY_DATABASE_URL": url, "KAENKHUN_LOG_JSON": "false"}
    held, watcher = await asyncpg.connect(_dsn(url)), await asyncpg.connect(_dsn(url))
    transaction = held.transaction()
    await transaction.start()
    await held.execute("SELECT pg_advisory_xact_lock($1)", migrations.MIGRATION_LOCK)
    processes = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", "migrate", "registry", cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE) for _ in range(3)]
    try:
        waiting = 0
        for _ in range(600):  # each asks for the lock again and again, inside its open transaction (watched from
            # outside the lock holder's: a transaction sees pg_stat_activity as it was at its first look)
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid NOT IN ($2, pg_backend_pid()) "
                "AND query LIKE '%pg_try_advisory_xact_lock%'", database, held.get_server_pid())
            if waiting == 3 or any(p.returncode is not None for p in processes):
                break
            await asyncio.sleep(0.1)
        assert waiting == 3
    finally:
        await transaction.commit()
        await held.close()
        await watcher.close()
    results = await asyncio.gather(*(p.communicate() for p in processes))
    outputs = [out.decode() + err.decode() for out, err in results]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    said = [next(line for line in out.splitlines() if line.startswith("registry: ")) for out, _ in
            ((o.decode(), e) for o, e in results)]
    head = ScriptDirectory.from_config(migrations.alembic_config(load("registry").spec.migrations_dir, url)
                                       ).get_current_head()
    assert sum(f"migrated from an empty database to {head} after waiting" in line for line in said) == 1, said
    assert sum(f"already at {head}, nothing to do after waiting" in line for line in said) == 2, said
    check = await asyncpg.connect(_dsn(url))
    try:
        assert [r[0] for r in await check.fetch("SELECT version_num FROM alembic_version")] == [head]
    finally:
        await check.close()


@asynccontextmanager
async def _role_owning_a_database(databases: ScratchDatabases, limit: int) -> AsyncIterator[str]:
    """A new database owned by a new login role that may hold `limit` connections (PostgreSQL refuses one more
    with SQLSTATE 53300, as `max_connections` does); the role's URL, migrated for the registry. Dropped after."""
    admin_url = postgres_admin_url()
    assert admin_url is not None
    role = f"kk_limited_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_dsn(admin_url))
    await admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT {limit}')
    url = await databases.new("registry")
    database = make_url(url).database
    try:
        await admin.execute(f'ALTER DATABASE "{database}" OWNER TO "{role}"')
        role_url = make_url(url).set(username=role, password=None).render_as_string(hide_password=False)
        migrator = create_engine(role_url)
        try:
            await migrations.upgrade(migrator, load("registry").spec.migrations_dir)
        finally:
            await migrator.dispose()
        yield role_url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        databases.created.remove(str(database))
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


@POSTGRES
async def test_eight_processes_under_load_stay_within_their_connection_budget(databases: ScratchDatabases) -> None:
    """The issue's deployment: two replicas of four services, 8 processes, on a server that admits 90 more
    connections (PostgreSQL's default 100 less the reserved and the operators'). Each process's write and read
    pools are driven full at once (30 requests in flight each); with the default pools (2 × (4 + 1)) no process
    opens more than 10 connections, so every request is answered (201 / 200; with the old 2 × (10 + 20) they
    asked for 480 and were refused with 500), and the server never saw more than 80 at once."""
    async with _role_owning_a_database(databases, limit=90) as url:
        role = make_url(url).username
        settings = make_settings("registry", url, NO_BROKER, run_bus=False)
        assert settings.db.connections_per_process() == 10
        apps = [load("registry").create_app(settings) for _ in range(8)]
        writer, reader = bearer(settings.auth, *ALL), bearer(settings.auth, "registry:read")
        peak = 0
        watcher = await asyncpg.connect(_dsn(postgres_admin_url() or ""))

        async def watch() -> None:
            nonlocal peak
            while True:
                count = await watcher.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role)
                peak = max(peak, count)
                await asyncio.sleep(0.02)

        async with AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(running(app)) for app in apps]
            watching = asyncio.create_task(watch())
            try:
                answers = await asyncio.gather(*(
                    request for client in clients for request in (
                        *(client.post("/v1/households", headers=writer,
                                      json=household(person(citizen_id(_rng)))) for _ in range(15)),
                        *(client.get("/v1/households", headers=reader) for _ in range(15)))))
            finally:
                watching.cancel()
                await watcher.close()
        statuses = sorted({response.status_code for response in answers})
        assert statuses == [200, 201], [r.text for r in answers if r.status_code >= 300][:3]
        assert 0 < peak <= 80, peak
