"""Schemathesis against each service's OpenAPI document, over real HTTP: no 500, no response that breaks
the schema (status codes, content types, bodies, headers), for generated valid and invalid requests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services import load
from shared import migrations
from shared.auth import issue_token
from shared.broker import free_port
from shared.db import create_engine
from tests.apps import make_settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES = 25
# The operations each service has at least (so a schema that lost its routes fails).
OPERATIONS = {"registry": 20, "assessment": 8, "assistance": 20, "reporting": 7}


async def _migrate(service: str, url: str) -> None:
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine, load(service).SPEC.migrations_dir)
    finally:
        await engine.dispose()


class Server:
    def __init__(self, service: str, url: str, token: str) -> None:
        self.service, self.url, self.token = service, url, token


@pytest.fixture(scope="module", params=list(OPERATIONS))
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The service under uvicorn in a thread (SQLite, bus off), migrated; the registry with a household."""
    service: str = request.param
    folder: Path = tmp_path_factory.mktemp(f"schema-{service}")
    port = free_port()
    settings_ = make_settings(service, f"sqlite+aiosqlite:///{folder / 'service.db'}", "127.0.0.1:1",
                              run_bus=False, port=port, data_dir=folder)
    asyncio.run(_migrate(service, settings_.db_url))
    app = load(service).create_app(settings_)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, f"{service} did not start"
        time.sleep(0.05)
    token = issue_token(settings_.auth, client_id="schemathesis", scopes=["*"], areas=["*"])
    headers = {"Authorization": f"Bearer {token}"}
    body = {"address": {"subdistrict_code": "400101", "village_no": 3, "house_no": "12/3"}, "sources": ["tpmap"],
            "welfare_card": True, "members": [{"citizen_id": "1101700203450", "title": "นาง", "first_name": "สมหญิง",
                                               "last_name": "ใจดี", "sex": "female", "birth_date": "1970-05-01",
                                               "relation": "head"}]}
    if service == "registry":
        assert httpx.post(f"{url}/v1/households", json=body, headers=headers).status_code == 201
    yield Server(service, url, token)
    server.should_exit = True
    thread.join(15)


def test_each_api_keeps_its_contract(server: Server) -> None:
    """Every operation, valid and invalid generated requests (Hypothesis), checked against the schema.

    (Driven by hand: schemathesis's pytest plugin does not load under pytest 9.)
    """
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {server.token}"}
    failures: list[str] = []
    # /readyz answers 503 by design while the broker is off (as here): readiness is tested elsewhere.
    operations = [op for result in schema.get_all_operations() if (op := result.ok()).path != "/readyz"]
    assert len(operations) >= OPERATIONS[server.service]
    for operation in operations:
        for mode in GenerationMode:
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate])
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=server.url, checks=CHECKS, headers=headers)

            try:
                check()
            except Unsatisfiable:
                continue  # no invalid request exists for this operation (e.g. no parameters at all)
            except Exception as exc:  # collect them all, then fail with the list
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:1500])
    assert not failures, "\n\n".join(failures)
