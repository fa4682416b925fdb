"""One way to page through every list: `GET …?limit=&cursor=` answers `{"items": [...], "next_cursor": ...}`.

- `limit` is bounded (1 to the list's maximum; its default when absent);
- `next_cursor` is opaque; pass it back as `cursor` for the next page; it is null on the last page;
- each list keeps its own documented order (name, newest first, …): a page starts after the row the cursor names,
  by that row's sort key (keyset pagination, so pages neither skip nor repeat rows when others are added);
- a cursor this API did not give out is 400 (`bad-cursor`).

Lists that are the service's own configuration (its programmes, its indicator sets) come whole, in the same
envelope, with `next_cursor` null.
"""

# No `from __future__ import annotations`: FastAPI must resolve the closure's Query() annotations at runtime,
# and a string annotation naming a local variable (`maximum`) cannot be resolved.
import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, cast

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Integer, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import BadRequest
from shared.ids import decode_cursor, encode_cursor

T = TypeVar("T")
Q = TypeVar("Q")  # a Select (of rows or of ORM objects), returned as the same type
CURSOR_DESCRIPTION = "the `next_cursor` of the previous page"


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


@dataclass(frozen=True)
class PageRequest:
    """The `cursor` as the client sent it (None: the first page) and the bounded `limit`."""

    cursor: str | None
    limit: int


def page_request(default: int = 100, maximum: int = 1000) -> Any:
    """A dependency reading `limit` (1..maximum, default `default`) and `cursor`, as every list does."""

    async def read(limit: Annotated[int, Query(ge=1, le=maximum, description=f"at most {maximum}")] = default,
                   cursor: Annotated[str | None, Query(max_length=200, description=CURSOR_DESCRIPTION)] = None,
                   ) -> PageRequest:
        return PageRequest(cursor=cursor, limit=limit)

    return Depends(read)


PageDep = Annotated[PageRequest, page_request()]


async def keyset(session: AsyncSession, query: Q, *, order: Sequence[Any],
                 id_column: Any, page: PageRequest, descending: bool = False) -> Q:
    """`query` ordered by `order` then the id (all ascending, or all descending; the keys must not be NULL, as
    SQLite and PostgreSQL sort NULLs differently), starting after the row the cursor names, taking one row more
    than the page (so the caller knows whether another page follows)."""
    keys = [*order, id_column]
    if (last_id := decode_cursor(page.cursor)) is not None:
        after: str | int = int(last_id) if isinstance(id_column.type, Integer) else last_id
        # The anchor row is looked up under the list's own filters (the caller's areas among them): a cursor made
        # up from the id of a row the caller cannot see is refused like any other, and places nothing.
        anchor = (await session.execute(cast(Any, query).with_only_columns(*keys).where(id_column == after)
                                        .limit(1))).first()
        if anchor is None:
            raise BadRequest("The cursor is not one this API gave out.", type_slug="bad-cursor")
        query = cast(Any, query).where(_after(keys, tuple(anchor), descending))
    ordered = [k.desc() for k in keys] if descending else keys
    return cast(Q, cast(Any, query).order_by(*ordered).limit(page.limit + 1))


async def fetch_page(session: AsyncSession, query: Any, *, order: Sequence[Any], id_column: Any, page: PageRequest,
                     descending: bool = False) -> tuple[list[Any], str | None]:
    """A page of the ORM objects `query` selects, in the order of `keyset`, and the next cursor (the id of the
    last, when more follow)."""
    rows = (await session.execute(await keyset(session, query, order=order, id_column=id_column, page=page,
                                               descending=descending))).scalars().all()
    return page_of(rows, page, lambda row: getattr(row, id_column.key))


def _after(keys: Sequence[ColumnElement[Any]], values: tuple[Any, ...], descending: bool) -> ColumnElement[bool]:
    """Rows after `values` in the order of `keys`: (k1 > v1) or (k1 = v1 and k2 > v2) or …"""
    return or_(*(and_(*(keys[j] == values[j] for j in range(i)), keys[i] < values[i] if descending else
                      keys[i] > values[i]) for i in range(len(keys))))


def page_of(rows: Sequence[T], page: PageRequest, id_of: Callable[[T], str | int]) -> tuple[list[T], str | None]:
    """The rows of the page (at most `page.limit`) and the next cursor (the last row's, when more follow)."""
    items = list(rows[:page.limit])
    return items, encode_cursor(id_of(items[-1])) if len(rows) > page.limit and items else None


async def filtered_page(session: AsyncSession, query: Q, *, order: Sequence[Any], id_column: Any,
                        page: PageRequest, keep: Callable[[Any], bool], id_of: Callable[[Any], Any],
                        ) -> tuple[list[Any], str | None]:
    """A page of the rows `keep` accepts, for lists whose last filter is not SQL (e.g. areas held as a JSON list):
    rows are read in the list's order, a batch at a time, until the page is full or the rows run out."""
    if (last_id := decode_cursor(page.cursor)) is not None:  # the cursor's row must be one the caller may see
        anchor = (await session.execute(cast(Any, query).where(id_column == last_id))).scalars().first()
        if anchor is None or not keep(anchor):
            raise BadRequest("The cursor is not one this API gave out.", type_slug="bad-cursor")
    kept: list[Any] = []
    cursor = page.cursor
    while len(kept) <= page.limit:
        batch = PageRequest(cursor=cursor, limit=max(page.limit, 100))
        ordered: Any = await keyset(session, query, order=order, id_column=id_column, page=batch)
        rows = (await session.execute(ordered)).scalars().all()
        kept.extend(row for row in rows[:batch.limit] if keep(row))
        if len(rows) <= batch.limit:
            break
        cursor = encode_cursor(id_of(rows[batch.limit - 1]))
    return page_of(kept, page, id_of)


def encode_key(values: Sequence[str]) -> str:
    """A cursor for lists keyed by values rather than a row id (e.g. groups of probable duplicates)."""
    return base64.urlsafe_b64encode(json.dumps(list(values), ensure_ascii=False).encode()).decode().rstrip("=")


def decode_key(cursor: str | None, arity: int) -> tuple[str, ...] | None:
    """The values an `encode_key` cursor stands for; 400 (bad-cursor) for anything else."""
    if cursor is None:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        values = None
    if not (isinstance(values, list) and len(values) == arity and all(isinstance(v, str) for v in values)):
        raise BadRequest("The cursor is not one this API gave out.", type_slug="bad-cursor")
    return tuple(values)
