"""Unknown query parameters are refused (shared/query.py) by every service, on every API route: 422 problem+json
naming each, before anything else is done; pages outside the API (docs, the dashboard, metrics) take any query.

No `from __future__ import annotations`: the routes below declare Annotated query parameters in a function."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel

from services import SERVICES, load
from shared.query import declared_query_parameters
from tests.kit.apps import make_settings, problem
from tests.kit.env import NO_BROKER

# A route of each service that takes query parameters, with one it takes.
LISTS = {"registry": ("/v1/households", "district"), "assessment": ("/v1/mpi", "survey_year"),
         "assistance": ("/v1/referrals", "status"), "reporting": ("/v1/reports/poverty", "survey_year")}


async def _client(name: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = load(name).create_app(make_settings(name, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", NO_BROKER))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


@pytest.mark.parametrize("name", SERVICES)
async def test_every_service_refuses_an_unknown_query_parameter(name: str, tmp_path: Path) -> None:
    async for client in _client(name, tmp_path):
        path, known = LISTS[name]
        body = problem(await client.get(path, params={known[:-1]: "1"}), 422)
        assert body["errors"] == [{"field": f"query.{known[:-1]}", "message": "unknown query parameter",
                                   "code": "unknown"}]
        assert known in body["detail"]  # the detail lists what the operation takes
        problem(await client.get("/healthz", params={"x": "1"}), 422)
        assert (await client.get("/healthz")).status_code == 200
        for page in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/metrics"):
            response = await client.get(page, params={"code": "c", "state": "s"})
            assert response.status_code == 200, (page, response.text[:200])


async def test_the_dashboard_page_takes_the_query_its_script_reads(tmp_path: Path) -> None:
    async for client in _client("reporting", tmp_path):
        response = await client.get("/dashboard", params={"area": "40", "survey_year": "2565", "lang": "th"})
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert (await client.get("/dashboard/assets/dashboard.js?v=3")).status_code == 200
        assert (await client.get("/?area=40")).status_code in (302, 307)


def test_declared_parameters_include_dependencies_aliases_and_query_models() -> None:
    class Filters(BaseModel):
        since: str | None = None
        until: str | None = None

    def paging(limit: int = 50, cursor: Annotated[str | None, Query(alias="after")] = None) -> None:
        return None

    def scoped(page: Annotated[None, Depends(paging)], area: Annotated[str, Query(alias="area_code")] = "40") -> None:
        return None

    app = FastAPI()

    @app.get("/x/{item}")
    def endpoint(item: str, _: Annotated[None, Depends(scoped)], filters: Annotated[Filters, Query()],
                 q: str = "") -> None:
        return None

    [route] = [r for r in app.routes if isinstance(r, APIRoute)]
    assert declared_query_parameters(route.dependant) == {"q", "limit", "after", "area_code", "since", "until"}
