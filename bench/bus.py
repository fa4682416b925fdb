"""Event-bus benchmark: raw aiokafka versus outbox → relay → Kafka → consumer with inbox (prints, asserts no time)."""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench import prepare
from bench.bus_outbox import SERVICE, Changed, PathResult, event_type_on, key_seq, new_topic, outbox_path
from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from shared.bus import ensure_topics, new_producer
from shared.clock import utcnow
from shared.events.envelope import CloudEvent, source_for
from shared.settings import KafkaSettings

HEADERS_CONTENT_TYPE = ("content-type", b"application/cloudevents+json; charset=UTF-8")


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


# -- baseline: raw aiokafka --------------------------------------------------------------------------


@dataclass
class RawResult:
    """Timings of the raw aiokafka baseline."""

    produce_s: float
    consume_s: float
    join_s: float
    value_bytes: float

    @property
    def total_s(self) -> float:
        return self.produce_s + self.consume_s

    def rate(self, n: int) -> float:
        return n / self.total_s


async def raw_baseline(settings: KafkaSettings, n: int, keys: int) -> RawResult:
    """Produce n prebuilt CloudEvent records like the relay does, then consume them like our Consumer."""
    event_type = event_type_on(new_topic("raw"))
    await ensure_topics(settings, [event_type.topic], client_id="bench-raw")
    now = utcnow()
    records = []
    for i in range(n):
        key, seq = key_seq(i, keys)
        value = CloudEvent(
            source=source_for(SERVICE), type=event_type.type, time=now, subject=key, partitionkey=key,
            data=Changed(key=key, seq=seq).model_dump(mode="json"),
        ).to_json()
        records.append((key.encode(), value))
    headers = [HEADERS_CONTENT_TYPE, ("ce_type", event_type.type.encode())]

    producer = new_producer(settings, client_id="bench-raw")
    await producer.start()
    try:
        started = time.monotonic()
        futures = [await producer.send(event_type.topic, value=v, key=k, headers=headers) for k, v in records]
        await asyncio.gather(*futures)
        produce_s = time.monotonic() - started
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        event_type.topic, bootstrap_servers=settings.bootstrap_servers, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        client_id="bench-raw-consumer", enable_auto_commit=False, auto_offset_reset="earliest",
        max_poll_records=settings.consumer_batch_size, request_timeout_ms=max(settings.request_timeout_ms, 40_000),
    )
    joining = time.monotonic()
    await consumer.start()  # returns once the group has assigned the partitions
    try:
        started = time.monotonic()
        received = 0
        while received < n:
            batch = await consumer.getmany(timeout_ms=200, max_records=settings.consumer_batch_size)
            for tp, batch_records in batch.items():
                received += len(batch_records)
                await consumer.commit({tp: batch_records[-1].offset + 1})
        consume_s = time.monotonic() - started
    finally:
        await consumer.stop()
    value_bytes = sum(len(v) for _, v in records) / n
    return RawResult(produce_s, consume_s, started - joining, value_bytes)


# -- report --------------------------------------------------------------------------------------------

DEFINITIONS = """\
What is timed (wall clock, time.monotonic):
  raw produce   first send() to the last ack of N prebuilt records (new_producer: acks=all, linger 5 ms,
                1 MiB batches), same keys, CloudEvent JSON values and headers as the relay sends.
  raw consume   after the consumer group has joined: getmany(500) until N records are received,
                committing each partition's offset after each batch (as our Consumer does); no decoding.
  raw events/s  N / (raw produce + raw consume), the two phases run one after the other.
  outbox write  N state changes, each an INSERT into a state table + Outbox.add, in transactions of 1 or
                100 events, on the producer database; the Relay and the Consumer run concurrently.
                "batched": 500 per transaction as one multi-row INSERT + Outbox.add_many (a bulk import),
                and a batch handler (Handlers.on_batch) on the consumer, as a projection would use.
  published     from the start of writes until the Relay has marked the N-th row published.
  end to end    from the start of writes until the transaction holding the N-th event's inbox row (and its
                handler's effect row) has committed on the consumer database (decode, dedupe, apply); the
                consumer applies each poll (up to 500 records) in one transaction, a one-row INSERT per
                event with Handlers.on, one multi-row INSERT per poll with Handlers.on_batch.
  events/s      N / end to end;  ratio = outbox-path events/s / raw events/s.
  Relay and Consumer are connected (group joined) before the clock starts, as in a running service."""


def print_raw(n: int, raw: RawResult) -> None:
    print(f"\nraw aiokafka baseline ({n} records, {raw.value_bytes:.0f} B values)")
    print(f"  produce      {raw.produce_s:8.2f} s  {n / raw.produce_s:9.0f} /s")
    print(f"  consume      {raw.consume_s:8.2f} s  {n / raw.consume_s:9.0f} /s"
          f"  (group join before it: {raw.join_s:.2f} s)")
    print(f"  total        {raw.total_s:8.2f} s  {raw.rate(n):9.0f} events/s")
    print(f"  peak RSS so far {peak_rss_mib():.0f} MiB")


def print_path(n: int, raw: RawResult, result: PathResult) -> None:
    print(f"\noutbox path: {result.label}")
    print(f"  write phase  {result.write_s:8.2f} s  {n / result.write_s:9.0f} /s")
    print(f"  published    {result.published_s:8.2f} s")
    print(f"  end to end   {result.end_to_end_s:8.2f} s  {result.rate(n):9.0f} events/s")
    goal = "   (goal on SQLite: >= 0.30)" if result.label.startswith("sqlite") else ""
    print(f"  ratio        {result.rate(n) / raw.rate(n):8.3f}{goal}")
    for name, ok in result.checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    print(f"  peak RSS so far {peak_rss_mib():.0f} MiB")


def print_summary(n: int, raw: RawResult, results: list[PathResult]) -> None:
    print(f"\nsummary (N={n}; raw baseline {raw.rate(n):.0f} events/s)")
    print(f"  {'path':42} {'write s':>8} {'e2e s':>8} {'events/s':>9} {'ratio':>6}  correct")
    for r in results:
        correct = "yes" if all(r.checks.values()) else "NO"
        print(f"  {r.label:42} {r.write_s:8.2f} {r.end_to_end_s:8.2f} {r.rate(n):9.0f} "
              f"{r.rate(n) / raw.rate(n):6.3f}  {correct}")


# -- main ----------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, bootstrap: str) -> bool:
    """Baseline, then each database × transaction size; returns whether every correctness check passed."""
    from shared.observability import configure_logging

    configure_logging(level="WARNING", json=False)
    settings = KafkaSettings.model_validate({"bootstrap_servers": bootstrap})
    n, keys = args.events, args.keys
    print(f"bus benchmark: N={n} events, {keys} keys, broker {bootstrap}, {settings.topic_partitions} partitions, "
          f"relay batch {settings.relay_batch_size}, consumer batch {settings.consumer_batch_size}")
    print(DEFINITIONS)
    raw = await raw_baseline(settings, n, keys)
    print_raw(n, raw)

    kinds = ["sqlite"] + (["postgres"] if args.database == "postgres" else [])
    # (transaction size, batched, publishing replicas). On PostgreSQL, also the outbox published by one replica
    # and by two sharing its shards (shared/bus/shards.py), from a backlog of all N events written in one
    # transaction: writing one event per statement is slower than publishing, and would time only the writes.
    paths = [(1, False, 1), (100, False, 1), (500, True, 1)]
    replicas = [(n, True, 1), (n, True, 2)]
    results: list[PathResult] = []
    with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-") as tmp:
        for kind in ["postgres"] if args.publishers_only else kinds:
            dbs = ScratchDatabases(kind, Path(tmp), args.postgres_url, prefix="kk_bench")
            try:
                runs = replicas if args.publishers_only else paths + (replicas if kind == "postgres" else [])
                for per_transaction, batched, publishers in runs:
                    if per_transaction == n:
                        label = f"{kind}, backlog in 1 transaction, {publishers} publisher{'s' * (publishers > 1)}"
                    else:
                        label = f"{kind}, {per_transaction} event{'s' if per_transaction > 1 else ''}/transaction"
                        label += ", batched" if batched else ""
                    result = await outbox_path(dbs, settings, n, keys, per_transaction, label, batched,
                                               publishers=publishers)
                    print_path(n, raw, result)
                    results.append(result)
            finally:
                await dbs.drop_all()
    print_summary(n, raw, results)
    return all(all(r.checks.values()) for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bus", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per run (default 20000)")
    parser.add_argument("--keys", type=int, default=200, help="distinct message keys (default 200)")
    parser.add_argument("--bootstrap", help="use this Kafka broker instead of starting a local Tansu one")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite",
                        help="sqlite: the outbox path on SQLite only; postgres: on SQLite and then PostgreSQL")
    parser.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"),
                        help="admin URL for throwaway databases, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--publishers-only", action="store_true",
                        help="only the outbox path on PostgreSQL from a backlog, published by one replica, then by two")
    args = parser.parse_args(argv)
    prepare()
    if args.publishers_only:
        args.database = "postgres"
    if args.database == "postgres" and not args.postgres_url:
        parser.error("--database postgres needs --postgres-url (or KAENKHUN_TEST_POSTGRES_URL)")
    if args.bootstrap:
        ok = asyncio.run(run(args, args.bootstrap))
    else:
        with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-broker-") as tmp, \
                LocalBroker(log_path=Path(tmp) / "tansu.log") as broker:
            ok = asyncio.run(run(args, broker.bootstrap_servers))
        print(f"  broker peak RSS {peak_rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB")
    print(f"\npeak RSS of this process {peak_rss_mib():.0f} MiB")
    print("correctness: " + ("all checks passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
