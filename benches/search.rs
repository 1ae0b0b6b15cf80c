//! Full-text search and query embedding: tantivy BM25 top 10 and an exact substring over real
//! source (the first 600 `.py` files of this Python's standard library, or the folder in
//! `CONTEXT_STORE_BENCH_CORPUS`), cut into passages as the server cuts them; and one query
//! embedded by all-MiniLM-L6-v2 when `CONTEXT_STORE_MODEL_DIR` names the model.
//! `cargo bench --bench search`.

use std::path::{Path, PathBuf};

use context_store::{
    embed::{Embedder, OnnxEmbedder},
    index::{IndexedPassage, TextFilter, TextIndex, chunk_lines, estimate_tokens},
};
use criterion::{Criterion, criterion_group, criterion_main};

const FILES: usize = 600;
const WORD_QUERIES: &[&str] = &[
    "parse optional arguments",
    "SequenceMatcher find longest match",
    "thread pool executor shutdown",
    "decode json object hook",
    "temporary directory cleanup",
];
const SUBSTRINGS: &[&str] = &[
    "siftdown",
    "urlsplit",
    "_make_key",
    "iterencode",
    "getaddrinfo",
];

fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CONTEXT_STORE_BENCH_CORPUS") {
        return Some(dir.into());
    }
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    dir.is_dir().then_some(dir)
}

fn python_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
    entries.sort();
    for path in entries {
        if found.len() >= FILES {
            return;
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() && name != "site-packages" && !name.starts_with('.') {
            python_files(&path, found);
        } else if name.ends_with(".py") {
            found.push(path);
        }
    }
}

/// An index of the corpus in `dir`; the number of passages.
fn build_index(corpus: &Path, dir: &Path) -> (TextIndex, usize) {
    let mut files = Vec::new();
    python_files(corpus, &mut files);
    let index = TextIndex::open(dir).expect("index opens");
    assert!(index.acquire_writer().expect("writer"));
    let mut next_id = 1u64;
    let mut passages = 0;
    for (doc_id, path) in files.iter().enumerate() {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let chunks = chunk_lines(&text, 256, estimate_tokens);
        let indexed: Vec<IndexedPassage<'_>> = chunks
            .iter()
            .map(|chunk| {
                next_id += 1;
                IndexedPassage {
                    id: next_id,
                    start_line: chunk.start_line,
                    end_line: chunk.end_line,
                    text: &chunk.text,
                }
            })
            .collect();
        passages += indexed.len();
        let relative = path.strip_prefix(corpus).unwrap_or(path).to_string_lossy();
        index
            .replace_document(doc_id as u64, "/bench", &relative, &indexed)
            .expect("indexed");
    }
    index.commit().expect("committed");
    (index, passages)
}

fn text_search(c: &mut Criterion) {
    let Some(corpus) = corpus_dir() else {
        eprintln!("no corpus: set CONTEXT_STORE_BENCH_CORPUS to a folder of .py files");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (index, passages) = build_index(&corpus, dir.path());
    eprintln!("{passages} passages from {}", corpus.display());
    let mut group = c.benchmark_group("tantivy");
    let mut next = 0;
    group.bench_function("bm25_top10", |b| {
        b.iter(|| {
            next = (next + 1) % WORD_QUERIES.len();
            index
                .search_words(WORD_QUERIES[next], 10, TextFilter::default())
                .expect("searched")
        })
    });
    group.bench_function("substring_top10", |b| {
        b.iter(|| {
            next = (next + 1) % SUBSTRINGS.len();
            index
                .search_substring(SUBSTRINGS[next], 10, TextFilter::default())
                .expect("searched")
        })
    });
    group.finish();
}

fn query_embedding(c: &mut Criterion) {
    let Some(model_dir) = std::env::var_os("CONTEXT_STORE_MODEL_DIR") else {
        eprintln!("no model: set CONTEXT_STORE_MODEL_DIR (scripts/fetch-model.sh)");
        return;
    };
    let embedder = match OnnxEmbedder::load(Path::new(&model_dir)) {
        Ok(embedder) => embedder,
        Err(error) => {
            eprintln!("the model did not load: {error}");
            return;
        }
    };
    let mut next = 0;
    c.bench_function("embed/query_minilm", |b| {
        b.iter(|| {
            next = (next + 1) % WORD_QUERIES.len();
            embedder.embed_query(WORD_QUERIES[next]).expect("embedded")
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = text_search, query_embedding
}
criterion_main!(benches);
