"""Identifiers and the random bytes behind them (ids, event ids, AES-GCM nonces): UUIDv7 and v4 as the APIs
promise, every byte handed out once, per thread and across a fork."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import threading
import uuid

from shared.ids import _ID, new_id, new_uuid4, random_bytes


def test_new_ids_are_uuid7_in_time_order_and_distinct() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(_ID.fullmatch(i) and uuid.UUID(i).version == 7 for i in ids[:100])
    millis = [int(i.replace("-", "")[:12], 16) for i in ids]
    assert millis == sorted(millis)


def test_uuid4_strings() -> None:
    values = [new_uuid4() for _ in range(10_000)]
    assert len(set(values)) == len(values)
    assert all(uuid.UUID(v).version == 4 and str(uuid.UUID(v)) == v for v in values[:100])


def test_random_bytes_are_never_handed_out_twice_across_threads() -> None:
    drawn: list[bytes] = []
    lock = threading.Lock()

    def draw() -> None:
        mine = [random_bytes(12) for _ in range(2_000)]  # several refills of the 4 KiB buffer
        with lock:
            drawn.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(drawn) == 8_000 and len(set(drawn)) == 8_000
    assert all(len(b) == 12 for b in drawn)
    assert len(random_bytes(10_000)) == 10_000  # more than a buffer at once


def _child(pipe: multiprocessing.connection.Connection) -> None:
    pipe.send(random_bytes(32))


def test_a_forked_child_does_not_reuse_its_parents_buffer() -> None:
    random_bytes(1)  # the parent's buffer is filled; a child that kept it would draw what the parent draws next
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=_child, args=(child_end,))
    child.start()
    from_child = parent_end.recv()
    child.join()
    assert from_child != random_bytes(32)
