"""Disclosure control, audited as a statistics office would: for each hidden cell, two linear programs over
every additive relation of the published cells (tests/reporting/audit.py). The interval an attacker learns for a
small count must contain 0 and threshold + 1."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reporting.disclosure import parent_of, protect, regrow, shape_of, tree_of, walk
from services.reporting.reports.publication import Tree
from tests.kit.reporting import Reporting
from tests.reporting.audit import Relation, intervals
from tests.reporting.support import A, C, by_area

T = 4


def random_province(rng: random.Random, sparse: float) -> dict[str, tuple[int, int]]:
    """(households, persons) by village, in a province of a few districts, sub-districts and villages."""
    villages: dict[str, tuple[int, int]] = {}
    for d in range(1, rng.randint(2, 5)):
        for s in range(1, rng.randint(2, 5)):
            for v in range(1, rng.randint(2, 7)):
                households = 0 if rng.random() < sparse else rng.choice([1, 1, 2, 3, 4, 5, 7, 12, 30])
                persons = households + sum(rng.randint(0, 4) for _ in range(households))
                villages[f"40{d:02d}{s:02d}{v:02d}"] = (households, persons)
    return villages


def audit(values: dict[str, tuple[int, ...]], hidden: set[str], width: int) -> list[str]:
    """Every way an attacker narrows a small cell below [0, T + 1], as text (empty: protected)."""
    kids: dict[str, list[str]] = {}
    for code in values:
        up = parent_of(code)
        if up in values:
            kids.setdefault(up, []).append(code)
    problems = []
    for j in range(width):
        relations = [Relation((j, p), tuple((j, k) for k in ks)) for p, ks in kids.items()]
        published = {(j, c): (None if c in hidden else v[j]) for c, v in values.items()}
        for (_, code), (low, high) in intervals(relations, published).items():
            small = any(1 <= v <= T for v in values[code])
            if small and (low > 1e-6 or high < T + 1 - 1e-6):
                problems.append(f"column {j}, {code} = {values[code][j]}: attacker learns [{low:g}, {high:g}]")
    return problems


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), sparse=st.sampled_from([0.0, 0.3, 0.6, 0.9]))
def test_no_small_count_is_narrowed_by_any_relation(seed: int, sparse: float) -> None:
    rng = random.Random(seed)
    values = tree_of(random_province(rng, sparse), (0, 0))
    hidden = protect(values, T)
    assert {c for c, v in values.items() if 1 <= v[0] <= T} <= hidden
    assert audit(values, hidden, 2) == []


def test_a_lone_small_village_takes_a_sibling_and_the_sub_district_its_own() -> None:
    # Sub-district 400101: villages 3 and 20 → the 3 needs a sibling that can give ≥ 2: the 20 goes too.
    values = tree_of({"40010101": (3,), "40010102": (20,), "40010201": (9,), "40010202": (8,)}, (0,))
    hidden = protect(values, T)
    assert {"40010101", "40010102"} <= hidden
    assert not {"400101", "4001", "40", "40010201", "40010202"} & hidden
    assert audit(values, hidden, 1) == []


def test_nothing_small_nothing_hidden_and_zero_is_shown() -> None:
    values = tree_of({"40010101": (0,), "40010102": (20,), "40010201": (9,)}, (0,))
    assert protect(values, T) == set()
    assert protect(tree_of({"40010101": (2,)}, (0,)), 0) == set()



@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), sparse=st.sampled_from([0.0, 0.3, 0.6]))
def test_after_a_change_the_tree_and_pattern_worked_from_the_previous_ones_are_the_fresh_ones(seed: int,
                                                                                               sparse: float) -> None:
    # What a report recomputes after an event: the sums regrown, the pattern chosen again from the previous walk.
    rng = random.Random(seed)
    before = random_province(rng, sparse)
    values = tree_of(before, (0, 0))
    done = walk(values, T, shape_of(values))
    for _ in range(5):
        after = dict(before)
        changed = rng.sample(sorted(after), min(len(after), rng.choice([1, 2, 3])))
        for code in changed:
            households = max(0, after[code][0] + rng.choice([-2, -1, 1, 1, 3]))
            after[code] = (households, households * 3)
        if rng.random() < 0.3:  # a household in a new village
            code = f"{rng.choice(sorted(before))[:6]}{rng.randint(50, 60)}"
            after[code], changed = (1, 2), [*changed, code]
        grown = regrow(values, before, after, (0, 0))
        assert grown == tree_of(after, (0, 0))
        moved = list(grown.keys() ^ values.keys())
        done = walk(grown, T, shape_of(grown), done, [*changed, *moved])
        assert done.hidden == protect(grown, T)
        before, values = after, grown

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), sparse=st.sampled_from([0.0, 0.3, 0.6]))
def test_a_reports_patterns_worked_from_the_previous_tree_are_the_fresh_ones(seed: int, sparse: float) -> None:
    # As a report works them out after each event (publication.Tree): the cells a pattern is chosen over and
    # its primary cells taken from the previous pattern where the facts did not change, the rest chosen again.
    rng = random.Random(seed)
    columns, zero = ("households", "persons", "welfare"), (0, 0, 0)
    groups = (("households", "persons"), ("welfare",))
    facts = {code: (h, p, h // 2) for code, (h, p) in random_province(rng, sparse).items()}
    previous: Tree | None = None
    for _ in range(5):
        sums = regrow(previous.counts, previous.facts, facts, zero) if previous is not None else None
        tree = Tree(columns, sums if sums is not None else tree_of(facts, zero), dict(facts))
        tree.protect(groups, T, previous=previous)
        fresh = Tree(columns, tree_of(facts, zero), dict(facts))
        fresh.protect(groups, T)
        assert {name: tree.hidden[name] for name in columns} == {name: fresh.hidden[name] for name in columns}
        previous, facts = tree, dict(facts)
        for code in rng.sample(sorted(facts), min(len(facts), rng.choice([1, 2, 3]))):
            households = max(0, facts[code][0] + rng.choice([-2, -1, 1, 1, 3]))
            facts[code] = (households, households * 3, facts[code][2] + rng.choice([0, 0, 1]))
        if rng.random() < 0.3:  # a household in a new village
            facts[f"{rng.choice(sorted(facts))[:6]}{rng.randint(50, 60)}"] = (1, 2, 1)


# --- The attacker: every public report of a province, at every level, every relation among them. -----------

RATIOS = {"H": ("poor_persons", "assessed_persons"), "A": ("poor_persons",),
          "MPI": ("poor_persons", "assessed_persons"), "M0": ("poor_persons", "assessed_persons"),
          "contribution": ("poor_persons", "assessed_persons"), "share": ("poor_persons", "assessed_persons"),
          "coverage": ("target_poor_helped", "target_poor_households"), "grant_amount": ("families_granted",),
          "subsidy_amount": ("centres_subsidised",),
          "budget_used": ("families_granted", "centres_subsidised")}
# Additive over the area tree; centres and their money are counted by sub-district (villages hold none).
BY_SUBDISTRICT = {"centres_subsidised", "subsidy_amount"}
NOT_ADDITIVE = {"area_code", "area_name_th", "area_name_en", "part", "code", "name_th", "name_en", "dimension",
                "budget_allocated", "budget_used", *RATIOS} - {"grant_amount", "subsidy_amount"}


async def a_province(reporting: Reporting, rng: random.Random) -> None:
    """Three districts, three sub-districts each, up to six villages each: households with every kind of small
    count (most on the welfare-card register), assessed, some paid (and some of those reversed), some helped,
    centres subsidised."""
    for district in ("4001", "4002", "4005"):
        for subdistrict in [f"{district}{n:02d}" for n in (1, 2, 3)]:
            if rng.random() < 0.5:
                for _ in range(rng.choice([1, 1, 2, 3])):
                    await reporting.subsidised(subdistrict, rng.choice(["10000.00", "15000.00"]))
            for village_no in range(1, rng.randint(2, 7)):
                village = f"{subdistrict}{village_no:02d}"
                for _ in range(rng.choice([0, 1, 1, 2, 3, 4, 5, 6, 9])):
                    persons = rng.randint(1, 5)
                    household = await reporting.registered(village, persons, welfare_card=rng.random() < 0.7)
                    deprived = tuple(d for d in ("health", "living", "education", "income", "access")
                                     if rng.random() < 0.3)
                    poor = len(deprived) >= 2
                    await reporting.assessed(household, village, persons, score=f"{len(deprived)}/5",
                                             failed={f"i{d}": "1/5" for d in deprived}, deprived=deprived,
                                             poor=poor, target_poor=bool(deprived),
                                             surveyed_on=rng.choice(["2022-01-15", "2022-02-11", "2022-03-07"]))
                    if rng.random() < 0.2:
                        await reporting.changed(household, village, rng.choice(["exited", "entered"]),
                                                survey_year=2565)
                    if deprived and rng.random() < 0.5:
                        paid = await reporting.paid(household, village,
                                                    paid_on=rng.choice(["2022-01-27", "2022-02-27", "2022-05-02"]))
                        if rng.random() < 0.15:
                            await reporting.reversed(paid, household, village)
                    if rng.random() < 0.2:
                        await reporting.helped(household, village, given_on="2022-03-01")
    await reporting.budget("40", "5000000.00")


class Published:
    """Every cell the public was shown, by (measure, area); a measure shown twice must be shown the same."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], Any] = {}
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def take(self, report: str, code: str, row: dict[str, Any]) -> None:
        self.rows.append((code, row))
        for measure, value in row.items():
            if measure in NOT_ADDITIVE or (measure in BY_SUBDISTRICT and len(code) == 8):
                continue
            key = (measure, code)
            assert self.cells.setdefault(key, value) == value, f"{report}: {key} shown as {value} and {self.cells[key]}"


async def download(reporting: Reporting, headers: dict[str, str]) -> Published:
    published = Published()
    first = await reporting.report("poverty", headers, area="40", level="village", survey_year=2565)
    villages = {row["area_code"] for row in first["rows"]}
    areas = sorted({"40", *{v[:4] for v in villages}, *{v[:6] for v in villages}, *villages})
    for area in areas:
        for level in [lv for lv, n in (("province", 2), ("district", 4), ("subdistrict", 6), ("village", 8))
                      if n >= len(area)]:
            poverty = await reporting.report("poverty", headers, area=area, level=level, survey_year=2565)
            money = await reporting.report("assistance", headers, area=area, level=level, fiscal_year=2565)
            mpi = await reporting.report("mpi-decomposition", headers, area=area, level=level, survey_year=2565)
            for body in (poverty, money):
                for row in body["rows"]:
                    published.take(body["report"], row["area_code"], row)
                published.take(body["report"], area, body["total"])
            for row in mpi["rows"]:
                if row["part"] == "area":
                    published.take("mpi", row["code"], row)
                else:  # an indicator's part is a figure of the whole area
                    published.rows.append((area, {f"indicator:{row['code']}": row["contribution"],
                                                  "poor_persons": mpi["total"]["poor_persons"],
                                                  "assessed_persons": mpi["total"]["assessed_persons"]}))
            published.take("mpi", area, mpi["total"])
            assert (mpi["M0_exact"] is None) == (mpi["total"]["M0"] is None)
    return published


async def test_the_public_reports_of_a_province_give_away_no_small_count(reporting: Reporting) -> None:
    await a_province(reporting, random.Random(2565))
    public = await download(reporting, {"Accept": "application/json"})  # no token: the public
    detail = await download(reporting, reporting.detail)
    assert set(public.cells) == set(detail.cells)

    # Derived figures: hidden wherever a count they are built from is.
    for code, row in public.rows:
        for name, sources in RATIOS.items():
            if name in row and any(row.get(s, 0) is None for s in sources):
                assert row[name] is None, f"{name} of {code} shown beside a hidden {sources}"
        for name, value in row.items():
            if name.startswith("indicator:") and (row["poor_persons"] is None or row["assessed_persons"] is None):
                assert value is None, f"{name} of {code} shown beside hidden counts"

    # Every additive relation: parent = Σ children, for each measure, across every level and request.
    measures = {m for m, _ in public.cells}
    hidden = small = 0
    problems = []
    for measure in sorted(measures):
        codes = sorted(code for m, code in public.cells if m == measure)
        kids: dict[str, list[str]] = {}
        for code in codes:
            up = parent_of(code)
            if up is not None and (measure, up) in public.cells:
                kids.setdefault(up, []).append(code)
        relations = [Relation((measure, p), tuple((measure, k) for k in ks)) for p, ks in kids.items()]
        shown = {(measure, c): (None if public.cells[(measure, c)] is None else float(public.cells[(measure, c)]))
                 for c in codes}
        for cell, (low, high) in intervals(relations, shown).items():
            truth = float(detail.cells[cell])
            hidden += truth > 0
            if measure in ("grant_amount", "subsidy_amount"):
                if low > 1e-6 or high <= truth + 1e-6:
                    problems.append(f"{cell} = {truth}: attacker learns [{low:g}, {high:g}]")
            elif 1 <= truth <= T:
                small += 1
                if low > 1e-6 or high < T + 1 - 1e-6:
                    problems.append(f"{cell} = {truth:g}: attacker learns [{low:g}, {high:g}]")
    assert problems == []
    assert small > 50 and hidden > small  # the province has small cells to protect, and complements
    print(f"{len(public.cells)} cells published, {hidden} non-zero hidden, {small} small; none narrowed")


# --- Through the reports: a small count and its complements hidden, detail sees them. ---------------------------


@pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)
async def test_small_counts_are_suppressed_with_their_complements(reporting: Reporting) -> None:
    ids = {}
    for i in range(10):
        ids[i] = await reporting.registered(A, 2)  # 10 households, 20 persons in Mueang
    for _ in range(3):
        await reporting.registered(C, 1)  # 3 in Ban Fang: small
    await reporting.registered("40030101", 5)  # …
    for _ in range(6):
        await reporting.registered("40040101", 1)  # 6 in a third district
    body = await reporting.report("poverty", reporting.as_("reporting:read"), area="40", level="district",
                                  survey_year=2565)
    rows = by_area(body)
    assert rows["4002"]["households"] is None and rows["4003"]["households"] is None  # 3 and 1: primary
    # 3 + 1 = 20 − 10 − 6 would still tell that each is at most 4: the smallest other district that lifts the
    # hidden sum past the threshold (6) goes too. Persons share the households' pattern (one household of 5).
    assert rows["4004"]["households"] is None and rows["4001"]["households"] == 10
    assert body["total"]["households"] == 20 and body["suppressed_cells"] > 0
    assert (rows["4001"]["persons"], rows["4002"]["persons"], rows["4003"]["persons"], rows["4004"]["persons"]) == (
        20, None, None, None)
    detail = by_area(await reporting.report("poverty", area="40", level="district", survey_year=2565))
    assert (detail["4002"]["households"], detail["4003"]["persons"]) == (3, 5)

    await reporting.paid(ids[0], A)
    money = by_area(await reporting.report("assistance", reporting.as_("reporting:read"), area="40",
                                           level="district", fiscal_year=2565))
    assert money["4001"]["families_granted"] is None and money["4001"]["grant_amount"] is None  # money follows
