//! The real embedding model through ONNX Runtime. Needs the model directory from
//! `scripts/fetch-model.sh` in `CONTEXT_STORE_MODEL_DIR`; `.ci/run` fetches it, and with
//! `CI=true` a missing model fails instead of skipping.

use context_store::embed::{EmbedError, Embedder, OnnxEmbedder};

use crate::support::model_dir;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn minilm_gives_the_reference_vector_and_ranks_by_meaning() {
    let Some(dir) = model_dir() else { return };
    let embedder = OnnxEmbedder::load(&dir).expect("the model loads");
    assert_eq!(embedder.dimension(), 384);
    assert!(embedder.id().starts_with("all-MiniLM-L6-v2:onnx:"));

    let texts = [
        "This is an example sentence",
        "A cat sits on the mat.",
        "A kitten is resting on a rug.",
        "Stock prices fell sharply on Monday.",
    ];
    let vectors = embedder.embed(&texts).unwrap();
    assert_eq!(vectors.len(), 4);
    for vector in &vectors {
        assert_eq!(vector.len(), 384);
        assert!((cosine(vector, vector) - 1.0).abs() < 1e-4, "L2-normalised");
    }
    // Python's onnxruntime 1.32 with the same model.onnx and tokenizer gives exactly these
    // (so tokenisation and pooling match); sentence-transformers on the fp32 safetensors
    // gives 0.0677, 0.0635, 0.0487, which the int8 export follows to within 3e-3.
    let same_runtime = [0.066_787, 0.061_189, 0.050_910];
    let fp32_reference = [0.0677, 0.0635, 0.0487];
    for ((got, exact), near) in vectors[0].iter().zip(same_runtime).zip(fp32_reference) {
        assert!(
            (got - exact).abs() < 1e-4,
            "first values {:?}",
            &vectors[0][..3]
        );
        assert!(
            (got - near).abs() < 3e-3,
            "first values {:?}",
            &vectors[0][..3]
        );
    }
    let related = cosine(&vectors[1], &vectors[2]);
    let unrelated = cosine(&vectors[1], &vectors[3]);
    assert!(
        related > unrelated + 0.2,
        "related {related}, unrelated {unrelated}"
    );

    // Batching pads to the longest text; each vector must equal the text embedded alone.
    let alone = embedder.embed(&texts[1..2]).unwrap();
    assert!(cosine(&alone[0], &vectors[1]) > 0.9999);
}

#[test]
fn a_missing_model_is_an_error_not_a_crash() {
    let empty = tempfile::tempdir().unwrap();
    match OnnxEmbedder::load(empty.path()) {
        Err(EmbedError::Missing(path)) => assert!(path.ends_with("model.onnx")),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("loaded a model from an empty folder"),
    }
}
