#!/usr/bin/env python3
"""Indexing and search figures over stdio, from a plain JSON-RPC client.

    cargo build --release
    python3 scripts/bench_search.py [ROOT] [--server target/release/context-store]

ROOT defaults to this Python's standard library; `**/*.py` is indexed with
`site-packages/**` left out. Prints the full and unchanged index passes, then
search_documents latency for text and substring queries, uncached and cached.
"""
import argparse, builtins, json, keyword, random, subprocess, sysconfig, tempfile, time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root", nargs="?", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--server", default="target/release/context-store")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp()
    server = subprocess.Popen(
        [args.server, "serve", "--data-dir", data_dir, "--workspace", args.root,
         "--watch", "false", "--embedder", "none"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )

    def send(message):
        server.stdin.write((json.dumps(message) + "\n").encode())
        server.stdin.flush()

    def call(id_, method, params):
        send({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
        while True:  # buffered reads: an unbuffered pipe reads a byte per syscall
            message = json.loads(server.stdout.readline())
            if message.get("id") == id_:
                return message

    call(0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "bench_search", "version": "1"}})
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    scope = {"include": ["**/*.py"], "exclude": ["site-packages/**"]}
    for label in ["full", "unchanged"]:
        started = time.perf_counter()
        answer = call(1, "tools/call", {"name": "index_workspace", "arguments": scope})
        print(f"index {label}: {time.perf_counter() - started:.2f} s",
              json.dumps(answer["result"]["structuredContent"]))
    time.sleep(20)  # let tantivy's background merges finish before timing searches

    random.seed(7)
    words = sorted(set(dir(builtins)) | set(keyword.kwlist))[:300]
    source = "".join(open(f"{args.root}/{name}").read() for name in ["argparse.py", "heapq.py"])
    slices = [source[i:i + 8] for i in random.sample(range(len(source) - 10), 300)]
    slices = [text for text in slices if len(text.strip()) >= 3]
    for mode, queries in [("text", words), ("substring", slices)]:
        for label in ["uncached", "cached"]:
            times = []
            for n, query in enumerate(queries):
                started = time.perf_counter()
                answer = call(10 + n, "tools/call", {"name": "search_documents", "arguments":
                              {"query": query, "mode": mode, "limit": 10}})
                times.append(time.perf_counter() - started)
                assert not answer["result"].get("isError"), (query, answer)
            times.sort()
            print(f"search {mode} {label}: {len(times)} queries, "
                  f"p50 {times[len(times) // 2] * 1e6:.0f} us, p99 {times[int(len(times) * 0.99)] * 1e6:.0f} us")
    server.stdin.close()
    server.wait()


if __name__ == "__main__":
    main()
