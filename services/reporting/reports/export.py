"""The flat exports of a report table: CSV (UTF-8 with a BOM, so Excel shows Thai), Parquet and XLSX.

Numbers stay numbers: counts as integers, ratios as decimals written out in full (never `1e-06`), money with two
decimals (Parquet decimal(14,2); XLSX a number formatted `#,##0.00`). Headers are the column names, or with
`lang=th` their Thai labels (CSV and XLSX; Parquet always the names). A text cell a spreadsheet would run as a
formula is written as text (CSV: a leading `'`; XLSX: a string cell).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from openpyxl import Workbook
from openpyxl.cell.cell import Cell, MergedCell

if TYPE_CHECKING:
    from services.reporting.reports.table import Column, Lang, Table

_ARROW = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "money": pa.decimal128(14, 2),
          "date": pa.string(), "bool": pa.bool_()}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # not allowed in an XLSX cell
MONEY_FORMAT = "#,##0.00"
DISCLOSURE_NOTE = {
    "en": "Empty figure cells are hidden by disclosure control (small counts, and enough other cells that they "
          "cannot be worked out); figures built from a hidden count are hidden with it. Callers with "
          "reporting:detail see every cell.",
    "th": "ช่องตัวเลขที่ว่างถูกปิดไว้เพื่อคุ้มครองข้อมูลส่วนบุคคล (จำนวนน้อย และช่องอื่นที่พอจะใช้คำนวณย้อนกลับได้) "
          "ตัวเลขที่คำนวณจากช่องที่ปิดก็ถูกปิดด้วย ผู้มีสิทธิ์ reporting:detail เห็นทุกช่อง",
}


def plain(value: Any) -> Any:
    """A cell as JSON gives it: money as a string with two decimals, everything else as it is."""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value


def decimal_text(value: float) -> str:
    """A float written out in full, without exponent notation: 1e-06 → 0.000001, 2.0 → 2."""
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def header(column: Column, lang: Lang) -> str:
    return (column.label_th or column.name) if lang == "th" else column.name


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return decimal_text(value)
    text = str(plain(value))
    # A spreadsheet would run a cell starting with = + - @ as a formula (CSV injection): make it text.
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_bytes(columns: Sequence[Column], rows: Sequence[dict[str, Any]], lang: Lang) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header(c, lang) for c in columns])
    for r in rows:
        writer.writerow([_csv_cell(r.get(c.name)) for c in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def parquet_bytes(table: Table, columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> bytes:
    as_of = table.as_of.isoformat() if table.as_of else ""
    schema = pa.schema([pa.field(c.name, _ARROW[c.kind]) for c in columns],
                       metadata={"as_of": as_of, "report": table.name})
    arrays = {c.name: [None if r.get(c.name) is None else (str(r[c.name]) if c.kind == "date" else r[c.name])
                       for r in rows] for c in columns}
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pydict(arrays, schema=schema), sink)
    return sink.getvalue()


def _xlsx_cell(cell: Cell | MergedCell, column: Column | None, value: Any) -> None:
    if value is None or isinstance(cell, MergedCell):
        return
    if isinstance(value, str):
        cell.value = _ILLEGAL.sub("", value)
        cell.data_type = "s"  # never a formula, whatever it starts with
        if value.startswith(_FORMULA_START):
            cell.quotePrefix = True
        return
    cell.value = str(value) if column is not None and column.kind == "date" else value
    if column is not None and column.kind == "money":
        cell.number_format = MONEY_FORMAT


def xlsx_bytes(table: Table, columns: Sequence[Column], rows: Sequence[dict[str, Any]], lang: Lang) -> bytes:
    """A workbook: the table on the first sheet (header row, rows, the total last), and an "about" sheet with
    the report's name, parameters, as_of, the number of hidden cells and the disclosure note."""
    book = Workbook(write_only=False)
    data = book.active
    assert data is not None
    data.title = table.name[:31]
    data.append([header(c, lang) for c in columns])
    for i, r in enumerate(rows, start=2):
        for j, c in enumerate(columns, start=1):
            _xlsx_cell(data.cell(row=i, column=j), c, r.get(c.name))
    data.freeze_panes = "A2"
    about = book.create_sheet("about")
    th = lang == "th"
    facts: list[tuple[str, Any]] = [("รายงาน" if th else "report", table.name),
                                    *((key, value) for key, value in table.params.items()),
                                    ("ข้อมูล ณ" if th else "as_of", table.as_of.isoformat() if table.as_of else ""),
                                    ("จำนวนช่องที่ปิด" if th else "suppressed_cells", table.suppressed),
                                    ("หมายเหตุ" if th else "disclosure", DISCLOSURE_NOTE[lang])]
    for i, (key, value) in enumerate(facts, start=1):
        _xlsx_cell(about.cell(row=i, column=1), None, key)
        _xlsx_cell(about.cell(row=i, column=2), None, value)
    sink = io.BytesIO()
    book.save(sink)
    return sink.getvalue()
