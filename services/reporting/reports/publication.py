"""The figures of one province, at every level at once: what the area reports are cut from.

A report row is a node of the province's tree (`disclosure.tree_of`), so the rows of any request, at any level,
and its total are read from one set of sums, and the hidden pattern (`disclosure.protect`) is chosen once over
the whole tree for everyone. Both are computed from one snapshot of the read models and kept per process for
as long as no event has been applied since (`version`): every replica computes the same from the same data.
A tree is read from one snapshot of the read models and carries the newest event it reflects (`as_of`), which the
report built from it gives.

A report does not wait for its tree to be computed again after an event (`Cache.tree`): it is answered from the
newest tree computed, with that tree's `as_of`, while one computation at a time per tree runs beside the requests
on a read snapshot of its own, its summing and choosing in a worker thread, off the event loop. Under a steady
flow of events the reports then cost what cutting a table from a tree costs, not a province's recomputation
each; they trail the read models by about one computation, and say so in `as_of`. Only the first request for a
tree, and a request sent with `Cache-Control: no-cache` (a client that must see what it just wrote), wait for a
computation that began after they came.

After an event the figures are read again, and what is worked out from them is worked out again only where
they changed, compared with the process's previous figures of the same province and year (not with a
counter: any replica, whatever it saw before, ends with what a fresh computation gives): the sums are
regrown from the facts that changed (`disclosure.regrow`); a column group keeps its previous pattern when
none of its counts changed anywhere, and otherwise takes over the previous choice in every relation whose
cells did not change (`disclosure.walk`). A pattern is chosen the first time a caller without
`reporting:detail` asks for one of its columns: callers with detail never wait for it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from services.reporting.disclosure import Shape, Walk, regrow, shape_of, tree_of, walk, with_ancestors
from services.reporting.models import DIMENSIONS, AreaYear, Assessment, Budget, Feed, Help, Payment, Village
from services.reporting.reports.areas import official_areas
from shared.auth import Principal
from shared.db import as_utc, read_in_pages, read_transaction
from shared.money import ZERO, fiscal_year_bounds

log = structlog.get_logger("kaenkhun.reporting.publication")

CENTRE_SUBSIDY = "centre_subsidy"  # paid to centres; every other programme to households

# The poverty counts, by the names the reports give them (those of `rpt_area_year` and the BI views), and the
# groups that share one hidden pattern: a person count with its household count (the household is the unit:
# five persons may be one household).
VILLAGE_COUNTS = ("households", "persons", "welfare_card_households", "welfare_card_persons")
POVERTY_COUNTS = (*VILLAGE_COUNTS, "assessed_households", "assessed_persons", "target_poor_households",
                  "target_poor_persons", "poor_households", "poor_persons", *(f"deprived_{d}" for d in DIMENSIONS),
                  *(f"target_poor_{unit}_{d}" for d in DIMENSIONS for unit in ("households", "persons")),
                  "exited", "entered")
POVERTY_GROUPS = (("households", "persons"), ("welfare_card_households", "welfare_card_persons"),
                  ("assessed_households", "assessed_persons"),
                  ("target_poor_households", "target_poor_persons"), ("poor_households", "poor_persons"),
                  *((f"deprived_{d}",) for d in DIMENSIONS),
                  *((f"target_poor_households_{d}", f"target_poor_persons_{d}") for d in DIMENSIONS),
                  ("exited",), ("entered",))
# The counts read from `rpt_area_year` (the rest from `rpt_village`), with their places in POVERTY_COUNTS.
_FROM_AREA_YEAR = [(i, name) for i, name in enumerate(POVERTY_COUNTS) if name not in VILLAGE_COUNTS]

ASSISTANCE_COUNTS = ("families_granted", "grants_reversed", "centres_subsidised", "target_poor_helped")
ASSISTANCE_MONEY = ("grant_amount", "subsidy_amount", "budget_allocated", "budget_used")
ASSISTANCE_GROUPS = (("families_granted",), ("grants_reversed",), ("target_poor_helped",))
CENTRE_GROUPS = (("centres_subsidised",),)  # centres are counted by sub-district: their tree ends there


class Pattern:
    """The nodes hidden for one column group, chosen (`disclosure.walk`) the first time they are asked for,
    over the sums of a tree as they were when the pattern was asked for (`Tree.protect`); from the walk of
    `previous` (the group's pattern over the tree before, if it was chosen) where the relations did not change."""

    def __init__(self, tree: Tree, group: tuple[str, ...], threshold: int, deepest: int,
                 previous: Pattern | None = None, changed: Iterable[str] = ()) -> None:
        self.group, self.threshold, self.deepest = group, threshold, deepest
        self._tree: Tree | None = tree
        # Only a pattern already chosen is worked from: a chain of patterns nobody asked for would keep every
        # tree they were to be chosen over.
        self._previous = previous if previous is not None and previous.walk is not None else None
        self._changed = frozenset(changed)
        self.walk: Walk | None = None
        self.hidden: frozenset[str] = frozenset()

    def get(self) -> frozenset[str]:
        if self.walk is None:
            assert self._tree is not None
            counts, index = self._tree.counts, [self._tree.columns.index(name) for name in self.group]
            before = self._previous.walk if self._previous is not None else None
            if before is None:
                picked = {code: tuple(int(values[i]) for i in index) for code, values in counts.items()
                          if len(code) <= self.deepest}
            else:  # the previous cells, but where the facts changed and above them
                picked = dict(before.values)
                for code in with_ancestors(self._changed):
                    if code in counts and len(code) <= self.deepest:
                        picked[code] = tuple(int(counts[code][i]) for i in index)
                    else:
                        picked.pop(code, None)
            self.walk = walk(picked, self.threshold, self._tree.shape(self.deepest), before, self._changed)
            self.hidden = frozenset(self.walk.hidden)
            self._tree = self._previous = None  # the trees it was chosen over may go
        return self.hidden


class Patterns(Mapping[str, frozenset[str]]):
    """For each count column, the nodes hidden from callers without detail (a group's columns share one
    `Pattern`, chosen when one of them is first read)."""

    def __init__(self, patterns: Mapping[str, Pattern] | None = None) -> None:
        self.patterns: dict[str, Pattern] = dict(patterns or {})

    def __getitem__(self, name: str) -> frozenset[str]:
        return self.patterns[name].get()

    def __iter__(self) -> Iterator[str]:
        return iter(self.patterns)

    def __len__(self) -> int:
        return len(self.patterns)

    def taking(self, other: Patterns, names: Iterable[str]) -> Patterns:
        """These patterns and those of `names` from `other` (still chosen only when read)."""
        return Patterns(self.patterns | {name: other.patterns[name] for name in names})


@dataclass
class Tree:
    """Named sums at every node of a province's tree, and for each count column the nodes hidden from
    callers without detail. `facts` are what the sums were added up from (by village, or sub-district);
    `counts` the sums the patterns are chosen over (`sums` before anything else was added to them)."""

    columns: tuple[str, ...]
    sums: dict[str, tuple[Any, ...]]
    facts: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    hidden: Patterns = field(default_factory=Patterns)
    counts: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    shapes: dict[int, Shape] = field(default_factory=dict)
    as_of: datetime | None = None  # the newest event the read models reflected when the tree was read

    def at(self, code: str) -> dict[str, Any]:
        values = self.sums.get(code)
        return dict(zip(self.columns, values, strict=True)) if values else self.zero()

    def zero(self) -> dict[str, Any]:
        return {name: ZERO if name in ASSISTANCE_MONEY else Fraction(0) if name == "censored" else 0
                for name in self.columns}

    def nodes(self, area: str, depth: int) -> list[str]:
        return sorted(code for code in self.sums if len(code) == depth and code.startswith(area))

    def seen(self, code: str, principal: Principal) -> dict[str, Any]:
        """The node's sums, or where the caller sees only part of it, the sum of the parts it sees."""
        if principal.can_see(code):
            return self.at(code)
        total = self.zero()
        for claim in principal.area_prefixes() or ():
            if claim.startswith(code):
                for name, value in self.at(claim).items():
                    total[name] += value
        return total

    def shape(self, deepest: int) -> Shape:
        """The shape of the tree of `counts` down to `deepest` digits."""
        if deepest not in self.shapes:
            self.shapes[deepest] = shape_of(code for code in self.counts if len(code) <= deepest)
        return self.shapes[deepest]

    def protect(self, groups: Iterable[tuple[str, ...]], threshold: int, deepest: int = 8,
                previous: Tree | None = None) -> None:
        """The hidden pattern of each group of count columns over the nodes down to `deepest` digits, chosen
        when first read. From `previous` (the tree of the same report and year before), a group keeps its
        pattern where the tree has the same nodes and none of the group's counts changed anywhere, and is
        otherwise chosen again from the previous one's walk where its relations did not change. Sums added to
        the tree afterwards (budgets) change `sums`, not `counts`."""
        self.counts = self.sums
        changed = self.changed(previous)
        for group in groups:
            kept = previous.hidden.patterns.get(group[0]) if previous is not None else None
            if kept is not None and (kept.group, kept.threshold, kept.deepest) != (group, threshold, deepest):
                kept = None
            if changed is None or kept is None:
                pattern = Pattern(self, group, threshold, deepest)
            else:
                codes = set().union(*(changed.get(name, ()) for name in (*group, "")))
                pattern = kept if not codes else Pattern(self, group, threshold, deepest, kept, codes)
            self.hidden.patterns |= dict.fromkeys(group, pattern)

    def choose_as_before(self, previous: Tree | None) -> None:
        """Choose now the patterns that callers without detail asked for over `previous`: the computation does
        it, off the request path, and the next such caller finds them chosen."""
        if previous is None:
            return
        for name, pattern in self.hidden.patterns.items():
            before = previous.hidden.patterns.get(name)
            if before is not None and before.walk is not None:
                pattern.get()

    def changed(self, previous: Tree | None) -> dict[str, set[str]] | None:
        """For each column, the codes whose facts differ from `previous`'s, and under "" the nodes one of the
        trees has and the other has not (they change every column's relations); None without `previous`."""
        if previous is None or previous.columns != self.columns:
            return None
        changed: dict[str, set[str]] = {}
        moved = previous.counts.keys() ^ self.counts.keys()
        if moved:
            changed[""] = set(moved)
        else:
            self.shapes = self.shapes or previous.shapes  # the same nodes: the same shapes
        zero = tuple(self.zero().values())
        for code in self.facts.keys() | previous.facts.keys():
            own, old = self.facts.get(code, zero), previous.facts.get(code, zero)
            if own != old:
                for name, a, b in zip(self.columns, own, old, strict=True):
                    if a != b:
                        changed.setdefault(name, set()).add(code)
        return changed


async def as_of(session: AsyncSession) -> datetime | None:
    """The time of the newest event the read models reflect: every report carries it."""
    newest = (await session.execute(select(func.max(col(Feed.newest_event_at))))).scalar_one_or_none()
    return as_utc(newest) if newest is not None else None


async def version(session: AsyncSession) -> tuple[Any, ...]:
    """Changes whenever the projection applies an event (each batch bumps a topic's count and newest time)."""
    row = (await session.execute(select(func.coalesce(func.sum(col(Feed.events)), 0),
                                        func.max(col(Feed.newest_event_at))))).one()
    return tuple(row)


# A tree's computation: from a read session and the tree computed before (None before the first).
Compute = Callable[[AsyncSession, Any], Awaitable[Any]]


class Cache:
    """The trees of the reports, kept per process: the newest computed of each report, province and year (a few,
    the least recently asked for going first), each with the `version` of the read models it was read at; and a
    few small figures per version (`get`)."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], size: int = 16) -> None:
        self.maker = maker  # read-only sessions, for the computations beside the requests
        self._size = size
        self._newest: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = OrderedDict()
        self._computing: dict[tuple[Any, ...], asyncio.Task[Any]] = {}
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def previous(self, what: tuple[Any, ...]) -> Any:
        """The newest tree computed of `what` (None before the first): what the next one is worked out from."""
        held = self._newest.get(what)
        return held[1] if held is not None else None

    async def tree(self, what: tuple[Any, ...], compute: Compute, *, fresh: bool = False) -> Any:
        """The tree of `what` (`compute(session, previous)`) as the read models are now (`version`): the tree
        computed at that version if there is one; otherwise one computation of `what` is started (unless one is
        running) and the request is answered from the newest tree computed before, or, with none yet or when
        `fresh`, waits for a computation that began after it came. The version is read on a connection of its
        own, given back at once: a request never holds one while it waits (ten requests waiting on their
        connections for a computation that needs one more would exhaust a pool of five)."""
        async with read_transaction(self.maker) as session:
            now = await version(session)
        held = self._newest.get(what)
        if held is not None:
            self._newest.move_to_end(what)
            if held[0] == now:
                return held[1]
        running = self._computing.get(what)
        if held is not None and not fresh:
            if running is None:
                self._start(what, compute)
            return held[1]
        if running is not None:
            if not fresh:
                return await asyncio.shield(running)
            await asyncio.shield(running)  # it may have read the read models before this request came: again
        return await asyncio.shield(self._computing.get(what) or self._start(what, compute))

    def _start(self, what: tuple[Any, ...], compute: Compute) -> asyncio.Task[Any]:
        task = asyncio.create_task(self._compute(what, compute), name=f"publication {what}")
        self._computing[what] = task
        task.add_done_callback(_retrieved)
        return task

    async def _compute(self, what: tuple[Any, ...], compute: Compute) -> Any:
        try:
            async with read_transaction(self.maker) as session:
                seen = await version(session)
                value = await compute(session, self.previous(what))
            self._newest[what] = (seen, value)
            self._newest.move_to_end(what)
            while len(self._newest) > self._size:
                self._newest.popitem(last=False)
            return value
        finally:
            self._computing.pop(what, None)

    async def get(self, key: tuple[Any, ...], compute: Callable[[], Awaitable[Any]]) -> Any:
        """A small figure (`key` ends with the version), computed again when missing."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = await compute()
        self._items[key] = value
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return value

    @staticmethod
    def of(state: Any) -> Cache:
        """The process's cache, kept on the app's state (made by the first report that asks)."""
        if not hasattr(state, "publications"):
            state.publications = Cache(state.read_sessionmaker)
        cache: Cache = state.publications
        return cache


def _retrieved(task: asyncio.Task[Any]) -> None:
    """A computation nobody waited for that failed is logged (the next request starts another)."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("report tree not computed", task=task.get_name(), error=repr(task.exception()))


def wants_fresh(request: Request) -> bool:
    """`Cache-Control: no-cache`: the caller must see the read models as they are now (RFC 9111 5.2.1.4)."""
    return "no-cache" in request.headers.get("cache-control", "").lower()


@dataclass
class Survey:
    """A survey year of a province: the poverty counts and the exact censored score Σ c(k) (`censored`) summed
    at every node, and by village the censored score of each failed indicator."""

    survey_year: int
    tree: Tree
    by_indicator: dict[str, dict[str, str]]

    def by_indicator_of(self, code: str, principal: Principal) -> dict[str, Fraction]:
        """Σ c(k) per indicator over the villages of `code` the caller may see."""
        out: dict[str, Fraction] = {}
        for village, weights in self.by_indicator.items():
            if village.startswith(code) and principal.can_see(village):
                for indicator, weight in weights.items():
                    out[indicator] = out.get(indicator, Fraction(0)) + Fraction(weight)
        return out


async def survey(session: AsyncSession, province: str, survey_year: int, threshold: int,
                 previous: Survey | None = None) -> Survey:
    """Read a survey year of a province once and sum it up (see `Survey`), from `previous` (the same province
    and year before) where the figures did not change; the summing and the choosing of the patterns asked for
    before in a worker thread."""
    # Columns of the tables, not ORM objects: a province is thousands of villages, read again after every event,
    # and rows as they come skip the ORM's loading of each (a tenth of the time).
    area_year, village = AreaYear.__table__.c, Village.__table__.c  # type: ignore[attr-defined]
    assessed = await read_in_pages(session, select(
        area_year.village_code, area_year.censored_score, area_year.censored_by_indicator,
        *(area_year[name] for _, name in _FROM_AREA_YEAR)).where(
        area_year.survey_year == survey_year, area_year.village_code.startswith(province, autoescape=True)))
    registered = await read_in_pages(session, select(village.village_code, *(village[name] for name in VILLAGE_COUNTS))
                                     .where(village.village_code.startswith(province, autoescape=True)))
    newest = await as_of(session)
    return await asyncio.to_thread(_sum_survey, province, survey_year, threshold, assessed, registered, newest,
                                   previous)


def _sum_survey(province: str, survey_year: int, threshold: int, assessed: Sequence[Any], registered: Sequence[Any],
                newest: datetime | None, previous: Survey | None) -> Survey:
    names = (*POVERTY_COUNTS, "censored")
    zero: tuple[Any, ...] = (0,) * len(POVERTY_COUNTS) + (Fraction(0),)
    facts: dict[str, list[Any]] = {}
    by_indicator: dict[str, dict[str, str]] = {}
    for village_code, censored_score, censored_by_indicator, *counts in assessed:
        own = facts.setdefault(village_code, list(zero))
        for (i, _), value in zip(_FROM_AREA_YEAR, counts, strict=True):
            own[i] = value
        own[-1] = Fraction(censored_score)
        if censored_by_indicator:
            by_indicator[village_code] = censored_by_indicator
    for village_code, *counts in registered:
        own = facts.setdefault(village_code, list(zero))
        own[:len(VILLAGE_COUNTS)] = counts
    own_facts = {code: tuple(v) for code, v in facts.items()}
    before = previous.tree if previous is not None else None
    sums = regrow(before.counts, before.facts, own_facts, zero) if before is not None else None
    tree = Tree(names, sums if sums is not None else tree_of(own_facts, zero, official_areas(province)), own_facts,
                as_of=newest)
    tree.protect(POVERTY_GROUPS, threshold, previous=before)
    tree.choose_as_before(before)
    return Survey(survey_year, tree, by_indicator)


async def cached_survey(*, cache: Cache, province: str, survey_year: int, threshold: int,
                        fresh: bool = False) -> Survey:
    """`survey`, as `Cache.tree` gives it."""
    what = ("survey", province, survey_year, threshold)

    async def compute(own: AsyncSession, previous: Survey | None) -> Survey:
        return await survey(own, province, survey_year, threshold, previous=previous)

    found: Survey = await cache.tree(what, compute, fresh=fresh)
    return found


async def indicator_sets(session: AsyncSession, *, cache: Cache, province: str, survey_year: int) -> tuple[str, ...]:
    """The indicator sets the province's assessments of the survey year used (from the cache while no event has
    been applied since)."""
    async def compute() -> tuple[str, ...]:
        found = await session.execute(select(col(Assessment.indicator_set)).distinct().where(
            col(Assessment.survey_year) == survey_year,
            col(Assessment.village_code).startswith(province, autoescape=True)))
        return tuple(sorted(found.scalars()))

    sets: tuple[str, ...] = await cache.get(("indicator_sets", province, survey_year, await version(session)),
                                            compute)
    return sets


async def assistance(session: AsyncSession, province: str, fiscal_year: int, target: Survey,
                     threshold: int, previous: Tree | None = None) -> Tree:
    """A fiscal year of a province: grants (each family counted once, in the village of its newest standing
    payment), reversals, centre subsidies (by sub-district), budgets and what was drawn on them (by the budget's
    area), and which of the target poor of `target`'s survey year were paid or helped; from `previous` (the
    same province and years before) where the figures did not change. Read here, summed in a worker thread."""
    payment, budget = Payment.__table__.c, Budget.__table__.c  # type: ignore[attr-defined]
    paid = await read_in_pages(session, select(
        payment.programme, payment.reversed, payment.area_code, payment.amount, payment.centre_id,
        payment.household_id, payment.paid_on, payment.budget_id).where(
        payment.fiscal_year == fiscal_year, payment.area_code.startswith(province, autoescape=True)))
    start, end = fiscal_year_bounds(fiscal_year)
    given = [household for (household,) in await read_in_pages(session, select(col(Help.household_id)).where(
        col(Help.given_on) >= start, col(Help.given_on) <= end,
        col(Help.village_code).startswith(province, autoescape=True)))]
    targets = await read_in_pages(session, select(col(Assessment.household_id), col(Assessment.village_code)).where(
        col(Assessment.survey_year) == target.survey_year, col(Assessment.target_poor).is_(True),
        col(Assessment.village_code).startswith(province, autoescape=True)))
    budgets = (await session.execute(select(budget.id, budget.area_code, budget.amount).where(
        budget.fiscal_year == fiscal_year, budget.area_code.startswith(province, autoescape=True)))).all()
    newest = await as_of(session)
    return await asyncio.to_thread(_sum_assistance, province, threshold, paid, given, targets, budgets, newest,
                                   previous)


def _sum_assistance(province: str, threshold: int, paid: Sequence[Any], given: Sequence[str],
                    targets: Sequence[Any], budgets: Sequence[Any], newest: datetime | None,
                    previous: Tree | None) -> Tree:
    names = (*ASSISTANCE_COUNTS, *ASSISTANCE_MONEY)
    index = {name: i for i, name in enumerate(names)}
    zero = (0,) * len(ASSISTANCE_COUNTS) + (ZERO,) * len(ASSISTANCE_MONEY)
    facts: dict[str, list[Any]] = {}

    def add(code: str, name: str, value: Any = 1) -> None:
        facts.setdefault(code, list(zero))[index[name]] += value

    family_village: dict[str, tuple[Any, str]] = {}
    drawn: dict[str, Decimal] = {}
    helped: set[str] = set()
    centres: set[str] = set()
    for p in paid:
        if p.programme == CENTRE_SUBSIDY:
            if not p.reversed:
                add(p.area_code, "subsidy_amount", p.amount)
                if p.centre_id not in centres:
                    centres.add(p.centre_id or "")
                    add(p.area_code, "centres_subsidised")
        elif p.reversed:
            add(p.area_code, "grants_reversed")
        else:
            add(p.area_code, "grant_amount", p.amount)
            newest_paid = family_village.get(p.household_id or "")
            if newest_paid is None or (p.paid_on, p.area_code) > newest_paid:
                family_village[p.household_id or ""] = (p.paid_on, p.area_code)
        if not p.reversed:
            if p.household_id:
                helped.add(p.household_id)
            if p.budget_id:
                drawn[p.budget_id] = drawn.get(p.budget_id, ZERO) + p.amount
    for _, village in family_village.values():
        add(village, "families_granted")
    helped.update(given)
    for household_id, village in targets:
        if household_id in helped:
            add(village, "target_poor_helped")
    own_facts = {c: tuple(v) for c, v in facts.items()}
    sums = regrow(previous.counts, previous.facts, own_facts, zero) if previous is not None else None
    tree = Tree(names, sums if sums is not None else tree_of(own_facts, zero, official_areas(province)), own_facts,
                as_of=newest)
    tree.protect(ASSISTANCE_GROUPS, threshold, previous=previous)
    tree.protect(CENTRE_GROUPS, threshold, deepest=6, previous=previous)
    tree.choose_as_before(previous)
    tree.sums = dict(tree.counts)  # the budgets go into sums, not into the counts the patterns are chosen over
    # Budgets are set for an area of any level: each counts in its area and the areas above it.
    money: dict[str, tuple[Decimal, Decimal]] = {}
    for b in budgets:
        amount, used_so_far = money.get(b.area_code, (ZERO, ZERO))
        money[b.area_code] = (amount + b.amount, used_so_far + drawn.get(b.id, ZERO))
    rolled = tree_of(money, (ZERO, ZERO))
    allocated, used = index["budget_allocated"], index["budget_used"]
    for code, (amount, drawn_on) in rolled.items():
        values = list(tree.sums.get(code, zero))
        values[allocated], values[used] = amount, drawn_on
        tree.sums[code] = tuple(values)
    return tree


async def cached_assistance(*, cache: Cache, province: str, fiscal_year: int, target: Survey, threshold: int,
                            fresh: bool = False) -> Tree:
    """`assistance`, as `Cache.tree` gives it."""
    what = ("assistance", province, fiscal_year, target.survey_year, threshold)

    async def compute(own: AsyncSession, previous: Tree | None) -> Tree:
        return await assistance(own, province, fiscal_year, target, threshold, previous=previous)

    tree: Tree = await cache.tree(what, compute, fresh=fresh)
    return tree


async def publication_cache(request: Request) -> Cache:
    """FastAPI dependency: the process's cache of published trees."""
    return Cache.of(request.app.state)


CacheDep = Annotated[Cache, Depends(publication_cache)]
