# The two quick-start commands (README): `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

CARGO ?= cargo

.PHONY: test unit demo lint build dist stack-up stack-down bench

## Start the local stack (Kafka, Schema Registry, AWS emulator) and run every test against it. Benchmarks run with
## `make bench` (`make lint` compiles them).
test: stack-up
	source <(scripts/stack env) && $(CARGO) test

## The tests that need no running service (the unit tests, the module layers, the README against the code, Kafka
## Connect's form, hostile inputs, event-ruler's recorded cases): no stack, under a minute once built.
unit:
	$(CARGO) test --lib --bins --test unit

## Start the local stack and run the worker on the example configuration, showing events flowing.
demo: stack-up build
	source <(scripts/stack env) && scripts/demo

## Formatting and lints, as CI runs them.
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

build:
	$(CARGO) build --release

## The shipped build (Dockerfile; README "Performance"): the `dist` profile, into target/dist/ebconnect. On x86_64
## Linux, where Rust links with lld, the functions a sink worker runs are linked first (deploy/symbol-order.txt,
## written by scripts/symbol-order) and relative relocations packed (glibc 2.36 or later): fewer pages resident.
## Cargo does not see a change inside a file a link argument names, so a newer order file marks the binary's crate
## changed, for the relink to use it.
dist:
	if [ "$$(uname -sm)" = "Linux x86_64" ]; then \
		if [ deploy/symbol-order.txt -nt "$${CARGO_TARGET_DIR:-target}/dist/ebconnect" ]; then touch src/main.rs; fi; \
		$(CARGO) rustc --profile dist --locked --bin ebconnect -- \
			-C link-arg=-Wl,--symbol-ordering-file=deploy/symbol-order.txt -C link-arg=-Wl,--no-warn-symbol-ordering \
			-C link-arg=-Wl,-z,pack-relative-relocs; \
	else \
		$(CARGO) build --profile dist --locked --bin ebconnect; \
	fi

## Benchmarks (README "Performance"): sink, receiver and source throughput, threshold-alert, pattern matching, quota
## sharing, topic-processor.
bench: stack-up
	source <(scripts/stack env) && $(CARGO) bench --bench sink_throughput && $(CARGO) bench --bench pattern_match \
		&& $(CARGO) bench --bench source_throughput && $(CARGO) bench --bench threshold_alert \
		&& $(CARGO) bench --bench quota_sharing && $(CARGO) bench --bench topic_processor

stack-up:
	scripts/stack up

stack-down:
	scripts/stack down
