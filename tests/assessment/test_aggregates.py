"""The MPI's village sums as integers (hypothesis): one denominator per set version, exact numerators, and
counting then uncounting an assessment leaves nothing. Against the report over HTTP: test_figures.py."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from services.assessment.aggregates import SUBDISTRICTS, Deltas, denominator
from services.assessment.scoring import Person, score
from tests.assessment.support import ON, TPMAP, households

Household = tuple[list[Person], dict[str, bool], bool, str]


def stored(household: Household) -> SimpleNamespace:
    """The columns of the stored assessment that the sums read."""
    members, answers, card, district = household
    r = score(TPMAP, members=members, welfare_card=card, surveyed_on=ON, answers=answers, measurements={})
    return SimpleNamespace(
        survey_year=2565, indicator_set_id=TPMAP.id, village_code=f"{district}0101", member_count=len(members),
        score_num=r.score.numerator, score_den=r.score.denominator, poor=r.poor, target_poor=r.target_poor,
        indicators=[{"code": i.code, "dimension": i.dimension, "status": i.status, "weight": str(i.weight)}
                    for i in r.indicators],
        dimensions={d.code: None for d in TPMAP.dimensions})


@settings(max_examples=100, deadline=None)
@given(st.lists(households(), min_size=1, max_size=20))
def test_sums_are_exact_integers_over_one_denominator(population: list[Household]) -> None:
    rows = [stored(h) for h in population]
    # Five dimensions of at most four indicators: every weight 1 / (a × n) divides lcm(a × n) = 720.
    assert {denominator(r) for r in rows} == {720}
    deltas = Deltas()
    for r in rows:
        deltas.add(r, 1)
    for (_, _, village, d), sums in deltas.villages.items():
        mine = [r for r in rows if r.village_code == village]
        censored = sum((r.member_count * Fraction(r.score_num, r.score_den) for r in mine if r.poor), Fraction(0))
        assert Fraction(sums[-1], d) == censored
        assert sums[:2] == [len(mine), sum(r.member_count for r in mine)]
    for row in deltas.rows(SUBDISTRICTS)[0]:  # the villages' sums added up per sub-district
        mine = [r for r in rows if r.village_code[:6] == row["subdistrict_code"]]
        assert (row["households"], row["persons"]) == (len(mine), sum(r.member_count for r in mine))
    for r in rows:
        deltas.add(r, -1)
    assert deltas.rows() == ([], []) and deltas.rows(SUBDISTRICTS) == ([], [])
