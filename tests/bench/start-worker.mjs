// Starts the Kafdo Worker for the produce benchmark WITHOUT the inspector.
//
// `wrangler dev` always attaches an inspector, which makes Durable Object calls 2-3x slower;
// wrangler's `unstable_startWorker` can turn it off. Usage (from the repo root):
//
//   node tests/bench/start-worker.mjs <wrangler.toml> <port> <persist dir>
//
// It serves on 127.0.0.1:<port> until it gets SIGTERM or SIGINT. The benchmark binary
// (tests/src/bin/bench-produce.rs) starts it in its own process group and stops the group.
import { unstable_startWorker } from "wrangler";

const [config, port, persist] = process.argv.slice(2);
if (!config || !port || !persist) {
  console.error("usage: start-worker.mjs <wrangler.toml> <port> <persist dir>");
  process.exit(2);
}

const worker = await unstable_startWorker({
  config,
  dev: {
    inspector: false,
    server: { hostname: "127.0.0.1", port: Number(port) },
    persist,
    watch: false,
    liveReload: false,
    logLevel: "warn",
  },
});
await worker.ready;
console.log(`kafdo worker ready on ${await worker.url} (inspector off)`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await worker.dispose();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
