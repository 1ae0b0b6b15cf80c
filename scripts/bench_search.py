#!/usr/bin/env python3
"""Indexing and search figures over stdio, from a plain JSON-RPC client.

    cargo build --release
    python3 scripts/bench_search.py [ROOT] [--server target/release/context-store]
                                   [--model-dir DIR]

ROOT defaults to this Python's standard library; `**/*.py` is indexed with
`site-packages/**` left out. Prints the full and unchanged index passes, then
search_documents latency for text and substring queries, uncached and cached. With
--model-dir it also waits until every passage is embedded (printing the rate) and times
semantic and hybrid queries (the plain-language queries of tests/queries/cpython.json and
variations of them): embedding all of a large ROOT takes a long time on a CPU.
"""
import argparse, builtins, glob, json, keyword, os, random, subprocess, sysconfig, tempfile, time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root", nargs="?", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--server", default="target/release/context-store")
    parser.add_argument("--model-dir")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp()
    embedder = ["--model-dir", args.model_dir] if args.model_dir else ["--embedder", "none"]
    server = subprocess.Popen(
        [args.server, "serve", "--data-dir", data_dir, "--workspace", args.root,
         "--watch", "false", *embedder],
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
    runs = []
    if args.model_dir:
        started, first = time.perf_counter(), None
        while True:
            status = call(2, "tools/call", {"name": "index_status", "arguments": {}})
            status = status["result"]["structuredContent"]
            waiting = status["pending"]["chunks"]
            first = waiting if first is None else first
            if status["embedder"]["state"] == "ready" and waiting == 0:
                break
            time.sleep(2)
        minutes = (time.perf_counter() - started) / 60
        print(f"embedded {first} passages in {minutes:.1f} min: {first / minutes:.0f} per minute")
        labelled = json.load(open(os.path.join(os.path.dirname(__file__), "../tests/queries/cpython.json")))
        plain = [entry["query"] for entry in labelled["queries"] if entry["kind"] == "meaning"]
        # Distinct questions per mode, so that no mode finds the query's vector cached.
        semantic = plain + [f"how to {q}" for q in plain] + [f"python code to {q}" for q in plain]
        hybrid = [f"find {q}" for q in plain] + [f"where is {q}" for q in plain] + [f"module for {q}" for q in plain]
        runs = [("semantic", semantic), ("hybrid", hybrid)]

    random.seed(7)
    words = sorted(set(dir(builtins)) | set(keyword.kwlist))[:300]
    files = sorted(glob.glob(f"{args.root}/*.py"))[:2]
    source = "".join(open(name).read() for name in files)
    slices = [source[i:i + 8] for i in random.sample(range(len(source) - 10), 300)]
    slices = [text for text in slices if len(text.strip()) >= 3]
    for mode, queries in [("text", words), ("substring", slices)] + runs:
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
