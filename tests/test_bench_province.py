"""bench/province.py's synthetic Khon Kaen at a tiny fraction: its two files as written, cell by cell (citizen IDs
valid by python-stdnum and distinct, one household per key, the areas real), then through the real import jobs
(the registry's and the assessment service's apps in-process, on SQLite): every row accepted, the counts exact.
No time is measured."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest
from stdnum.th import pin

from bench.province import SURVEY_YEAR, Province, write_files
from shared import areas
from shared.events.assessment import ASSESSMENT_RECORDED
from shared.events.registry import HOUSEHOLD_REGISTERED
from tests.kit.apps import run_import
from tests.kit.assessment import Assessment
from tests.kit.registry import Registry

PROVINCE = Province(fraction=0.0003)  # 106 households, 342 persons


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def test_the_files_hold_the_fraction_exactly_with_valid_distinct_ids_and_one_household_per_key(
        tmp_path: Path) -> None:
    files = write_files(PROVINCE, tmp_path)
    people, assessed = _rows(files.registry), _rows(files.assessments)
    assert (files.households, files.persons) == (PROVINCE.households, PROVINCE.persons) == (106, 342)
    assert len(people) == files.persons

    ids = [p["citizen_id"] for p in people]
    assert all(pin.is_valid(cid) for cid in ids)
    assert len(set(ids)) == len(ids)
    keys = [key for key, _ in itertools.groupby(p["household_key"] for p in people)]  # a household's rows together
    assert len(keys) == len(set(keys)) == files.households
    assert [a["household_key"] for a in assessed] == keys  # one assessment per household, by its key
    assert {a["survey_year"] for a in assessed} == {str(SURVEY_YEAR)}
    for person in people:
        village = areas.find(f"{person['subdistrict_code']}{int(person['village_no']):02d}")
        assert village is not None and village.code.startswith("40")

    (tmp_path / "again").mkdir()
    again = write_files(PROVINCE, tmp_path / "again")
    assert again.registry.read_bytes() == files.registry.read_bytes()  # seeded: the same province again
    assert again.assessments.read_bytes() == files.assessments.read_bytes()


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_both_files_go_through_the_imports_every_row_accepted(
        tmp_path: Path, registry: Registry, assessment: Assessment) -> None:
    files = write_files(PROVINCE, tmp_path)
    job = await run_import(registry.app, registry.client, "/v1/imports", files.registry.read_bytes(), registry.admin)
    assert (job["status"], job["rows_rejected"], job["households_created"], job["persons_created"]) == \
        ("done", 0, files.households, files.persons), job["errors"]

    # The registry's events reach the assessment service through its real consumer path, as over Kafka.
    registered = [data for kind, _, data in await registry.events() if kind == HOUSEHOLD_REGISTERED.name]
    assert len(registered) == files.households
    for n, data in enumerate(registered):
        await assessment.announce(data, offset=n)

    job = await run_import(assessment.app, assessment.client, "/v1/assessment-imports",
                           files.assessments.read_bytes(), assessment.admin)
    assert (job["status"], job["rows_rejected"], job["assessments_created"]) == ("done", 0, files.households), \
        job["errors"]
    recorded = [data for kind, _, data in await assessment.events() if kind == ASSESSMENT_RECORDED.name]
    assert sum(data["target_poor"] for data in recorded) == files.target_poor_households > 0
    assert sum(data["member_count"] for data in recorded if data["target_poor"]) == files.target_poor_persons
