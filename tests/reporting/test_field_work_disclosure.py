"""The field-work report's linked tables, audited as a statistics office would (tests/reporting/audit.py): visits
by area and visits by team share the province and its districts (a district's team rows add up to its row), so
every relation of both tables is written down together and no small cell of either may be narrowed below
[0, T + 1]."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reporting.disclosure import parent_of, tree_of
from services.reporting.reports.field_work.service import linked
from tests.reporting.audit import Relation, intervals

T = 4


def random_field_year(rng: random.Random, sparse: float) -> tuple[dict[str, int], dict[str, int]]:
    """Visits by village, and by (district, team) row: each village's visits shared among its district's teams
    (and visits that name no team)."""
    villages: dict[str, int] = {}
    rows: dict[str, int] = {}
    for d in range(1, rng.randint(2, 5)):
        teams = [f"T:40{d:02d}:{t}" for t in ("", *(f"t{n}" for n in range(rng.randint(1, 3))))]
        for row in teams:
            rows[row] = 0
        for s in range(1, rng.randint(2, 5)):
            for v in range(1, rng.randint(2, 6)):
                visits = 0 if rng.random() < sparse else rng.choice([1, 1, 2, 3, 4, 5, 7, 12, 30])
                villages[f"40{d:02d}{s:02d}{v:02d}"] = visits
                for _ in range(visits):
                    rows[rng.choice(teams)] += 1
    return villages, rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), sparse=st.sampled_from([0.0, 0.3, 0.6, 0.9]))
def test_no_small_count_of_either_table_is_narrowed(seed: int, sparse: float) -> None:
    villages, rows = random_field_year(random.Random(seed), sparse)
    areas = tree_of({code: (n,) for code, n in villages.items()}, (0,))
    teams = {code: v for code, v in areas.items() if len(code) <= 4} | {row: (n,) for row, n in rows.items()}
    hidden_areas, hidden_teams = linked(areas, teams, T)
    shared = {code for code in areas if len(code) <= 4}
    assert hidden_areas & shared == hidden_teams & shared  # a district is hidden in both tables or in neither
    kids: dict[str, list[str]] = {}
    for code in areas:
        if parent_of(code) in areas:
            kids.setdefault(parent_of(code) or "", []).append(code)
    for row in rows:
        kids.setdefault(f"teams of {row.split(':')[1]}", []).append(row)
    relations = [Relation(parent if not parent.startswith("teams of") else parent[9:], tuple(children))
                 for parent, children in kids.items()]
    values = {code: v[0] for code, v in areas.items()} | rows
    published = {code: (None if code in hidden_areas | hidden_teams else n) for code, n in values.items()}
    problems = [f"{code} = {values[code]}: attacker learns [{low:g}, {high:g}]"
                for code, (low, high) in intervals(relations, published).items()
                if 1 <= values[code] <= T and (low > 1e-6 or high < T + 1 - 1e-6)]
    assert problems == []
