"""The librdkafka side of `bench-kafka` (tests/src/bin/bench-kafka.rs): confluent-kafka against
the gateway. Reads one JSON spec on standard input, prints one JSON result.

{"bootstrap", "topic", "mode": "produce", "seconds", "idempotent", "partitions"}
    produces 100-byte records with null keys (librdkafka's sticky partitioner spreads them over
    the partitions) as fast as delivery allows, for `seconds` after a 0.5 s warm-up; counts the
    records acknowledged inside the window.
{"bootstrap", "topic", "mode": "produce", "seconds", "transactional_id", "commit_ms",
 "partitions"}
    the same from a transactional producer committing every `commit_ms`; counts the records of
    the transactions committed inside the window.
{"bootstrap", "topic", "mode": "consume", "partitions", "records"}
    reads `records` records from the beginning of every partition; records/s.
{"bootstrap", "topic", "mode": "latency", "count", "interval_ms"}
    one producer (linger 0) and one read_uncommitted consumer at the end of partition 0: each
    record carries its send time; produce-to-consume latency percentiles in ms.
"""

import json
import sys
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Producer, TopicPartition

VALUE = bytes(range(100))


def produce(spec):
    if spec.get("transactional_id"):
        return produce_transactional(spec)
    config = {
        "bootstrap.servers": spec["bootstrap"],
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 200000,
        "enable.idempotence": bool(spec.get("idempotent")),
    }
    producer = Producer(config)
    counting = {"on": False, "acked": 0}

    def delivered(error, _message):
        if error is None and counting["on"]:
            counting["acked"] += 1

    partitions = spec["partitions"]
    started = time.monotonic()
    warm_until = started + 0.5
    end = warm_until + spec["seconds"]
    i = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if not counting["on"] and now >= warm_until:
            counting["on"] = True
            window_start = now
        try:
            producer.produce(spec["topic"], VALUE, partition=i % partitions, on_delivery=delivered)
            i += 1
        except BufferError:
            producer.poll(0.005)
            continue
        if i % 1000 == 0:
            producer.poll(0)
    window = time.monotonic() - window_start
    producer.poll(0)
    counting["on"] = False
    producer.flush(60)
    return {"records": counting["acked"], "seconds": window}


def produce_transactional(spec):
    producer = Producer({
        "bootstrap.servers": spec["bootstrap"],
        "transactional.id": spec["transactional_id"],
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 200000,
    })
    producer.init_transactions(30)
    partitions = spec["partitions"]
    commit_s = spec["commit_ms"] / 1000
    warm_until = time.monotonic() + 0.5
    end = warm_until + spec["seconds"]
    committed, window_start, last_commit, i = 0, None, None, 0
    while time.monotonic() < end:
        began = time.monotonic()
        producer.begin_transaction()
        in_txn = 0
        while time.monotonic() < began + commit_s:
            try:
                producer.produce(spec["topic"], VALUE, partition=i % partitions)
                i += 1
                in_txn += 1
            except BufferError:
                producer.poll(0.005)
                continue
            if i % 1000 == 0:
                producer.poll(0)
        producer.commit_transaction(60)
        # The window: from the first transaction begun after the warm-up to the last commit.
        if began >= warm_until:
            window_start = began if window_start is None else window_start
            committed += in_txn
            last_commit = time.monotonic()
    return {"records": committed, "seconds": last_commit - window_start}


def consume(spec):
    consumer = Consumer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "group.id": "bench",
            "enable.auto.commit": False,
            "fetch.max.bytes": 16 * 1024 * 1024,
        }
    )
    consumer.assign(
        [TopicPartition(spec["topic"], p, OFFSET_BEGINNING) for p in range(spec["partitions"])]
    )
    wanted = spec["records"]
    got = 0
    started = None
    deadline = time.monotonic() + 120
    while got < wanted and time.monotonic() < deadline:
        batch = consumer.consume(10000, 1.0)
        if batch and started is None:
            started = time.monotonic()
        got += sum(1 for m in batch if m.error() is None)
    seconds = time.monotonic() - (started or time.monotonic())
    consumer.close()
    return {"records": got, "seconds": seconds}


def latency(spec):
    consumer = Consumer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "group.id": "bench-latency",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(spec["topic"], 0, OFFSET_END)])
    producer = Producer({"bootstrap.servers": spec["bootstrap"], "linger.ms": 0})
    count = spec["count"]
    latencies = []

    def read():
        deadline = time.monotonic() + 120
        while len(latencies) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            latencies.append((time.monotonic() - float(message.value())) * 1000.0)

    reader = threading.Thread(target=read)
    reader.start()
    # Until the consumer has its position, records would be missed: wait for it.
    time.sleep(2.0)
    for _ in range(count):
        producer.produce(spec["topic"], str(time.monotonic()).encode(), partition=0)
        producer.poll(0)
        time.sleep(spec["interval_ms"] / 1000.0)
    producer.flush(30)
    reader.join()
    consumer.close()
    latencies.sort()

    def percentile(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else None

    return {"received": len(latencies), "p50_ms": percentile(0.50), "p99_ms": percentile(0.99)}


def main():
    spec = json.load(sys.stdin)
    result = {"produce": produce, "consume": consume, "latency": latency}[spec["mode"]](spec)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
