"""CSV exports neutralise cells a spreadsheet would run as a formula (CSV injection); numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest

from services.reporting.tables import Column, Table, respond


def test_cells_that_start_a_formula_are_written_as_text() -> None:
    hostile = ["=HYPERLINK(\"http://x\",\"คลิก\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "บ้าน =1"]
    columns = (Column("area_name_th", "str", "name"), Column("households", "int", "count", count=True),
               Column("balance", "money", "baht", exact=True))
    rows = [{"row": "area", "area_name_th": name, "households": -1, "balance": None} for name in hostile]
    total = {"row": "total", "area_name_th": "รวม", "households": 0, "balance": None}
    response = respond(Table("t", columns, rows, total, None), "csv")
    body = bytes(response.body).decode("utf-8-sig")
    read = list(csv.reader(io.StringIO(body)))
    names = [r[1] for r in read[1:-1]]
    assert names == ["'" + h for h in hostile[:-1]] + ["บ้าน =1"]  # text, exactly as given after the quote
    assert {r[2] for r in read[1:-1]} == {"-1"}  # a negative number is a number, not a formula


def test_a_figure_column_must_say_how_it_is_published() -> None:
    with pytest.raises(ValueError, match="say how it is published"):
        Column("grant_amount", "money", "baht")
    with pytest.raises(ValueError, match="say how it is published"):
        Column("families", "int", "count", count=True, exact=True)
