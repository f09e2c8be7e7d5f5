# DistKV — see README.md. Every target is a thin wrapper over cargo or scripts/.
CARGO ?= cargo
BUILD_DIR ?= build

.PHONY: all build run dev-cluster test-cluster stop-cluster test test-heavy fuzz miri bench bench-engine bench-engine-full bench-cluster bench-peers docker-binaries docker-build docker-run docker-stop test-docker check-deploy certs fmt lint clean

all: build

## build: release binaries into ./build (distkv-server, distkv-client, distkv-bench, engine-bench)
build:
	$(CARGO) build --release --workspace --bins
	@mkdir -p $(BUILD_DIR)
	cp target/release/distkv-server target/release/distkv-client target/release/distkv-bench target/release/engine-bench $(BUILD_DIR)/

## dev-cluster: build, then start 3 nodes on localhost:8080-8082 (data and logs in data/dev-cluster)
dev-cluster: build
	scripts/dev-cluster.sh

## test-cluster: put, get, batch, scan, delete and status against the dev cluster
test-cluster:
	scripts/test-cluster.sh

## stop-cluster: stop the dev cluster by its recorded PIDs
stop-cluster:
	scripts/stop-cluster.sh

## run: the engine quickstart: write, read back, scan, delete, reopen, report
run:
	$(CARGO) run --release -p distkv-lsm --example quickstart

## test: the whole test suite (what CI runs)
test:
	$(CARGO) test --workspace

## test-heavy: 50 SIGKILL crash cycles, 1000 cases per model property, a crash among 1000 gossiping nodes, 5000 seeds of the request-round simulation, 1000 over real engines and 1000 with joins and decommissions
test-heavy:
	DISTKV_CRASH_CYCLES=50 $(CARGO) test --release -p distkv-lsm --test crash
	PROPTEST_CASES=1000 $(CARGO) test --release -p distkv-lsm --test model
	GOSSIP_SIM_CRASH_NODES=1000 $(CARGO) test --release -p distkv-cluster --test gossip_sim -- --nocapture
	DISTKV_SIM_SEEDS=5000 DISTKV_SIM_STORE_SEEDS=1000 DISTKV_SIM_MEMBER_SEEDS=1000 $(CARGO) test --release -p distkv-node --lib coordinator::sim -- --nocapture

## fuzz: every decoder under libFuzzer for FUZZ_SECONDS each (default 60; nightly toolchain and cargo-fuzz; `make test` replays the corpus)
fuzz:
	scripts/fuzz.sh

## miri: the memtable's `unsafe` under Miri where Miri can run it, and its tests under AddressSanitizer (nightly with miri and rust-src)
miri:
	MIRIFLAGS=-Zmiri-strict-provenance $(CARGO) +nightly miri test -p distkv-lsm --lib memtable::tests::an_ikey_is_the_slice_it_was_made_from
	RUSTFLAGS=-Zsanitizer=address RUSTDOCFLAGS=-Zsanitizer=address CARGO_TARGET_DIR=target/asan \
		$(CARGO) +nightly test -Zbuild-std --target x86_64-unknown-linux-gnu -p distkv-lsm --lib memtable

## bench: the quick engine benchmark against fjall (and RocksDB when installed)
bench: bench-engine

bench-engine:
	@if ls /usr/lib/x86_64-linux-gnu/librocksdb.so* >/dev/null 2>&1; then \
		scripts/bench-engine.sh --quick; \
	else \
		echo "librocksdb not installed (scripts/install-bench-deps.sh): benchmarking distkv and fjall only"; \
		BENCH_FEATURES= scripts/bench-engine.sh --quick --engines distkv,fjall; \
	fi

bench-engine-full:
	scripts/bench-engine.sh --full

## bench-cluster: one node and a 3-node cluster under mixed, read-only and write-only loads: ops/s, server CPU per operation, p50/p99/p99.9, threads
bench-cluster: build
	scripts/bench-cluster.sh

## bench-peers: DistKV beside Redis (one node, mixed) and etcd (three members, durable writes) under the same load: ops/s and CPU per op, as ratios (installs the peers)
bench-peers:
	scripts/bench-peers.sh

## docker-binaries: static binaries for the image ($$CARGO_TARGET_DIR or target, then x86_64-unknown-linux-gnu/release)
docker-binaries:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target x86_64-unknown-linux-gnu -p distkv-node -p distkv-client --bins

## docker-build: the distkv:latest image, FROM scratch with our static binaries
docker-build:
	scripts/docker-build.sh

## docker-run: the 3-node cluster of docker-compose.yml (localhost:8080-8082)
docker-run: docker-build
	scripts/compose.sh up -d

## docker-stop: stop and remove that cluster (volumes included)
docker-stop:
	scripts/compose.sh down -v

## test-docker: build the image and test the compose cluster on this machine's Docker engine
test-docker:
	scripts/test-docker.sh

## check-deploy: validate the compose files, the Kubernetes manifest and the example configs
check-deploy:
	scripts/check-deploy.sh

## certs: development certificates in ./certs (scripts/generate-certs.sh)
certs:
	scripts/generate-certs.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf $(BUILD_DIR) data certs
