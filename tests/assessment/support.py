"""Helpers for the assessment tests: the tpmap-2560 set and households drawn at random (hypothesis) for the
scoring and MPI properties."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from services.assessment.scoring import Person, applies
from services.assessment.sets.service import load_files

TPMAP = next(f.definition for f in load_files() if f.definition.id == "tpmap-2560")
ON = date(2022, 1, 15)


def born(years: int, months: int = 0) -> date:
    """A birth date `years` and `months` before the survey date."""
    month = ON.month - months
    year = ON.year - years
    while month < 1:
        month += 12
        year -= 1
    return date(year, month, 1)


def applicable(members: list[Person]) -> set[str]:
    return {i.code for i in TPMAP.indicators if applies(i, members, ON)}


people = st.lists(st.tuples(st.integers(0, 95), st.booleans()), min_size=1, max_size=6)


@st.composite
def households(draw: st.DrawFn) -> tuple[list[Person], dict[str, bool], bool, str]:
    members = [Person(born(age, 3), disabled) for age, disabled in draw(people)]
    codes = applicable(members) - {"drinking_water", "use_water", "household_income"}
    answers = {code: draw(st.booleans()) for code in sorted(codes)}
    answers |= {c: draw(st.booleans()) for c in ("drinking_water", "use_water", "household_income")}
    return members, answers, draw(st.booleans()), draw(st.sampled_from(["4001", "4002", "4003"]))
