#!/usr/bin/env bash
# The long reliability runs (RELIABILITY.md): the fault tests of the suite with bigger loops
# (100 kill cycles, a reader holding its snapshot for a minute, 10,000 mixed calls, a
# database of about 2 GB with a 100k-file workspace).
# Each prints its figure; every loop is bounded and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTEXT_STORE_KILL_CYCLES="${CONTEXT_STORE_KILL_CYCLES:-100}"
export CONTEXT_STORE_READER_SECS="${CONTEXT_STORE_READER_SECS:-60}"
export CONTEXT_STORE_MIXED_CALLS="${CONTEXT_STORE_MIXED_CALLS:-10000}"
export CONTEXT_STORE_SAVES_PER_PROCESS="${CONTEXT_STORE_SAVES_PER_PROCESS:-1000}"
export CONTEXT_STORE_START_ROUNDS="${CONTEXT_STORE_START_ROUNDS:-50}"
export CONTEXT_STORE_BIG_DB_MB="${CONTEXT_STORE_BIG_DB_MB:-1000}"
export CONTEXT_STORE_BIG_FILES="${CONTEXT_STORE_BIG_FILES:-100000}"
cargo test --locked --test it -- --nocapture --test-threads 2 \
    faults:: damage:: hostile:: backup::a_backup_killed concurrency:: startup::a_big 2>&1 \
    | grep -E '^(test |kill -9|write lock|reader held|orphaned|5 backups|a 17 MiB|[0-9]+ mixed calls|1 GiB, binary|[0-9]+ MB database|4 processes|6 processes|[0-9]+ wrong values|SKIPPED|test result)'

# Fuzzing (needs a nightly toolchain and cargo-fuzz, installed from crates.io when missing):
# each target runs for CONTEXT_STORE_FUZZ_SECS (default 60). A crash stops the script with
# the input in fuzz/artifacts/; add it to the seeds in src/fuzzing.rs as a regression test.
if [ "${CONTEXT_STORE_FUZZ_SECS:-60}" != 0 ]; then
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    for target in tool_arguments line_framing text; do
        log="fuzz/$target.log"
        if ! cargo +nightly fuzz run "$target" -- \
            -max_total_time="${CONTEXT_STORE_FUZZ_SECS:-60}" >"$log" 2>&1; then
            tail -30 "$log"
            echo "fuzz $target: CRASH, input in fuzz/artifacts/$target/" >&2
            exit 1
        fi
        runs=$(grep -oE '^Done [0-9]+ runs' "$log" || echo "done")
        echo "fuzz $target: ${CONTEXT_STORE_FUZZ_SECS:-60} s, $runs, no crash"
    done
fi
