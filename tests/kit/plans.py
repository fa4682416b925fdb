"""PostgreSQL's plans for what code sends: run it, then EXPLAIN (FORMAT JSON) each statement it sent on a table."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


async def table_scans(engine: AsyncEngine, table: str, run: Callable[[], Awaitable[object]]) -> tuple[int, list[str]]:
    """Run `run`, then EXPLAIN every statement it sent that names `table`, in one transaction in the order sent
    (its SETs run too, as SET LOCAL would in the code's own transaction): how many statements were explained, and
    the sequential scans of `table` in their plans, one line each."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        await run()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    explained, scans = 0, []
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        async with driver.transaction():
            for statement, parameters in sent:
                if statement.startswith("SET "):
                    await driver.execute(statement)
                elif table in statement:
                    found = await driver.fetchval("EXPLAIN (FORMAT JSON) " + statement, *parameters)
                    plan = (json.loads(found) if isinstance(found, str) else found)[0]["Plan"]
                    explained += 1
                    scans += [f"{node['Node Type']} in {' '.join(statement.split())[:80]}" for node in _nodes(plan)
                              if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == table]
    return explained, scans


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]
