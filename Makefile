# Every developer command. `make test` is the README's one test command; `.ci/run` = `make ci`.
.PHONY: fmt lint test test-rust test-py doc bench report ci demo fleet-demo quickstart fuzz

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	cargo clippy -p rcf-core --no-default-features --all-targets -- -D warnings

PYTHON ?= python3
VENV ?= .venv

# every test of the workspace: Rust (unit, integration, property, CLI, doc tests), then Python
test: test-rust test-py

# tests whose reference data is absent (or, outside CI, the mosquitto broker) record themselves
# in target/rcf-skipped.txt (cargo
# hides a passing test's output); the list is printed after the run, so skips are visible
test-rust:
	@mkdir -p target && rm -f target/rcf-skipped.txt
	@if [ "$$CI" = true ] && ! [ -x /usr/sbin/mosquitto ] && ! command -v mosquitto >/dev/null; then \
		echo "== installing the Mosquitto broker (Debian package) for the MQTT tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; \
	fi
	cargo test --workspace --all-features
	cargo test -p rcf-core --no-default-features
	@if [ -s target/rcf-skipped.txt ]; then \
		echo "== $$(sort -u target/rcf-skipped.txt | wc -l) tests SKIPPED (reference data or a tool absent):"; \
		sort -u target/rcf-skipped.txt; \
	else echo "== no test skipped"; fi

# builds the abi3 wheel once (maturin build, as a release would), checks that it installs into a
# fresh virtual environment with no Rust toolchain on PATH, installs it into $(VENV) and runs
# pytest there (with PySpark and, in CI, a Java runtime for the Spark tests); "no tests
# collected" (exit 5) counts as a failure
WHEELS ?= target/wheels
test-py:
	@if [ "$$CI" = true ] && ! command -v java >/dev/null; then \
		echo "== installing a Java runtime (Debian package) for the Spark tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip maturin pytest hypothesis numpy "pandas<3" mypy matplotlib \
		"pyspark[sql]>=4.0,<5" protobuf
	rm -rf $(WHEELS) && $(VENV)/bin/maturin build --release -q -m rcf-py/Cargo.toml -o $(WHEELS)
	ls $(WHEELS)/rcf-*-cp310-abi3-*.whl
	rm -rf target/venv-wheel && $(PYTHON) -m venv target/venv-wheel
	env PATH=/usr/bin:/bin target/venv-wheel/bin/pip install -q $(WHEELS)/rcf-*.whl
	env PATH=/usr/bin:/bin target/venv-wheel/bin/python -c \
		"import rcf; d = rcf.Detector(1, seed=1); d.process_many([[float(i % 7)] for i in range(200)]); print('wheel ok:', rcf.__version__, d)"
	$(VENV)/bin/pip install -q --force-reinstall --no-deps $(WHEELS)/rcf-*.whl
	$(VENV)/bin/python -m pytest -q -rs rcf-py/tests; code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$code
	$(VENV)/bin/python -m mypy.stubtest rcf._rcf
	$(VENV)/bin/python -m mypy --ignore-missing-imports rcf-py/python/rcf/spark.py

doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

# criterion benches (real numbers: run on a quiet machine)
bench:
	cargo bench -p rcf-benches

# figures criterion does not measure (memory, box-cache curve, scaling); see BENCHMARKS.md
report:
	cargo run --release -p rcf-benches --bin report

# the README's main job: the built-in fleet demo
demo:
	cargo run --release -p rcf-stream --bin rcf -- detect

# the fleet engine's demo: a simulated fleet through a Device Defender profile
fleet-demo:
	cargo run --release -p rcf-stream --bin rcf -- fleet

quickstart:
	cargo run --release -p rcf-core --example quickstart

# coverage-guided fuzzing (libFuzzer, stable toolchain): FUZZ_SECONDS per target (RELIABILITY.md)
FUZZ_SECONDS ?= 60
fuzz:
	bash rcf-stream/fuzz/run.sh $(FUZZ_SECONDS)

ci:
	bash .ci/run
