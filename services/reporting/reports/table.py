"""A report is a table: typed columns, rows by area (or month) and a total row. This module hides the cells
that disclosure control chose (`disclosure`, for callers without `reporting:detail`: `disclose`, the one step
every report passes) and writes the table as JSON, CSV (UTF-8 with a BOM, so Excel shows Thai), Parquet or
XLSX (`export`). JSON keeps the parameters as top-level keys and `rows` apart from `total`; the flat formats
carry the parameters that identify the cut as leading columns of every row (`fiscal_year`, `survey_year`,
`level`, `parent_area`: files of several years append), then `is_total` (true on the one total row, the last).

Every figure column says how it is published: a count (hidden where its pattern says), a figure that follows
counts (a ratio, money: hidden wherever one of them is) or an administrative figure published exactly (areas,
teams, centres, budgets allocated). A column that says none of these cannot be built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response

from services.reporting.reports import export
from services.reporting.security import DETAIL
from shared.auth import Principal

Kind = Literal["str", "int", "float", "money", "date", "bool"]
Format = Literal["json", "csv", "parquet", "xlsx"]
Lang = Literal["en", "th"]
PARQUET = "application/vnd.apache.parquet"
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

FormatParam = Annotated[Format | None, Query(alias="format", description="json (default), csv, parquet or xlsx; "
                                                                         "or ask by Accept")]
LangParam = Annotated[Lang, Query(description="the header language of CSV and XLSX: en (machine names, default) "
                                              "or th (Thai labels); JSON and Parquet always use the names")]
# The responses of a route that answers with a table (its OpenAPI document).
FORMATS: dict[int | str, dict[str, Any]] = {200: {"content": {CSV: {}, PARQUET: {}, XLSX: {}},
                                                  "description": "JSON by default; CSV, Parquet or XLSX on request"}}


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
    # The header of the column in Thai exports (`lang=th`); the name where none is given.
    label_th: str = ""

    def __post_init__(self) -> None:
        if self.kind != "str" and (self.count, bool(self.follows), self.exact).count(True) != 1:
            raise ValueError(f"column {self.name}: say how it is published (count, follows or exact)")


def count_column(name: str, description: str, label_th: str = "") -> Column:
    return Column(name, "int", description, count=True, label_th=label_th)


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

        def counts_under(column: Column) -> frozenset[str]:
            """The count columns a column is hidden with: itself, or those it follows (through any depth)."""
            if column.count:
                return frozenset({column.name})
            return frozenset().union(*(counts_under(by_name[name]) for name in column.follows))

        # Resolved once for the table, not per cell: a province by village is tens of thousands of cells.
        patterns: dict[str, frozenset[str]] = {}

        def pattern(name: str) -> frozenset[str]:
            if name not in patterns:
                patterns[name] = hidden[name]
            return patterns[name]

        guarded = [(c.name, counts_under(c)) for c in self.columns if c.count or c.follows]
        blanked = 0
        for cell in (*self.rows, self.total):
            key = cell["_key"]
            shown = [(name, under) for name, under in guarded if cell.get(name) is not None]
            if whole(key):
                gone = {count for count in frozenset().union(*(under for _, under in shown)) if key in pattern(count)}
                shown = [(name, under) for name, under in shown if not gone.isdisjoint(under)]
            for name, _ in shown:
                cell[name] = None
            blanked += len(shown)
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
    if XLSX in accept:
        return "xlsx"
    if CSV in accept:
        return "csv"
    return "json"


# The parameters that identify a table's cut, as the leading columns of every row of a flat export (CSV,
# Parquet, XLSX), so the files of several years or levels can be appended; then `is_total`.
DIMENSIONS = (
    ("fiscal_year", Column("fiscal_year", "int", "fiscal year (B.E.) of the report", exact=True,
                           label_th="ปีงบประมาณ (พ.ศ.)")),
    ("survey_year", Column("survey_year", "int", "survey year (B.E.) of the report", exact=True,
                           label_th="ปีสำรวจ (พ.ศ.)")),
    ("level", Column("level", "str", "level of the rows: province, district, subdistrict or village",
                     label_th="ระดับพื้นที่")),
    ("area", Column("parent_area", "str", "DOPA code of the area asked for (the total row's area)",
                    label_th="รหัสพื้นที่ที่เลือก")),
)
IS_TOTAL = Column("is_total", "bool", "false on the rows, true on the one total row (the last)", exact=True,
                  label_th="แถวรวม")


def flat(table: Table) -> tuple[list[Column], list[dict[str, Any]]]:
    """The table as one list of rows: the dimension columns, `is_total`, then the report's columns; the rows,
    then the total (is_total true)."""
    dimensions = [(column, table.params[param]) for param, column in DIMENSIONS if param in table.params]
    columns = [column for column, _ in dimensions] + [IS_TOTAL, *table.columns]
    leading = {column.name: value for column, value in dimensions}
    rows = [{**leading, **r, "is_total": False} for r in table.rows]
    return columns, [*rows, {**leading, **table.total, "is_total": True}]


def respond(table: Table, fmt: Format, lang: Lang = "en") -> Response:
    """The table as JSON (with its parameters), CSV, Parquet or XLSX; `Kaenkhun-As-Of` on every format."""
    as_of = table.as_of.isoformat() if table.as_of else None
    headers = {"Kaenkhun-As-Of": as_of or "", "Kaenkhun-Suppressed-Cells": str(table.suppressed),
               "Cache-Control": "no-store"}
    if fmt == "json":
        names = [c.name for c in table.columns]
        document = {"report": table.name, **table.params, "as_of": as_of, "suppressed_cells": table.suppressed,
                "rows": [{n: export.plain(r.get(n)) for n in names} for r in table.rows],
                "total": {n: export.plain(table.total.get(n)) for n in names}}
        return JSONResponse(document, headers=headers)
    columns, rows = flat(table)
    filename = f"{table.name}-{'-'.join(str(v) for v in table.params.values() if v is not None)}"
    if fmt == "csv":
        body, media_type = export.csv_bytes(columns, rows, lang), "text/csv; charset=utf-8"
    elif fmt == "xlsx":
        body, media_type = export.xlsx_bytes(table, columns, rows, lang), XLSX
    else:
        body, media_type = export.parquet_bytes(table, columns, rows), PARQUET
    return Response(body, media_type=media_type,
                    headers=headers | {"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'})
