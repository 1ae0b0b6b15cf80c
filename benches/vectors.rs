//! Vector search: top 10 among 10k and 100k 384-dimension vectors (all-MiniLM-L6-v2's size),
//! int8 codes scanned on up to two threads, with recall@10 against the exact f32 scan
//! printed for the same vectors. The vectors are synthetic (clustered, like real embeddings);
//! `cargo bench --bench vectors`.

use context_store::vector::{VectorIndex, clustered, exact_similarity};
use criterion::{Criterion, criterion_group, criterion_main};

const DIMENSION: usize = 384;
const QUERIES: usize = 50;

fn exact_top(vectors: &[Vec<f32>], query: &[f32]) -> Vec<i64> {
    let mut scored: Vec<(f32, i64)> = vectors
        .iter()
        .enumerate()
        .map(|(id, vector)| (exact_similarity(vector, query), id as i64))
        .collect();
    scored.select_nth_unstable_by(9, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(10);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().map(|(_, id)| id).collect()
}

fn recall(index: &VectorIndex, vectors: &[Vec<f32>], queries: &[Vec<f32>]) -> f64 {
    let found: usize = queries
        .iter()
        .map(|query| {
            let exact = exact_top(vectors, query);
            index
                .search(query, 10, None)
                .iter()
                .filter(|hit| exact.contains(&hit.passage_id))
                .count()
        })
        .sum();
    found as f64 / (queries.len() * 10) as f64
}

fn top_ten(c: &mut Criterion) {
    let mut group = c.benchmark_group("vector_top10");
    for count in [10_000, 100_000] {
        let vectors = clustered(count, DIMENSION, 42);
        let queries = clustered(QUERIES, DIMENSION, 7);
        let mut index = VectorIndex::new(DIMENSION);
        for (id, vector) in vectors.iter().enumerate() {
            index.insert(id as i64, id as i64, vector);
        }
        eprintln!(
            "{count} vectors: recall@10 against the exact scan {:.3}",
            recall(&index, &vectors, &queries)
        );
        let mut next = 0;
        group.bench_function(format!("int8_{count}"), |b| {
            b.iter(|| {
                next = (next + 1) % queries.len();
                index.search(&queries[next], 10, None)
            })
        });
        group.bench_function(format!("exact_f32_{count}"), |b| {
            b.iter(|| {
                next = (next + 1) % queries.len();
                exact_top(&vectors, &queries[next])
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = top_ten
}
criterion_main!(benches);
