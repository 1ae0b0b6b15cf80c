#!/usr/bin/env bash
# The long reliability runs (RELIABILITY.md): the fault tests of the suite with bigger loops.
# Each prints its figure; every loop is bounded and stops by itself.
#
#   scripts/chaos.sh            # 100 kill -9 cycles, then the fault, damage and hostile tests
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTEXT_STORE_KILL_CYCLES="${CONTEXT_STORE_KILL_CYCLES:-100}"
cargo test --locked --test it -- --nocapture --test-threads 2 \
    faults:: damage:: hostile:: backup::a_backup_killed concurrency:: 2>&1 \
    | grep -E '^(test |kill -9|write lock|orphaned|5 backups|a 17 MiB|[0-9]+ wrong values|SKIPPED|test result)'
