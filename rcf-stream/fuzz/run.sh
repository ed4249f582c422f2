#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer on the stable toolchain and runs each for a while.
#
#   rcf-stream/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# The sanitizer-coverage flags are the ones `cargo fuzz` passes, minus the nightly-only
# sanitizers (none is needed: the code under test has no unsafe outside the SSE2 kernel, which
# has a portable twin); debug assertions and overflow checks are on. The seed corpus is
# written by each target on start (common.rs); what a run learns stays in corpus/<target> (not committed);
# a crash is written to artifacts/<target>/ and fails the run. Every crash found becomes a
# regression test (see RELIABILITY.md).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(forest_state detector_checkpoint cli_rows)

export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# an explicit --target keeps these flags off build scripts and proc macros (as cargo fuzz does)
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked -q --bins --target "$host"
bin=target/$host/release
status=0
for t in "${targets[@]}"; do
    mkdir -p "artifacts/$t" "corpus/$t"
    echo "==> fuzz $t for ${seconds}s"
    # -rss_limit_mb: a crafted state must not make us allocate gigabytes; -timeout: no hangs
    if ! "$bin/$t" "corpus/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -max_len=65536 -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>"artifacts/$t.log"; then
        status=1
        echo "fuzz $t: FOUND A FAILURE (artifacts/$t/)"
        tail -n 40 "artifacts/$t.log"
    fi
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|cov:" "artifacts/$t.log" | tail -n 3
done
exit $status
