"""Problem answers (shared.errors) for a database that is busy or out of reach: 503 with Retry-After, never 500."""

from __future__ import annotations

from shared.errors import install_problem_handlers
from tests.kit.observability import client_for, make_app


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


async def test_no_connection_to_be_had_answers_503_database_saturated() -> None:
    """PostgreSQL refusing one more connection, as SQLAlchemy wraps it or as asyncpg raises it itself, and a pool
    that stayed full: 503 `database-saturated` with Retry-After (tests/platform/test_replicas.py does it for real);
    PostgreSQL starting or stopping (57P03) stays `database-unavailable`."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    app = make_app()
    install_problem_handlers(app)

    class TooMany(Exception):
        sqlstate = "53300"

    @app.get("/wrapped")
    async def wrapped() -> None:
        raise DBAPIError("connect", {}, TooMany('too many connections for role "kaenkhun"'))

    @app.get("/raw")
    async def raw() -> None:
        raise asyncpg.TooManyConnectionsError("sorry, too many clients already")

    @app.get("/pool")
    async def pool() -> None:
        raise PoolTimeout("QueuePool limit of size 4 overflow 1 reached, connection timed out, timeout 15.00")

    @app.get("/starting")
    async def starting() -> None:
        raise asyncpg.CannotConnectNowError("the database system is starting up")

    async with client_for(app) as client:
        for path in ("/wrapped", "/raw", "/pool"):
            response = await client.get(path)
            assert response.status_code == 503 and response.headers["retry-after"] == "2", path
            assert response.json()["type"].endswith("/database-saturated"), path
        starting_up = await client.get("/starting")
        assert starting_up.status_code == 503 and starting_up.json()["type"].endswith("/database-unavailable")
