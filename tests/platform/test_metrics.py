"""Tests for shared.observability: correlation ids, JSON logs and per-app metrics."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from shared.errors import install_problem_handlers
from shared.observability import (
    Metrics,
    bind_correlation_id,
    configure_logging,
    correlation_id_var,
    get_correlation_id,
    install_observability,
)

THAI_NAME = "สมชาย ใจดี"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Configure JSON logging into a private stream and undo it afterwards."""
    root = logging.getLogger()
    saved_level = root.level
    saved_handlers = list(root.handlers)
    stream = io.StringIO()
    configure_logging("INFO", json=True, service="registry", stream=stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    logging.captureWarnings(False)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def json_lines(stream: io.StringIO) -> list[dict]:
    """Parse every line of the stream as JSON (fails on any non-JSON line)."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def make_app(service: str = "registry", metrics: Metrics | None = None) -> FastAPI:
    """A tiny app with observability installed and a few routes to exercise it."""
    app = FastAPI()
    install_observability(app, service=service, metrics=metrics or Metrics())
    handler_log = structlog.get_logger("kaenkhun.test")

    @app.get("/v1/households/{household_id}")
    async def read_household(household_id: str) -> dict[str, str | None]:
        handler_log.info("household read", head_name=THAI_NAME, household_id=household_id)
        return {"household_id": household_id, "correlation_id": get_correlation_id()}

    @app.get("/sync-echo")
    def sync_echo() -> dict[str, str | None]:
        # Sync endpoints run in a worker thread; the context must follow them there.
        return {"correlation_id": get_correlation_id()}

    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def sample_value(metrics_text: str, name: str, labels: dict[str, str]) -> float | None:
    """Find one sample in Prometheus text by name and exact labels."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


# --- correlation id over HTTP -------------------------------------------------------------


async def test_correlation_id_generated_when_absent() -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/v1/households/h1")
    assert response.status_code == 200
    header = response.headers["X-Correlation-ID"]
    assert uuid.UUID(header).version == 4
    assert response.json()["correlation_id"] == header


async def test_correlation_id_echoed_when_present() -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/v1/households/h1", headers={"X-Correlation-ID": "abc-123.req_7"})
    assert response.headers["X-Correlation-ID"] == "abc-123.req_7"
    assert response.json()["correlation_id"] == "abc-123.req_7"


async def test_request_id_header_accepted_as_fallback() -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/v1/households/h1", headers={"X-Request-ID": "from-proxy-1"})
    assert response.headers["X-Correlation-ID"] == "from-proxy-1"


async def test_correlation_id_visible_in_sync_endpoint() -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/sync-echo", headers={"X-Correlation-ID": "sync-1"})
    assert response.json() == {"correlation_id": "sync-1"}


@pytest.mark.parametrize(
    "bad_id",
    ["x" * 129, "y" * 500, "has space", "tab\there", "", "สมชาย"],
    ids=["129-chars", "500-chars", "space", "tab", "empty", "non-ascii"],
)
async def test_invalid_correlation_id_replaced(bad_id: str) -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/v1/households/h1", headers={"X-Correlation-ID": bad_id.encode("utf-8")})
    header = response.headers["X-Correlation-ID"]
    assert header != bad_id
    assert uuid.UUID(header).version == 4
    assert response.json()["correlation_id"] == header


async def test_newline_in_correlation_id_replaced() -> None:
    # httpx refuses to send CR/LF in a header, so call the ASGI app directly as a server would.
    app = make_app()
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/households/h1",
        "raw_path": b"/v1/households/h1",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-correlation-id", b"evil\nInjected: 1")],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    ids = [value for name, value in start["headers"] if name == b"x-correlation-id"]
    assert len(ids) == 1
    assert uuid.UUID(ids[0].decode()).version == 4


async def test_correlation_id_does_not_leak_after_request() -> None:
    async with client_for(make_app()) as client:
        await client.get("/v1/households/h1", headers={"X-Correlation-ID": "leak-check"})
    assert get_correlation_id() is None


# --- bind_correlation_id ------------------------------------------------------------------


def test_bind_correlation_id_restores_previous_value() -> None:
    assert get_correlation_id() is None
    with bind_correlation_id("outer") as outer:
        assert outer == "outer"
        with bind_correlation_id(b"inner-from-kafka") as inner:
            assert inner == "inner-from-kafka"
            assert get_correlation_id() == "inner-from-kafka"
            assert structlog.contextvars.get_contextvars()["correlation_id"] == "inner-from-kafka"
        assert get_correlation_id() == "outer"
        assert structlog.contextvars.get_contextvars()["correlation_id"] == "outer"
    assert correlation_id_var.get() is None
    assert "correlation_id" not in structlog.contextvars.get_contextvars()


def test_bind_correlation_id_generates_for_missing_or_invalid() -> None:
    with bind_correlation_id(None) as generated:
        assert uuid.UUID(generated).version == 4
        assert get_correlation_id() == generated
    with bind_correlation_id("bad\nid") as replaced:
        assert replaced != "bad\nid"
        assert uuid.UUID(replaced).version == 4
    with bind_correlation_id("สมชาย".encode()) as from_bytes:
        assert uuid.UUID(from_bytes).version == 4


def test_bind_correlation_id_restores_on_exception() -> None:
    with pytest.raises(RuntimeError):
        with bind_correlation_id("doomed"):
            raise RuntimeError("boom")
    assert get_correlation_id() is None


# --- logging --------------------------------------------------------------------------------


async def test_handler_log_line_is_json_with_correlation_service_and_thai(log_stream: io.StringIO) -> None:
    async with client_for(make_app(service="registry")) as client:
        await client.get("/v1/households/h42", headers={"X-Correlation-ID": "corr-thai-1"})

    lines = json_lines(log_stream)
    handler_line = next(line for line in lines if line["event"] == "household read")
    assert handler_line["correlation_id"] == "corr-thai-1"
    assert handler_line["service"] == "registry"
    assert handler_line["head_name"] == THAI_NAME
    assert handler_line["level"] == "info"
    assert handler_line["logger"] == "kaenkhun.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", handler_line["timestamp"])
    # Thai is written as-is, not as \u escapes.
    assert THAI_NAME in log_stream.getvalue()
    assert "\\u0e" not in log_stream.getvalue()


async def test_access_line_logged_per_request(log_stream: io.StringIO) -> None:
    async with client_for(make_app(service="assessment")) as client:
        await client.get("/v1/households/h1", headers={"X-Correlation-ID": "access-1"})
        await client.get("/nowhere", headers={"X-Correlation-ID": "access-2"})

    access = [line for line in json_lines(log_stream) if line["logger"] == "kaenkhun.access"]
    assert [(a["method"], a["path"], a["status"], a["correlation_id"]) for a in access] == [
        ("GET", "/v1/households/h1", 200, "access-1"),
        ("GET", "/nowhere", 404, "access-2"),
    ]
    assert all(a["service"] == "assessment" and a["duration_ms"] >= 0 for a in access)


def test_stdlib_logging_rendered_as_json(log_stream: io.StringIO) -> None:
    with bind_correlation_id("stdlib-1"):
        logging.getLogger("aiokafka.consumer").warning("ครัวเรือน %s ล่าช้า", "h9")
    (line,) = json_lines(log_stream)
    assert line["event"] == "ครัวเรือน h9 ล่าช้า"
    assert line["logger"] == "aiokafka.consumer"
    assert line["level"] == "warning"
    assert line["correlation_id"] == "stdlib-1"
    assert line["service"] == "registry"


def test_exception_rendered_in_json(log_stream: io.StringIO) -> None:
    try:
        raise ValueError("ข้อมูลผิด")
    except ValueError:
        structlog.get_logger("kaenkhun.test").exception("import failed")
    (line,) = json_lines(log_stream)
    assert line["event"] == "import failed"
    assert "ValueError: ข้อมูลผิด" in line["exception"]


def test_level_filters_and_configure_is_idempotent(log_stream: io.StringIO) -> None:
    configure_logging("WARNING", json=True, service="reporting", stream=log_stream)
    configure_logging("WARNING", json=True, service="reporting", stream=log_stream)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_kaenkhun", False)]
    assert len(ours) == 1
    log = structlog.get_logger("kaenkhun.test")
    log.info("dropped")
    log.warning("kept")
    assert [(line["event"], line["service"]) for line in json_lines(log_stream)] == [("kept", "reporting")]


def test_default_stream_is_stderr(log_stream: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True, service="assistance")
    structlog.get_logger("kaenkhun.test").info("to stderr", note=THAI_NAME)
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = [json.loads(raw) for raw in captured.err.splitlines() if raw.strip()]
    assert (line["event"], line["note"], line["service"]) == ("to stderr", THAI_NAME, "assistance")


def test_console_rendering_when_not_json(log_stream: io.StringIO) -> None:
    configure_logging("INFO", json=False, service="registry", stream=log_stream)
    structlog.get_logger("kaenkhun.test").info("plain text", name=THAI_NAME)
    output = log_stream.getvalue()
    assert "plain text" in output and THAI_NAME in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


# --- metrics --------------------------------------------------------------------------------


async def test_metrics_endpoint_reports_route_template() -> None:
    app = make_app()
    async with client_for(app) as client:
        await client.get("/v1/households/a")
        await client.get("/v1/households/b")
        await client.get("/no/such/path")
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    labels = {"method": "GET", "route": "/v1/households/{household_id}", "status": "200"}
    assert sample_value(text, "http_requests_total", labels) == 2.0
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample_value(text, "http_requests_total", unmatched) == 1
    assert (
        sample_value(
            text,
            "http_request_duration_seconds_count",
            {"method": "GET", "route": "/v1/households/{household_id}"},
        )
        == 2.0
    )
    # Raw paths never become label values.
    assert "/v1/households/a" not in text
    assert app.state.metrics.registry is not None


async def test_metrics_route_hidden_from_openapi() -> None:
    async with client_for(make_app()) as client:
        schema = (await client.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]
    assert "/v1/households/{household_id}" in schema["paths"]


async def test_metrics_endpoint_offers_openmetrics() -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_unhandled_error_counted_as_500() -> None:
    app = make_app()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    async with client_for(app) as client:
        with pytest.raises(RuntimeError):
            await client.get("/boom")
        text = (await client.get("/metrics")).text
    failed = {"method": "GET", "route": "/boom", "status": "500"}
    assert sample_value(text, "http_requests_total", failed) == 1


async def test_mounted_sub_app_route_includes_mount_prefix() -> None:
    metrics = Metrics()
    app = make_app(metrics=metrics)
    sub = FastAPI()

    @sub.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"item_id": item_id}

    app.mount("/admin", sub)
    async with client_for(app) as client:
        assert (await client.get("/admin/items/7")).status_code == 200
    labels = {"method": "GET", "route": "/admin/items/{item_id}", "status": "200"}
    assert metrics.registry.get_sample_value("http_requests_total", labels) == 1


async def test_two_metrics_instances_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    assert first.registry is not second.registry
    app_one, app_two = make_app("registry", first), make_app("assessment", second)

    first.outbox_pending.set(3)
    second.outbox_pending.set(7)
    first.events_published_total.labels(topic="registry.households").inc()
    second.events_consumed_total.labels(topic="registry.households", outcome="duplicate").inc()
    second.consumer_lag.labels(topic="registry.households", partition="0").set(12)
    second.handler_failures_total.labels(topic="registry.households").inc(2)
    first.outbox_publish_lag_seconds.set(1.5)

    async with client_for(app_one) as one, client_for(app_two) as two:
        await one.get("/v1/households/x")
        text_one = (await one.get("/metrics")).text
        text_two = (await two.get("/metrics")).text

    assert sample_value(text_one, "outbox_pending", {}) == 3
    assert sample_value(text_two, "outbox_pending", {}) == 7
    assert sample_value(text_one, "outbox_publish_lag_seconds", {}) == 1.5
    assert sample_value(text_one, "events_published_total", {"topic": "registry.households"}) == 1
    assert sample_value(text_two, "events_published_total", {"topic": "registry.households"}) is None
    consumed = {"topic": "registry.households", "outcome": "duplicate"}
    assert sample_value(text_two, "events_consumed_total", consumed) == 1
    assert sample_value(text_one, "events_consumed_total", consumed) is None
    assert sample_value(text_two, "consumer_lag", {"topic": "registry.households", "partition": "0"}) == 12
    assert sample_value(text_two, "handler_failures_total", {"topic": "registry.households"}) == 2
    households = {"method": "GET", "route": "/v1/households/{household_id}", "status": "200"}
    assert sample_value(text_one, "http_requests_total", households) == 1
    assert sample_value(text_two, "http_requests_total", households) is None


async def test_a_busy_or_unreachable_database_answers_503_with_retry_after_not_500() -> None:
    """SQLite's busy timeout, PostgreSQL's lock/serialization errors, a database restarting: the client retries."""
    import sqlite3

    from sqlalchemy.exc import DBAPIError, OperationalError

    app = make_app()
    install_problem_handlers(app)

    @app.get("/locked")
    async def locked() -> None:
        raise OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))

    @app.get("/gone")
    async def gone() -> None:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    class ShuttingDown(Exception):
        sqlstate = "57P03"  # what asyncpg says while PostgreSQL stops: "the database system is shutting down"

    @app.get("/stopping")
    async def stopping() -> None:
        raise DBAPIError("connect", {}, ShuttingDown("the database system is shutting down"))

    @app.get("/broken")
    async def broken() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionResetError("connection was closed in the middle"))

    async with client_for(app) as client:
        response = await client.get("/locked")
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("/busy")
        for path in ("/gone", "/broken", "/stopping"):  # PostgreSQL restarting: 503, the client retries
            down = await client.get(path)
            assert down.status_code == 503 and down.headers["retry-after"] == "2", path
            assert down.json()["type"].endswith("/database-unavailable")
