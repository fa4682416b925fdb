"""How the reports are served while events keep coming (services.reporting.reports.publication): from the newest
tree computed, with its own `as_of`, while one computation at a time runs beside the requests; `Cache-Control:
no-cache` waits for the read models as they are (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from services.reporting.reports import publication
from tests.kit.reporting import Reporting
from tests.reporting.support import A, B, four_households

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)

POVERTY = {"area": "40", "level": "district", "survey_year": 2565}


async def served(reporting: Reporting, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await reporting.client.get("/v1/reports/poverty", params=POVERTY,
                                          headers=reporting.detail | (headers or {}))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["Kaenkhun-As-Of"] == (body["as_of"] or "")
    return body


async def test_a_report_answers_from_the_newest_tree_while_the_next_is_computed(
        reporting: Reporting, monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[str] = []  # the thread each computation summed in
    real = publication._sum_survey

    def spy(*args: Any) -> Any:
        computed.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(publication, "_sum_survey", spy)
    await four_households(reporting)
    # Ten callers at once, nothing computed yet: they all wait for one computation.
    first = await asyncio.gather(*(served(reporting) for _ in range(10)))
    assert len(computed) == 1 and computed[0] != threading.main_thread().name  # summed off the event loop
    assert {r["total"]["households"] for r in first} == {4}
    as_of = first[0]["as_of"]

    # A new household: the next answer is the tree before, with its own as_of, and a computation starts.
    await reporting.registered(B, 2)
    stale = await served(reporting)
    assert (stale["total"]["households"], stale["as_of"]) == (4, as_of)
    for _ in range(200):  # the computation beside the requests ends; then the reports show the household
        now = await served(reporting)
        if now["total"]["households"] == 5:
            break
        await asyncio.sleep(0.02)
    assert now["total"]["households"] == 5 and now["as_of"] > as_of
    assert len(computed) == 2

    # No events since: the same tree, nothing computed.
    assert (await served(reporting))["total"] == now["total"] and len(computed) == 2

    # A caller that must see what it just wrote asks with no-cache, and waits for it.
    await reporting.registered(A, 1)
    fresh = await served(reporting, {"Cache-Control": "no-cache"})
    assert fresh["total"]["households"] == 6 and fresh["as_of"] > now["as_of"]


async def test_a_failed_computation_is_logged_and_the_next_request_tries_again(
        reporting: Reporting, monkeypatch: pytest.MonkeyPatch) -> None:
    await four_households(reporting)
    assert (await served(reporting))["total"]["households"] == 4
    real, failures = publication._sum_survey, [1]

    def failing_once(*args: Any) -> Any:
        if failures:
            failures.pop()
            raise RuntimeError("the database went away")
        return real(*args)

    monkeypatch.setattr(publication, "_sum_survey", failing_once)
    await reporting.registered(B, 2)
    assert (await served(reporting))["total"]["households"] == 4  # the tree before; its computation fails
    for _ in range(200):
        if (await served(reporting))["total"]["households"] == 5:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("no computation after the failed one")
    assert not failures
