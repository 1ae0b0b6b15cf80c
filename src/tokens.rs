//! Token counts for budgets: the cl100k_base BPE (tiktoken's encoding for GPT-4-class
//! models), compiled into the binary so that every process and configuration counts alike,
//! with or without an embedding model. GitHub's `bpe-openai` gives tiktoken's counts several
//! times faster than tiktoken-rs, which matters: a bundle is counted as it is fitted.

use bpe_openai::Tokenizer;

/// The encoding's name, reported with every budgeted result.
pub const ENCODING: &str = "cl100k_base";

fn bpe() -> &'static Tokenizer {
    bpe_openai::cl100k_base()
}

/// Tokens in `text`, special-token spellings counted as plain text (stored text is data).
pub fn count(text: &str) -> usize {
    bpe().count(text)
}

/// Loads the encoder's tables ahead of the first count.
pub fn warm() {
    bpe();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_as_tiktoken_does() {
        // "hello world" is [15339, 1917] in tiktoken's cl100k_base.
        assert_eq!(bpe().encode("hello world"), [15339, 1917]);
        assert_eq!(count("hello world"), 2);
        assert_eq!(count(""), 0);
        // A special token's spelling in stored text is text, not the special token.
        assert!(count("<|endoftext|>") > 1);
    }
}
