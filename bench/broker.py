"""What the embedded broker's CPU per record scales with: record size and the consumers fetching it.

One producer sends records of each --sizes at --rate records/s to a 4-partition topic of a fresh
embedded broker (Tansu, memory storage, as `dinostream up` runs it), keyed over 16 streams like
frame records, while each of --consumers reads the whole topic in its own group. For every (size,
consumers) pair it prints the broker's CPU per record (/proc, the broker process) and this
process's (producer and consumers). Then, with --topics HOST:PORT instead, it reads a running
broker's topics for --seconds and prints the bytes per second written to each (records x mean
size of the latest ones): who fills the broker.

    python bench/broker.py                                  # 157 KB (a ViT-S/16 record), 40 KB; 0, 1, 3 consumers
    python bench/broker.py --sizes 157000,80000 --consumers 3
    python bench/broker.py --topics 127.0.0.1:40123        # a density run's broker (see its tansu --listener-url)

Measured on the 2-core box (issue 13): 157 KB records cost the broker ~0.7 ms each to take and
~0.3-0.6 ms more per consumer (1.96-2.10 ms with 3); 80 KB 1.52 ms, 40 KB 1.06, 7 KB 0.54: bytes
dominate; how the producer batches them does not (1 or 16 records per request: 2.10 vs 2.08).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from density import broker_pid, cpu_seconds  # noqa: E402

from dinostream.core.embedded_broker import EmbeddedBroker  # noqa: E402

FETCH = {"max_partition_fetch_bytes": 8_000_000, "fetch_max_bytes": 64_000_000}


async def one(size: int, consumers: int, rate: float, seconds: float, tick: float) -> str:
    """Broker and client CPU per record for one (size, consumers) pair, on a fresh broker."""
    with tempfile.TemporaryDirectory() as tmp:
        async with EmbeddedBroker(Path(tmp) / "broker.log") as broker:
            pid = broker_pid()
            admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic("bench", 4, 1)])
            finally:
                await admin.close()
            producer = AIOKafkaProducer(
                bootstrap_servers=broker.bootstrap, acks="all", max_request_size=2 * size + 100_000, linger_ms=5
            )
            await producer.start()
            got = [0] * consumers

            async def consume(i: int) -> None:
                consumer = AIOKafkaConsumer(
                    "bench", bootstrap_servers=broker.bootstrap, group_id=f"g{i}", auto_offset_reset="earliest", **FETCH
                )
                await consumer.start()
                try:
                    while True:
                        batch = await consumer.getmany(timeout_ms=500)
                        got[i] += sum(len(records) for records in batch.values())
                finally:
                    await consumer.stop()

            tasks = [asyncio.create_task(consume(i)) for i in range(consumers)]
            try:
                payload = os.urandom(size)
                await asyncio.sleep(3)  # consumers joined
                per_tick, sent = max(1, round(rate * tick)), 0
                broker_cpu, own_cpu, started = cpu_seconds(pid), time.process_time(), time.monotonic()
                while time.monotonic() - started < seconds:
                    futures = [
                        await producer.send("bench", payload, key=f"cam-{(sent + j) % 16}".encode())
                        for j in range(per_tick)
                    ]
                    await asyncio.gather(*futures)
                    sent += per_tick
                    await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
                deadline = time.monotonic() + 10
                while any(n < sent for n in got) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                broker_ms = 1000 * (cpu_seconds(pid) - broker_cpu) / sent
                own_ms = 1000 * (time.process_time() - own_cpu) / sent
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await producer.stop()
    return (
        f"{size / 1000:7.1f} KB x {rate:g}/s, {consumers} consumers: broker {broker_ms:5.2f} ms/record, "
        f"producer+consumers {own_ms:5.2f} ms/record ({sent} sent, read {got})"
    )


async def topics(bootstrap: str, seconds: float) -> None:
    """Bytes per second written to each topic of a running broker."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **FETCH)
    await consumer.start()
    try:
        names = sorted(await consumer.topics())
        tps = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or [])]
        before, started = await consumer.end_offsets(tps), time.monotonic()
        await asyncio.sleep(seconds)
        after, elapsed = await consumer.end_offsets(tps), time.monotonic() - started
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, max(before[tp], after[tp] - 20))
        sizes: dict[str, list[int]] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all([await consumer.position(tp) >= after[tp] for tp in tps]):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                sizes.setdefault(tp.topic, []).extend(
                    len(r.value or b"") + len(r.key or b"") for r in records if r.offset < after[tp]
                )
        rows = []
        for name in names:
            rate = sum(after[tp] - before[tp] for tp in tps if tp.topic == name) / elapsed
            mean = sum(sizes.get(name, [])) / max(len(sizes.get(name, [])), 1)
            rows.append((rate * mean, name, rate, mean))
        for written, name, rate, mean in sorted(rows, reverse=True):
            print(f"{name:60s} {rate:7.1f} rec/s x {mean / 1000:7.1f} KB = {written / 1e6:6.2f} MB/s")
    finally:
        await consumer.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="157000,40000", help="record sizes in bytes, comma separated")
    ap.add_argument("--consumers", default="0,1,3", help="consumer counts, comma separated")
    ap.add_argument("--rate", type=float, default=32.0, help="records per second")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--tick", type=float, default=0.125, help="s between produce bursts (rate x tick records each)")
    ap.add_argument("--topics", metavar="HOST:PORT", help="instead: bytes per topic on this running broker")
    args = ap.parse_args()
    if args.topics:
        await topics(args.topics, args.seconds)
        return
    for size in (int(s) for s in args.sizes.split(",")):
        for consumers in (int(c) for c in args.consumers.split(",")):
            print(await one(size, consumers, args.rate, args.seconds, args.tick), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
