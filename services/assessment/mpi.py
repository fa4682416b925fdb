"""Alkire–Foster multidimensional poverty (OPHI / UNDP global MPI), exact.

Every person counts, with their household's deprivation score: a unit is one assessed household, weighted
by its members. For n persons of whom q are poor (c ≥ k):

    H = q / n    A = Σ c_i(k) / q    M0 = H × A = Σ c_i(k) / n

where c_i(k) is c_i when poor and 0 otherwise (censoring). M0 splits exactly by indicator: indicator j
contributes Σ_i w_ij g_ij(k) / n, and these add up to M0; and by area: M0 of a whole is the
population-weighted sum of its parts' M0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction


@dataclass(frozen=True)
class Unit:
    """One assessed household: its persons, its score c, whether poor, and w_j for each failed indicator."""

    persons: int
    score: Fraction
    poor: bool
    deprivations: Mapping[str, Fraction] = field(default_factory=dict)


@dataclass
class Summary:
    """Sums over units; the ratios are derived, so summaries of parts add up to the summary of the whole."""

    households: int = 0
    persons: int = 0  # n
    poor_households: int = 0
    poor_persons: int = 0  # q
    censored_score: Fraction = Fraction(0)  # Σ persons × c(k)
    censored_by_indicator: dict[str, Fraction] = field(default_factory=dict)  # Σ persons × w_j g_j(k)

    def add(self, unit: Unit) -> None:
        self.households += 1
        self.persons += unit.persons
        if unit.poor:
            self.poor_households += 1
            self.poor_persons += unit.persons
            self.censored_score += unit.persons * unit.score
            for code, weight in unit.deprivations.items():
                self.censored_by_indicator[code] = self.censored_by_indicator.get(code, Fraction(0)) + (
                    unit.persons * weight)

    def merge(self, other: Summary) -> None:
        self.households += other.households
        self.persons += other.persons
        self.poor_households += other.poor_households
        self.poor_persons += other.poor_persons
        self.censored_score += other.censored_score
        for code, value in other.censored_by_indicator.items():
            self.censored_by_indicator[code] = self.censored_by_indicator.get(code, Fraction(0)) + value

    @property
    def headcount(self) -> Fraction:
        """H: the share of persons who are poor."""
        return Fraction(self.poor_persons, self.persons) if self.persons else Fraction(0)

    @property
    def intensity(self) -> Fraction:
        """A: the average deprivation score of the poor."""
        return self.censored_score / self.poor_persons if self.poor_persons else Fraction(0)

    @property
    def m0(self) -> Fraction:
        """MPI = M0 = H × A = Σ c_i(k) / n."""
        return self.censored_score / self.persons if self.persons else Fraction(0)

    def indicator_contributions(self) -> dict[str, Fraction]:
        """Each indicator's part of M0 (censored, weighted headcount / n); they add up to M0."""
        if not self.persons:
            return {}
        return {code: value / self.persons for code, value in sorted(self.censored_by_indicator.items())}


def summarise(units: Iterable[Unit]) -> Summary:
    summary = Summary()
    for unit in units:
        summary.add(unit)
    return summary
