"""What an auditor does to published tables (../shared/docs/DISCLOSURE.md): write down every additive relation
among the published cells, then for each hidden cell solve two linear programs — minimise and maximise it
subject to those relations, the shown values and non-negativity. [min, max] is what an attacker learns."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

Cell = Hashable


@dataclass(frozen=True)
class Relation:
    """parent = Σ children, as published."""

    parent: Cell
    children: tuple[Cell, ...]


def intervals(relations: Sequence[Relation], published: Mapping[Cell, float | None]
              ) -> dict[Cell, tuple[float, float]]:
    """For every hidden cell (published as None): the smallest and largest value consistent with everything
    shown. Relations are split into independent groups (linked by shared hidden cells) so each LP is small."""
    hidden = [c for c, v in published.items() if v is None]
    group = {c: c for c in hidden}

    def find(c: Cell) -> Cell:
        while group[c] != c:
            group[c] = group[group[c]]
            c = group[c]
        return c

    touching: list[tuple[Relation, list[Cell]]] = []
    for relation in relations:
        unknown = [c for c in (relation.parent, *relation.children) if published.get(c, 0) is None]
        if not unknown:
            continue
        touching.append((relation, unknown))
        for other in unknown[1:]:
            group[find(other)] = find(unknown[0])
    by_group: dict[Cell, list[Cell]] = {}
    for c in hidden:
        by_group.setdefault(find(c), []).append(c)
    relations_of: dict[Cell, list[Relation]] = {}
    for relation, unknown in touching:
        relations_of.setdefault(find(unknown[0]), []).append(relation)
    out: dict[Cell, tuple[float, float]] = {}
    for root, cells in by_group.items():
        out |= _solve(cells, relations_of.get(root, []), published)
    return out


def _solve(cells: list[Cell], relations: list[Relation], published: Mapping[Cell, float | None]
           ) -> dict[Cell, tuple[float, float]]:
    index = {c: i for i, c in enumerate(cells)}
    rows, rhs = [], []
    for relation in relations:
        row = np.zeros(len(cells))
        constant = 0.0
        for c, sign in ((relation.parent, -1.0), *((child, 1.0) for child in relation.children)):
            value = published.get(c, 0)
            if value is None:
                row[index[c]] += sign
            else:
                constant += sign * float(value)
        rows.append(row)
        rhs.append(-constant)
    a_eq = np.array(rows) if rows else None
    b_eq = np.array(rhs) if rhs else None
    out = {}
    for c, i in index.items():
        objective = np.zeros(len(cells))
        objective[i] = 1.0
        low = linprog(objective, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        high = linprog(-objective, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        assert low.status == 0, f"the published table is inconsistent around {c}: {low.message}"
        out[c] = (float(low.fun), float("inf") if high.status == 3 else float(-high.fun))
    return out


def tree_relations(codes: Sequence[str], column: str) -> list[Relation]:
    """parent = Σ children for one column over every published area and its sub-areas."""
    present = set(codes)
    kids: dict[str, list[str]] = {}
    for code in present:
        parent = code[:-2] if len(code) > 2 else None
        if parent in present:
            kids.setdefault(parent, []).append(code)
    return [Relation((column, p), tuple((column, k) for k in sorted(ks))) for p, ks in kids.items()]
