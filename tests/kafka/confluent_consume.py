"""Reads whole partitions with a plain confluent-kafka Consumer, without a consumer group.

The partitions are assigned by hand at the beginning and read until each reports its end
(enable.partition.eof); nothing is committed. group.id is set only because librdkafka's
Consumer requires one.

stdin:  {"config": {librdkafka settings, bootstrap.servers included}, "topic": str,
         "partitions": n, "timeout_s": s (optional)}
stdout: {"records": [{"partition", "offset", "timestamp", "key", "value", "headers"}, in the
                     order received]}
"""

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

import common


def main():
    spec = common.read_spec()
    config = {
        "group.id": "kafdo-e2e-no-group",
        **spec["config"],
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }
    consumer = Consumer(config)
    topic, partitions = spec["topic"], spec["partitions"]
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    deadline = time.monotonic() + spec.get("timeout_s", 120)
    at_end = set()
    records = []
    while len(at_end) < partitions:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {len(records)} records read, "
                             f"end reached only on partitions {sorted(at_end)}")
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
                continue
            raise SystemExit(f"consume error: {msg.error()}")
        _, timestamp = msg.timestamp()
        records.append(common.consumed(msg.partition(), msg.offset(), timestamp, msg.key(),
                                       msg.value(), msg.headers()))
    consumer.close()
    common.write_result({"records": records})


if __name__ == "__main__":
    main()
