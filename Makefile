# meterflow: build, test, demo and benchmarks.
#
#   make test           install what is missing, then every check CI runs
#   make demo           build the wasm package and serve the demo on 127.0.0.1
#   make bench          native criterion benchmarks
#   make bench-browser  the in-browser path benchmark: meterflow vs a JS worker (README table)
#   make eval           the detection evaluation on the full corpus (docs/DETECTION.md)
#
# Every step runs through scripts/step.sh, which prints its time.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

CHROMEDRIVER ?= /usr/bin/chromedriver
PORT ?= 8080
STEP := scripts/step.sh
export CHROMEDRIVER
# The worker suite waits on real timers; give the runner room on a loaded machine.
export WASM_BINDGEN_TEST_TIMEOUT ?= 300

.PHONY: test demo bench bench-browser deps fmt clippy clippy-wasm test-native fuzz \
        test-worker build e2e bench-smoke eval eval-smoke

# Every step runs even when an earlier one failed (so one CI run shows every
# failure); `make test` fails at the end if any did.
TEST_STEPS := fmt clippy clippy-wasm test-native fuzz test-worker build e2e bench-smoke eval-smoke

test: deps
	@failed=""; \
	for step in $(TEST_STEPS); do \
	  $(STEP) $$step $(MAKE) --no-print-directory $$step || failed="$$failed $$step"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: every step passed"

deps:
	@$(STEP) install-deps scripts/install-deps.sh

fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --all-targets -- -D warnings
	cargo clippy --features feed --all-targets -- -D warnings

clippy-wasm:
	cargo clippy --target wasm32-unknown-unknown --lib --tests -- -D warnings

# The feed server (`feed` feature): its unit tests and tests/feed_*.rs.
test-native:
	cargo test
	cargo test --features feed --lib feed::
	# One test at a time: each starts a server with its own runtime and the
	# 5,000-meter serve-time test would starve the others on 2 cores.
	cargo test --features feed --test 'feed_*' -- --test-threads=1

# A bounded fuzz run of every decoder and the engine behind it (proptest-based:
# cargo-fuzz needs a nightly toolchain). `cargo test` already runs 2,000 cases
# per target; this runs 20,000. Longer: METERFLOW_FUZZ_CASES=200000.
# Then the stateful engine fuzz (tests/fuzz_engine.rs: sequences of up to 40
# messages against a twin engine; 300 cases in `cargo test`), 20,000 sequences
# here, under a minute on 2 cores. Longer:
# METERFLOW_FUZZ_CASES=1000000 cargo test --release --test fuzz_engine
FUZZ_CASES ?= 20000
ENGINE_FUZZ_CASES ?= 20000
fuzz:
	METERFLOW_FUZZ_CASES=$(FUZZ_CASES) cargo test --test fuzz_decoders
	METERFLOW_FUZZ_CASES=$(ENGINE_FUZZ_CASES) cargo test --test fuzz_engine

# The worker suite (tests/worker.rs) runs in a dedicated worker in Debian's
# headless Chromium, through chromedriver.
test-worker:
	wasm-pack test --headless --chrome -- --test worker

# The release package the page loads: www/pkg/meterflow.js, meterflow_bg.wasm, meterflow.d.ts.
# wasm-opt comes from npm's binaryen (132): Debian's (108) cannot parse the
# table.fill that wasm-bindgen 0.2.130 emits, so wasm-pack's own pass is off.
WASM_OPT := www/node_modules/.bin/wasm-opt
WASM_OPT_FLAGS := -O3 --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-reference-types --enable-multivalue --enable-sign-ext --enable-mutable-globals
build:
	wasm-pack build --release --target web --out-dir www/pkg --mode no-install --no-pack
	$(WASM_OPT) $(WASM_OPT_FLAGS) www/pkg/meterflow_bg.wasm -o www/pkg/meterflow_bg.wasm

e2e:
	cd www && node --test tests/

bench-smoke:
	node www/bench/run.mjs --smoke
	node www/bench/path-run.mjs --smoke --json "$$(mktemp -d)/path-smoke.json" > /dev/null

# Detection quality (docs/DETECTION.md, "Evaluation"): `eval` prints the full
# table, meterflow beside the plain z-score, on the two-day built-in corpus.
# `eval-smoke` runs the 4-hour corpus and fails on a crash or a drop past the
# margins of tests/data/eval/baseline.json (quality, not time).
eval:
	cargo run --release --bin meterflow -- eval --series

eval-smoke:
	cargo test --test eval_smoke -- --nocapture

demo: deps
	@$(STEP) wasm-build $(MAKE) --no-print-directory build
	node www/serve.mjs $(PORT)

bench:
	cargo bench

# The path benchmark (README "Performance"): results in benches/results/,
# then the README table regenerated from them.
bench-browser: deps
	@$(STEP) wasm-build $(MAKE) --no-print-directory build
	node www/bench/path-run.mjs
	node scripts/bench-table.mjs
