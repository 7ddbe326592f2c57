"""Administers with confluent-kafka's AdminClient: CreateTopics, DeleteTopics, DeleteRecords,
CreatePartitions.

stdin:  {"bootstrap": "host:port",
         "create": [{"name": str, "partitions": int}], "delete": [str],
         "delete_records": [{"topic": str, "partition": int, "before": int}],
         "create_partitions": [{"topic": str, "count": int}]}
stdout: {"created": {name: null or error name}, "deleted": {name: null or error name},
         "records_deleted": ["topic/partition": low watermark, or error name],
         "partitions_created": {topic: null or error name},
         "topics": {name: partition count, for every topic the cluster lists afterwards}}
"""

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

import common

TIMEOUT_S = 60


def outcome(future):
    try:
        future.result(timeout=TIMEOUT_S)
        return None
    except KafkaException as e:
        return e.args[0].name()


def main():
    spec = common.read_spec()
    admin = AdminClient({"bootstrap.servers": spec["bootstrap"]})
    created = {}
    if spec.get("create"):
        new_topics = [NewTopic(t["name"], num_partitions=t["partitions"], replication_factor=1)
                      for t in spec["create"]]
        for name, future in admin.create_topics(new_topics, operation_timeout=30).items():
            created[name] = outcome(future)
    deleted = {}
    if spec.get("delete"):
        for name, future in admin.delete_topics(spec["delete"], operation_timeout=30).items():
            deleted[name] = outcome(future)
    records_deleted = {}
    if spec.get("delete_records"):
        wanted = [TopicPartition(d["topic"], d["partition"], d["before"])
                  for d in spec["delete_records"]]
        for tp, future in admin.delete_records(wanted, operation_timeout=30).items():
            try:
                result = future.result(timeout=TIMEOUT_S)
                records_deleted[f"{tp.topic}/{tp.partition}"] = result.low_watermark
            except KafkaException as e:
                records_deleted[f"{tp.topic}/{tp.partition}"] = e.args[0].name()
    partitions_created = {}
    if spec.get("create_partitions"):
        wanted = [NewPartitions(c["topic"], c["count"]) for c in spec["create_partitions"]]
        for topic, future in admin.create_partitions(wanted, operation_timeout=30).items():
            partitions_created[topic] = outcome(future)
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    topics = {name: len(t.partitions) for name, t in metadata.topics.items()}
    common.write_result({"created": created, "deleted": deleted,
                         "records_deleted": records_deleted,
                         "partitions_created": partitions_created, "topics": topics})


if __name__ == "__main__":
    main()
