"""kafka-python 3.0 against the gateway: produce, read whole partitions back, administer topics.

stdin:  {"op": "produce", "bootstrap": "host:port", "topic": str, "idempotent": bool,
         "compression": null or "gzip"|"snappy"|"lz4"|"zstd",
         "records": [record in Kafdo's JSON form, with "partition" optional]}
        -> {"deliveries": [{"partition", "offset"}, one per record in order]}
        {"op": "consume", "bootstrap": ..., "topic": str, "partitions": n,
         "isolation": "read_committed"|"read_uncommitted" (optional)}
        -> {"records": [{"partition", "offset", "timestamp", "key", "value", "headers"}],
            "end_offsets": {partition: offset}}
        {"op": "admin", "bootstrap": ..., "create": [{"name", "partitions"}], "delete": [str]}
        -> {"created": {name: null or error name}, "deleted": {name: null or error name},
            "topics": [names listed afterwards]}
        {"op": "transactions", "bootstrap": ..., "topic": str, "transactional_id": str,
         "transactions": [{"commit": bool, "records": [{"partition": int, "value": str}]}]}
        -> {"ended": [null or error name, one per transaction]}
"""

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

import common

TIMEOUT_S = 120


def produce(spec):
    producer = KafkaProducer(
        bootstrap_servers=spec["bootstrap"],
        enable_idempotence=spec.get("idempotent", False),
        compression_type=spec.get("compression"),
        acks="all",
        linger_ms=5,
        max_request_size=4 * 1024 * 1024,
    )
    futures = []
    for record in spec["records"]:
        key, value, headers = common.record_parts(record)
        futures.append(producer.send(spec["topic"], value=value, key=key, headers=headers,
                                     partition=record.get("partition")))
    producer.flush(TIMEOUT_S)
    deliveries = []
    for future in futures:
        meta = future.get(timeout=TIMEOUT_S)
        deliveries.append({"partition": meta.partition, "offset": meta.offset})
    producer.close(TIMEOUT_S)
    return {"deliveries": deliveries}


def consume(spec):
    consumer = KafkaConsumer(
        bootstrap_servers=spec["bootstrap"],
        enable_auto_commit=False,
        isolation_level=spec.get("isolation", "read_uncommitted"),
        fetch_max_bytes=8 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    partitions = [TopicPartition(spec["topic"], p) for p in range(spec["partitions"])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    records = []
    deadline = time.monotonic() + TIMEOUT_S
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        if time.monotonic() > deadline:
            positions = {tp.partition: consumer.position(tp) for tp in partitions}
            raise SystemExit(f"timed out at {positions}; ends {ends}")
        for tp, batch in consumer.poll(timeout_ms=500).items():
            for msg in batch:
                records.append(common.consumed(tp.partition, msg.offset, msg.timestamp, msg.key,
                                               msg.value, msg.headers))
    consumer.close()
    return {"records": records, "end_offsets": {tp.partition: o for tp, o in ends.items()}}


def error_name(error):
    return None if error is None else type(error).__name__


def admin(spec):
    client = KafkaAdminClient(bootstrap_servers=spec["bootstrap"], request_timeout_ms=60000)
    created = {}
    for topic in spec.get("create", []):
        try:
            client.create_topics([NewTopic(topic["name"], topic["partitions"], 1)])
            created[topic["name"]] = None
        except KafkaError as e:
            created[topic["name"]] = error_name(e)
    deleted = {}
    for name in spec.get("delete", []):
        try:
            client.delete_topics([name])
            deleted[name] = None
        except KafkaError as e:
            deleted[name] = error_name(e)
    topics = sorted(client.list_topics())
    client.close()
    return {"created": created, "deleted": deleted, "topics": topics}


def transactions(spec):
    producer = KafkaProducer(bootstrap_servers=spec["bootstrap"],
                             transactional_id=spec["transactional_id"], linger_ms=5)
    producer.init_transactions()
    ended = []
    for txn in spec["transactions"]:
        producer.begin_transaction()
        try:
            futures = [producer.send(spec["topic"], value=r["value"].encode(),
                                     partition=r["partition"]) for r in txn["records"]]
            for future in futures:
                future.get(timeout=TIMEOUT_S)
            if txn["commit"]:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
            ended.append(None)
        except KafkaError as e:
            ended.append(error_name(e))
            producer.abort_transaction()
    producer.close()
    return {"ended": ended}


def main():
    spec = common.read_spec()
    ops = {"produce": produce, "consume": consume, "admin": admin, "transactions": transactions}
    common.write_result(ops[spec["op"]](spec))


if __name__ == "__main__":
    main()
