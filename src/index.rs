//! Document indexing: walking workspace roots and cutting documents into passages.
//!

mod chunk;
mod gram_filter;
mod text;
mod tokenize;
mod walk;

pub use self::{
    chunk::{Chunk, chunk_lines, estimate_tokens},
    text::{
        IndexError, IndexedPassage, MERGE_AFTER_DOCUMENTS, MIN_SUBSTRING_CHARS, Stamp, TextFilter,
        TextHit, TextIndex,
    },
    walk::{Selection, SkipReason, Walk, WalkOptions, WalkedFile, exact_glob, read_text, walk},
};
pub(crate) use self::{
    gram_filter::{GroupFilter, GroupProbe, PassageFilter, PassageProbe},
    tokenize::{Needle, code_tokens, fold},
};
