"""Logging for every service: one line per event on stderr, JSON by default, Thai text kept as it is, with
the service's name and the bound correlation id on every line."""

from __future__ import annotations

import json as _stdlib_json
import logging
import sys
from typing import Any, TextIO

import orjson
import structlog

_default_service: str | None = None


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that looks up sys.stderr on every write."""

    # Resolving late means pytest's capsys, or anything else that swaps sys.stderr after
    # configuration, still receives the log lines.
    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _dumps(obj: Any, default: Any = None, **_: Any) -> str:
    """Serialise a log event to JSON, keeping Thai and other non-ASCII text as-is."""
    try:
        return orjson.dumps(obj, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        # orjson refuses a few things json accepts (e.g. ints beyond 64 bits); never lose a line.
        return _stdlib_json.dumps(obj, default=default or str, ensure_ascii=False)


def _add_service(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Fill in the service name unless the request context already bound one."""
    if _default_service is not None:
        event_dict.setdefault("service", _default_service)
    return event_dict


def _drop_unset_correlation_id(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Omit correlation_id when no id is bound, instead of writing null on every line."""
    if event_dict.get("correlation_id", ...) is None:
        del event_dict["correlation_id"]
    return event_dict


def configure_logging(
    level: str = "INFO", json: bool = True, service: str | None = None, *, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to one line per event on stderr (JSON by default)."""
    global _default_service
    _default_service = service

    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _drop_unset_correlation_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _add_service,
    ]
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        # ConsoleRenderer prints tracebacks itself; the JSON renderer needs them as a string.
        final_processors = [structlog.processors.format_exc_info, renderer]
    else:
        final_processors = [structlog.dev.ConsoleRenderer(colors=False)]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: configure_logging may run again (tests, reconfigured level) and module-level
        # loggers must pick up the new processors.
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final_processors],
    )
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler._kaenkhun = True  # type: ignore[attr-defined]  # marks ours, for idempotent reconfiguration

    root = logging.getLogger()
    # Replace only our own handler: others (pytest's capture, an embedding app's) are left alone.
    for existing in list(root.handlers):
        if getattr(existing, "_kaenkhun", False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())

    # Libraries that install their own handlers would otherwise print a second, non-JSON line.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka", "sqlalchemy", "alembic"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True
    # CorrelationIdMiddleware writes the access line (with the correlation id); uvicorn's is a duplicate.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # SQLAlchemy logs every statement at INFO when echo is on; keep only its warnings.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    # Python warnings (SAWarning and friends) become log records, so they are JSON too.
    logging.captureWarnings(True)
