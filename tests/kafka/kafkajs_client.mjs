// kafkajs 2.2 against the gateway: produce, and administer topics. (kafkajs has no consumer
// without a consumer group; consuming with it belongs to part 2, consumer groups.)
//
// stdin:  {"op": "produce", "bootstrap": "host:port", "topic": str, "idempotent": bool,
//          "gzip": bool, "records": [record in Kafdo's JSON form, "partition" optional]}
//         -> {"deliveries": [{"partition", "base_offset"}, one per send of 100 records]}
//         {"op": "admin", "bootstrap": ..., "create": [{"name", "partitions"}], "delete": [str]}
//         -> {"created": {name: null or error type}, "deleted": {...}, "topics": [names],
//             "offsets": {name: [{"partition", "low", "high"}] for every created topic}}
//         {"op": "transactions", "bootstrap": ..., "topic": str, "transactional_id": str,
//          "transactions": [{"commit": bool, "records": [{"partition": int, "value": str}]}]}
//         -> {"ended": [null or error type, one per transaction]}
import { readFileSync } from "node:fs";
import { Kafka, CompressionTypes, logLevel } from "kafkajs";

const spec = JSON.parse(readFileSync(0, "utf8"));
const kafka = new Kafka({
  clientId: "kafdo-e2e",
  brokers: [spec.bootstrap],
  logLevel: logLevel.WARN,
  retry: { retries: 8 },
});
const decode = (text) => (text == null ? null : Buffer.from(text, "base64"));

async function produce() {
  const producer = kafka.producer({ idempotent: !!spec.idempotent, maxInFlightRequests: spec.idempotent ? 1 : 5 });
  await producer.connect();
  const deliveries = [];
  for (let i = 0; i < spec.records.length; i += 100) {
    const messages = spec.records.slice(i, i + 100).map((r) => {
      const headers = {};
      for (const h of r.headers ?? []) {
        // kafkajs takes repeated keys as an array of values, in order.
        const value = decode(h.value);
        if (h.key in headers) headers[h.key] = [].concat(headers[h.key], value);
        else headers[h.key] = value;
      }
      return { key: decode(r.key), value: decode(r.value), headers, partition: r.partition };
    });
    const answers = await producer.send({
      topic: spec.topic,
      acks: -1,
      compression: spec.gzip ? CompressionTypes.GZIP : CompressionTypes.None,
      messages,
    });
    for (const a of answers) deliveries.push({ partition: a.partition, base_offset: Number(a.baseOffset) });
  }
  await producer.disconnect();
  return { deliveries };
}

async function admin() {
  const client = kafka.admin();
  await client.connect();
  const created = {};
  for (const t of spec.create ?? []) {
    try {
      await client.createTopics({ topics: [{ topic: t.name, numPartitions: t.partitions }], waitForLeaders: false });
      created[t.name] = null;
    } catch (e) {
      created[t.name] = e.type ?? e.name;
    }
  }
  const deleted = {};
  for (const name of spec.delete ?? []) {
    try {
      await client.deleteTopics({ topics: [name] });
      deleted[name] = null;
    } catch (e) {
      deleted[name] = e.type ?? e.name;
    }
  }
  const topics = (await client.listTopics()).sort();
  const offsets = {};
  for (const t of spec.create ?? []) {
    if (created[t.name] === null && topics.includes(t.name)) {
      offsets[t.name] = (await client.fetchTopicOffsets(t.name)).map((o) => ({
        partition: o.partition, low: Number(o.low), high: Number(o.high),
      }));
    }
  }
  await client.disconnect();
  return { created, deleted, topics, offsets };
}

async function transactions() {
  const producer = kafka.producer({
    transactionalId: spec.transactional_id,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  const ended = [];
  for (const t of spec.transactions) {
    const txn = await producer.transaction();
    try {
      await txn.send({
        topic: spec.topic,
        messages: t.records.map((r) => ({ value: r.value, partition: r.partition })),
      });
      if (t.commit) await txn.commit();
      else await txn.abort();
      ended.push(null);
    } catch (e) {
      ended.push(e.type ?? e.name);
      await txn.abort().catch(() => {});
    }
  }
  await producer.disconnect();
  return { ended };
}

const result = await { produce, admin, transactions }[spec.op]();
process.stdout.write(JSON.stringify(result) + "\n");
