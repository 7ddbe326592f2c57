"""Transactions with confluent-kafka's Producer (librdkafka: InitProducerId, AddPartitionsToTxn,
transactional Produce, EndTxn, all "transaction version 1": the epoch kept across
transactions).

stdin:  {"bootstrap": "host:port", "topic": str, "transactional_id": str,
         "transactions": [{"commit": bool, "records": [{"partition": int, "value": str}]}],
         "zombie": bool (optional)}
stdout: {"ended": [null or error name, one per transaction],
         "zombie": null or the error name the fenced instance's commit got (with "zombie")}

With "zombie", a first instance begins a transaction and writes, a second instance with the
same transactional.id initializes (fencing the first), then the first tries to commit: that
must fail, and its records must never be read committed. The transactions then run on the
second instance.
"""

from confluent_kafka import KafkaException, Producer

import common

TIMEOUT_S = 30


def producer(spec):
    return Producer({
        "bootstrap.servers": spec["bootstrap"],
        "transactional.id": spec["transactional_id"],
        "linger.ms": 5,
    })


def send(p, topic, records):
    errors = []

    def report(err, _msg):
        if err is not None:
            errors.append(err.name())

    for r in records:
        p.produce(topic, value=r["value"].encode(), partition=r["partition"], on_delivery=report)
    p.flush(TIMEOUT_S)
    return errors


def main():
    spec = common.read_spec()
    topic = spec["topic"]
    zombie_error = None
    if spec.get("zombie"):
        first = producer(spec)
        first.init_transactions(TIMEOUT_S)
        first.begin_transaction()
        send(first, topic, [{"partition": 0, "value": "zombie-0"},
                            {"partition": 1, "value": "zombie-1"}])
    p = producer(spec)
    p.init_transactions(TIMEOUT_S)
    if spec.get("zombie"):
        try:
            first.commit_transaction(TIMEOUT_S)
        except KafkaException as e:
            zombie_error = e.args[0].name()
    ended = []
    for txn in spec["transactions"]:
        p.begin_transaction()
        errors = send(p, topic, txn["records"])
        try:
            if errors:
                raise RuntimeError(f"delivery failed: {errors}")
            if txn["commit"]:
                p.commit_transaction(TIMEOUT_S)
            else:
                p.abort_transaction(TIMEOUT_S)
            ended.append(None)
        except KafkaException as e:
            ended.append(e.args[0].name())
            p.abort_transaction(TIMEOUT_S)
    common.write_result({"ended": ended, "zombie": zombie_error})


if __name__ == "__main__":
    main()
