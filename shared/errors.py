"""RFC 9457 problem details: domain exceptions mapped to application/problem+json in one place."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import lost_to_contention, sqlstate

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://kaenkhun.github.io/problems/"

log = structlog.get_logger("kaenkhun.errors")


class Problem(Exception):
    """A domain error that becomes a problem+json response; subclasses fix status and type."""

    status: int = 400
    type_slug: str = "bad-request"
    title: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        type_slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or "")
        if status is not None:
            self.status = status
        if type_slug is not None:
            self.type_slug = type_slug
        if title is not None:
            self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.type_slug,
            "title": self.title or HTTPStatus(self.status).phrase,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class BadRequest(Problem):
    status, type_slug = 400, "bad-request"


class Unauthorized(Problem):
    status, type_slug = 401, "unauthorized"


class Forbidden(Problem):
    status, type_slug = 403, "forbidden"


class NotFound(Problem):
    status, type_slug = 404, "not-found"


class Conflict(Problem):
    status, type_slug = 409, "conflict"


class PreconditionFailed(Problem):
    status, type_slug = 412, "precondition-failed"


class Unprocessable(Problem):
    status, type_slug = 422, "validation-error"


class PreconditionRequired(Problem):
    status, type_slug = 428, "precondition-required"


class PayloadTooLarge(Problem):
    status, type_slug = 413, "payload-too-large"


class UnsupportedMediaType(Problem):
    status, type_slug = 415, "unsupported-media-type"


class RequestHeaderFieldsTooLarge(Problem):
    status, type_slug = 431, "request-header-fields-too-large"


class TooManyRequests(Problem):
    status, type_slug = 429, "too-many-requests"


class ServiceUnavailable(Problem):
    status, type_slug = 503, "service-unavailable"


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = str(request.url.path) if request is not None else None
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


# A body can be made to fail validation in as many ways as it has keys (80,000 unknown keys made a 7 MB answer):
# the first ones are listed, and how many more there were is said.
MAX_LISTED_ERRORS = 100


def _validation_errors(exc: RequestValidationError) -> tuple[list[dict[str, Any]], int]:
    """The first MAX_LISTED_ERRORS errors as {field, message, code}, and how many there were in all."""
    found = exc.errors()
    errors = []
    for err in found[:MAX_LISTED_ERRORS]:
        loc = [str(part) for part in err.get("loc", ())]
        errors.append({"field": ".".join(loc), "message": err.get("msg", ""), "code": err.get("type", "")})
    return errors, len(found)


# PostgreSQL has no connection to give: too_many_connections (max_connections, or a role's or database's
# CONNECTION LIMIT), configuration_limit_exceeded. (cannot_connect_now, 57P03, while it starts or stops, is
# the database being unreachable, below.)
_SATURATED_SQLSTATES = {"53300", "53400"}


def _saturated(exc: BaseException) -> bool:
    """No connection to be had: the server refused one more (or is starting or stopping), or this process's own
    pool stayed full for its whole `KAENKHUN_DB_POOL_TIMEOUT_S`. Load, not a fault: the client retries."""
    return isinstance(exc, PoolTimeout) or sqlstate(exc) in _SATURATED_SQLSTATES


def _unreachable(exc: DBAPIError) -> bool:
    """The database went away (restart, network): OperationalError / InterfaceError, a dropped connection, or
    PostgreSQL's connection exceptions (SQLSTATE 08…) and shutdowns (57P01–57P03, e.g. "shutting down")."""
    return (exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
            or isinstance(exc.orig, OSError) or sqlstate(exc).startswith(("08", "57P")))


def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unreachable", path=str(request.url.path), error=repr(exc)[:200])
    return problem_response(ServiceUnavailable("The database is unreachable; retry shortly.",
                                               type_slug="database-unavailable", headers={"Retry-After": "2"}),
                            request)


def _database_saturated(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database connections exhausted", path=str(request.url.path), error=repr(exc)[:200])
    return problem_response(ServiceUnavailable("The database has no connection free; retry shortly.",
                                               type_slug="database-saturated", headers={"Retry-After": "2"}),
                            request)


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error (domain, HTTP, validation, unexpected) to problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized", 403: "forbidden",
                 413: "payload-too-large"}.get(
            exc.status_code, "http-error"
        )
        detail = exc.detail if isinstance(exc.detail, str) else None
        problem = Problem(detail, status=exc.status_code, type_slug=slug, headers=dict(exc.headers or {}))
        return problem_response(problem, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors, total = _validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        problem = Unprocessable(detail or "The request is not valid.", errors=errors)
        if total > len(errors):
            problem.extensions["errors_omitted"] = total - len(errors)
            problem.detail = f"{problem.detail} (and {total - len(errors):,} more errors not listed)"
        return problem_response(problem, request)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if lost_to_contention(exc):  # a transient contention, not a fault: the client retries, as with any 503
            log.warning("database busy", path=str(request.url.path), error=str(exc.orig)[:200])
            return problem_response(ServiceUnavailable("The database is busy; retry shortly.", type_slug="busy",
                                                       headers={"Retry-After": "1"}), request)
        if _saturated(exc):
            return _database_saturated(request, exc)
        if _unreachable(exc):
            return _database_down(request, exc)
        return await _unexpected(request, exc)

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        return _database_saturated(request, exc)

    # asyncpg's own errors, when a connection is opened outside SQLAlchemy's pool (which wraps them).
    @app.exception_handler(asyncpg.TooManyConnectionsError)
    @app.exception_handler(asyncpg.ConfigurationLimitExceededError)
    async def _refused_by_server(request: Request, exc: asyncpg.PostgresError) -> JSONResponse:
        return _database_saturated(request, exc)

    @app.exception_handler(asyncpg.CannotConnectNowError)
    async def _starting_or_stopping(request: Request, exc: asyncpg.PostgresError) -> JSONResponse:
        return _database_down(request, exc)

    @app.exception_handler(ConnectionError)
    async def _connection_error(request: Request, exc: ConnectionError) -> JSONResponse:
        # asyncpg raises ConnectionRefusedError / ConnectionResetError unwrapped while PostgreSQL restarts.
        return _database_down(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # This handler runs outside the middlewares, after the correlation id was unbound: bind it again
        # so the log line and the response still carry it.
        from shared.observability import CORRELATION_ID_HEADER, bind_correlation_id

        correlation_id = getattr(request.state, "correlation_id", None)
        with bind_correlation_id(correlation_id) as bound:
            log.error("unhandled error", path=str(request.url.path), exc_info=exc)
        problem = Problem("An unexpected error occurred; it has been logged.", status=500, type_slug="internal",
                          headers={CORRELATION_ID_HEADER: bound}, correlation_id=bound)
        return problem_response(problem, request)
