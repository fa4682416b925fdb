"""Alkire–Foster arithmetic, exact: a hand-worked example and properties of scored households (hypothesis)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from services.assessment.mpi import Summary, Unit, summarise
from services.assessment.scoring import Person, score
from services.assessment.sets.schemas import IndicatorSet
from tests.assessment.support import ON, TPMAP, households


def test_hand_worked_example() -> None:
    """Four households, 10 persons (the README's example): H = 7/10, A = 3/7, M0 = 3/10."""
    units = [Unit(4, Fraction(1, 2), True, {"housing": Fraction(1, 4), "safe_food": Fraction(1, 4)}),
             Unit(2, Fraction(1, 4), False, {"literacy": Fraction(1, 4)}),
             Unit(3, Fraction(1, 3), True, {"working_age_income": Fraction(1, 3)}),
             Unit(1, Fraction(0), False)]
    s = summarise(units)
    assert (s.persons, s.poor_persons) == (10, 7)
    assert (s.headcount, s.intensity, s.m0) == (Fraction(7, 10), Fraction(3, 7), Fraction(3, 10))
    assert s.indicator_contributions() == {"housing": Fraction(1, 10), "safe_food": Fraction(1, 10),
                                           "working_age_income": Fraction(1, 10)}


def scored(indicator_set: IndicatorSet, household: tuple[list[Person], dict[str, bool], bool, str]) -> Unit:
    members, answers, card, _ = household
    r = score(indicator_set, members=members, welfare_card=card, surveyed_on=ON, answers=answers, measurements={})
    return Unit(len(members), r.score, r.poor, {i.code: i.weight for i in r.indicators if i.deprived})


@settings(max_examples=200, deadline=None)
@given(st.lists(households(), min_size=1, max_size=30))
def test_af_properties(population: list[tuple[list[Person], dict[str, bool], bool, str]]) -> None:
    units = [scored(TPMAP, h) for h in population]
    whole = summarise(units)
    # M0 = H × A, and the censored indicator contributions add up to M0.
    assert whole.m0 == whole.headcount * whole.intensity
    assert sum(whole.indicator_contributions().values(), Fraction(0)) == whole.m0
    # The province's M0 is the population-weighted sum of its districts' M0.
    districts: dict[str, Summary] = {}
    for unit, household in zip(units, population, strict=True):
        districts.setdefault(household[3], Summary()).add(unit)
    assert whole.m0 == sum((Fraction(d.persons, whole.persons) * d.m0 for d in districts.values()), Fraction(0))
    # Weights of each household's applicable indicators sum to 1; scores lie in [0, 1].
    assert all(0 <= u.score <= 1 for u in units)
