//! Document indexing: walking workspace roots and cutting documents into passages.
//!

mod chunk;
mod text;
mod tokenize;
mod walk;

pub(crate) use self::tokenize::{Needle, code_tokens, distinct_trigrams, fold};
pub use self::{
    chunk::{Chunk, chunk_lines, estimate_tokens},
    text::{
        IndexError, IndexedPassage, MERGE_AFTER_DOCUMENTS, MIN_SUBSTRING_CHARS, Stamp, TextFilter,
        TextHit, TextIndex,
    },
    walk::{Selection, SkipReason, Walk, WalkOptions, WalkedFile, exact_glob, read_text, walk},
};
