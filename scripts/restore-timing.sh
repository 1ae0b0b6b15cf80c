#!/usr/bin/env bash
# Backup and restore timings with the search index (BENCHMARKS.md, "Backups"): indexes
# CPython's standard library into a fresh data directory, writes a backup, restores it into
# another, starts a server there and times how long until search answers and until the
# index is complete (nothing queued).
#   scripts/restore-timing.sh [STDLIB_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/context-store
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
stdlib="${1:-$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bin" --data-dir "$work/live" --embedder none index "$stdlib" \
    --include '**/*.py' --exclude 'site-packages/**' >/dev/null
started=$(date +%s.%N)
"$bin" --data-dir "$work/live" backup >/dev/null
ended=$(date +%s.%N)
backup="$(ls -d "$work"/live/backups/*/ | head -n1)"
echo "backup: $(echo "$ended - $started" | bc) s, $(du -sm "$backup" | cut -f1) MB" \
     "(database $(du -sm "$backup/context-store.db" | cut -f1) MB," \
     "index $(du -sm "$backup/index" 2>/dev/null | cut -f1 || echo 0) MB)"
started=$(date +%s.%N)
"$bin" --data-dir "$work/restored" restore "$backup" >/dev/null
ended=$(date +%s.%N)
echo "restore: $(echo "$ended - $started" | bc) s"

python3 - "$bin" "$work/restored" <<'EOF'
import json, subprocess, sys, time

binary, data_dir = sys.argv[1], sys.argv[2]
started = time.monotonic()
server = subprocess.Popen(
    [binary, "--data-dir", data_dir, "serve", "--watch", "false", "--embedder", "none"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
ids = iter(range(1, 1_000_000))

def request(method, params):
    number = next(ids)
    server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": number, "method": method,
                                   "params": params}) + "\n")
    server.stdin.flush()
    while True:
        answer = json.loads(server.stdout.readline())
        if answer.get("id") == number:
            return answer

def tool(name, arguments):
    return request("tools/call", {"name": name, "arguments": arguments})["result"]["structuredContent"]

request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "restore-timing", "version": "1"}})
server.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
server.stdin.flush()
print(f"initialize answered after {time.monotonic() - started:.3f} s")
first_hit = None
while True:
    hits = tool("search_documents", {"query": "SequenceMatcher find_longest_match", "mode": "text"})["hits"]
    now = time.monotonic() - started
    if hits and first_hit is None:
        first_hit = now
        print(f"first search hit after {now:.3f} s ({hits[0]['path']})")
    status = tool("index_status", {})
    if first_hit is not None and status["writer"]["this_process"] and status["pending"]["files"] == 0:
        print(f"index complete (writer taken, reconciled, nothing queued) after {now:.3f} s;"
              f" {status['documents']} documents, {status['chunks']} passages")
        break
    time.sleep(0.05)
server.stdin.close()
server.wait()
EOF
