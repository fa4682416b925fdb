"""`kaenkhun`: the launcher and operator commands (up, serve, migrate, topics, replay, rebuild, rekey, bi-role,
asyncapi, token, demo, check-consistency)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from services import SERVICES, load
from shared.app import uvicorn_options
from shared.events.catalogue import Catalogue
from shared.settings import ServiceSettings

app = typer.Typer(help="Kaenkhun: registry, assessment, assistance and reporting services.", no_args_is_help=True)


def _settings(name: str) -> ServiceSettings:
    settings: ServiceSettings = load(name).settings()
    return settings


def _names(services: list[str] | None) -> list[str]:
    names = services or list(SERVICES)
    for name in names:
        if name not in SERVICES:
            raise typer.BadParameter(f"unknown service {name!r}; expected one of {', '.join(SERVICES)}")
    return names


@app.command()
def migrate(services: Annotated[list[str] | None, typer.Argument(help="default: all")] = None) -> None:
    """Apply each service's Alembic migrations to its database. Safe to run from several places at once (on
    PostgreSQL the first migrates, the others wait for it, then find nothing to do)."""
    from shared import migrations
    from shared.db import create_engine

    async def _run() -> None:
        for name in _names(services):
            settings = _settings(name)
            engine = create_engine(settings.db_url)
            try:
                done = await migrations.upgrade(engine, load(name).spec.migrations_dir)
            finally:
                await engine.dispose()
            waited = " after waiting for another migration" if done.waited else ""
            what = (f"migrated from {', '.join(done.before) or 'an empty database'} to {', '.join(done.after)}"
                    if done.applied else f"already at {', '.join(done.after)}, nothing to do")
            typer.echo(f"{name}: {what}{waited} ({_redact(settings.db_url)})")

    asyncio.run(_run())


@app.command()
def serve(service: str) -> None:
    """Run one service with uvicorn (its settings come from the environment)."""
    import uvicorn

    (name,) = _names([service])
    settings = _settings(name)
    application = load(name).create_app(settings)
    uvicorn.run(application, **uvicorn_options(settings))


@app.command()
def topics() -> None:
    """Create every catalogued topic and its dead-letter topic (idempotent)."""
    from shared.bus import ensure_topics, with_dlqs

    settings = _settings("registry").kafka
    wanted = with_dlqs(_catalogue().topics())
    asyncio.run(ensure_topics(settings, wanted, client_id="kaenkhun-cli"))
    typer.echo(f"{len(wanted)} topics present on {settings.bootstrap_servers}")


@app.command()
def replay(
    service: str,
    since: Annotated[datetime, typer.Option(help="ISO time; outbox rows written since then are published again")],
    topic: Annotated[str | None, typer.Option(help="only this topic")] = None,
) -> None:
    """Make a service's outbox publish again what it wrote since a time (rebuild consumers, refill a broker)."""
    from shared.bus import Outbox
    from shared.db import create_engine, sessionmaker, transaction

    (name,) = _names([service])
    since_utc = (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone(UTC)

    async def _run() -> int:
        engine = create_engine(_settings(name).db_url)
        try:
            async with transaction(sessionmaker(engine)) as session:
                outbox: Outbox = load(name).spec.outbox
                return await outbox.mark_for_replay(session, since=since_utc, topic=topic)
        finally:
            await engine.dispose()

    count = asyncio.run(_run())
    typer.echo(f"{name}: {count} outbox events queued for publication again (since {since_utc.isoformat()})")


@app.command()
def rebuild(
    service: Annotated[str, typer.Argument(help="the read-model service: reporting")],
    from_outbox: Annotated[bool, typer.Option("--from-outbox", help="replay every producer's outbox even if the "
                                              "broker still holds every record")] = False,
) -> None:
    """Empty the reporting read models and read every event again: from the broker if it still holds them all,
    else from every producer's outbox. Stop the reporting replicas first; start them when it is done."""
    from services.reporting import admin
    from shared.db import create_engine

    if service != "reporting":
        raise typer.BadParameter("only the reporting service's read models can be rebuilt")

    async def _run() -> None:
        settings = _settings("reporting")
        engine = create_engine(settings.db_url)
        try:
            source = await admin.rebuild(engine, settings.kafka, from_outbox=from_outbox)
        finally:
            await engine.dispose()
        typer.echo("reporting: read models and inbox emptied")
        if source.broker:
            typer.echo(f"from the broker ({source.reason}): {len(source.partitions)} partitions marked; the reporting "
                       "consumer reads each from offset 0 when it starts")
        else:
            typer.echo(f"from the outboxes ({source.reason})")
            for producer in admin.PRODUCERS:
                engine = create_engine(_settings(producer).db_url)
                try:
                    count = await admin.replay_everything(engine, load(producer).spec.outbox)
                finally:
                    await engine.dispose()
                typer.echo(f"{producer}: {count} outbox events queued for publication again")
        typer.echo("start the reporting service; it applies the events as they arrive: watch GET /v1/reports/freshness")

    asyncio.run(_run())


@app.command()
def rekey(
    check: Annotated[bool, typer.Option("--check", help="count what older keys made, change nothing")] = False,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="households per transaction")] = 200,
) -> None:
    """Re-encrypt and re-hash the registry's citizen IDs with the current keys (after a rotation, SECURITY.md).

    Runs beside the live services; households whose hashes change publish `household.updated`. With --check,
    exits 1 while any member is still under an older key."""
    from services.registry.rekey import rekey as run_rekey
    from services.registry.settings import RegistrySettings
    from shared.db import create_engine, sessionmaker
    from shared.pii import CitizenIdProtector

    settings = _settings("registry")
    assert isinstance(settings, RegistrySettings)

    async def _run() -> int:
        engine = create_engine(settings.db_url)
        try:
            counts = await run_rekey(sessionmaker(engine), CitizenIdProtector(settings.pii), batch=batch,
                                     write=not check)
        finally:
            await engine.dispose()
        if check:
            typer.echo(f"registry: {counts.members:,} members; {counts.reencrypted:,} under an older encryption "
                       f"key, {counts.rehashed:,} hashed with an older hash key")
        else:
            typer.echo(f"registry: {counts.members:,} members; re-encrypted {counts.reencrypted:,}, re-hashed "
                       f"{counts.rehashed:,}; {counts.households_published:,} households published")
        return counts.stale if check else 0

    if asyncio.run(_run()):
        raise typer.Exit(1)


@app.command("bi-role")
def bi_role(
    role: Annotated[str, typer.Argument(help="PostgreSQL role name, e.g. kaenkhun_bi")],
    password: Annotated[str | None, typer.Option(envvar="KAENKHUN_BI_PASSWORD", help="login password")] = None,
) -> None:
    """Create (or update) a PostgreSQL login role that can read the reporting BI views and nothing else."""
    from services.reporting import admin
    from shared.db import create_engine

    async def _run() -> None:
        engine = create_engine(_settings("reporting").db_url)
        try:
            await admin.grant_bi_role(engine, role, password)
        finally:
            await engine.dispose()

    asyncio.run(_run())
    typer.echo(f"{role}: may read {', '.join(admin.BI_VIEWS)}")


@app.command()
def asyncapi(output: Annotated[Path | None, typer.Option("--output", "-o")] = None) -> None:
    """Print (or write) the AsyncAPI document generated from the event catalogue."""
    from shared.events.asyncapi import asyncapi_document

    text = json.dumps(asyncapi_document(_catalogue()), ensure_ascii=False, indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {output}")


@app.command()
def token(
    client: Annotated[str, typer.Option(help="client id (a configured client, or any name in development)")],
    scope: Annotated[str, typer.Option(help='space-separated scopes, e.g. "registry:read registry:write"')] = "*",
    area: Annotated[list[str] | None, typer.Option(help="DOPA area code the token may see; repeatable")] = None,
    ttl: Annotated[int | None, typer.Option(help="lifetime in seconds")] = None,
) -> None:
    """Print a development token signed with the configured key."""
    from shared.auth import issue_token

    settings = _settings("registry")
    if settings.env.value == "production":
        raise typer.BadParameter("refusing to mint tokens with `kaenkhun token` in production; use /oauth/token")
    try:
        typer.echo(issue_token(settings.auth, client_id=client, scopes=scope.split(), areas=area or ["*"], ttl_s=ttl))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def demo(
    scale: Annotated[int, typer.Option(min=1, max=1000, help="multiply the households (3,569 target at 1)")] = 1,
    seed: Annotated[int, typer.Option(help="the random seed: the same seed gives the same people")] = 2565,
    client_id: Annotated[str, typer.Option(envvar="KAENKHUN_DEMO_CLIENT_ID")] = "khon-kaen-staff",
    client_secret: Annotated[str | None, typer.Option(envvar="KAENKHUN_DEMO_CLIENT_SECRET",
                                                      help="default: the development secret")] = None,
    webhook_secret: Annotated[str | None, typer.Option(envvar="KAENKHUN_DEMO_WEBHOOK_SECRET",
                                                       help="the ministry's signing secret (default: development)")
                              ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for events to reach a service")] = 600.0,
) -> None:
    """Load a synthetic Khon Kaen through the services' HTTP APIs and check the source document's figures."""
    from ops import demo as loader_module
    from services.assistance.settings import DEV_WEBHOOK_SECRET
    from services.reporting.settings import ReportingSettings
    from shared.settings import DEV_CLIENT_SECRET

    def url(name: str) -> str:
        settings = _settings(name)
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104 (a comparison)
        return f"http://{host}:{settings.port}"

    endpoints = loader_module.Endpoints(*(url(name) for name in SERVICES))

    async def _run() -> tuple[dict[str, object], float]:
        loader = loader_module.Loader(
            endpoints, client_id=client_id, client_secret=client_secret or DEV_CLIENT_SECRET,
            webhook_secret=webhook_secret or DEV_WEBHOOK_SECRET,
            scenario=loader_module.Scenario(seed=seed, scale=scale), say=typer.echo, timeout_s=timeout)
        try:
            _, figures, seconds = await loader_module.run(loader)
        finally:
            await loader.close()
        return figures, seconds

    try:
        figures, seconds = asyncio.run(_run())
    except loader_module.DemoError as exc:
        raise typer.Exit(_fail(f"demo failed: {exc}")) from None
    typer.echo(f"\nloaded in {seconds:.1f} s; the reporting service now shows (Khon Kaen, B.E. 2565; *_2566: the "
               "next survey year against it; visits and referrals: this fiscal year):")
    for name, value in figures.items():
        shown = f"{value:,}" if isinstance(value, int) else f"{Decimal(str(value)):,.2f} baht"
        typer.echo(f"  {name:<27} {shown:>19}")
    typer.echo("\nlook at:")
    for link in loader_module.report_urls(endpoints.reporting):
        typer.echo(f"  {link}")
    reporting = _settings("reporting")
    assert isinstance(reporting, ReportingSettings)
    typer.echo("  " + loader_module.reader_note(reporting.public(), reporting.small_count_max,
                                                production=reporting.env.value == "production"))


@app.command("check-consistency")
def check_consistency(
    settle: Annotated[bool, typer.Option("--settle", help="first wait (up to 300 s) until every outbox is drained, "
                                                         "every inbox holds what its topics' producers published "
                                                         "and every consumer group has committed to the end")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the findings as JSON")] = False,
) -> None:
    """Check the services against each other: no event lost or from nowhere, order per key, reporting equal
    to the sources, no budget below zero, no family paid beyond its cap. Exit code 1 if any check fails."""
    from dataclasses import asdict

    from ops import consistency
    from shared.db import create_engine

    async def _run() -> list[consistency.Finding]:
        engines = {name: create_engine(_settings(name).db_url) for name in SERVICES}
        try:
            if settle:
                settled = await consistency.settle(engines, kafka=_settings("registry").kafka)
                if not settled:
                    typer.echo(f"not settled within 300 s ({settled.waiting_for}): checking anyway", err=True)
            return await consistency.check(engines)
        finally:
            for engine in engines.values():
                await engine.dispose()

    findings = asyncio.run(_run())
    if as_json:
        typer.echo(json.dumps([asdict(f) for f in findings], ensure_ascii=False, indent=2))
    else:
        for finding in findings:
            typer.echo(f"{'ok  ' if finding.ok else 'FAIL'}  {finding.check}: {finding.summary}")
            for example in finding.examples:
                typer.echo(f"        {example}")
    if not all(f.ok for f in findings):
        raise typer.Exit(1)


@app.command()
def up(
    services: Annotated[list[str] | None, typer.Argument(help="default: all four")] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for every /readyz")] = 60.0,
    broker_port: Annotated[int, typer.Option(envvar="KAENKHUN_BROKER_PORT", help="local broker port")] = 9092,
) -> None:
    """Start the local broker (unless KAFKA_BOOTSTRAP_SERVERS names one), migrate, run the services."""
    from ops import launcher

    names = _names(services)
    all_settings = {name: _settings(name) for name in names}
    data_dir = all_settings[names[0]].data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    broker = None
    env = dict(os.environ)
    if not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("KAENKHUN_KAFKA_BOOTSTRAP_SERVERS")):
        from ops.broker import LocalBroker

        broker = LocalBroker(port=broker_port, log_path=data_dir / "broker.log")
        broker.start()
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        assert broker.process is not None
        typer.echo(f"{'broker':<11} Tansu (Kafka API) on {broker.bootstrap_servers}, memory only  "
                   f"pid {broker.process.pid}  log {broker.log_path}")
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    logs = {name: data_dir / f"{name}.log" for name in names}
    urls = {name: f"http://{settings.host}:{settings.port}" for name, settings in all_settings.items()}
    try:
        launcher.prepare(env, names, quiet=False)
        for name in names:
            children[name] = launcher.spawn(name, env, logs[name])
        try:
            launcher.wait_ready(children, urls, logs, wait, stopping=lambda: stopping)
        except RuntimeError as exc:
            raise typer.Exit(_fail(str(exc))) from None
        if not stopping:
            for name in names:
                typer.echo(f"{name:<11} {urls[name]}  docs {urls[name]}/docs  pid {children[name].pid}  "
                           f"log {logs[name]}")
            typer.echo("all services ready — Ctrl-C stops everything")
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    typer.echo(f"{name} exited with code {child.returncode}; stopping", err=True)
                    stopping = True
            time.sleep(0.25)
    finally:
        launcher.terminate(children)
        if broker is not None:
            broker.stop()
        typer.echo("stopped")


def _fail(message: str) -> int:
    typer.echo(message, err=True)
    return 1


def _catalogue() -> Catalogue:
    return Catalogue().merged(load(name).spec.catalogue for name in SERVICES)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
