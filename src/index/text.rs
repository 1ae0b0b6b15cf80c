//! The full-text index (tantivy): BM25 over the code-aware field, and exact substrings through
//! a Bloom filter of the trigrams of each group of passages, whose admitted groups are checked
//! against the text. One tantivy document per passage; a group's filter goes on its first.
//!
//! All calls block; the engine runs them on blocking threads. tantivy allows one writer per
//! index across processes: [`TextIndex::acquire_writer`] takes it when free and keeps it, and
//! records the holder's pid in `writer.pid` for status reports. Other processes only read
//! (and queue their work in SQLite for the holder; see the engine's indexing).
//!
//! Readers reload on request: after this process commits, and when another process's commit
//! is announced through the cache generations, so that a search never caches a stale view.

use std::{
    collections::{HashMap, HashSet},
    fs, io,
    path::{Path, PathBuf},
    sync::Mutex,
};

use tantivy::{
    DocAddress, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher,
    TantivyDocument, Term,
    collector::TopDocs,
    directory::MmapDirectory,
    doc,
    fieldnorm::FieldNormReader,
    postings::{Postings, SegmentPostings},
    query::{Bm25Weight, BooleanQuery, ConstScoreQuery, Occur, Query, TermQuery, TermSetQuery},
    schema::{
        FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
        TextOptions, Value,
    },
};

use self::substring::gram_groups;
use super::tokenize::{CODE_TOKENIZER, CodeTokenizer, code_tokens};

mod substring;

/// The writer's memory budget, shared by its threads; tantivy flushes a segment when a
/// thread's share fills, so a larger budget means fewer segments to merge later.
const WRITER_HEAP_BYTES: usize = 128 * 1024 * 1024;
/// Where the writer's holder records its pid.
const WRITER_PID_FILE: &str = "writer.pid";
/// Shortest substring the gram filters can find.
pub const MIN_SUBSTRING_CHARS: usize = 3;
/// A word in more than this share of passages is common: it scores, but does not find.
const COMMON_TERM_SHARE: f64 = 0.05;
/// ... but never while it is in this many passages or fewer: in a small workspace every
/// word is in 5% of passages, and a long posting list is what makes a word costly.
const COMMON_TERM_MIN_PASSAGES: f64 = 64.0;
/// Candidates the rarer words of a query pick, per result asked for, before the common
/// words add to their scores; at least `RESCORED_CANDIDATES`. MRR@10 on the labelled set is
/// the same from 30 to 100 candidates.
const RESCORE_FACTOR: usize = 3;
const RESCORED_CANDIDATES: usize = 30;
/// A drain that wrote this many documents merges the index into one segment afterwards:
/// every segment costs each query its own term lookups and scorers (CPython text search:
/// 643 µs p50 over six segments, 475 µs over one).
pub const MERGE_AFTER_DOCUMENTS: usize = 256;
/// Fast fields on a group's first passage: its key (as `gram_group`) and its filter's words;
/// and on every passage, its own filter's words. Renamed whenever a filter's layout changes,
/// so that an older index is rebuilt.
const FILTER_GROUP_FIELD: &str = "gram_filter_group";
const FILTER_FIELD: &str = "gram_filter";
const PASSAGE_FILTER_FIELD: &str = "gram_passage_filter";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("this process does not hold the index writer")]
    WriterBusy,
    #[error("the search index failed: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("cannot open the index folder: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("cannot copy the index: {action} {path}: {source}")]
    Copy {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the index's meta.json cannot be read: {0}")]
    Meta(String),
    #[error("a segment's gram filters are damaged: {0}")]
    Filters(String),
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A passage as the index takes it. `id` is the passage's row id in SQLite, new on every
/// re-stage of its document, so the index can tell which version of a document it holds.
#[derive(Debug, Clone, Copy)]
pub struct IndexedPassage<'a> {
    pub id: u64,
    pub start_line: u32,
    pub end_line: u32,
    pub text: &'a str,
}

/// Which version of a document the index holds: its highest passage id and passage count.
pub type Stamp = (i64, i64);

#[derive(Clone, Copy)]
struct Fields {
    doc_id: Field,
    passage_id: Field,
    workspace: Field,
    path: Field,
    start_line: Field,
    end_line: Field,
    text: Field,
    /// The passage's group: its document and the group's ordinal in it.
    group: Field,
    /// On a group's first passage only: the group again, and its gram filter.
    filter_group: Field,
    filter: Field,
    /// The passage's own gram filter.
    passage_filter: Field,
}

/// Which passages a search may return.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextFilter<'a> {
    /// Only this workspace root.
    pub workspace: Option<&'a str>,
    /// Only these documents (by id).
    pub documents: Option<&'a HashSet<i64>>,
}

/// A passage that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct TextHit {
    pub doc_id: u64,
    pub workspace: String,
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub text: String,
    /// BM25 for word queries; for substring queries, how many times the passage holds the
    /// needle (not counting overlaps).
    pub score: f32,
}

pub struct TextIndex {
    dir: std::path::PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<Option<IndexWriter>>,
    /// Why the last writer was dropped after a failure, until a commit succeeds again.
    writer_fault: Mutex<Option<String>>,
}

impl TextIndex {
    /// Opens the index in `dir`, creating it on first use.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        std::fs::create_dir_all(dir)
            .map_err(|error| tantivy::TantivyError::IoError(error.into()))?;
        let (schema, fields) = schema();
        let index = match Index::open_or_create(MmapDirectory::open(dir)?, schema.clone()) {
            Err(tantivy::TantivyError::SchemaError(reason)) => {
                // An index written by an older version: derived data, rebuilt from SQLite.
                tracing::warn!(%reason, "the search index has an older layout; rebuilding it");
                set_aside(dir)?;
                Index::open_or_create(MmapDirectory::open(dir)?, schema)?
            }
            other => other?,
        };
        index
            .tokenizers()
            .register(CODE_TOKENIZER, CodeTokenizer::default());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            dir: dir.to_owned(),
            index,
            reader,
            fields,
            writer: Mutex::new(None),
            writer_fault: Mutex::new(None),
        })
    }

    /// Replaces every passage of document `doc_id` (not visible until commit).
    pub fn replace_document(
        &self,
        doc_id: u64,
        workspace: &str,
        path: &str,
        passages: &[IndexedPassage<'_>],
    ) -> Result<(), IndexError> {
        let groups = gram_groups(passages);
        self.with_writer(|writer, fields| {
            writer.delete_term(Term::from_field_u64(fields.doc_id, doc_id));
            let mut passages = passages.iter();
            for (ordinal, group) in groups.iter().enumerate() {
                let group_key = doc_id << 16 | ordinal as u64;
                // The group's filters first: a zip takes from its first side before the second,
                // so the other order would drop the passage after each group.
                let members = group.passages.iter().zip(passages.by_ref());
                for (at, (own_filter, passage)) in members.enumerate() {
                    let mut document = doc!(
                        fields.doc_id => doc_id,
                        fields.passage_id => passage.id,
                        fields.workspace => workspace,
                        fields.path => path,
                        fields.start_line => u64::from(passage.start_line),
                        fields.end_line => u64::from(passage.end_line),
                        fields.text => passage.text,
                        fields.group => group_key,
                    );
                    for word in own_filter.words() {
                        document.add_u64(fields.passage_filter, *word);
                    }
                    if at == 0 {
                        document.add_u64(fields.filter_group, group_key);
                        for word in group.filter.words() {
                            document.add_u64(fields.filter, *word);
                        }
                    }
                    writer.add_document(document)?;
                }
            }
            Ok(())
        })
    }

    pub fn delete_document(&self, doc_id: u64) -> Result<(), IndexError> {
        self.with_writer(|writer, fields| {
            writer.delete_term(Term::from_field_u64(fields.doc_id, doc_id));
            Ok(())
        })
    }

    /// Makes every change since the last commit durable and visible to readers.
    pub fn commit(&self) -> Result<(), IndexError> {
        match self.with_writer(|writer, _| Ok(writer.commit().map(drop)?)) {
            Err(IndexError::WriterBusy) => return Ok(()),
            outcome => outcome?,
        }
        *lock(&self.writer_fault) = None;
        Ok(self.reader.reload()?)
    }

    /// Why the last writer failed, while no commit has succeeded since.
    pub fn writer_fault(&self) -> Option<String> {
        lock(&self.writer_fault).clone()
    }

    /// Merges every searchable segment into one and reloads the reader; blocks until done.
    /// False when there was one segment or this process does not hold the writer. Searches
    /// go on meanwhile over the segments they started with.
    pub fn merge_segments(&self) -> Result<bool, IndexError> {
        let ids = self.index.searchable_segment_ids()?;
        if ids.len() < 2 {
            return Ok(false);
        }
        let merging = match self.writer_slot().as_mut() {
            Some(writer) => writer.merge(&ids),
            None => return Ok(false),
        };
        merging.wait()?;
        self.reader.reload()?;
        Ok(true)
    }

    /// Takes the writer if no process holds it; true when this process holds it now.
    pub fn acquire_writer(&self) -> Result<bool, IndexError> {
        let mut slot = self.writer_slot();
        if slot.is_some() {
            return Ok(true);
        }
        match self.index.writer(WRITER_HEAP_BYTES) {
            Ok(writer) => {
                *slot = Some(writer);
                // Best effort: only status reports read it.
                let _ = std::fs::write(
                    self.dir.join(WRITER_PID_FILE),
                    std::process::id().to_string(),
                );
                Ok(true)
            }
            Err(tantivy::TantivyError::LockFailure(..)) => Ok(false),
            Err(other) => Err(IndexError::Tantivy(other)),
        }
    }

    pub fn holds_writer(&self) -> bool {
        self.writer_slot().is_some()
    }

    /// The pid recorded by the last process that took the writer.
    pub fn writer_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(WRITER_PID_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Picks up commits made by another process.
    pub fn reload(&self) -> Result<(), IndexError> {
        Ok(self.reader.reload()?)
    }

    /// The stamp of every document with passages in the committed index, by document id.
    pub fn document_stamps(&self) -> Result<HashMap<i64, Stamp>, IndexError> {
        let searcher = self.reader.searcher();
        let mut stamps: HashMap<i64, Stamp> = HashMap::new();
        for segment in searcher.segment_readers() {
            let documents = segment.fast_fields().u64("doc_id")?;
            let passages = segment.fast_fields().u64("passage_id")?;
            for doc in segment.doc_ids_alive() {
                let (Some(id), Some(passage)) = (documents.first(doc), passages.first(doc)) else {
                    continue;
                };
                let stamp = stamps.entry(id as i64).or_insert((0, 0));
                stamp.0 = stamp.0.max(passage as i64);
                stamp.1 += 1;
            }
        }
        Ok(stamps)
    }

    /// Copies the last committed state into `into` (created): `meta.json` and the files of
    /// the segments it names. Segment files never change once written, but a later commit may
    /// delete them, so a copy that finds one gone starts again. Returns the copied file names.
    pub fn copy_committed(&self, into: &Path) -> Result<Vec<String>, IndexError> {
        const ATTEMPTS: usize = 5;
        let mut attempt = 1;
        loop {
            match copy_once(&self.dir, into) {
                Err(IndexError::Copy { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && attempt < ATTEMPTS =>
                {
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    fn writer_slot(&self) -> std::sync::MutexGuard<'_, Option<IndexWriter>> {
        lock(&self.writer)
    }

    /// Runs `work` with the writer, which this process must already hold. A writer that
    /// fails (a full disk kills tantivy's writer for good) is dropped, so that the next
    /// drain opens a new one; what it had not committed is still queued in SQLite.
    fn with_writer(
        &self,
        work: impl FnOnce(&mut IndexWriter, Fields) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        let mut slot = self.writer_slot();
        let writer = slot.as_mut().ok_or(IndexError::WriterBusy)?;
        let outcome = work(writer, self.fields);
        if let Err(error) = &outcome {
            tracing::warn!(%error, "the index writer failed; it is opened again on the next drain");
            *slot = None;
            *lock(&self.writer_fault) = Some(error.to_string());
        }
        outcome
    }

    /// BM25 over words and identifier parts: any term may match, more and rarer ones rank higher.
    pub fn search_words(
        &self,
        query: &str,
        limit: usize,
        filter: TextFilter<'_>,
    ) -> Result<Vec<TextHit>, IndexError> {
        let mut terms: Vec<String> = code_tokens(query)
            .into_iter()
            .map(|token| token.text)
            .collect();
        terms.sort();
        terms.dedup();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let QueryTerms { rare, common } = self.split_terms(&searcher, &terms);
        if rare.is_empty() && common.is_empty() {
            return Ok(Vec::new());
        }
        if rare.is_empty() || common.is_empty() {
            return self.run(
                any_of(rare.into_iter().chain(common).collect()),
                limit,
                filter,
            );
        }
        // Common terms never drive the search through their long posting lists: the rarer
        // ones pick candidates (block-WAND over a plain union), then each candidate gets
        // what the common terms it holds add, so its score is exactly a plain union's.
        let limit = limit.max(1);
        let depth = limit
            .saturating_mul(RESCORE_FACTOR)
            .max(RESCORED_CANDIDATES);
        let query = self.filtered(any_of(rare), filter);
        let mut top = searcher.search(&query, &TopDocs::with_limit(depth).order_by_score())?;
        if top.is_empty() {
            // The rarer words occur only outside the filter: the common ones still find.
            return self.run(any_of(common), limit, filter);
        }
        add_scores_of(&searcher, self.fields.text, &common, &mut top)?;
        // Ties by address, as tantivy breaks them.
        top.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        top.truncate(limit);
        self.hits(&searcher, top)
    }

    /// The query's words that occur in some passage, split by how many passages hold them.
    /// A word found nowhere is dropped: it can neither find nor score.
    fn split_terms(&self, searcher: &Searcher, words: &[String]) -> QueryTerms {
        let common_above = common_threshold(searcher.num_docs());
        let mut split = QueryTerms::default();
        for word in words {
            let term = Term::from_field_text(self.fields.text, word);
            let passages = searcher.doc_freq(&term).unwrap_or(0);
            if passages == 0 {
                continue;
            }
            if passages as f64 > common_above {
                split.common.push(term);
            } else {
                split.rare.push(term);
            }
        }
        split
    }

    /// `query` restricted to the passages `filter` admits, without changing its scores.
    fn filtered(&self, query: Box<dyn Query>, filter: TextFilter<'_>) -> Box<dyn Query> {
        match self.restriction(filter) {
            Some(restriction) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                must_match(restriction),
            ])),
            None => query,
        }
    }

    /// The passages `filter` admits, as a query; None when it admits all.
    fn restriction(&self, filter: TextFilter<'_>) -> Option<Box<dyn Query>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(root) = filter.workspace {
            let term = Term::from_field_text(self.fields.workspace, root);
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
        if let Some(documents) = filter.documents {
            let terms = documents
                .iter()
                .map(|id| Term::from_field_u64(self.fields.doc_id, *id as u64));
            clauses.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
        }
        match clauses.len() {
            0 => None,
            1 => clauses.pop().map(|(_, query)| query),
            _ => Some(Box::new(BooleanQuery::new(clauses))),
        }
    }

    fn run(
        &self,
        query: Box<dyn Query>,
        limit: usize,
        filter: TextFilter<'_>,
    ) -> Result<Vec<TextHit>, IndexError> {
        let query = self.filtered(query, filter);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        self.hits(&searcher, top)
    }

    fn hits(
        &self,
        searcher: &Searcher,
        top: Vec<(Score, DocAddress)>,
    ) -> Result<Vec<TextHit>, IndexError> {
        top.into_iter()
            .map(|(score, address)| {
                let document: TantivyDocument = searcher.doc(address)?;
                Ok(self.hit(&document, score))
            })
            .collect()
    }

    fn hit(&self, document: &TantivyDocument, score: f32) -> TextHit {
        let text = |field| {
            document
                .get_first(field)
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let number = |field| {
            document
                .get_first(field)
                .and_then(|value| value.as_u64())
                .unwrap_or_default()
        };
        TextHit {
            doc_id: number(self.fields.doc_id),
            workspace: text(self.fields.workspace),
            path: text(self.fields.path),
            start_line: number(self.fields.start_line) as u32,
            end_line: number(self.fields.end_line) as u32,
            text: text(self.fields.text),
            score,
        }
    }

    /// Passages in the committed index.
    /// Segments of the searched snapshot (many small ones slow searches until merged).
    pub fn segments(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    pub fn passages(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// A query's words that occur in the index: the rarer ones pick candidates, the common
/// ones only add to their scores.
#[derive(Default)]
struct QueryTerms {
    rare: Vec<Term>,
    common: Vec<Term>,
}

/// How many passages a word may be in and still be rare.
fn common_threshold(passages: u64) -> f64 {
    (passages as f64 * COMMON_TERM_SHARE).max(COMMON_TERM_MIN_PASSAGES)
}

/// BM25 of whichever of `terms` a passage holds.
fn any_of(terms: Vec<Term>) -> Box<dyn Query> {
    let clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .into_iter()
        .map(|term| {
            let query: Box<dyn Query> =
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
            (Occur::Should, query)
        })
        .collect();
    Box::new(BooleanQuery::new(clauses))
}

/// Adds to each of `top` the BM25 of whichever of `terms` it holds, as a union would.
fn add_scores_of(
    searcher: &Searcher,
    field: Field,
    terms: &[Term],
    top: &mut [(Score, DocAddress)],
) -> Result<(), IndexError> {
    // By address, so that each posting list is walked forward once per segment.
    let mut order: Vec<usize> = (0..top.len()).collect();
    order.sort_by_key(|&at| top[at].1);
    for term in terms {
        let weight = Bm25Weight::for_terms(searcher, std::slice::from_ref(term))?;
        let mut segment: Option<(u32, Option<SegmentPostings>, FieldNormReader)> = None;
        for &at in &order {
            let address = top[at].1;
            if segment
                .as_ref()
                .is_none_or(|(ord, ..)| *ord != address.segment_ord)
            {
                let reader = searcher.segment_reader(address.segment_ord);
                let postings = reader
                    .inverted_index(field)?
                    .read_postings(term, IndexRecordOption::WithFreqs)
                    .map_err(|error| tantivy::TantivyError::IoError(error.into()))?;
                let norms = reader.get_fieldnorms_reader(field)?;
                segment = Some((address.segment_ord, postings, norms));
            }
            let Some((_, Some(postings), norms)) = segment.as_mut() else {
                continue;
            };
            if postings.doc() <= address.doc_id && postings.seek(address.doc_id) == address.doc_id {
                let norm = norms.fieldnorm_id(address.doc_id);
                top[at].0 += weight.score(norm, postings.term_freq());
            }
        }
    }
    Ok(())
}

/// A filter clause scored zero, so that it does not move BM25 scores.
fn must_match(filter: Box<dyn Query>) -> (Occur, Box<dyn Query>) {
    (Occur::Must, Box::new(ConstScoreQuery::new(filter, 0.0)))
}

const META_FILE: &str = "meta.json";

/// One attempt at [`TextIndex::copy_committed`].
fn copy_once(dir: &Path, into: &Path) -> Result<Vec<String>, IndexError> {
    let copy_error = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| IndexError::Copy {
            action,
            path,
            source,
        }
    };
    if into.exists() {
        fs::remove_dir_all(into).map_err(copy_error("cannot clear", into))?;
    }
    fs::create_dir_all(into).map_err(copy_error("cannot create", into))?;
    let meta_path = dir.join(META_FILE);
    let meta = fs::read(&meta_path).map_err(copy_error("cannot read", &meta_path))?;
    let wanted = committed_files(&meta)?;
    let mut copied = Vec::new();
    for entry in fs::read_dir(dir).map_err(copy_error("cannot list", dir))? {
        let entry = entry.map_err(copy_error("cannot list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !wanted.matches(&name) {
            continue;
        }
        let from = entry.path();
        fs::copy(&from, into.join(&name)).map_err(copy_error("cannot copy", &from))?;
        copied.push(name);
    }
    // meta.json goes last and as read: it names only files copied above.
    let meta_copy = into.join(META_FILE);
    fs::write(&meta_copy, &meta).map_err(copy_error("cannot write", &meta_copy))?;
    copied.push(META_FILE.to_owned());
    copied.sort();
    Ok(copied)
}

/// The files a `meta.json` refers to: each segment's `<id>.<component>` files and, for a
/// segment with deletes, the one `<id>.<opstamp>.del` it names.
struct CommittedFiles {
    segments: HashMap<String, Option<u64>>,
}

impl CommittedFiles {
    fn matches(&self, name: &str) -> bool {
        let Some((segment, rest)) = name.split_once('.') else {
            return false;
        };
        let Some(deletes) = self.segments.get(segment) else {
            return false;
        };
        match rest.strip_suffix(".del") {
            Some(opstamp) => deletes.is_some_and(|wanted| opstamp == wanted.to_string()),
            None => !rest.contains('.'),
        }
    }
}

fn committed_files(meta: &[u8]) -> Result<CommittedFiles, IndexError> {
    #[derive(serde::Deserialize)]
    struct Meta {
        segments: Vec<SegmentEntry>,
    }
    #[derive(serde::Deserialize)]
    struct SegmentEntry {
        segment_id: String,
        deletes: Option<Deletes>,
    }
    #[derive(serde::Deserialize)]
    struct Deletes {
        opstamp: u64,
    }
    let meta: Meta =
        serde_json::from_slice(meta).map_err(|error| IndexError::Meta(error.to_string()))?;
    Ok(CommittedFiles {
        segments: meta
            .segments
            .into_iter()
            .map(|segment| {
                // Files are named by the id without dashes.
                let id = segment.segment_id.replace('-', "").to_ascii_lowercase();
                (id, segment.deletes.map(|deletes| deletes.opstamp))
            })
            .collect(),
    })
}

/// Moves an index folder of an older layout out of the way and deletes it.
fn set_aside(dir: &Path) -> Result<(), IndexError> {
    let aside = dir.with_extension(format!("old-{}", std::process::id()));
    // Another process may have done it first; opening again decides.
    if fs::rename(dir, &aside).is_ok() {
        let _ = fs::remove_dir_all(&aside);
    }
    fs::create_dir_all(dir).map_err(|error| tantivy::TantivyError::IoError(error.into()))?;
    Ok(())
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    // Word queries are BM25 over terms, never phrases: counts, no positions.
    let indexing = |tokenizer: &str, record: IndexRecordOption| {
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(record)
    };
    let fields = Fields {
        doc_id: builder.add_u64_field("doc_id", INDEXED | FAST | STORED),
        passage_id: builder.add_u64_field("passage_id", FAST),
        workspace: builder.add_text_field("workspace", STRING | STORED),
        path: builder.add_text_field("path", STRING | STORED),
        start_line: builder.add_u64_field("start_line", STORED),
        end_line: builder.add_u64_field("end_line", STORED),
        text: builder.add_text_field(
            "text",
            TextOptions::default()
                .set_indexing_options(indexing(CODE_TOKENIZER, IndexRecordOption::WithFreqs))
                .set_stored(),
        ),
        group: builder.add_u64_field("gram_group", INDEXED | FAST),
        filter_group: builder.add_u64_field(FILTER_GROUP_FIELD, FAST),
        filter: builder.add_u64_field(FILTER_FIELD, FAST),
        passage_filter: builder.add_u64_field(PASSAGE_FILTER_FIELD, FAST),
    };
    (builder.build(), fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn chunk(text: &str, line: u32) -> IndexedPassage<'_> {
        IndexedPassage {
            id: u64::from(line) * 100,
            text,
            start_line: line,
            end_line: line,
        }
    }

    pub(super) fn indexed() -> (tempfile::TempDir, TextIndex) {
        let dir = tempfile::tempdir().unwrap();
        let index = TextIndex::open(dir.path()).unwrap();
        assert!(index.acquire_writer().unwrap());
        index
            .replace_document(
                1,
                "/ws",
                "heapq.py",
                &[chunk("def _siftdown_max(heap, startpos, pos):", 10)],
            )
            .unwrap();
        index
            .replace_document(
                2,
                "/ws",
                "difflib.py",
                &[chunk(
                    "class SequenceMatcher:\n    def find_longest_match(self):",
                    40,
                )],
            )
            .unwrap();
        index
            .replace_document(
                3,
                "/other",
                "argparse.py",
                &[chunk("def _parse_optional(self, arg_string):", 7)],
            )
            .unwrap();
        index
            .replace_document(
                4,
                "/ws",
                "urls.py",
                &[chunk("UNSAFE_URL_BYTES_TO_REMOVE = ['\\t', '\\r']", 1)],
            )
            .unwrap();
        index.commit().unwrap();
        (dir, index)
    }

    pub(super) fn paths(hits: &[TextHit]) -> Vec<&str> {
        hits.iter().map(|hit| hit.path.as_str()).collect()
    }

    #[test]
    fn identifiers_and_their_parts_are_found_by_words() {
        let (_dir, index) = indexed();
        assert_eq!(
            paths(
                &index
                    .search_words("parse_optional", 10, TextFilter::default())
                    .unwrap()
            ),
            ["argparse.py"]
        );
        assert_eq!(
            paths(
                &index
                    .search_words("sequence matcher", 10, TextFilter::default())
                    .unwrap()
            ),
            ["difflib.py"]
        );
        let hit = &index
            .search_words("SequenceMatcher", 10, TextFilter::default())
            .unwrap()[0];
        assert_eq!((hit.path.as_str(), hit.start_line), ("difflib.py", 40));
        assert!(hit.score > 0.0);
        assert!(
            index
                .search_words("nothing_like_this", 10, TextFilter::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn words_found_nowhere_leave_the_others_to_find() {
        let (_dir, index) = indexed();
        let hits = index
            .search_words("where is the sequence matcher", 10, TextFilter::default())
            .unwrap();
        assert_eq!(paths(&hits), ["difflib.py"]);
    }

    #[test]
    fn common_words_find_where_the_rare_ones_are_filtered_out() {
        let dir = tempfile::tempdir().unwrap();
        let index = TextIndex::open(dir.path()).unwrap();
        assert!(index.acquire_writer().unwrap());
        let passages = COMMON_TERM_MIN_PASSAGES as u64 * 2;
        for doc_id in 0..passages {
            let path = format!("common{doc_id}.txt");
            let chunks = [chunk("a widespread word", 1)];
            index
                .replace_document(doc_id, "/ws", &path, &chunks)
                .unwrap();
        }
        let chunks = [chunk("widespread and singular", 1)];
        index
            .replace_document(passages, "/other", "rare.txt", &chunks)
            .unwrap();
        index.commit().unwrap();

        let only_ws = TextFilter {
            workspace: Some("/ws"),
            documents: None,
        };
        let hits = index
            .search_words("singular widespread", 5, only_ws)
            .unwrap();
        assert_eq!(hits.len(), 5);
        assert!(hits.iter().all(|hit| hit.workspace == "/ws"));
    }

    #[test]
    fn workspace_filter_and_replacement_and_deletion() {
        let (_dir, index) = indexed();
        assert!(
            index
                .search_words(
                    "parse_optional",
                    10,
                    TextFilter {
                        workspace: Some("/ws"),
                        ..TextFilter::default()
                    }
                )
                .unwrap()
                .is_empty()
        );
        index
            .replace_document(
                3,
                "/other",
                "argparse.py",
                &[chunk("def renamed(self):", 7)],
            )
            .unwrap();
        index.delete_document(1).unwrap();
        index.commit().unwrap();
        assert!(
            index
                .search_words("parse_optional", 10, TextFilter::default())
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            paths(
                &index
                    .search_words("renamed", 10, TextFilter::default())
                    .unwrap()
            ),
            ["argparse.py"]
        );
        assert!(
            index
                .search_substring("siftdown", 10, TextFilter::default())
                .unwrap()
                .is_empty()
        );
        assert_eq!(index.passages(), 3);
    }

    #[test]
    fn merging_leaves_one_segment_that_finds_the_same() {
        let (dir, index) = indexed();
        index
            .replace_document(9, "/ws", "later.py", &[chunk("def later_thing(): pass", 3)])
            .unwrap();
        index.commit().unwrap();
        index.delete_document(2).unwrap();
        index
            .replace_document(10, "/ws", "last.py", &[chunk("LAST_MARKER = 1", 1)])
            .unwrap();
        index.commit().unwrap();
        assert!(index.segments() > 1, "each commit adds a segment");
        assert!(index.merge_segments().unwrap());
        assert_eq!(index.segments(), 1);
        assert!(!index.merge_segments().unwrap(), "nothing left to merge");
        assert_eq!(index.passages(), 5, "the deleted document stays deleted");
        let found = |needle| {
            paths(
                &index
                    .search_substring(needle, 10, TextFilter::default())
                    .unwrap(),
            )
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
        };
        assert_eq!(found("siftdown_ma"), ["heapq.py"]);
        assert_eq!(found("LAST_MARK"), ["last.py"]);
        assert!(found("longest_m").is_empty());
        // A reader opened afresh sees the merged index too.
        drop(index);
        let reopened = TextIndex::open(dir.path()).unwrap();
        assert_eq!(reopened.segments(), 1);
    }

    #[test]
    fn one_writer_per_folder_until_its_holder_goes() {
        let (dir, index) = indexed();
        let other = TextIndex::open(dir.path()).unwrap();
        assert!(!other.acquire_writer().unwrap());
        assert!(matches!(
            other.delete_document(9),
            Err(IndexError::WriterBusy)
        ));
        assert_eq!(other.writer_pid(), Some(std::process::id()));
        let stamps = other.document_stamps().unwrap();
        assert_eq!(stamps.len(), 4);
        assert_eq!(stamps[&2], (4000, 1));
        drop(index);
        assert!(other.acquire_writer().unwrap());
        assert!(other.delete_document(9).is_ok());
    }

    #[test]
    fn a_committed_copy_opens_with_the_same_passages() {
        let (_dir, index) = indexed();
        // Deletes make a `.del` file; a later commit may merge or rewrite segments.
        index.delete_document(4).unwrap();
        index.commit().unwrap();
        let copy = tempfile::tempdir().unwrap();
        let files = index.copy_committed(&copy.path().join("index")).unwrap();
        assert!(files.contains(&"meta.json".to_owned()));
        assert!(
            !files
                .iter()
                .any(|name| name.contains("lock") || name == "writer.pid")
        );
        let copied = TextIndex::open(&copy.path().join("index")).unwrap();
        assert_eq!(copied.passages(), index.passages());
        assert_eq!(
            copied.document_stamps().unwrap(),
            index.document_stamps().unwrap()
        );
        assert_eq!(
            paths(
                &copied
                    .search_words("parse_optional", 10, TextFilter::default())
                    .unwrap()
            ),
            ["argparse.py"]
        );
    }

    #[test]
    fn an_index_of_an_older_layout_is_rebuilt_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = Schema::builder();
        builder.add_u64_field("doc_id", INDEXED | FAST | STORED);
        Index::create_in_dir(dir.path(), builder.build()).unwrap();
        let index = TextIndex::open(dir.path()).unwrap();
        assert_eq!(index.passages(), 0);
        assert!(index.acquire_writer().unwrap());
    }
}
