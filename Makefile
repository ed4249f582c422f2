# Every developer command. `make test` is the README's one test command; `.ci/run` = `make ci`.
.PHONY: fmt lint test doc bench report ci demo quickstart

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	cargo clippy -p rcf-core --no-default-features --all-targets -- -D warnings

# every test of the workspace: unit, integration, property and doc tests
test:
	cargo test --workspace --all-features
	cargo test -p rcf-core --no-default-features

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

ci:
	bash .ci/run
