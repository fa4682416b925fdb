"""A report is a table: typed columns, rows by area (or month) and a total row. This module hides the cells
that disclosure control chose (`disclosure`, for callers without `reporting:detail`: `disclose`, the one step
every report passes) and writes the table as JSON, CSV (UTF-8 with a BOM, so Excel shows Thai) or Parquet.

Every figure column says how it is published: a count (hidden where its pattern says), a figure that follows
counts (a ratio, money: hidden wherever one of them is) or an administrative figure published exactly (areas,
teams, centres, budgets allocated). A column that says none of these cannot be built.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response

from services.reporting.security import DETAIL
from shared.auth import Principal

Kind = Literal["str", "int", "float", "money", "date"]
Format = Literal["json", "csv", "parquet"]
PARQUET = "application/vnd.apache.parquet"
CSV = "text/csv"
_ARROW = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "money": pa.decimal128(14, 2),
          "date": pa.string()}

FormatParam = Annotated[Format | None, Query(alias="format", description="json (default), csv or parquet; "
                                                                         "or ask by Accept")]
# The responses of a route that answers with a table (its OpenAPI document).
FORMATS: dict[int | str, dict[str, Any]] = {200: {"content": {CSV: {}, PARQUET: {}},
                                                  "description": "JSON by default; CSV or Parquet on request"}}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str
    # For counts: hidden where disclosure control says. For money and ratios: the counts that hide it.
    count: bool = False
    follows: tuple[str, ...] = ()
    # Not about households or persons (areas, teams, centres, budgets allocated): published as it is.
    exact: bool = False

    def __post_init__(self) -> None:
        if self.kind != "str" and (self.count, bool(self.follows), self.exact).count(True) != 1:
            raise ValueError(f"column {self.name}: say how it is published (count, follows or exact)")


def count_column(name: str, description: str) -> Column:
    return Column(name, "int", description, count=True)


def ratio(value: Fraction | float) -> float:
    """A ratio as a report gives it: a float rounded to six places."""
    return round(float(value), 6)


@dataclass
class Table:
    name: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    as_of: datetime | None
    params: dict[str, Any] = field(default_factory=dict)
    suppressed: int = 0
    # A parameter that is a figure of the total (e.g. M0_exact): blanked with that cell of the total.
    params_follow: dict[str, str] = field(default_factory=dict)

    def protect(self, hidden: Mapping[str, frozenset[str]], whole: Callable[[str], bool]) -> None:
        """Blank the cells disclosure control hides. Each row (and the total) names its node in `_key`: a count
        is hidden where `hidden[column]` holds that node, or everywhere in a row that is not a whole node of the
        tree (`whole` false: an area the caller sees only part of); what follows counts is hidden with them."""
        by_name = {c.name: c for c in self.columns}

        def hides(column: Column, key: str) -> bool:
            if column.count:
                return not whole(key) or key in hidden[column.name]
            return any(hides(by_name[name], key) for name in column.follows)

        blanked = 0
        for cell in (*self.rows, self.total):
            key = cell["_key"]
            for column in self.columns:
                if (column.count or column.follows) and cell.get(column.name) is not None and hides(column, key):
                    cell[column.name] = None
                    blanked += 1
        for param, column_name in self.params_follow.items():
            if self.total.get(column_name) is None and self.params.get(param) is not None:
                self.params[param] = None
                blanked += 1
        self.suppressed = blanked


def disclose(table: Table, principal: Principal, hidden: Mapping[str, frozenset[str]],
             whole: Callable[[str], bool] | None = None) -> Table:
    """The one disclosure-control step: a caller without `reporting:detail` gets the table with the cells
    `hidden` names blanked, and every row that is not a whole node (an area it sees only part of) blanked too."""
    if not principal.has_scope(DETAIL):
        table.protect(hidden, whole or principal.can_see)
    return table


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
