//! Times query embeddings with the local model: `cargo run --release --example embed_timing -- MODEL_DIR`.
use context_store::embed::{Embedder, OnnxEmbedder};
fn main() {
    let dir = std::env::args().nth(1).expect("MODEL_DIR");
    let model = OnnxEmbedder::load(std::path::Path::new(&dir)).expect("model");
    let queries = [
        "priority queue with a binary heap",
        "how to split a command line into words the way a unix shell does",
        "parse json",
    ];
    let mut times = Vec::new();
    for round in 0..60 {
        let started = std::time::Instant::now();
        model.embed_query(queries[round % 3]).unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    eprintln!(
        "query embedding p50 {:.2} ms, p90 {:.2} ms",
        times[30], times[54]
    );
}
