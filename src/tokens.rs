//! Token counts for budgets: the cl100k_base BPE (tiktoken's encoding for GPT-4-class
//! models), compiled into the binary so that every process and configuration counts alike,
//! with or without an embedding model.

use tiktoken_rs::CoreBPE;

/// The encoding's name, reported with every budgeted result.
pub const ENCODING: &str = "cl100k_base";

fn bpe() -> &'static CoreBPE {
    tiktoken_rs::cl100k_base_singleton()
}

/// Tokens in `text`, special-token spellings counted as plain text (stored text is data).
pub fn count(text: &str) -> usize {
    bpe().encode_ordinary(text).len()
}

/// Builds the encoder's tables (about 100 ms) ahead of the first count.
pub fn warm() {
    bpe();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_as_tiktoken_does() {
        // "hello world" is [15339, 1917] in tiktoken's cl100k_base.
        assert_eq!(count("hello world"), 2);
        assert_eq!(count(""), 0);
        // A special token's spelling in stored text is text, not the special token.
        assert!(count("<|endoftext|>") > 1);
    }
}
