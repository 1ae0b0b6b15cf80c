//! Token counts for budgets: the cl100k_base BPE (tiktoken's encoding for GPT-4-class
//! models), compiled into the binary so that every process and configuration counts alike,
//! with or without an embedding model. GitHub's `bpe-openai` gives tiktoken's counts several
//! times faster than tiktoken-rs, which matters: a bundle is counted as it is fitted.

use std::cell::RefCell;

use bpe_openai::Tokenizer;
use rustc_hash::FxHashMap;

/// The encoding's name, reported with every budgeted result.
pub const ENCODING: &str = "cl100k_base";
/// Pre-tokens whose counts a thread keeps (emptied when full), and the longest kept.
const KNOWN_PIECES: usize = 1 << 16;
const MAX_KNOWN_PIECE_BYTES: usize = 64;

thread_local! {
    /// Counts of pre-tokens seen on this thread. Text repeats its words, indentation and
    /// punctuation, and BPE over the pieces is half the cost of a count; the split is the
    /// other half.
    static PIECES: RefCell<FxHashMap<Box<str>, u32>> = RefCell::default();
}

fn bpe() -> &'static Tokenizer {
    bpe_openai::cl100k_base()
}

/// Tokens in `text`, special-token spellings counted as plain text (stored text is data).
/// The same as the tokenizer's own count (cl100k_base does not normalise): the pre-tokens'
/// counts summed.
pub fn count(text: &str) -> usize {
    PIECES.with_borrow_mut(|known| {
        if known.len() > KNOWN_PIECES {
            known.clear();
        }
        bpe()
            .split(text)
            .map(|piece| match known.get(piece) {
                Some(&tokens) => tokens as usize,
                None => {
                    let tokens = bpe().bpe.count(piece.as_bytes());
                    if piece.len() <= MAX_KNOWN_PIECE_BYTES {
                        known.insert(piece.into(), tokens as u32);
                    }
                    tokens
                }
            })
            .sum()
    })
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

    /// Counts through the pieces this thread knows equal the tokenizer's own, cold or warm.
    #[test]
    fn known_pieces_count_as_the_tokenizer_does() {
        let texts = [
            "def _siftdown_max(heap, startpos, pos):\n    newitem = heap[pos]\n",
            "  \n\n\t\u{1F600} ümlaut 1234567 it's they'll\r\n",
            &"x".repeat(200),
            "",
        ];
        for round in 0..2 {
            for text in texts {
                assert_eq!(count(text), bpe().count(text), "round {round}: {text:?}");
            }
        }
    }
}
