# Every developer command. `make test` is the README's one test command; `.ci/run` = `make ci`.
.PHONY: fmt lint test test-rust test-py doc bench report ci demo quickstart fuzz

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

test-rust:
	cargo test --workspace --all-features
	cargo test -p rcf-core --no-default-features

# builds the extension into a virtual environment (pip install ./rcf-py, as users do) and runs
# pytest; "no tests collected" (exit 5) counts as a failure
test-py:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip maturin pytest hypothesis numpy pandas mypy matplotlib
	$(VENV)/bin/pip install -q ./rcf-py
	$(VENV)/bin/python -m pytest -q rcf-py/tests; code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$code
	$(VENV)/bin/python -m mypy.stubtest rcf._rcf

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

quickstart:
	cargo run --release -p rcf-core --example quickstart

# coverage-guided fuzzing (libFuzzer, stable toolchain): FUZZ_SECONDS per target (RELIABILITY.md)
FUZZ_SECONDS ?= 60
fuzz:
	bash rcf-stream/fuzz/run.sh $(FUZZ_SECONDS)

ci:
	bash .ci/run
