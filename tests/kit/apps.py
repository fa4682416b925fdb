"""Running a service app in-process for tests: settings, lifespan, an HTTP client, tokens, problem answers, CSV
imports, and events delivered through a service's real consumer path."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from sqlalchemy import select

from ops.broker import free_port
from services import load
from shared.auth import issue_token
from shared.bus import Outbox
from shared.db import transaction
from shared.events.catalogue import EventType
from shared.events.envelope import CloudEvent, source_for
from shared.settings import AuthSettings, ServiceSettings
from tests.kit.env import kafka_settings


def make_settings(name: str, url: str, bootstrap: str, **overrides: object) -> ServiceSettings:
    # The rate limit is off: a test makes many requests as one client; tests/platform/test_guards.py tests it.
    values: dict[str, object] = {"database_url": url, "kafka": kafka_settings(bootstrap), "log_json": False,
                                 "limits": {"rate_per_s": 0}}
    values.update(overrides)
    settings: ServiceSettings = load(name).settings.model_validate(values)
    return settings


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan started, behind an in-process HTTP client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@asynccontextmanager
async def serving(app: FastAPI, **options: Any) -> AsyncIterator[str]:
    """The app under uvicorn on a free loopback port, in this event loop, lifespan on: real HTTP. Its base URL.
    `options` are uvicorn's (e.g. `shared.app.uvicorn_options`, as `kaenkhun serve` runs it)."""
    port = free_port()
    config = {"log_config": None} | options | {"host": "127.0.0.1", "port": port}
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **config))
    task = asyncio.create_task(server.serve())
    for _ in range(600):  # uvicorn sets `started` and offers no event to wait on
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def wait_ready(client: httpx.AsyncClient, timeout_s: float = 30) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await client.get("/readyz")
        if response.status_code == 200 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.2)


def bearer(auth: AuthSettings, *scopes: str, areas: tuple[str, ...] = ("*",), client_id: str = "test-client",
           ) -> dict[str, str]:
    """An Authorization header with a development token for these scopes and areas."""
    token = issue_token(auth, client_id=client_id, scopes=list(scopes), areas=list(areas))
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The body of a problem+json answer (RFC 9457) with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


async def outbox_events(app: FastAPI, outbox: Outbox) -> list[tuple[str, str, dict[str, Any]]]:
    """(short type, key, data) of every row of a service's outbox, in order."""
    async with transaction(app.state.sessionmaker) as session:
        rows = (await session.execute(
            select(outbox.table.c.event_type, outbox.table.c.key, outbox.table.c.value)
            .order_by(outbox.table.c.id))).all()
    return [(t.removeprefix("th.kaenkhun.").rsplit(".v", 1)[0], k, json.loads(v)["data"]) for t, k, v in rows]


def csv_bytes(rows: list[dict[str, Any]], columns: Sequence[str], *, bom: bool = True) -> bytes:
    """A CSV file as a spreadsheet saves it (CRLF, UTF-8 with a BOM unless told otherwise)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" if bom else "").encode() + out.getvalue().encode()


async def run_import(app: FastAPI, client: httpx.AsyncClient, url: str, content: bytes, headers: dict[str, str],
                     ) -> dict[str, Any]:
    """Upload a CSV file to a service's import endpoint, wait for its job, return the job's status body."""
    response = await client.post(url, files={"file": ("ไฟล์.csv", content, "text/csv")}, headers=headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.headers["location"] == f"{url}/{job_id}"
    await app.state.imports.wait(job_id)
    status = await client.get(f"{url}/{job_id}", headers=headers)
    assert status.status_code == 200, status.text
    body: dict[str, Any] = status.json()
    return body


async def run_import_in_steps(app: FastAPI, client: httpx.AsyncClient, url: str, content: bytes,
                              headers: dict[str, str], *, chunk: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Upload a CSV file and let its job write `chunk` units at a time, one chunk after another: returns the job's
    status body read before each chunk is written (what the chunks before it committed, and no more), and once
    the job has ended."""
    jobs = app.state.imports
    write_chunk, chunk_before = jobs._write_chunk, jobs.chunk
    arrived: asyncio.Queue[None] = asyncio.Queue()
    go: asyncio.Queue[None] = asyncio.Queue()
    written: asyncio.Queue[None] = asyncio.Queue()

    async def one_at_a_time(*args: Any) -> None:
        await arrived.put(None)
        await go.get()
        try:
            await write_chunk(*args)
        finally:
            await written.put(None)

    jobs.chunk, jobs._write_chunk = chunk, one_at_a_time
    try:
        response = await client.post(url, files={"file": ("ไฟล์.csv", content, "text/csv")}, headers=headers)
        assert response.status_code == 202, response.text
        status_url = f"{url}/{response.json()['id']}"
        ended = asyncio.ensure_future(jobs.wait(response.json()["id"]))
        seen = []
        while True:
            arrival = asyncio.ensure_future(arrived.get())
            await asyncio.wait({arrival, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not arrival.done():
                arrival.cancel()
                break
            seen.append((await client.get(status_url, headers=headers)).json())
            await go.put(None)
            await written.get()
        await ended
        return seen, (await client.get(status_url, headers=headers)).json()
    finally:
        del jobs._write_chunk  # the class's again
        jobs.chunk = chunk_before


def consumer_record(event_type: EventType, data: dict[str, Any], *, event_id: str | None = None,
                    offset: int = 0, key: str | None = None) -> ConsumerRecord[bytes, bytes]:
    """An event as a service's consumer receives it from Kafka, keyed by its household unless `key` says."""
    key = key or data["household_id"]
    event = CloudEvent(source=source_for(event_type.producer), type=event_type.type, subject=key,
                       data=data, **({"id": event_id} if event_id else {}))
    return ConsumerRecord(topic=event_type.topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
                          key=key.encode(), value=event.to_json(), checksum=None,
                          serialized_key_size=36, serialized_value_size=0, headers=[])


async def deliver(app: FastAPI, event_type: EventType, data: dict[str, Any], *, event_id: str | None = None,
                  offset: int = 0, key: str | None = None) -> int:
    """Deliver one event (keyed by its household) through a service's real consumer path, inbox included."""
    consumer = app.state.consumer
    record = consumer_record(event_type, data, event_id=event_id, offset=offset, key=key)
    processed: int = await consumer.process([consumer.handlers.decode(record)])
    return processed
