"""Report tables: JSON, CSV (with a BOM) and Parquet, chosen by `format` or by Accept; CSV exports neutralise cells
a spreadsheet would run as a formula (CSV injection); numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq
import pytest

from services.reporting.reports.table import Column, Table, respond
from tests.kit.apps import problem
from tests.kit.reporting import Reporting
from tests.reporting.support import four_households


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


@pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)
async def test_formats(reporting: Reporting) -> None:
    await four_households(reporting)
    params = {"area": "40", "level": "district", "survey_year": 2565}
    as_csv = await reporting.client.get("/v1/reports/poverty", params=params | {"format": "csv"},
                                        headers=reporting.detail)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.content.startswith("\ufeff".encode())  # the BOM: Excel reads the Thai names right
    text = as_csv.content.decode("utf-8-sig")
    header, *lines = text.splitlines()
    assert header.split(",")[:4] == ["row", "area_code", "area_name_th", "area_name_en"]
    assert "4001,เมืองขอนแก่น,Mueang Khon Kaen,3,9" in text and lines[-1].startswith("total,40,ขอนแก่น")
    assert as_csv.headers["kaenkhun-as-of"]
    by_accept = await reporting.client.get("/v1/reports/poverty", params=params,
                                           headers=reporting.detail | {"Accept": "text/csv"})
    assert by_accept.content == as_csv.content

    as_parquet = await reporting.client.get("/v1/reports/poverty", params=params,
                                            headers=reporting.detail | {"Accept": "application/vnd.apache.parquet"})
    assert as_parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(as_parquet.content))
    assert table.schema.metadata[b"report"] == b"poverty"
    records = {r["area_code"]: r for r in table.to_pylist()}
    assert records["4001"]["area_name_th"] == "เมืองขอนแก่น" and records["40"]["row"] == "total"
    assert records["40"]["MPI"] == 0.25 and records["4001"]["target_poor_persons"] == 5

    money = await reporting.client.get("/v1/reports/assistance", params={"area": "40", "fiscal_year": 2565,
                                                                          "format": "parquet"},
                                       headers=reporting.detail)
    assert str(pq.read_table(io.BytesIO(money.content)).schema.field("grant_amount").type) == "decimal128(14, 2)"
    problem(await reporting.client.get("/v1/reports/poverty", params=params | {"format": "xlsx"},
                                       headers=reporting.detail), 422)
