"""The capacity search of bench/capacity.py as logic: bracket, bisect, confirm and step down, on a target whose
capacity is known (a predicate of the rate and the probe's length), not on a running system."""

from __future__ import annotations

import pytest

from bench.capacity import FLOOR, HOLDS, TOLERANCE, Search, Trial, search


async def run(capacity: float, *, start: float = 20.0, held: float | None = None) -> Search:
    """The search against a target passing every probe at or below `capacity`, and holds (the long
    confirmation) at or below `held` (default: the same capacity)."""
    held = capacity if held is None else held

    async def probe(rate: float, seconds: float) -> Trial:
        return Trial(rate, seconds, rate <= (held if seconds == 120 else capacity))

    return await search(probe, start=start, probe_s=25, confirm_s=120)


@pytest.mark.parametrize("capacity", [23.0, 57.0, 100.0, 313.0, 1_234.0])
async def test_finds_the_capacity_within_the_tolerance_and_confirms_it(capacity: float) -> None:
    found = await run(capacity)
    assert capacity * (1 - TOLERANCE) - FLOOR <= found.rate <= capacity
    assert found.trials[-1] == Trial(found.rate, 120, True)
    assert [t.seconds for t in found.trials[:-1]] == [25] * (len(found.trials) - 1)  # only the hold is long


async def test_brackets_by_doubling_then_bisects_inside_the_bracket() -> None:
    found = await run(100.0)
    rates = [t.rate for t in found.trials]
    assert rates[:4] == [20, 40, 80, 160]  # 160 fails: the capacity lies between 80 and 160
    assert all(80 < r < 160 for r in rates[4:])
    assert len(found.trials) <= 10


async def test_a_first_probe_that_fails_halves_the_rate_until_one_passes() -> None:
    found = await run(7.0)
    assert [t.rate for t in found.trials[:3]] == [20, 10, 5]
    assert 6 <= found.rate <= 7


async def test_a_failed_hold_steps_down_until_one_holds() -> None:
    found = await run(100.0, held=80.0)  # probes pass up to 100, but only 80 holds for two minutes
    holds = [t for t in found.trials if t.seconds == 120]
    assert [t.ok for t in holds] == [False] * (len(holds) - 1) + [True]
    assert len(holds) > 1 and holds[1].rate == round(holds[0].rate * 0.9, 1)
    assert 80 * 0.9 <= found.rate <= 80


async def test_a_target_that_holds_nothing_has_no_capacity() -> None:
    found = await run(0.5)
    assert found.rate == 0.0
    assert not any(t.ok for t in found.trials)
    assert min(t.rate for t in found.trials) >= FLOOR


async def test_holds_stop_after_a_few_steps_down_when_none_passes() -> None:
    found = await run(100.0, held=10.0)  # short probes pass up to 100, yet no rate near it holds
    holds = [t for t in found.trials if t.seconds == 120]
    assert found.rate == 0.0
    assert len(holds) == HOLDS and not any(t.ok for t in holds)
