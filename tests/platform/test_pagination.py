"""One pagination for every list (`shared/pagination.py`): read off the four OpenAPI documents, and keyset paging
checked on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, String, Table, insert

from ops.scratchdb import ScratchDatabases
from services import SERVICES, load
from shared.db import create_engine, new_metadata, read_transaction, sessionmaker, transaction
from shared.errors import BadRequest
from shared.pagination import PageRequest, keyset, page_of
from tests.kit.apps import make_settings

# Lists of the service's own configuration: whole, in the same envelope, without limit or cursor.
WHOLE = {"assessment GET /v1/indicator-sets", "assistance GET /v1/programmes"}


def _lists(tmp_path: Path) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every GET operation answering a list: label → (operation, its 200 response schema)."""
    found = {}
    for name in SERVICES:
        settings = make_settings(name, f"sqlite+aiosqlite:///{tmp_path / name}.db", "127.0.0.1:1")
        document = load(name).create_app(settings).openapi()
        schemas = document["components"]["schemas"]
        for path, operations in document["paths"].items():
            operation = operations.get("get")
            if operation is None:
                continue
            content = operation["responses"].get("200", {}).get("content", {}).get("application/json", {})
            schema = content.get("schema", {})
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            if schema.get("type") == "array" or "next_cursor" in schema.get("properties", {}):
                found[f"{name} GET {path}"] = (operation, schema)
    return found


def test_every_list_is_a_page_with_a_bounded_limit_and_a_cursor(tmp_path: Path) -> None:
    lists = _lists(tmp_path)
    assert len(lists) >= 12  # households, teams, areas, audit, duplicates, assessments, partners, centres, …
    bare = [label for label, (_, schema) in lists.items() if schema.get("type") == "array"]
    assert bare == []  # no list is a bare JSON array
    for label, (operation, schema) in lists.items():
        assert set(schema["properties"]) == {"items", "next_cursor"}, label
        params = {p["name"]: p for p in operation.get("parameters", [])}
        if label in WHOLE:
            assert not {"limit", "cursor"} & set(params), label
            continue
        assert {"limit", "cursor"} <= set(params), label
        limit = params["limit"]["schema"]
        limit = next((s for s in limit.get("anyOf", [limit]) if s.get("type") == "integer"), limit)
        assert limit.get("minimum") == 1 and limit.get("maximum"), label  # bounded


async def test_keyset_pages_neither_skip_nor_repeat_rows(databases: ScratchDatabases) -> None:
    """Rows with equal sort keys, paged two at a time in both directions, come out once each in order; rows added
    before the current position after a page was read do not shift the next page; a cursor of no row is 400."""
    metadata = new_metadata()
    table = Table("t", metadata, Column("id", String(36), primary_key=True), Column("name", String(50)),
                  Column("n", Integer))
    url = await databases.new("pages")
    engine = create_engine(url)
    read_engine = create_engine(url, read_only=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        maker, readers = sessionmaker(engine), sessionmaker(read_engine)
        rows = [{"id": f"00000000-0000-7000-8000-{i:012d}", "name": "ขอนแก่น" if i % 3 else "กาฬสินธุ์", "n": i % 2}
                for i in range(1, 12)]
        async with transaction(maker) as session:
            await session.execute(insert(table), rows)
        expected = sorted(rows, key=lambda r: (r["name"], r["n"], r["id"]))

        async def walk(descending: bool, limit: int) -> list[str]:
            seen: list[str] = []
            cursor = None
            while True:
                page = PageRequest(cursor=cursor, limit=limit)
                async with read_transaction(readers) as session:
                    query = await keyset(session, table.select(), order=[table.c.name, table.c.n],
                                         id_column=table.c.id, page=page, descending=descending)
                    found, cursor = page_of((await session.execute(query)).all(), page, lambda r: r.id)
                seen.extend(r.id for r in found)
                if cursor is None:
                    return seen

        assert await walk(False, 2) == [r["id"] for r in expected]
        assert await walk(True, 3) == [r["id"] for r in reversed(expected)]
        assert await walk(False, 100) == [r["id"] for r in expected]
        with pytest.raises(BadRequest):
            async with read_transaction(readers) as session:
                await keyset(session, table.select(), order=[table.c.name], id_column=table.c.id,
                             page=PageRequest(cursor="MDAwMDAwMDAtMDAwMC03MDAwLTgwMDAtOTk5OTk5OTk5OTk5", limit=2))
    finally:
        await read_engine.dispose()
        await engine.dispose()
