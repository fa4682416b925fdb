"""A straight request path, read off every route of the four apps (FastAPI's dependency tree, in the order
FastAPI calls it):

- the caller is known before a database session opens: a request without a valid token is turned away before it
  can hold a connection, or (on SQLite) queue for the one writer lock;
- a GET reads in a read session (no writer lock; the database refuses its writes), except the few GETs that
  write by design, named here with their reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute, _iter_included_route_candidates
from fastapi.security.base import SecurityBase

from services import SERVICES, load
from shared.app import db_read_session, db_session
from tests.kit.apps import make_settings

# GET routes that always write, and why (a GET that writes for some callers only, as an unmasked read writes
# its audit row, takes `shared.app.session_by_caller` instead).
GETS_THAT_WRITE: dict[str, str] = {
    "registry GET /v1/households/{household_id}/contact": "a partner's contact read writes its audit row, read or "
                                                           "refused",
}


def _opens_session(call: object) -> bool:
    return call in (db_session, db_read_session) or getattr(call, "chosen_by_caller", False)


def _calls(dependant: object) -> Iterator[object]:
    """The callables of a dependency tree in the order FastAPI calls them: each one's own dependencies first."""
    for sub in getattr(dependant, "dependencies", []):
        yield from _calls(sub)
        yield sub.call


def _routes(tmp_path: Path) -> Iterator[tuple[str, APIRoute]]:
    for name in SERVICES:
        settings = make_settings(name, f"sqlite+aiosqlite:///{tmp_path / name}.db", "127.0.0.1:1")
        # FastAPI keeps included routers whole; this is how it walks them to the routes it serves.
        for route in _iter_included_route_candidates(load(name).create_app(settings).routes):
            if isinstance(route, APIRoute):
                yield name, route


def _label(name: str, route: APIRoute) -> str:
    return f"{name} {','.join(sorted(route.methods))} {route.path}"


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, APIRoute]]:
    found = list(_routes(tmp_path_factory.mktemp("routes")))
    assert len(found) > 60  # the four apps' routes were read
    return found


def test_the_caller_is_known_before_a_session_opens(routes: list[tuple[str, APIRoute]]) -> None:
    late = []
    for name, route in routes:
        calls = list(_calls(route.dependant))
        token = next((i for i, call in enumerate(calls) if isinstance(call, SecurityBase)), None)
        session = next((i for i, call in enumerate(calls) if _opens_session(call)), None)
        if token is not None and session is not None and session < token:
            late.append(_label(name, route))
    assert late == []


def test_gets_read_in_a_read_session(routes: list[tuple[str, APIRoute]]) -> None:
    writing = sorted(_label(name, route) for name, route in routes
                     if route.methods == {"GET"} and db_session in _calls(route.dependant)
                     and _label(name, route) not in GETS_THAT_WRITE)
    assert writing == []
    read_only = [_label(name, route) for name, route in routes
                 if route.methods & {"POST", "PUT", "PATCH", "DELETE"} and db_read_session in _calls(route.dependant)]
    assert read_only == []
