"""Logs (shared.observability): JSON lines with the correlation id, the service and Thai as it is; access lines,
the standard library's logging, exceptions, levels, the console form."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
import structlog

from shared.observability import bind_correlation_id, configure_logging
from tests.kit.observability import THAI_NAME, client_for, make_app


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
