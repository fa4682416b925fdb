"""A report is a table: typed columns, rows by area (or month) and a total row. This module suppresses its
small cells and writes it as JSON, CSV (UTF-8 with a BOM, so Excel shows Thai) or Parquet.

Suppression (for callers without `reporting:detail`): a count from 1 to the threshold is hidden (primary);
where a column then hides exactly one cell while its total shows, the smallest other non-zero cell of the
column is hidden too, so the total minus the cells shown cannot reveal it (secondary). A ratio or a sum of
money is hidden wherever a count it depends on is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Request
from fastapi.responses import JSONResponse, Response

Kind = Literal["str", "int", "float", "money", "date"]
Format = Literal["json", "csv", "parquet"]
PARQUET = "application/vnd.apache.parquet"
CSV = "text/csv"
_ARROW = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "money": pa.decimal128(14, 2),
          "date": pa.string()}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str
    # For counts: suppressed when small. For money and ratios: the counts that hide it.
    count: bool = False
    follows: tuple[str, ...] = ()


@dataclass
class Table:
    name: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    as_of: datetime | None
    params: dict[str, Any] = field(default_factory=dict)
    suppressed: int = 0

    def suppress(self, threshold: int) -> None:
        """Hide small counts, their complements and what follows them (see the module's docstring)."""
        cells = [*self.rows, self.total]
        hidden: set[tuple[int, str]] = set()
        for column in (c for c in self.columns if c.count):
            for i, cell in enumerate(cells):
                value = cell.get(column.name)
                if isinstance(value, int) and 1 <= value <= threshold:
                    hidden.add((i, column.name))
            total_at = len(cells) - 1
            in_rows = [i for i in range(total_at) if (i, column.name) in hidden]
            if len(in_rows) == 1 and (total_at, column.name) not in hidden:
                others = sorted((cells[i][column.name], i) for i in range(total_at)
                                if i not in in_rows and cells[i].get(column.name))
                hidden.add((others[0][1], column.name) if others else (total_at, column.name))
        for column in (c for c in self.columns if c.follows):
            for i in range(len(cells)):
                if any((i, name) in hidden for name in column.follows):
                    hidden.add((i, column.name))
        for i, name in hidden:
            cells[i][name] = None
        self.suppressed = len(hidden)


def choose_format(request: Request, asked: Format | None) -> Format:
    """`?format=` first, then the Accept header; JSON by default."""
    if asked is not None:
        return asked
    accept = request.headers.get("accept", "")
    if PARQUET in accept or "application/x-parquet" in accept:
        return "parquet"
    if CSV in accept:
        return "csv"
    return "json"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = _plain(value) if not isinstance(value, float) else repr(value)
    text = str(text)
    # A spreadsheet would run a cell starting with = + - @ as a formula (CSV injection): make it text.
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def respond(table: Table, fmt: Format) -> Response:
    """The table as JSON (with its parameters), CSV or Parquet; `Kaenkhun-As-Of` on every format."""
    as_of = table.as_of.isoformat() if table.as_of else None
    headers = {"Kaenkhun-As-Of": as_of or "", "Kaenkhun-Suppressed-Cells": str(table.suppressed),
               "Cache-Control": "no-store"}
    names = [c.name for c in table.columns]
    if fmt == "json":
        body = {"report": table.name, **table.params, "as_of": as_of, "suppressed_cells": table.suppressed,
                "rows": [{n: _plain(r.get(n)) for n in names} for r in table.rows],
                "total": {n: _plain(table.total.get(n)) for n in names}}
        return JSONResponse(body, headers=headers)
    everything = [*({**r, "row": "area"} for r in table.rows), {**table.total, "row": "total"}]
    filename = f"{table.name}-{'-'.join(str(v) for v in table.params.values() if v is not None)}"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["row", *names])
        for r in everything:
            writer.writerow([r["row"], *(_csv_cell(r.get(n)) for n in names)])
        return Response(("\ufeff" + out.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                        headers=headers | {"Content-Disposition": f'attachment; filename="{filename}.csv"'})
    schema = pa.schema([pa.field("row", pa.string()), *(pa.field(c.name, _ARROW[c.kind]) for c in table.columns)],
                       metadata={"as_of": as_of or "", "report": table.name})
    arrays = {"row": [r["row"] for r in everything]}
    for c in table.columns:
        arrays[c.name] = [None if r.get(c.name) is None else (str(r[c.name]) if c.kind == "date" else r[c.name])
                          for r in everything]
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pydict(arrays, schema=schema), sink)
    return Response(sink.getvalue(), media_type=PARQUET,
                    headers=headers | {"Content-Disposition": f'attachment; filename="{filename}.parquet"'})
