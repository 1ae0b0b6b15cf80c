//! The full-text index (tantivy): BM25 over the code-aware field, exact substrings through
//! positional trigrams. One tantivy document per passage.
//!
//! All calls block; the engine runs them on blocking threads. The writer is opened on first
//! write and kept: tantivy allows one writer per index across processes, and a second
//! process gets [`IndexError::WriterBusy`] (handing work to the holder is the next step).

use std::{path::Path, sync::Mutex};

use tantivy::{
    Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term,
    collector::TopDocs,
    directory::MmapDirectory,
    doc,
    query::{BooleanQuery, ConstScoreQuery, Occur, PhraseQuery, Query, TermQuery},
    schema::{
        FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
        TextOptions, Value,
    },
};

use super::{
    chunk::Chunk,
    tokenize::{CODE_TOKENIZER, CodeTokenizer, TRIGRAM_TOKENIZER, TrigramTokenizer, code_tokens},
};

/// The writer's memory budget; tantivy flushes segments when it fills.
const WRITER_HEAP_BYTES: usize = 64 * 1024 * 1024;
/// Shortest substring the trigram field can find.
pub const MIN_SUBSTRING_CHARS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("another process holds the index writer")]
    WriterBusy,
    #[error("the search index failed: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("cannot open the index folder: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
}

#[derive(Clone, Copy)]
struct Fields {
    doc_id: Field,
    workspace: Field,
    path: Field,
    start_line: Field,
    end_line: Field,
    text: Field,
    grams: Field,
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
    /// BM25 for word queries; for substring queries the phrase score.
    pub score: f32,
}

pub struct TextIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<Option<IndexWriter>>,
}

impl TextIndex {
    /// Opens the index in `dir`, creating it on first use.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        std::fs::create_dir_all(dir)
            .map_err(|error| tantivy::TantivyError::IoError(error.into()))?;
        let (schema, fields) = schema();
        let index = Index::open_or_create(MmapDirectory::open(dir)?, schema)?;
        index.tokenizers().register(CODE_TOKENIZER, CodeTokenizer);
        index
            .tokenizers()
            .register(TRIGRAM_TOKENIZER, TrigramTokenizer);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            fields,
            writer: Mutex::new(None),
        })
    }

    /// Replaces every passage of document `doc_id` with `chunks` (not visible until commit).
    pub fn replace_document(
        &self,
        doc_id: u64,
        workspace: &str,
        path: &str,
        chunks: &[Chunk],
    ) -> Result<(), IndexError> {
        self.with_writer(|writer, fields| {
            writer.delete_term(Term::from_field_u64(fields.doc_id, doc_id));
            for chunk in chunks {
                writer.add_document(doc!(
                    fields.doc_id => doc_id,
                    fields.workspace => workspace,
                    fields.path => path,
                    fields.start_line => u64::from(chunk.start_line),
                    fields.end_line => u64::from(chunk.end_line),
                    fields.text => chunk.text.as_str(),
                    fields.grams => chunk.text.as_str(),
                ))?;
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
        let mut slot = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(writer) = slot.as_mut() {
            writer.commit()?;
            self.reader.reload()?;
        }
        Ok(())
    }

    fn with_writer(
        &self,
        work: impl FnOnce(&mut IndexWriter, Fields) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        let mut slot = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            let writer = self
                .index
                .writer(WRITER_HEAP_BYTES)
                .map_err(|error| match error {
                    tantivy::TantivyError::LockFailure(..) => IndexError::WriterBusy,
                    other => IndexError::Tantivy(other),
                })?;
            *slot = Some(writer);
        }
        work(
            slot.as_mut().expect("the writer was just opened"),
            self.fields,
        )
    }

    /// BM25 over words and identifier parts: any term may match, more and rarer ones rank higher.
    pub fn search_words(
        &self,
        query: &str,
        limit: usize,
        workspace: Option<&str>,
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
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .into_iter()
            .map(|text| {
                let term = Term::from_field_text(self.fields.text, &text);
                let query: Box<dyn Query> =
                    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
                (Occur::Should, query)
            })
            .collect();
        self.run(Box::new(BooleanQuery::new(clauses)), limit, workspace)
    }

    /// Passages that contain `needle` exactly (case-insensitive). Pins one trigram every
    /// three characters plus the last, which fixes every character of the needle.
    pub fn search_substring(
        &self,
        needle: &str,
        limit: usize,
        workspace: Option<&str>,
    ) -> Result<Vec<TextHit>, IndexError> {
        let grams = super::tokenize::trigram_tokens(needle);
        if grams.is_empty() {
            return Ok(Vec::new());
        }
        let last = grams.len() - 1;
        let pinned: Vec<(usize, Term)> = grams
            .iter()
            .filter(|gram| gram.position % 3 == 0 || gram.position == last)
            .map(|gram| {
                (
                    gram.position,
                    Term::from_field_text(self.fields.grams, &gram.text),
                )
            })
            .collect();
        let query: Box<dyn Query> = match pinned.len() {
            1 => Box::new(TermQuery::new(
                pinned[0].1.clone(),
                IndexRecordOption::Basic,
            )),
            _ => Box::new(PhraseQuery::new_with_offset(pinned)),
        };
        self.run(query, limit, workspace)
    }

    fn run(
        &self,
        query: Box<dyn Query>,
        limit: usize,
        workspace: Option<&str>,
    ) -> Result<Vec<TextHit>, IndexError> {
        let query: Box<dyn Query> = match workspace {
            Some(root) => {
                let filter = TermQuery::new(
                    Term::from_field_text(self.fields.workspace, root),
                    IndexRecordOption::Basic,
                );
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, query),
                    // Scored zero, so the filter does not move BM25 scores.
                    (
                        Occur::Must,
                        Box::new(ConstScoreQuery::new(Box::new(filter), 0.0)),
                    ),
                ]))
            }
            None => query,
        };
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
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
    pub fn passages(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let positions = |tokenizer: &str| {
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
    };
    let fields = Fields {
        doc_id: builder.add_u64_field("doc_id", INDEXED | FAST | STORED),
        workspace: builder.add_text_field("workspace", STRING | STORED),
        path: builder.add_text_field("path", STRING | STORED),
        start_line: builder.add_u64_field("start_line", STORED),
        end_line: builder.add_u64_field("end_line", STORED),
        text: builder.add_text_field(
            "text",
            TextOptions::default()
                .set_indexing_options(positions(CODE_TOKENIZER))
                .set_stored(),
        ),
        grams: builder.add_text_field(
            "grams",
            TextOptions::default().set_indexing_options(positions(TRIGRAM_TOKENIZER)),
        ),
    };
    (builder.build(), fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str, line: u32) -> Chunk {
        Chunk {
            text: text.into(),
            start_line: line,
            end_line: line,
        }
    }

    fn indexed() -> (tempfile::TempDir, TextIndex) {
        let dir = tempfile::tempdir().unwrap();
        let index = TextIndex::open(dir.path()).unwrap();
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

    fn paths(hits: &[TextHit]) -> Vec<&str> {
        hits.iter().map(|hit| hit.path.as_str()).collect()
    }

    #[test]
    fn identifiers_and_their_parts_are_found_by_words() {
        let (_dir, index) = indexed();
        assert_eq!(
            paths(&index.search_words("parse_optional", 10, None).unwrap()),
            ["argparse.py"]
        );
        assert_eq!(
            paths(&index.search_words("sequence matcher", 10, None).unwrap()),
            ["difflib.py"]
        );
        let hit = &index.search_words("SequenceMatcher", 10, None).unwrap()[0];
        assert_eq!((hit.path.as_str(), hit.start_line), ("difflib.py", 40));
        assert!(hit.score > 0.0);
        assert!(
            index
                .search_words("nothing_like_this", 10, None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn substrings_inside_identifiers_match_exactly() {
        let (_dir, index) = indexed();
        assert_eq!(
            paths(&index.search_substring("siftdown_ma", 10, None).unwrap()),
            ["heapq.py"]
        );
        assert_eq!(
            paths(&index.search_substring("URL_BYTES", 10, None).unwrap()),
            ["urls.py"]
        );
        assert_eq!(
            paths(&index.search_substring("longest_m", 10, None).unwrap()),
            ["difflib.py"]
        );
        // Every trigram of "siftup_max" exists somewhere, but not in this order.
        assert!(
            index
                .search_substring("siftup_max", 10, None)
                .unwrap()
                .is_empty()
        );
        assert!(
            index
                .search_substring("down_maxx", 10, None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn workspace_filter_and_replacement_and_deletion() {
        let (_dir, index) = indexed();
        assert!(
            index
                .search_words("parse_optional", 10, Some("/ws"))
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
                .search_words("parse_optional", 10, None)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            paths(&index.search_words("renamed", 10, None).unwrap()),
            ["argparse.py"]
        );
        assert!(
            index
                .search_substring("siftdown", 10, None)
                .unwrap()
                .is_empty()
        );
        assert_eq!(index.passages(), 3);
    }

    #[test]
    fn a_second_writer_on_the_same_folder_is_reported_busy() {
        let (dir, index) = indexed();
        let other = TextIndex::open(dir.path()).unwrap();
        assert!(matches!(
            other.delete_document(9),
            Err(IndexError::WriterBusy)
        ));
        drop(index);
        assert!(other.delete_document(9).is_ok());
    }
}
