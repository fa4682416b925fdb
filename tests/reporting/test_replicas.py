"""Reporting replicas on one PostgreSQL database: two replicas of the consumer group `reporting` share a topic's
partitions and add to the same area rows at once. They never deadlock, lose no update and end with exactly the
read models one replica builds from the same events; a batch that does lose to a deadlock runs again whole and
counts once."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ops.broker import LocalBroker, free_port
from ops.scratchdb import ScratchDatabases
from services import load
from services.reporting.models import READ_MODELS, Feed, Village, metadata
from services.reporting.settings import ReportingSettings
from shared import migrations
from shared.auth import issue_token
from shared.bus import ensure_topics
from shared.bus.handlers import Delivery
from shared.db import create_engine
from shared.events.catalogue import EventType
from shared.events.envelope import CloudEvent, source_for
from shared.events.registry import HOUSEHOLD_REGISTERED
from shared.ids import new_id
from shared.settings import REPO_ROOT
from tests.kit.apps import make_settings
from tests.kit.env import NO_BROKER, kafka_settings
from tests.kit.reporting import Reporting, household_events, synthetic_households

pytestmark = pytest.mark.parametrize("databases", ["postgres"], indirect=True)


def _events(persons: int, seed: int) -> list[tuple[EventType, CloudEvent]]:
    """Synthetic households' events, each a CloudEvent made once (its id and time are in the read models)."""
    made = []
    for household in synthetic_households(persons, seed):
        for event_type, data in household_events(household):
            made.append((event_type, CloudEvent(source=source_for(event_type.producer), type=event_type.type,
                                                subject=household["id"], data=data)))
    return made


def _record(event_type: EventType, event: CloudEvent, offset: int) -> ConsumerRecord[bytes, bytes]:
    assert event.subject is not None
    return ConsumerRecord(topic=event_type.topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
                          key=event.subject.encode(), value=event.to_json(), checksum=None,
                          serialized_key_size=36, serialized_value_size=0, headers=[])


async def _read_models(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model row but the feed's (kept per partition), in key order."""
    found = {}
    async with engine.connect() as conn:
        for model in READ_MODELS:
            if model is Feed:
                continue
            table = metadata.tables[model.__tablename__]
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            found[table.name] = [tuple(r) for r in rows]
    return found


async def _applied(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(Feed.topic, func.sum(Feed.events)).group_by(Feed.topic))
        return {topic: int(events) for topic, events in rows}


async def _one_replica(url: str, events: Sequence[tuple[EventType, CloudEvent]]) -> AsyncEngine:
    """What one replica makes of the events: through the consumer's real path, a poll's worth at a time."""
    app = load("reporting").create_app(make_settings("reporting", url, NO_BROKER, run_bus=False))
    async with app.router.lifespan_context(app):
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        consumer = app.state.consumer
        records = [_record(event_type, event, offset) for offset, (event_type, event) in enumerate(events)]
        for start in range(0, len(records), 500):
            await consumer.apply([consumer.handlers.decode(r) for r in records[start:start + 500]])
    return create_engine(url)


def _serve(url: str, bootstrap: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = os.environ | {"KAENKHUN_REPORTING_DATABASE_URL": url, "KAENKHUN_REPORTING_PORT": str(port),
                        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAENKHUN_KAFKA_TOPIC_PARTITIONS": "4",
                        "KAENKHUN_LOG_JSON": "false", "KAENKHUN_LOG_LEVEL": "INFO",
                        "PYTHONPATH": str(REPO_ROOT)}  # this checkout's code, wherever the venv was installed from
    with log.open("wb") as out:  # `kaenkhun serve reporting`
        process = subprocess.Popen([sys.executable, "-m", "ops.cli", "serve", "reporting"], env=env, cwd=REPO_ROOT,
                                   stdout=out, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


async def _consumed(client: httpx.AsyncClient) -> float:
    """Events this replica's consumer applied (its own /metrics)."""
    body = (await client.get("/metrics")).text
    return sum(float(m.group(1)) for m in re.finditer(
        r'^\w*events_consumed_total\{[^}]*outcome="processed"[^}]*\} ([0-9.e+]+)$', body, re.MULTILINE))


async def test_two_replicas_share_the_partitions_and_agree_with_one(databases: ScratchDatabases,
                                                                   own_broker: LocalBroker, tmp_path: Path) -> None:
    events = _events(persons=2400, seed=11)
    expected = Counter(event_type.topic for event_type, _ in events)
    one = await _one_replica(await databases.new("reporting"), events)
    two_url = await databases.new("reporting")
    two = create_engine(two_url)
    await migrations.upgrade(two, load("reporting").spec.migrations_dir)
    kafka = kafka_settings(own_broker.bootstrap_servers)
    await ensure_topics(kafka, load("reporting").spec.handlers.topics())  # 4 partitions each
    logs = [tmp_path / "replica-1.log", tmp_path / "replica-2.log"]
    replicas = [_serve(two_url, own_broker.bootstrap_servers, log) for log in logs]
    token = issue_token(ReportingSettings().auth, client_id="test", scopes=["reporting:read", "reporting:detail"],
                        areas=["*"])
    clients = [httpx.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"})
               for _, base in replicas]
    producer = AIOKafkaProducer(bootstrap_servers=own_broker.bootstrap_servers, acks="all")
    try:
        for client in clients:  # ready: migrations current and the consumer connected
            said = ""
            for _ in range(600):
                try:
                    ready = await client.get("/readyz")
                    if ready.status_code == 200:
                        break
                    said = ready.text
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"{client.base_url} did not become ready: {said}")
        await producer.start()
        for event_type, event in events:  # keyed by household, as the producers' relays publish them
            await producer.send(event_type.topic, event.to_json(), key=(event.subject or "").encode())
        await producer.flush()
        for _ in range(1800):
            if await _applied(two) == dict(expected):
                break
            await asyncio.sleep(0.1)
        assert await _applied(two) == dict(expected)

        assert await _read_models(two) == await _read_models(one)
        for client in clients:
            fresh = (await client.get("/v1/reports/freshness")).json()
            applied = {t["topic"]: t["events_applied"] for t in fresh["topics"] if t["events_applied"]}
            assert applied == dict(expected)
        consumed = [await _consumed(client) for client in clients]
        assert all(n > 0 for n in consumed) and sum(consumed) >= len(events)  # both took their share
    finally:
        await producer.stop()
        for client in clients:
            await client.aclose()
        for process, _ in replicas:
            process.terminate()
            process.wait(timeout=30)
        await one.dispose()
        await two.dispose()
    written = "\n".join(log.read_text(errors="replace") for log in logs)
    assert "deadlock" not in written.lower()
    assert "batch failed" not in written and "lost to a concurrent" not in written


async def _waiting_for_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        waiting = await conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"))
        return bool(waiting.scalar_one())


async def test_a_batch_that_loses_to_a_deadlock_runs_again_whole_and_counts_once(reporting: Reporting) -> None:
    """Another writer locks the villages in the opposite order: PostgreSQL breaks the deadlock by failing the
    consumer's transaction, which the consumer runs again, whole, once the other has committed."""
    villages = ("40010101", "40010102")
    for village in villages:
        await reporting.registered(village, 2)
    consumer = reporting.app.state.consumer
    engine = reporting.app.state.engine
    batch: list[Delivery] = []
    for offset, village in enumerate(villages, start=100):
        data = {"household_id": new_id(), "version": 1, "status": "open", "province_code": "40",
                "district_code": "4001", "subdistrict_code": "400101", "village_no": int(village[6:]),
                "village_code": village, "sources": ["tpmap"], "welfare_card": False, "team_id": None,
                "members": [{"member_id": new_id(), "citizen_id_hash": "0" * 64, "sex": "male",
                             "birth_date": "1980-01-01", "relation": "head", "disability": False}] * 3}
        event = CloudEvent(source=source_for("registry"), type=HOUSEHOLD_REGISTERED.type, subject=data["household_id"],
                           data=data)
        batch.append(consumer.handlers.decode(_record(HOUSEHOLD_REGISTERED, event, offset)))
    other = create_engine(reporting.settings.db_url)
    try:
        async with other.connect() as conn:
            await conn.execute(text("SET deadlock_timeout = '30s'"))  # so PostgreSQL fails the consumer, not us
            await conn.execute(text("UPDATE rpt_village SET persons = persons WHERE village_code = :v"),
                               {"v": villages[1]})
            with structlog.testing.capture_logs() as logged:
                applying = asyncio.create_task(consumer.apply(batch))  # takes villages[0], waits for villages[1]
                for _ in range(300):
                    if await _waiting_for_a_lock(other):
                        break
                    await asyncio.sleep(0.05)
                # The cycle: the consumer's transaction fails with "deadlock detected" (after its deadlock_timeout),
                # which lets this statement through.
                await conn.execute(text("UPDATE rpt_village SET persons = persons WHERE village_code = :v"),
                                   {"v": villages[0]})
                await conn.commit()
                await applying
    finally:
        await other.dispose()
    events = [entry["event"] for entry in logged]
    assert "batch lost to a concurrent transaction, running it again" in events
    assert "batch failed, processing one by one" not in events and "handler failed" not in events
    async with engine.connect() as conn:
        rows = {r.village_code: (r.households, r.persons) for r in await conn.execute(select(Village))}
    assert rows == {villages[0]: (2, 5), villages[1]: (2, 5)}  # 2 + 3 persons each, counted once
    fresh = (await reporting.client.get("/v1/reports/freshness", headers=reporting.detail)).json()
    assert {t["topic"]: t["events_applied"] for t in fresh["topics"]}[HOUSEHOLD_REGISTERED.topic] == 4
