"""The history checker's order check (ops.consistency): a key's events taken in another order than written fail
it, except those taken late only from a replay after the broker lost its log, which it counts apart."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

from ops.consistency import Outboxed, _order
from shared.clock import utcnow

T0 = utcnow()


def outboxed(outbox_id: int, replayed_at: datetime | None = None) -> Outboxed:
    return Outboxed("assistance", outbox_id, f"e{outbox_id}", "assistance.payment", "household-1", "paid.v1",
                    T0, replayed_at)


def taken(order: list[int], at: dict[int, datetime] | None = None) -> list[SimpleNamespace]:
    """Inbox rows taking the events `order` lists, a second apart (or at the times given)."""
    return [SimpleNamespace(event_id=f"e{i}", processed_at=(at or {}).get(i, T0 + timedelta(seconds=n)),
                            partition=0, offset=n) for n, i in enumerate(order)]


def test_a_key_taken_in_the_order_written_passes() -> None:
    events = {f"e{i}": outboxed(i) for i in (78, 79, 80)}
    found = _order("reporting", taken([78, 79, 80]), events)
    assert found.ok and found.summary == "1 keys, each taken in the order written"


def test_a_key_taken_out_of_order_fails_with_the_orders() -> None:
    events = {f"e{i}": outboxed(i) for i in (78, 79, 80, 81, 82)}
    found = _order("reporting", taken([78, 79, 82, 80, 81]), events)
    assert not found.ok
    assert found.examples == ["assistance key household-1: outbox order [78, 79, 80, 81, 82], "
                              "taken as [78, 79, 82, 80, 81]"]


def test_older_events_taken_late_from_a_replay_are_counted_apart() -> None:
    """The fault test's case: 80 and 81 were published to a broker that then lost its log; 82 reached the broker
    that came back before the relay published everything again, and 80 and 81 were taken from that replay."""
    replay = T0 + timedelta(seconds=2, milliseconds=500)
    events = {f"e{i}": outboxed(i, replayed_at=replay) for i in (78, 79, 80, 81, 82)}
    found = _order("reporting", taken([78, 79, 82, 80, 81]), events)
    assert found.ok
    assert found.summary == ("1 keys, each taken in the order written; 1 taken out of order only from a replay "
                             "after the broker lost its log")


def test_a_replayed_event_taken_late_before_its_replay_still_fails() -> None:
    """Taken late, but before any replay: the replay cannot be why, so it is a failure, replay or not."""
    later = T0 + timedelta(minutes=5)
    events = {f"e{i}": outboxed(i, replayed_at=later) for i in (78, 79, 80)}
    found = _order("reporting", taken([78, 80, 79]), events)
    assert not found.ok and "1 keys were taken out of order" == found.summary
