"""Produces records with a confluent-kafka (librdkafka) Producer and reports each delivery.

stdin:  {"config": {librdkafka settings, bootstrap.servers included}, "topic": str,
         "records": [record in Kafdo's JSON form],
         "pace": {"every": n, "sleep_ms": ms} (optional: a pause after every n records)}
stdout: {"deliveries": [{"partition": p, "offset": o, "error": null or str}, one per record
                        in order], "not_flushed": messages still queued at the end,
         "errors": [error callbacks: {"name", "fatal", "text"}]}
"""

import time

from confluent_kafka import Producer

import common

FLUSH_TIMEOUT_S = 120


def main():
    spec = common.read_spec()
    errors = []

    def on_error(err):
        errors.append({"name": err.name(), "fatal": err.fatal(), "text": err.str()})
        common.log("producer error:", err)

    producer = Producer({**spec["config"], "error_cb": on_error})
    deliveries = [None] * len(spec["records"])

    def reporter(index):
        def on_delivery(err, msg):
            deliveries[index] = {
                "partition": msg.partition(),
                "offset": msg.offset(),
                "error": None if err is None else f"{err.name()}: {err.str()}",
            }
        return on_delivery

    pace = spec.get("pace")
    for index, record in enumerate(spec["records"]):
        key, value, headers = common.record_parts(record)
        while True:
            try:
                producer.produce(spec["topic"], value=value, key=key, headers=headers,
                                 on_delivery=reporter(index))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if pace and (index + 1) % pace["every"] == 0:
            time.sleep(pace["sleep_ms"] / 1000)
    not_flushed = producer.flush(FLUSH_TIMEOUT_S)
    common.write_result({"deliveries": deliveries, "not_flushed": not_flushed, "errors": errors})


if __name__ == "__main__":
    main()
