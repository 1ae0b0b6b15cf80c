//! Saved messages ranked by words: an inverted index in memory, scored with BM25.
//!
//! FTS5 scores every message that matches a query (about 1.2 µs each, most of it looking up
//! the message's length), so a topic query over 40,000 messages took 10 ms; here a match
//! costs an addition. Each process builds the index from SQLite and follows
//! `message_changes` (see `migrations/0006_message_words.sql` and `engine/history_words.rs`).
//!
//! Words are split at anything not alphanumeric (so `parse_args` is `parse` and `args`),
//! lowercased and stemmed (English Snowball), as FTS5's porter tokenizer did.

use std::collections::{HashMap, HashSet};

use rust_stemmers::{Algorithm, Stemmer};

/// BM25's parameters, as FTS5's `bm25()` and tantivy use them.
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// Longer runs of letters are not words anyone searches for (base64, hashes).
const MAX_WORD_BYTES: usize = 64;
/// Dead entries (edited or deleted messages) are compacted away once they outnumber the
/// live ones, and there are at least this many.
const COMPACT_AFTER: usize = 4096;

#[derive(Clone, Copy)]
struct Posting {
    doc: u32,
    frequency: u32,
}

struct Doc {
    rowid: i64,
    /// Index into `users`: the owner of the message's conversation, who never changes.
    user: u32,
    length: u32,
    live: bool,
}

pub struct WordIndex {
    terms: HashMap<Box<str>, u32>,
    postings: Vec<Vec<Posting>>,
    docs: Vec<Doc>,
    /// Message rowid → its live entry in `docs`.
    slots: HashMap<i64, u32>,
    users: HashMap<Box<str>, u32>,
    live_length: u64,
    stemmer: Stemmer,
}

impl Default for WordIndex {
    fn default() -> Self {
        Self {
            terms: HashMap::new(),
            postings: Vec::new(),
            docs: Vec::new(),
            slots: HashMap::new(),
            users: HashMap::new(),
            live_length: 0,
            stemmer: Stemmer::create(Algorithm::English),
        }
    }
}

impl WordIndex {
    /// Messages indexed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The terms `text` is indexed under, each once, in order of first appearance.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        self.analyze(text)
            .into_iter()
            .filter(|term| seen.insert(term.clone()))
            .collect()
    }

    fn analyze(&self, text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|word| !word.is_empty() && word.len() <= MAX_WORD_BYTES)
            .map(|word| self.stemmer.stem(&word.to_lowercase()).into_owned())
            .collect()
    }

    /// Indexes message `rowid`, saved by `user`, replacing what it held before.
    pub fn upsert(&mut self, rowid: i64, user: &str, text: &str) {
        self.remove(rowid);
        let next = self.users.len() as u32;
        let user = *self.users.entry(user.into()).or_insert(next);
        let words = self.analyze(text);
        let doc = u32::try_from(self.docs.len()).expect("fewer than 2^32 message versions");
        let length = words.len() as u32;
        let mut frequencies: HashMap<String, u32> = HashMap::new();
        for word in words {
            *frequencies.entry(word).or_default() += 1;
        }
        for (term, frequency) in frequencies {
            let next = self.postings.len() as u32;
            let id = *self.terms.entry(term.into_boxed_str()).or_insert(next);
            if id == next {
                self.postings.push(Vec::new());
            }
            self.postings[id as usize].push(Posting { doc, frequency });
        }
        self.docs.push(Doc {
            rowid,
            user,
            length,
            live: true,
        });
        self.slots.insert(rowid, doc);
        self.live_length += u64::from(length);
    }

    /// Drops message `rowid`, if indexed.
    pub fn remove(&mut self, rowid: i64) {
        if let Some(doc) = self.slots.remove(&rowid) {
            let doc = &mut self.docs[doc as usize];
            doc.live = false;
            self.live_length -= u64::from(doc.length);
        }
        if self.docs.len() - self.slots.len() > self.slots.len().max(COMPACT_AFTER) {
            self.compact();
        }
    }

    /// Rewrites the postings without dead entries.
    fn compact(&mut self) {
        let mut renumbered = vec![u32::MAX; self.docs.len()];
        let mut docs = Vec::with_capacity(self.slots.len());
        for (old, doc) in std::mem::take(&mut self.docs).into_iter().enumerate() {
            if doc.live {
                renumbered[old] = docs.len() as u32;
                docs.push(doc);
            }
        }
        for list in &mut self.postings {
            list.retain_mut(|posting| {
                posting.doc = renumbered[posting.doc as usize];
                posting.doc != u32::MAX
            });
        }
        // Terms no live message holds keep an empty list: their ids stay valid.
        self.slots = docs
            .iter()
            .enumerate()
            .map(|(doc, entry)| (entry.rowid, doc as u32))
            .collect();
        self.docs = docs;
    }

    /// The best `limit` of `user`'s messages for `terms` (from [`WordIndex::terms`]), best
    /// first: (rowid, BM25 score). Statistics cover every user's messages, as FTS5's did;
    /// ties go to the lower rowid.
    pub fn search(&self, terms: &[String], limit: usize, user: &str) -> Vec<(i64, f32)> {
        let live = self.slots.len();
        let Some(&user) = self.users.get(user) else {
            return Vec::new();
        };
        if live == 0 || limit == 0 {
            return Vec::new();
        }
        let average = self.live_length as f32 / live as f32;
        // Dense: a slot per entry costs less than hashing each posting.
        let mut scores = vec![0.0f32; self.docs.len()];
        let mut touched: Vec<u32> = Vec::new();
        for term in terms {
            let Some(&id) = self.terms.get(term.as_str()) else {
                continue;
            };
            let list = &self.postings[id as usize];
            let found = list
                .iter()
                .filter(|posting| self.docs[posting.doc as usize].live)
                .count() as f32;
            if found == 0.0 {
                continue;
            }
            let idf = (1.0 + (live as f32 - found + 0.5) / (found + 0.5)).ln();
            for posting in list {
                let doc = &self.docs[posting.doc as usize];
                if !doc.live || doc.user != user {
                    continue;
                }
                let frequency = posting.frequency as f32;
                let norm = K1 * (1.0 - B + B * doc.length as f32 / average.max(1.0));
                let score = &mut scores[posting.doc as usize];
                if *score == 0.0 {
                    touched.push(posting.doc);
                }
                // Every term adds more than 0: idf > 0 for any term some message lacks.
                *score += idf * frequency * (K1 + 1.0) / (frequency + norm);
            }
        }
        let mut ranked: Vec<(i64, f32)> = touched
            .into_iter()
            .map(|doc| (self.docs[doc as usize].rowid, scores[doc as usize]))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(limit);
        ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(messages: &[(i64, &str, &str)]) -> WordIndex {
        let mut index = WordIndex::default();
        for (rowid, user, text) in messages {
            index.upsert(*rowid, user, text);
        }
        index
    }

    fn rowids(index: &WordIndex, query: &str, user: &str) -> Vec<i64> {
        index
            .search(&index.terms(query), 10, user)
            .into_iter()
            .map(|(rowid, _)| rowid)
            .collect()
    }

    #[test]
    fn ranks_by_bm25_and_stems_and_splits_identifiers() {
        let index = index(&[
            (1, "ann", "We were indexing the workspace all night."),
            (2, "ann", "Lunch was good."),
            (
                3,
                "ann",
                "Call parse_args before indexing, then index again: indexed twice.",
            ),
            (4, "bob", "Indexed elsewhere, by another user."),
        ]);
        // "indexed" and "index" stem as "indexing" does; 3 says it three times.
        assert_eq!(rowids(&index, "indexed", "ann"), [3, 1]);
        assert_eq!(rowids(&index, "ARGS", "ann"), [3]);
        assert_eq!(rowids(&index, "indexed", "bob"), [4]);
        assert!(rowids(&index, "dinner", "ann").is_empty());
        assert!(rowids(&index, "indexed", "carol").is_empty());
    }

    #[test]
    fn scores_match_the_bm25_formula() {
        let index = index(&[
            (1, "u", "apple pear"),
            (2, "u", "pear pear plum"),
            (3, "u", "fig"),
        ]);
        let hits = index.search(&index.terms("apple"), 10, "u");
        // One of three messages holds "apple"; lengths 2, 3 and 1 average 2.
        let idf = (1.0f32 + (3.0 - 1.0 + 0.5) / (1.0 + 0.5)).ln();
        let expected = idf * 2.2 / (1.0 + 1.2 * (1.0 - 0.75 + 0.75 * 2.0 / 2.0));
        assert_eq!(hits.len(), 1);
        assert!(
            (hits[0].1 - expected).abs() < 1e-6,
            "{hits:?} against {expected}"
        );
    }

    #[test]
    fn edits_and_deletions_leave_no_trace_even_after_compaction() {
        let mut index = index(&[(1, "u", "old words here"), (2, "u", "kept message")]);
        index.upsert(1, "u", "new text");
        assert!(rowids(&index, "old", "u").is_empty());
        assert_eq!(rowids(&index, "new", "u"), [1]);
        index.remove(2);
        assert!(rowids(&index, "kept", "u").is_empty());
        assert_eq!(index.len(), 1);
        // Churn enough to compact, then check that what is left still ranks.
        for round in 0..3 * COMPACT_AFTER as i64 {
            index.upsert(100 + round % 7, "v", &format!("churn {round}"));
        }
        assert!(index.docs.len() <= 2 * COMPACT_AFTER + 8);
        assert_eq!(rowids(&index, "new text", "u"), [1]);
        assert_eq!(rowids(&index, "churn", "v").len(), 7);
        assert_eq!(index.len(), 8);
    }
}
