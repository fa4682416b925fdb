"""Disclosure control: the one step every figure a caller without `reporting:detail` sees passes through.

The method (SECURITY.md, "Published figures"): **primary and consistent complementary suppression over the
whole area hierarchy of a province, per column group**, with derived figures hidden wherever a count they are
built from is hidden.

- Every report row is a node of one tree: province → district → sub-district → village. A count column is
  additive over it (a parent is the sum of its children), so the hidden pattern is chosen once, over the whole
  province, and every request — any area, any level, the total row — reads the same pattern. A hidden cell is
  hidden in every table and at every level it appears in; the same measure in two reports (poverty and
  MPI decomposition, poverty and assistance) has the same pattern because it is chosen from the same tree.
- **Primary**: a node whose count is 1 to `threshold` (a household or person count whose household count is
  small is primary too: the two columns of a pair share one pattern).
- **Complementary**: the tree is walked from the province down. In each relation parent = Σ children, every
  primary cell x must keep an attacker's interval that contains 0 and `threshold + 1`:
  * at least two children are hidden (so x can be 0 while another hidden sibling takes its value), and every
    hidden parent keeps at least one hidden child (so it is not the sum of shown children);
  * the hidden siblings can give up at least `threshold + 1 − x` (what a leaf or a primary cell holds, and
    what a hidden parent can take from its own hidden siblings and parent, `room`), so x can also be that
    large. A complement that is itself a parent must in turn hide enough of its children to give up what its
    siblings count on (`demand`), and so on down to the villages.
  Complements are the smallest cells that cover what is missing, so few and small cells are hidden; the choice
  depends only on the cells of one relation, so a change elsewhere does not move it.
- Derived figures (ratios, MPI, contributions, shares, money, budgets used) follow the counts they are built
  from: hidden in a row wherever one of them is. Summed over a relation they give an attacker only the sum of a
  group of hidden cells, never one of them.
- Totals over an area the caller sees only part of are withheld: such a sum is not a node of the tree.

`tests/reporting/test_disclosure.py` audits it as statistics offices do: every public report of a province at
every level, every additive relation among them, two linear programs per hidden cell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Values = tuple[int, ...]
Parent = Callable[[str], "str | None"]


def parent_of(code: str) -> str | None:
    """The area one level up: village (8 digits) → sub-district (6) → district (4) → province (2)."""
    return code[: len(code) - 2] if len(code) > 2 else None


def tree_of(facts: Mapping[str, tuple[Any, ...]], zero: tuple[Any, ...], areas: Iterable[str] = (),
            parent: Parent = parent_of) -> dict[str, tuple[Any, ...]]:
    """Every node of the tree: each code of `facts` (all of one level: villages, or sub-districts) added into
    itself and every node above it, and `areas` (official areas without facts) as `zero`. Values are tuples
    of numbers (int, float, Fraction, Decimal) added element by element."""
    tree: dict[str, tuple[Any, ...]] = {}
    for code in areas:
        node: str | None = code
        while node is not None and node not in tree:
            tree[node] = zero
            node = parent(node)
    # A level at a time, deepest first: each node is added once into its parent.
    level: dict[str, tuple[Any, ...]] = dict(facts)
    while level:
        above: dict[str, tuple[Any, ...]] = {}
        for code, own in level.items():
            tree[code] = tuple(a + b for a, b in zip(tree.get(code, zero), own, strict=True))
            up = parent(code)
            if up is not None:
                above[up] = tuple(a + b for a, b in zip(above.get(up, zero), own, strict=True))
        level = above
    return tree


def regrow(sums: Mapping[str, tuple[Any, ...]], before: Mapping[str, tuple[Any, ...]],
           after: Mapping[str, tuple[Any, ...]], zero: tuple[Any, ...],
           parent: Parent = parent_of) -> dict[str, tuple[Any, ...]] | None:
    """`tree_of(after, zero, areas)` worked out from `sums` = `tree_of(before, zero, areas)`: only the codes whose
    facts changed are added again, with their difference, into themselves and the nodes above them. None when a
    code of `before` is gone from `after` (its node would stay, at zero: build the tree again)."""
    if any(code not in after for code in before):
        return None
    grown = dict(sums)
    for code, own in after.items():
        old = before.get(code)
        if old == own:
            continue
        delta = tuple(a - b for a, b in zip(own, old or zero, strict=True))
        node: str | None = code
        while node is not None:
            got = grown.get(node, zero)
            grown[node] = tuple(a + d for a, d in zip(got, delta, strict=True))
            node = parent(node)
    return grown


@dataclass(frozen=True)
class Shape:
    """Who is whose child in a tree of areas, and the order a walk visits them (the roots, then a level at a
    time): the same for every column group of one tree, so worked out once (`shape_of`)."""

    children: dict[str, list[str]]
    roots: list[str]
    order: list[str]


def shape_of(codes: Iterable[str], parent: Parent = parent_of) -> Shape:
    """The shape of the tree whose nodes are `codes` (a parent among them is the parent of its children)."""
    nodes = set(codes)
    children: dict[str, list[str]] = {}
    roots = []
    for code in nodes:
        up = parent(code)
        if up is not None and up in nodes:
            children.setdefault(up, []).append(code)
        else:
            roots.append(code)
    for kids in children.values():
        kids.sort()
    return Shape(children, roots, _top_down(children, roots))


@dataclass
class Walk:
    """One choice of a pattern (`walk`): the hidden codes, and what each relation handed down, so that the next
    choice over the same tree can take over every relation whose inputs did not change."""

    values: Mapping[str, Values]
    threshold: int
    children: dict[str, list[str]]
    hidden: set[str] = field(default_factory=set)
    primary: set[str] = field(default_factory=set)
    demand: dict[str, list[int]] = field(default_factory=dict)
    room: dict[str, list[float]] = field(default_factory=dict)

    def cap(self, code: str, j: int) -> int:
        """What a hidden cell can give up (decrease by) without a shown cell changing."""
        if code in self.primary or not self.children.get(code):
            return self.values[code][j]
        return self.demand[code][j]

    def need(self, code: str, j: int) -> int:
        return max(self.threshold + 1 - self.values[code][j], 0)

    def entering(self, code: str) -> tuple[bool, list[float] | None, list[int] | None]:
        """What the relation below `code` starts from besides its cells: whether `code` is hidden, its room and
        its demand."""
        return code in self.hidden, self.room.get(code), self.demand.get(code)


def protect(values: Mapping[str, Values], threshold: int, parent: Parent = parent_of,
            shape: Shape | None = None) -> set[str]:
    """The codes whose cells are hidden, for one column group (a tuple of columns sharing one pattern, the
    unit count first) over a whole tree of areas; `values` must hold every node, each parent the sum of its
    children (`tree_of`). `shape`, when given, is `shape_of(values, parent)` worked out beforehand."""
    return walk(values, threshold, shape or shape_of(values, parent)).hidden


def walk(values: Mapping[str, Values], threshold: int, shape: Shape, previous: Walk | None = None,
         changed: Iterable[str] = (), parent: Parent = parent_of) -> Walk:
    """`protect`, with what it handed down. `previous` is the walk over a tree of the same shape, threshold and
    width whose values differ from `values` at `changed` only (and at the nodes above them): a relation among
    unchanged cells that starts from what it started from then (`Walk.entering`) chooses what it chose then, so
    it is taken over; the rest is chosen again. The hidden codes are the same as without `previous`."""
    done = Walk(values, threshold, shape.children)
    if threshold <= 0 or not values:
        return done
    width = len(next(iter(values.values())))
    dirty = with_ancestors(changed, parent)

    def primary(code: str) -> bool:
        return any(1 <= v <= threshold for v in values[code])

    if previous is not None and previous.threshold == threshold:  # the same cells outside `dirty`
        done.primary = (previous.primary - dirty) | {code for code in dirty if code in values and primary(code)}
    else:
        done.primary = {code for code in values if primary(code)}
    done.hidden = set(done.primary)
    for root in shape.roots:
        done.room[root] = [float("inf")] * width
    for code in shape.order:
        kids = done.children.get(code)
        if not kids:
            continue
        if previous is not None and code not in dirty and done.entering(code) == previous.entering(code):
            for kid in kids:
                if kid in previous.hidden:
                    done.hidden.add(kid)
                if kid in previous.room:
                    done.room[kid] = list(previous.room[kid])
                if kid in previous.demand:
                    done.demand[kid] = list(previous.demand[kid])
            continue
        _relation(done, code, kids, width)
    return done


def with_ancestors(codes: Iterable[str], parent: Parent = parent_of) -> set[str]:
    """The codes and every area above them."""
    found: set[str] = set()
    for code in codes:
        node: str | None = code
        while node is not None and node not in found:
            found.add(node)
            node = parent(node)
    return found


def _top_down(children: Mapping[str, list[str]], roots: Iterable[str]) -> list[str]:
    order: list[str] = []
    level = sorted(roots)
    while level:
        order.extend(level)
        level = [kid for code in level for kid in children.get(code, ())]
    return order


def _relation(walk: Walk, parent: str, kids: list[str], width: int) -> None:
    """Choose complements among `kids` so that each hidden child is protected (see the module docstring)."""
    parent_hidden = parent in walk.hidden
    while True:
        hidden = [k for k in kids if k in walk.hidden]
        spare = [walk.room[parent][j] if parent_hidden else 0.0 for j in range(width)]
        deficit = [0.0] * width
        for j in range(width):
            caps = {k: walk.cap(k, j) for k in hidden}
            total = sum(caps.values())
            for x in hidden:
                if x in walk.primary:
                    deficit[j] = max(deficit[j], walk.need(x, j) - (total - caps[x]) - spare[j])
            if parent_hidden and parent not in walk.primary:
                deficit[j] = max(deficit[j], walk.demand[parent][j] - total)
        too_few = (hidden or parent_hidden) and len(hidden) < 2
        if not too_few and max(deficit) <= 0:
            break
        candidates = [k for k in kids if k not in walk.hidden]
        if not candidates:
            if not _raise_demand(walk, hidden, deficit, width):
                break
            continue
        chosen = _cheapest(walk, candidates, deficit)
        walk.hidden.add(chosen)
        if walk.children.get(chosen):
            walk.demand[chosen] = [min(walk.values[chosen][j], max(int(deficit[j] + 0.5), 0)) for j in range(width)]
    _hand_down_room(walk, parent, kids, width)


def _cheapest(walk: Walk, candidates: Sequence[str], deficit: Sequence[float]) -> str:
    """The smallest cell that covers the whole deficit by itself, else the largest (and then the next one)."""
    def covers(code: str) -> bool:
        return all(v >= d for v, d in zip(walk.values[code], deficit, strict=True))

    def size(code: str) -> tuple[int, int, str]:
        # Unit count first, leaves before parents (a hidden parent hides some of its children too).
        return walk.values[code][0], 1 if walk.children.get(code) else 0, code

    covering = [c for c in candidates if covers(c)]
    if covering:
        return min(covering, key=size)
    return max(candidates, key=lambda c: (walk.values[c][0], c))


def _raise_demand(walk: Walk, hidden: Iterable[str], deficit: Sequence[float], width: int) -> bool:
    """Every child is hidden already: ask more of the hidden parents among them. False when none can give."""
    raised = False
    for code in hidden:
        if code in walk.primary or not walk.children.get(code):
            continue
        for j in range(width):
            if deficit[j] > 0 and walk.demand[code][j] < walk.values[code][j]:
                walk.demand[code][j] = walk.values[code][j]
                raised = True
    return raised


def _hand_down_room(walk: Walk, parent: str, kids: Sequence[str], width: int) -> None:
    """How far each hidden child can grow: what its hidden siblings give up, plus its parent's own room."""
    hidden = [k for k in kids if k in walk.hidden]
    if not hidden:
        return
    parent_room = walk.room.get(parent, [0.0] * width) if parent in walk.hidden else [0.0] * width
    caps = {k: [walk.cap(k, j) for j in range(width)] for k in hidden}
    totals = [sum(caps[k][j] for k in hidden) for j in range(width)]
    for k in hidden:  # what its siblings give up: all the hidden give up, less its own share
        walk.room[k] = [totals[j] - caps[k][j] + parent_room[j] for j in range(width)]
