//! Times query embeddings with the local model:
//! `cargo run --release --example embed_timing -- MODEL_DIR [--busy]`.
//!
//! With `--busy`, a second thread at nice 19 embeds batches of long passages the whole time,
//! as the server's background worker does while a workspace's passages wait for vectors.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use context_store::embed::{Embedder, OnnxEmbedder};

fn main() {
    let dir = std::env::args().nth(1).expect("MODEL_DIR");
    let busy = std::env::args().any(|arg| arg == "--busy");
    let model = Arc::new(OnnxEmbedder::load(std::path::Path::new(&dir)).expect("model"));
    let stop = Arc::new(AtomicBool::new(false));
    let background = busy.then(|| {
        let (model, stop) = (model.clone(), stop.clone());
        std::thread::spawn(move || {
            // SAFETY: setpriority reads no memory of ours; who = 0 names this thread.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
            let passage = "def parse(self, args, namespace=None):\n    return value\n".repeat(12);
            let batch = vec![passage.as_str(); 8];
            let mut batches = 0;
            while !stop.load(Ordering::Relaxed) {
                model.embed(&batch).unwrap();
                batches += 1;
            }
            batches
        })
    });
    // The load run's kind of query (about 20 tokens), and shorter ones.
    let queries = [
        "parse optional arguments with argparse and keep the defaults readable (case 12)",
        "how to split a command line into words the way a unix shell does",
        "parse json",
    ];
    let mut times = Vec::new();
    for round in 0..90 {
        let started = Instant::now();
        model.embed_query(queries[round % 3]).unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if busy {
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let batches = background.map(|thread| thread.join().unwrap());
    times.sort_by(f64::total_cmp);
    eprintln!(
        "query embedding p50 {:.2} ms, p90 {:.2} ms{}",
        times[45],
        times[81],
        batches.map_or(String::new(), |n| format!(", {n} background batches"))
    );
}
