"""Correlation ids (shared.observability): taken from the request or made, answered, seen by the handler (sync
ones too) and gone after the request; bound around work that is not a request."""

from __future__ import annotations

import uuid

import pytest
import structlog

from shared.observability import bind_correlation_id, correlation_id_var, get_correlation_id
from tests.kit.observability import client_for, make_app


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
