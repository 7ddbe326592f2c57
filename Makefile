# Kafdo's two commands: `make dev` (run the Worker and the Kafka gateway locally) and `make test`
# (everything CI runs). Needs only Rust (rustup), Node, npm and Python 3; `make tools` installs
# the rest, once.
#
# Nothing here downloads at build time: worker-build is pointed at the installed wasm-bindgen
# and at the esbuild that comes with wrangler, and wasm-opt is off
# (worker/Cargo.toml: [package.metadata.wasm-pack.profile.release] wasm-opt = false).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
CARGO_BIN := $(shell echo "$${CARGO_HOME:-$$HOME/.cargo}")/bin
export PATH := $(CARGO_BIN):$(ROOT)/node_modules/.bin:$(PATH)

WORKER_BUILD_VERSION := 0.8.7
WASM_BINDGEN_VERSION := 0.2.130

PORT ?= 8787
KAFKA_PORT ?= 9092
STATE ?= $(ROOT)/.state
# What `wrangler dev` needs to run offline and quietly.
OFFLINE_ENV := WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
	WRANGLER_HIDE_BANNER=true

# The crates the Worker is built from: linted for wasm32 as well as natively.
WASM_CRATES := -p kafdo-worker -p kafdo-broker -p kafdo-types -p kafdo-sql -p kafdo-partition \
	-p kafdo-metadata -p kafdo-ingest -p kafdo-txn-coordinator -p kafdo-group

.PHONY: help tools build dev test lint bench soak fuzz clean

help:
	@echo "make dev    run the Worker on http://127.0.0.1:$(PORT) (state in .state/) and the Kafka"
	@echo "            gateway on 127.0.0.1:$(KAFKA_PORT) (PORT=, KAFKA_PORT= to change)"
	@echo "make test   lint, build, and run every test, end-to-end ones included"
	@echo "make tools  install the wasm32 target, worker-build, wasm-bindgen-cli, node_modules,"
	@echo "            and the Kafka clients the tests drive (.venv, kcat)"
	@echo "make build  build the Worker into worker/build/"
	@echo "make lint   rustfmt, the architecture check, clippy (native and wasm32), rustdoc"
	@echo "make bench  produce, transaction and Kafka-gateway benchmarks (ratios side by side)"
	@echo "make soak   thousands of simulation seeds (SEEDS=10000), reports seeds/s"
	@echo "make fuzz   every fuzz target for FUZZ_SECONDS (600) in all, reports cases/s"

# Idempotent and fast once done: each step checks before it installs.
tools:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown \
		|| rustup target add wasm32-unknown-unknown
	@if [ "$$(worker-build --version 2>/dev/null)" != "$(WORKER_BUILD_VERSION)" ]; then \
		cargo install worker-build --version $(WORKER_BUILD_VERSION) --force; fi
	@if [ "$$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$(WASM_BINDGEN_VERSION)" ]; then \
		cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; fi
	@# A symlinked node_modules belongs to another checkout: npm ci would empty its target.
	@if [ ! -L node_modules ] && { [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; }; then \
		npm ci --no-audit --no-fund && touch node_modules; fi
	@tests/kafka/install.sh

build: tools
	cd worker && WASM_BINDGEN_BIN="$$(command -v wasm-bindgen)" \
		ESBUILD_BIN="$(ROOT)/node_modules/@esbuild/linux-x64/bin/esbuild" \
		worker-build --release

# The gateway runs in the background and stops with wrangler (Ctrl-C).
dev: build
	@mkdir -p "$(STATE)"
	cargo build --release -p kafdo-gateway
	$(eval LOGS := $(shell mktemp -d -t kafdo-wrangler-XXXXXX))
	target/release/kafdo-gateway --listen 127.0.0.1:$(KAFKA_PORT) --url http://127.0.0.1:$(PORT) & \
		gateway=$$!; trap 'kill $$gateway 2>/dev/null' EXIT; \
		$(OFFLINE_ENV) XDG_CONFIG_HOME="$(LOGS)" wrangler dev --config "$(ROOT)/wrangler.toml" \
		--ip 127.0.0.1 --port $(PORT) --persist-to "$(STATE)" \
		--show-interactive-dev-session=false

lint: tools
	cargo fmt --all --check
	@# ARCHITECTURE.md's dependency invariants, from cargo metadata.
	cargo run -q -p kafdo-e2e --bin check-architecture
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy $(WASM_CRATES) --target wasm32-unknown-unknown -- -D warnings
	RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps
	RUSTDOCFLAGS=-Dwarnings cargo doc -p kafdo-worker --no-deps --target wasm32-unknown-unknown
	cargo clippy -p kafdo-client --no-default-features --features worker \
		--target wasm32-unknown-unknown -- -D warnings

# The end-to-end tests (tests/) start `wrangler dev` and the gateway themselves from the repo
# root with wrangler.toml; KAFDO_E2E=1 turns them on.
test: lint build
	cargo build -p kafdo-gateway
	KAFDO_E2E=1 KAFDO_WRANGLER_CONFIG="$(ROOT)/wrangler.toml" \
		KAFDO_WORKER_ENTRY="$(ROOT)/worker/build/worker/shim.mjs" \
		KAFDO_GATEWAY_BIN="$(ROOT)/target/debug/kafdo-gateway" \
		cargo test --workspace

# Benchmarks, not tests: they start the Worker themselves (inspector off), send traffic only
# to 127.0.0.1, stop by themselves and print ratios measured side by side in one run.
bench: build
	cargo run --release -p kafdo-e2e --bin bench-produce -- $(BENCH_ARGS)
	cargo run --release -p kafdo-e2e --bin bench-txn -- $(BENCH_ARGS)
	cargo build --release -p kafdo-gateway
	KAFDO_GATEWAY_BIN="$(ROOT)/target/release/kafdo-gateway" \
		cargo run --release -p kafdo-e2e --bin bench-kafka -- $(BENCH_ARGS)

# Thousands of simulated seeds with every fault on; reports seeds/s.
soak:
	cargo run --release -p kafdo-sim --bin soak -- --seeds $${SEEDS:-10000}

# The long fuzz run (the bounded one is part of `cargo test`): every target of fuzz/ for a
# share of FUZZ_SECONDS; a failure's seed lands in fuzz/proptest-regressions/.
fuzz:
	cargo run --release -p kafdo-fuzz --bin fuzz -- --seconds $${FUZZ_SECONDS:-600}

clean:
	rm -rf worker/build
