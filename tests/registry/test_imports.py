"""Bulk import over HTTP: mixed good and bad rows, re-import creates nothing, bad files fail clearly."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from services.registry.imports.schemas import COLUMNS
from services.registry.models import ImportJob
from shared.db import transaction
from tests.kit import apps
from tests.kit.apps import problem
from tests.kit.registry import ALL, Registry, citizen_id

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "samples" / "households.csv"
HEAD = {"title": "นาย", "first_name": "ประเสริฐ", "last_name": "ศรีสุข", "sex": "male", "birth_date": "1965-03-01",
        "relation": "head", "disability": "false"}


def row(key: str, cid: str, **overrides: Any) -> dict[str, Any]:
    values = {"household_key": key, "subdistrict_code": "400101", "village_no": "5", "house_no": "7/1", "lat": "",
              "lon": "", "sources": "tpmap;vulnerable", "welfare_card": "true", "citizen_id": cid} | HEAD
    return values | overrides


def csv_bytes(rows: list[dict[str, Any]], *, bom: bool = True, columns: tuple[str, ...] = COLUMNS) -> bytes:
    return apps.csv_bytes(rows, columns, bom=bom)


async def run_import(registry: Registry, content: bytes, headers: dict[str, str] | None = None,
                     ) -> dict[str, Any]:
    return await apps.run_import(registry.app, registry.client, "/v1/imports", content, headers or registry.admin)


async def test_import_keeps_good_households_and_reports_bad_rows(registry: Registry) -> None:
    rng = random.Random(5)
    ids = [citizen_id(rng) for _ in range(12)]
    bad_check = ids[5][:-1] + str((int(ids[5][-1]) + 1) % 10)
    rows = [
        row("H1", ids[0]), row("H1", ids[1], relation="spouse", first_name="บุญเรือน", sex="female"),
        row("H2", ids[2], subdistrict_code="400102", village_no="2"),
        row("H3", ids[3]), row("H3", ids[4], relation="head"),                       # two heads: rejected
        row("H4", bad_check),                                                          # check digit: rejected
        row("H5", ids[6], subdistrict_code="409999"),                                  # unknown sub-district
        row("H6", ids[7], birth_date="2565-13-01"),                                    # bad date
        row("H7", ids[8], relation="child", first_name="ด.ช. ภูมิ"), row("H7", ids[9]),  # head second: fine
        row("H8", ids[10], welfare_card="maybe"),
    ]
    job = await run_import(registry, csv_bytes(rows))
    assert job["status"] == "done", job
    assert (job["rows"], job["households_created"], job["persons_created"], job["rows_rejected"]) == (11, 3, 5, 6)
    problems = {(e["row"], e["column"]) for e in job["errors"]}
    assert (7, "citizen_id") in problems                  # H4 is on row 7 (header is row 1)
    assert (8, "subdistrict_code") in problems
    assert (9, "birth_date") in problems
    assert (12, "welfare_card") in problems
    assert any(e["row"] == 5 and "exactly one head" in e["message"] for e in job["errors"])
    listed = (await registry.client.get("/v1/households", params={"q": "ภูมิ"}, headers=registry.admin)).json()
    [h7] = listed["items"]
    assert [m["first_name"] for m in h7["members"]] == ["ด.ช. ภูมิ", "ประเสริฐ"]
    assert h7["sources"] == ["tpmap", "vulnerable"]
    assert [t for t, _k, _d in await registry.events()] == ["household.registered"] * 3

    again = await run_import(registry, csv_bytes(rows))
    assert (again["households_created"], again["persons_created"], again["households_unchanged"]) == (0, 0, 3)
    assert [t for t, _k, _d in await registry.events()] == ["household.registered"] * 3


async def test_an_imported_person_already_elsewhere_is_rejected(registry: Registry) -> None:
    cid = registry.cid()
    await registry.register()  # unrelated
    existing = (await registry.register(
        {"address": {"subdistrict_code": "400101", "village_no": 1, "house_no": "1"}, "sources": ["tpmap"],
         "welfare_card": False, "members": [{"citizen_id": cid, "title": "นาง", "first_name": "ก", "last_name": "ข",
                                             "sex": "female", "birth_date": "1980-01-01", "relation": "head"}]})).json()
    job = await run_import(registry, csv_bytes([row("N1", registry.cid()), row("N1", cid, relation="spouse")]))
    assert job["households_created"] == 0 and job["rows_rejected"] == 2
    assert any(existing["id"] in e["message"] for e in job["errors"])
    # An importer who cannot see that household is told the same as POST /v1/households tells it: not its id.
    ban_fang = registry.as_(*ALL, areas=("4002",), client_id="ban-fang")
    job = await run_import(registry, csv_bytes([row("B1", cid, subdistrict_code="400201")]), ban_fang)
    assert [e["message"] for e in job["errors"]] == ["already in an open household"]
    audit = (await registry.client.get("/v1/audit", params={"client_id": "ban-fang"},
                                       headers=registry.as_("audit:read"))).json()["items"]
    assert [(e["action"], e["household_id"]) for e in audit] == [("registration_conflict", existing["id"])]


async def test_rows_outside_the_importers_areas_are_rejected(registry: Registry) -> None:
    mueang = registry.as_(*ALL, areas=("4001",), client_id="mueang")
    job = await run_import(registry, csv_bytes([row("A", registry.cid()),
                                                row("B", registry.cid(), subdistrict_code="400201")]), mueang)
    assert (job["households_created"], job["rows_rejected"]) == (1, 1)
    assert "outside" in job["errors"][0]["message"]
    other = registry.as_(*ALL, areas=("4002",), client_id="someone-else")
    problem(await registry.client.get(f"/v1/imports/{job['id']}", headers=other), 404)
    everywhere = registry.as_(*ALL, areas=("*",), client_id="province-admin")  # not even a client of every area
    problem(await registry.client.get(f"/v1/imports/{job['id']}", headers=everywhere), 404)
    problem(await registry.client.get(f"/v1/imports/{job['id']}/errors", headers=everywhere), 404)


async def test_bad_files_fail_clearly(registry: Registry) -> None:
    wrong_header = await run_import(registry, csv_bytes([row("A", registry.cid())], columns=COLUMNS[:-1]))
    assert wrong_header["status"] == "failed"
    assert "missing columns: disability" in wrong_header["errors"][0]["message"]
    not_utf8 = await run_import(registry, csv_bytes([row("A", registry.cid())], bom=False).decode().encode("tis-620"))
    assert not_utf8["status"] == "failed" and "UTF-8" in not_utf8["failure"]
    short = csv_bytes([row("A", registry.cid())], bom=False) + b"A,400101\r\n"
    job = await run_import(registry, short)
    assert job["households_created"] == 1 and job["errors"][0]["row"] == 3
    response = await registry.client.post("/v1/imports", files={"file": ("e.csv", b"", "text/csv")},
                                          headers=registry.admin)
    problem(response, 400)


async def test_an_imports_progress_grows_to_100_with_an_estimate_of_the_time_left(registry: Registry) -> None:
    rng = random.Random(23)
    rows = []
    for n in range(9):  # households of 1-3 people
        rows += [row(f"P{n}", citizen_id(rng), house_no=f"{n}/1", relation="head" if i == 0 else "child")
                 for i in range(n % 3 + 1)]
    content = csv_bytes(rows)
    steps, final = await apps.run_import_in_steps(registry.app, registry.client, "/v1/imports", content,
                                                  registry.admin, chunk=2)
    assert [s["status"] for s in steps] == ["running"] * 5  # 9 households, 2 a chunk
    progress = [s["progress"] for s in steps]
    # Before the first chunk is committed there is nothing to measure a rate by.
    assert progress[0] == {"percent": 0.0, "bytes_done": 0, "eta_s": None}
    done = [p["bytes_done"] for p in progress]
    assert done == sorted(set(done)) and done[-1] < len(content)  # grows with each chunk, never past the file
    for p, step in zip(progress[1:], steps[1:], strict=True):
        assert p["percent"] == int(1000 * p["bytes_done"] / len(content)) / 10 and 0 < p["percent"] < 100
        assert isinstance(p["eta_s"], int) and p["eta_s"] >= 0
        assert content[:p["bytes_done"]].endswith(b"\r\n")  # whole lines of the file
        assert step["rows"] == content[:p["bytes_done"]].count(b"\r\n") - 2  # less the header and the row read ahead
    assert final["status"] == "done" and final["persons_created"] == len(rows)
    assert final["progress"] == {"percent": 100.0, "bytes_done": len(content), "eta_s": 0}
    async with transaction(registry.app.state.sessionmaker) as session:
        job = await session.get(ImportJob, final["id"])
        assert job is not None and job.bytes_done == len(content)  # as stored: every byte counted, once

    wrong_header = await run_import(registry, csv_bytes([row("A", registry.cid())], columns=COLUMNS[:-1]))
    assert wrong_header["status"] == "failed"
    assert wrong_header["progress"] == {"percent": 0.0, "bytes_done": 0, "eta_s": None}


async def test_lat_and_lon_are_optional_columns(registry: Registry) -> None:
    without = tuple(c for c in COLUMNS if c not in ("lat", "lon"))
    cid, other = registry.cid(), registry.cid()
    job = await run_import(registry, csv_bytes([row("A", cid), row("B", other, house_no="8/2")], columns=without))
    assert (job["status"], job["households_created"], job["errors"]) == ("done", 2, []), job
    listed = (await registry.client.get("/v1/households", headers=registry.admin)).json()["items"]
    assert {(h["address"]["lat"], h["address"]["lon"]) for h in listed} == {(None, None)}
    # With the columns, a value is still checked; without the other required ones the file fails.
    job = await run_import(registry, csv_bytes([row("C", registry.cid(), lat="99")]))
    assert [(e["row"], e["column"]) for e in job["errors"]] == [(2, "lat")]
    job = await run_import(registry, csv_bytes([row("D", registry.cid())], columns=without[:-1]))
    assert job["status"] == "failed" and "missing columns: disability" in job["errors"][0]["message"]


async def test_a_buddhist_era_birth_date_gets_a_hint_on_its_row(registry: Registry) -> None:
    job = await run_import(registry, csv_bytes([row("A", registry.cid()), row("B", registry.cid(),
                                                                              birth_date="2525-05-01")]))
    assert (job["status"], job["households_created"], job["rows_rejected"]) == ("done", 1, 1), job
    [error] = job["errors"]
    assert (error["row"], error["column"]) == (3, "birth_date")
    assert "looks like a Buddhist-era year (2525); dates are in the Christian era (1982): 1982-05-01" in (
        error["message"])


async def test_the_readme_sample_file_imports_cleanly(registry: Registry) -> None:
    job = await run_import(registry, SAMPLE.read_bytes())  # noqa: ASYNC240 - a small test file
    assert (job["status"], job["households_created"], job["persons_created"], job["errors"]) == ("done", 3, 6, [])
    listed = (await registry.client.get("/v1/households", params={"q": "ณัฐณิชา"}, headers=registry.admin)).json()
    [home] = listed["items"]
    assert home["address"]["lat"] == 16.4419 and home["sources"] == ["tpmap"]
    assert [m["relation"] for m in home["members"]] == ["head", "spouse", "child"]


async def test_a_contact_phone_is_an_optional_column(registry: Registry) -> None:
    without = tuple(c for c in COLUMNS if c != "phone")
    job = await run_import(registry, csv_bytes([row("A", registry.cid())], columns=without))
    assert (job["status"], job["households_created"], job["errors"]) == ("done", 1, []), job
    job = await run_import(registry, csv_bytes([row("B", registry.cid(), house_no="8/2", phone="+66 81 234 5678"),
                                                row("C", registry.cid(), house_no="9/9", phone="081-234-567")]))
    assert (job["households_created"], [(e["row"], e["column"]) for e in job["errors"]]) == (1, [(3, "phone")]), job
    listed = (await registry.client.get("/v1/households", headers=registry.admin)).json()["items"]
    assert sorted(m["phone"] or "" for h in listed for m in h["members"]) == ["", "081-234-5678"]


async def test_on_postgresql_a_job_leaves_the_statistics_of_what_it_wrote_up_to_date(registry: Registry) -> None:
    """Households, members and their outbox events are written in bulk, faster than autovacuum notices (where it
    runs at all): the job ANALYZEs them as it goes and once more at its end, so that what runs on them afterwards
    (the relay's queries on the outbox) is not planned for the empty tables they were."""
    from sqlalchemy import text

    from shared.db import transaction

    if registry.app.state.sessionmaker.kw["bind"].dialect.name != "postgresql":
        pytest.skip("PostgreSQL's statistics")
    registry.app.state.imports.chunk = 2  # 5 households: 3 chunks, the last written after the job's last ANALYZE
    rows = [row(f"H{n}", registry.cid(), house_no=f"{n}/1") for n in range(5)]
    job = await run_import(registry, csv_bytes(rows))
    assert (job["status"], job["households_created"]) == ("done", 5), job
    async with transaction(registry.app.state.sessionmaker) as session:
        believed = dict((await session.execute(text(
            "SELECT relname, reltuples FROM pg_class WHERE relname IN ('household', 'member', 'outbox') "
            "AND relkind = 'r'"))).all())
    assert believed == {"household": 5, "member": 5, "outbox": 5}


async def test_on_postgresql_a_chunk_looks_people_and_keys_up_through_the_indexes_whatever_the_statistics(
        registry: Registry) -> None:
    """A big file grows the household and member tables far beyond what PostgreSQL's statistics last said of them
    (the job analyzes them at its end, not as they grow): each chunk still finds who is registered already, and
    which keys are taken, through the indexes and never by reading the whole tables (for a chunk's hundreds of
    people, the planner's guess from statistics of empty tables is most of the rows). Here the statistics are
    from when the tables were empty, and 20,000 households of two went in since."""
    from sqlalchemy import text

    from tests.kit.plans import table_scans

    engine = registry.app.state.sessionmaker.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE household, member"))  # empty
        await conn.execute(text(
            "INSERT INTO household (id, province_code, district_code, subdistrict_code, village_no, village_code, "
            "house_no, source_tpmap, source_exclusion_error, source_vulnerable, source_other, welfare_card, status, "
            "household_key, version, created_at, updated_at) SELECT 'h' || i, '40', '4001', '400101', 5, "
            "'40010105', i::text, true, false, false, false, false, 'open', 'K' || i, 1, now(), now() "
            "FROM generate_series(1, 20000) AS i"))
        await conn.execute(text(
            "INSERT INTO member (id, household_id, position, citizen_id_enc, citizen_id_hash, title, first_name, "
            "last_name, first_name_key, last_name_key, sex, birth_date, relation, disability, active, created_at) "
            "SELECT 'm' || i, 'h' || (i / 2 + 1), i % 2 + 1, 'x', md5(i::text) || md5(i::text), 'นาย', 'ก', 'ข', "
            "'ก', 'ข', 'male', date '1970-01-01', 'head', false, true, now() FROM generate_series(0, 39999) AS i"))
    registry.app.state.imports.analyze = ()  # its ANALYZE at the end, which names the tables, is not a query
    for table, keys in (("member", range(300)), ("household", range(300, 600))):  # a chunk's worth each
        file = [row(f"N{n}", registry.cid(), house_no=f"{n}/1") for n in keys]
        jobs: list[dict[str, Any]] = []

        async def run(file: list[dict[str, Any]] = file, jobs: list[dict[str, Any]] = jobs) -> None:
            jobs.append(await run_import(registry, csv_bytes(file)))

        explained, scans = await table_scans(engine, table, run)
        assert (jobs[0]["status"], jobs[0]["households_created"]) == ("done", len(file)), jobs
        assert explained >= 1 and scans == [], (table, explained, scans)


async def test_the_household_key_is_kept_shown_and_carried_in_the_events(registry: Registry) -> None:
    first, second, third = registry.cid(), registry.cid(), registry.cid()
    job = await run_import(registry, csv_bytes([row("KK-0001", first), row("KK-0002", second, house_no="8")]))
    assert (job["households_created"], job["errors"]) == (2, []), job
    listed = (await registry.client.get("/v1/households", headers=registry.admin)).json()["items"]
    assert sorted(h["household_key"] for h in listed) == ["KK-0001", "KK-0002"]
    by_key = {h["household_key"]: h["id"] for h in listed}
    shown = (await registry.client.get(f"/v1/households/{by_key['KK-0001']}", headers=registry.admin)).json()
    assert shown["household_key"] == "KK-0001"
    assert sorted((t, k, d["household_key"]) for t, k, d in await registry.events()) == sorted(
        ("household.registered", household_id, key) for key, household_id in by_key.items())

    # The same file again changes nothing; a new household under a key another has is refused, on its first row,
    # as is a household whose people have another key already, and a key that appears twice in one file.
    again = await run_import(registry, csv_bytes([row("KK-0001", first), row("KK-0002", second, house_no="8")]))
    assert (again["households_created"], again["households_unchanged"], again["errors"]) == (0, 2, [])
    clash = await run_import(registry, csv_bytes([
        row("KK-0001", third, house_no="9"), row("KK-0009", first),
        row("KK-0100", registry.cid(), house_no="10"), row("KK-0101", registry.cid(), house_no="11"),
        row("KK-0100", registry.cid(), house_no="12"),
    ]))
    assert (clash["households_created"], clash["rows_rejected"]) == (2, 3), clash
    assert [(e["row"], e["column"]) for e in clash["errors"]] == [
        (2, "household_key"), (3, "household_key"), (6, "household_key")]
    messages = [e["message"] for e in clash["errors"]]
    assert f"the key 'KK-0001' already belongs to another household (household {by_key['KK-0001']})" == messages[0]
    assert "has the key 'KK-0001'" in messages[1] and "'KK-0100' already belongs" in messages[2]
    # Outside the importer's areas, the household holding the key is not named.
    ban_fang = registry.as_(*ALL, areas=("4002",), client_id="ban-fang")
    job = await run_import(registry, csv_bytes([row("KK-0002", registry.cid(), subdistrict_code="400201")]),
                           ban_fang)
    assert [e["message"] for e in job["errors"]] == ["the key 'KK-0002' already belongs to another household"]
    too_long = await run_import(registry, csv_bytes([row("K" * 65, registry.cid())]))
    assert [(e["row"], e["column"], e["message"]) for e in too_long["errors"]][0] == (
        2, "household_key", "at most 64 characters")


async def test_importing_again_gives_a_household_registered_without_a_key_its_key(registry: Registry) -> None:
    cid = registry.cid()
    body = {"address": {"subdistrict_code": "400101", "village_no": 5, "house_no": "7/1"}, "sources": ["tpmap"],
            "welfare_card": True, "members": [{"citizen_id": cid, "title": "นาย", "first_name": "ประเสริฐ",
                                               "last_name": "ศรีสุข", "sex": "male", "birth_date": "1965-03-01",
                                               "relation": "head"}]}
    household = (await registry.register(body)).json()
    assert household["household_key"] is None
    job = await run_import(registry, csv_bytes([row("OLD-7", cid)]))
    assert (job["households_created"], job["households_unchanged"], job["errors"]) == (0, 1, []), job
    shown = (await registry.client.get(f"/v1/households/{household['id']}", headers=registry.admin)).json()
    assert (shown["household_key"], shown["version"]) == ("OLD-7", 2)
    [*_, (kind, key, data)] = await registry.events()
    assert (kind, key, data["household_key"], data["changed"], data["version"]) == (
        "household.updated", household["id"], "OLD-7", ["household_key"], 2)
    again = await run_import(registry, csv_bytes([row("OLD-7", cid)]))
    assert (again["households_unchanged"], again["errors"]) == (1, [])
    assert len(await registry.events()) == 2
