"""Scoring, exact: which indicators apply to whom, hand-worked scores, answers and measurements, and a property
(hypothesis)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings

from services.assessment.scoring import AnswerError, Person, applies, score
from tests.assessment.support import ON, TPMAP, born, households


@pytest.mark.parametrize(("code", "member", "expected"), [
    ("newborn_weight", Person(born(0, 11), False), True),
    ("newborn_weight", Person(born(1, 0), False), False),
    ("exercise", Person(born(6), False), True),
    ("exercise", Person(born(5), False), False),
    ("preschool", Person(born(3), False), True),
    ("preschool", Person(born(5), False), True),
    ("preschool", Person(born(6), False), False),
    ("preschool", Person(born(2), False), False),
    ("compulsory_school", Person(born(6), False), True),
    ("compulsory_school", Person(born(14), False), True),
    ("compulsory_school", Person(born(15), False), False),
    ("continue_m4", Person(born(15), False), True),
    ("continue_m4", Person(born(16), False), False),
    ("literacy", Person(born(15), False), True),
    ("literacy", Person(born(59), False), True),
    ("literacy", Person(born(60), False), False),
    ("working_age_income", Person(born(59), False), True),
    ("working_age_income", Person(born(14), False), False),
    ("elderly_income", Person(born(60), False), True),
    ("elderly_income", Person(born(59), False), False),
    ("elderly_care", Person(born(75), False), True),
    ("elderly_care", Person(born(40), False), False),
    ("disabled_care", Person(born(40), True), True),
    ("disabled_care", Person(born(40), False), False),
    ("safe_food", Person(born(40), False), True),
    ("medicine_use", Person(born(40), False), True),
    ("housing", Person(born(40), False), True),
    ("drinking_water", Person(born(40), False), True),
    ("use_water", Person(born(40), False), True),
    ("clean_home", Person(born(40), False), True),
    ("household_income", Person(born(40), False), True),
])
def test_every_indicator_applies_to_the_households_it_concerns(code: str, member: Person, expected: bool) -> None:
    indicator = TPMAP.indicator(code)
    assert indicator is not None
    assert applies(indicator, [member], ON) is expected


def test_a_person_born_after_the_survey_date_does_not_count() -> None:
    indicator = TPMAP.indicator("newborn_weight")
    assert indicator is not None
    assert not applies(indicator, [Person(date(2022, 2, 1), False)], ON)


def adult_answers(**overrides: bool) -> dict[str, bool]:
    return {"safe_food": True, "medicine_use": True, "exercise": True, "housing": True, "clean_home": True,
            "literacy": True, "working_age_income": True} | overrides


WATER_OK = {"drinking_water_lpd": Decimal(6), "use_water_lpd": Decimal(45), "income_per_person_year": Decimal(38000)}


def test_one_adult_failing_one_income_indicator_scores_one_sixth_and_is_vulnerable_not_poor() -> None:
    # One adult aged 41: health (4 indicators incl. exercise), living (4), education (literacy),
    # income (work, household income): 4 dimensions apply, access does not.
    result = score(TPMAP, members=[Person(born(41), False)], welfare_card=True, surveyed_on=ON,
                   answers=adult_answers(working_age_income=False), measurements=WATER_OK)
    assert result.applicable_dimensions == ["health", "living", "education", "income"]
    assert result.deprived_dimensions == ["income"]
    assert result.score == Fraction(1, 4) * Fraction(1, 2)
    assert (result.poor, result.severity, result.target_poor) == (False, "none", True)
    failed = [r for r in result.indicators if r.status == "fail"]
    assert [(r.code, r.weight) for r in failed] == [("working_age_income", Fraction(1, 8))]
    access = [r for r in result.indicators if r.dimension == "access"]
    assert [(r.status, r.reason) for r in access] == [
        ("not_applicable", "no member aged 60 or over on 2022-01-15"),
        ("not_applicable", "no member with a disability on 2022-01-15")]


def test_exactly_one_third_is_poor_and_a_deprived_household_without_card_is_not_target_poor() -> None:
    # A two-year-old alone: health (food, medicine), living (4) and income (household income) apply.
    child = [Person(born(2), False)]
    answers = {"safe_food": True, "medicine_use": True, "housing": True, "clean_home": True}
    low_income = WATER_OK | {"income_per_person_year": Decimal("37999.99")}
    result = score(TPMAP, members=child, welfare_card=False, surveyed_on=ON, answers=answers,
                   measurements=low_income)
    assert result.applicable_dimensions == ["health", "living", "income"]
    assert result.score == Fraction(1, 3)
    assert (result.poor, result.severity) == (True, "poor")
    assert result.target_poor is False  # deprived, but no welfare card: the set requires one
    result = score(TPMAP, members=child, welfare_card=True, surveyed_on=ON, answers=answers | {"housing": False,
                   "clean_home": False}, measurements=low_income)
    assert result.score == Fraction(1, 3) + Fraction(1, 3) * Fraction(2, 4)
    assert (result.severity, result.target_poor) == ("severe", True)


def test_a_measurement_decides_its_indicator_and_an_answer_must_agree() -> None:
    person = [Person(born(41), False)]
    result = score(TPMAP, members=person, welfare_card=True, surveyed_on=ON, answers=adult_answers(),
                   measurements=WATER_OK | {"drinking_water_lpd": Decimal("4.5")})
    water = next(r for r in result.indicators if r.code == "drinking_water")
    assert (water.status, water.reason) == ("fail", "drinking_water_lpd 4.5 < 5 litres per person per day")
    with pytest.raises(AnswerError) as caught:
        score(TPMAP, members=person, welfare_card=True, surveyed_on=ON,
              answers=adult_answers(drinking_water=True), measurements=WATER_OK | {"drinking_water_lpd": Decimal(3)})
    assert caught.value.errors[0][0] == "answers.drinking_water"
    assert "answered meets but drinking_water_lpd 3 < 5" in caught.value.errors[0][1]


def test_bad_answers_name_every_field() -> None:
    with pytest.raises(AnswerError) as caught:
        score(TPMAP, members=[Person(born(41), False)], welfare_card=True, surveyed_on=ON,
              answers={k: v for k, v in adult_answers(flying=True, preschool=True).items() if k != "literacy"},
              measurements=WATER_OK | {"rainfall": Decimal(3)})
    fields = {f for f, _ in caught.value.errors}
    assert fields == {"answers.flying", "answers.preschool", "answers.literacy", "measurements.rainfall"}


@settings(max_examples=200, deadline=None)
@given(households())
def test_k_at_the_smallest_weight_is_the_union_rule(household: tuple[list[Person], dict[str, bool], bool, str]
                                                    ) -> None:
    members, answers, card, _ = household
    weights = score(TPMAP, members=members, welfare_card=card, surveyed_on=ON, answers=answers, measurements={})
    smallest = min(r.weight for r in weights.indicators if r.weight > 0)
    union = TPMAP.model_copy(update={"poverty_cutoff": str(smallest), "vulnerable_cutoff": str(smallest)})
    result = score(union, members=members, welfare_card=card, surveyed_on=ON, answers=answers, measurements={})
    assert result.poor == any(r.deprived for r in result.indicators)
    assert sum(r.weight for r in result.indicators) == 1
