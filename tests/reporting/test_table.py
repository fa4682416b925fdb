"""Report tables: JSON, CSV (with a BOM), Parquet and XLSX, chosen by `format` or by Accept. The flat formats lead
every row with the cut's dimensions and mark the total with `is_total`; Thai headers with `lang=th`; numbers stay
numbers (never in exponent notation) and money has two decimals; cells a spreadsheet would run as a formula are
text (CSV and formula injection)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from services.reporting.reports.export import decimal_text
from services.reporting.reports.table import XLSX, Column, Table, respond
from tests.kit.apps import problem
from tests.kit.reporting import Reporting
from tests.reporting.support import a_fiscal_year, four_households

HOSTILE = ["=HYPERLINK(\"http://x\",\"คลิก\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "บ้าน =1"]


def hostile_table() -> Table:
    columns = (Column("area_name_th", "str", "name", label_th="ชื่อพื้นที่"),
               Column("households", "int", "count", count=True, label_th="ครัวเรือน"),
               Column("share", "float", "a small ratio", exact=True),
               Column("balance", "money", "baht", exact=True))
    rows = [{"area_name_th": name, "households": -1, "share": 1e-06, "balance": None} for name in HOSTILE]
    total = {"area_name_th": "รวม", "households": 0, "share": 2.5e-05, "balance": Decimal("1234567.50")}
    return Table("t", columns, rows, total, datetime(2022, 3, 1, tzinfo=UTC), {"area": "40", "survey_year": 2565})


def test_cells_that_start_a_formula_are_written_as_text() -> None:
    response = respond(hostile_table(), "csv")
    body = bytes(response.body).decode("utf-8-sig")
    read = list(csv.reader(io.StringIO(body)))
    assert read[0] == ["survey_year", "parent_area", "is_total", "area_name_th", "households", "share", "balance"]
    names = [r[3] for r in read[1:-1]]
    assert names == ["'" + h for h in HOSTILE[:-1]] + ["บ้าน =1"]  # text, exactly as given after the quote
    assert {r[4] for r in read[1:-1]} == {"-1"}  # a negative number is a number, not a formula
    assert {r[5] for r in read[1:-1]} == {"0.000001"} and read[-1][5] == "0.000025"  # never 1e-06
    assert read[-1][:3] == ["2565", "40", "true"] and read[-1][6] == "1234567.50"
    assert {r[2] for r in read[1:-1]} == {"false"}


def test_the_workbook_keeps_text_as_text_numbers_as_numbers_and_says_what_it_is() -> None:
    book = load_workbook(io.BytesIO(bytes(respond(hostile_table(), "xlsx", "th").body)))
    data, about = book.worksheets
    rows = list(data.iter_rows(values_only=True))
    assert rows[0] == ("ปีสำรวจ (พ.ศ.)", "รหัสพื้นที่ที่เลือก", "แถวรวม", "ชื่อพื้นที่", "ครัวเรือน", "share", "balance")
    # The text as it is, never a formula (XML reads a carriage return as a line feed).
    assert [r[3] for r in rows[1:-1]] == [h.replace("\r", "\n") for h in HOSTILE]
    assert all(data.cell(row=i, column=4).data_type == "s" for i in range(2, len(rows)))
    assert rows[-1] == (2565, "40", True, "รวม", 0, 2.5e-05, 1234567.5)
    assert data.cell(row=len(rows), column=7).number_format == "#,##0.00"
    facts = {r[0]: r[1] for r in about.iter_rows(values_only=True)}
    assert facts["รายงาน"] == "t" and facts["survey_year"] == 2565 and facts["ข้อมูล ณ"].startswith("2022-03-01")
    assert facts["จำนวนช่องที่ปิด"] == 0 and "reporting:detail" in facts["หมายเหตุ"]


def test_ratios_are_written_out_in_full() -> None:
    assert [decimal_text(v) for v in (1e-06, 0.25, 2.0, 0.0, 123456.5, 1.5e-10)] == [
        "0.000001", "0.25", "2", "0", "123456.5", "0.00000000015"]


def test_a_figure_column_must_say_how_it_is_published() -> None:
    with pytest.raises(ValueError, match="say how it is published"):
        Column("grant_amount", "money", "baht")
    with pytest.raises(ValueError, match="say how it is published"):
        Column("families", "int", "count", count=True, exact=True)


@pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)
async def test_formats(reporting: Reporting) -> None:
    ids = await four_households(reporting)
    params = {"area": "40", "level": "district", "survey_year": 2565}
    as_csv = await reporting.client.get("/v1/reports/poverty", params=params | {"format": "csv"},
                                        headers=reporting.detail)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.content.startswith("\ufeff".encode())  # the BOM: Excel reads the Thai names right
    text = as_csv.content.decode("utf-8-sig")
    header, *lines = text.splitlines()
    assert header.split(",")[:7] == ["survey_year", "level", "parent_area", "is_total", "area_code", "area_name_th",
                                     "area_name_en"]
    assert "2565,district,40,false,4001,เมืองขอนแก่น,Mueang Khon Kaen,3,9" in text
    assert lines[-1].startswith("2565,district,40,true,40,ขอนแก่น") and len(lines) == 27
    assert "deprived_health" in header and "target_poor_persons_income" in header
    assert as_csv.headers["kaenkhun-as-of"]
    by_accept = await reporting.client.get("/v1/reports/poverty", params=params,
                                           headers=reporting.detail | {"Accept": "text/csv"})
    assert by_accept.content == as_csv.content
    thai = await reporting.client.get("/v1/reports/poverty", params=params | {"format": "csv", "lang": "th"},
                                      headers=reporting.detail)
    assert thai.content.decode("utf-8-sig").splitlines()[0].startswith(
        "ปีสำรวจ (พ.ศ.),ระดับพื้นที่,รหัสพื้นที่ที่เลือก,แถวรวม,รหัสพื้นที่,ชื่อพื้นที่")
    assert thai.content.decode("utf-8-sig").splitlines()[1:] == lines  # only the header changes

    as_parquet = await reporting.client.get("/v1/reports/poverty", params=params | {"lang": "th"},
                                            headers=reporting.detail | {"Accept": "application/vnd.apache.parquet"})
    assert as_parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(as_parquet.content))
    assert table.schema.metadata[b"report"] == b"poverty"
    assert table.schema.names[:4] == ["survey_year", "level", "parent_area", "is_total"]  # names, whatever lang
    records = {r["area_code"]: r for r in table.to_pylist()}
    assert records["4001"]["area_name_th"] == "เมืองขอนแก่น" and records["40"]["is_total"] is True
    assert records["4001"]["is_total"] is False and records["4001"]["survey_year"] == 2565
    assert records["40"]["MPI"] == 0.25 and records["4001"]["target_poor_persons"] == 5
    assert records["4001"]["deprived_health"] == 1 and records["40"]["target_poor_persons_income"] == 8

    await a_fiscal_year(reporting, ids)
    money = await reporting.client.get("/v1/reports/assistance", params={"area": "40", "fiscal_year": 2565,
                                                                          "format": "parquet"},
                                       headers=reporting.detail)
    money_table = pq.read_table(io.BytesIO(money.content))
    assert str(money_table.schema.field("grant_amount").type) == "decimal128(14, 2)"
    assert money_table.schema.names[:5] == ["fiscal_year", "survey_year", "level", "parent_area", "is_total"]
    problem(await reporting.client.get("/v1/reports/poverty", params=params | {"format": "docx"},
                                       headers=reporting.detail), 422)
    problem(await reporting.client.get("/v1/reports/poverty", params=params | {"lang": "fr"},
                                       headers=reporting.detail), 422)


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_the_workbook_holds_the_json_figures(reporting: Reporting) -> None:
    ids = await four_households(reporting)
    await a_fiscal_year(reporting, ids)
    for path, params in (("poverty", {"survey_year": 2565}), ("assistance", {"fiscal_year": 2565}),
                         ("mpi-decomposition", {"survey_year": 2565})):
        params |= {"area": "40", "level": "district"}
        body = await reporting.report(path, **params)
        response = await reporting.client.get(f"/v1/reports/{path}", params=params,
                                              headers=reporting.detail | {"Accept": XLSX})
        assert response.status_code == 200 and response.headers["content-type"] == XLSX
        assert response.headers["content-disposition"].endswith('.xlsx"')
        sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
        header, *rows = list(sheet.iter_rows(values_only=True))
        read = [dict(zip(header, row, strict=True)) for row in rows]
        assert [r["is_total"] for r in read] == [False] * len(body["rows"]) + [True]
        for got, expected in zip(read, [*body["rows"], body["total"]], strict=True):
            assert got["level"] == "district" and got["parent_area"] == "40"
            for name, value in expected.items():
                if isinstance(value, str) and name in ("grant_amount", "subsidy_amount", "budget_allocated",
                                                       "budget_used"):
                    assert Decimal(str(got[name])) == Decimal(value)  # money: a number, not text
                    assert isinstance(got[name], int | float)
                else:
                    assert got[name] == (value if value != "" else None), (path, name)


def test_every_report_column_has_a_thai_header() -> None:
    from services.reporting.dictionary import REPORTS
    from services.reporting.reports.table import DIMENSIONS, IS_TOTAL

    columns = [c for _, _, report in REPORTS for c in report] + [c for _, c in DIMENSIONS] + [IS_TOTAL]
    assert [c.name for c in columns if not c.label_th] == []
