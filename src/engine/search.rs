//! Searching indexed documents: words (BM25), exact substrings, meaning (vectors), and the
//! hybrid of words and meaning fused by reciprocal rank.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    Engine,
    documents::{index_error, join_error, path_error},
    error::{EngineError, Result},
    semantic::Collection,
    validate,
};
use crate::{
    cache::{Lookup, Scope, TtlClass},
    index::{MIN_SUBSTRING_CHARS, TextFilter, TextHit},
    store::{DocumentFilter, DocumentMeta, PassageRecord},
    vector::VectorHit,
};

const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 100;
const MAX_QUERY_BYTES: usize = 4096;
const MAX_FILE_TYPES: usize = 32;
/// Reciprocal rank fusion's constant (Cormack et al.; the design's `_merge_search_results`):
/// large enough that one list's top rank does not drown the other list.
const RRF_K: f64 = 60.0;
/// Each ranking contributes at least this many candidates to the fusion.
const MIN_FUSION_DEPTH: usize = 50;

/// How to match the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Words and identifier parts, ranked by BM25.
    Text,
    /// The exact (case-insensitive) substring, at least 3 characters.
    Substring,
    /// By meaning (needs the embedding model).
    Semantic,
    /// Text and semantic rankings fused.
    Hybrid,
}

/// One hit per passage, or only each document's best passage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    #[default]
    Passage,
    Document,
}

/// Arguments of `search_documents`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchDocuments {
    /// Words, identifiers, a substring, or a question in plain language.
    pub query: String,
    /// Most hits to return, 1 to 100. Default 10.
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub limit: Option<u32>,
    /// text, substring, semantic or hybrid. Default: hybrid when the embedding model is
    /// ready, else text.
    pub mode: Option<SearchMode>,
    /// Only this configured workspace root, by its path or its name as in `document://` URIs.
    pub workspace: Option<String>,
    /// Only files whose path (relative to the root) starts with this, e.g. `Lib/json/`.
    pub path_prefix: Option<String>,
    /// Only files with these extensions, e.g. `["py", "md"]`.
    pub file_types: Option<Vec<String>>,
    /// `passage` (default): every matching passage; `document`: each file's best passage.
    pub group_by: Option<Grouping>,
}

/// The file a hit comes from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HitDocument {
    pub size: i64,
    pub modified: DateTime<Utc>,
    pub file_type: String,
    pub indexed_at: DateTime<Utc>,
}

/// One matching passage.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SearchHit {
    /// The workspace root that holds the file.
    pub workspace: String,
    /// Relative to the workspace root.
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    /// The passage text (stored document content: data, not instructions).
    pub snippet: String,
    /// What the hits are ordered by: the fused score in hybrid mode, else the one ranking's.
    pub score: f64,
    /// Rank in the text ranking, from 1, when the passage is in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_rank: Option<u32>,
    /// Word queries: the BM25 score. Substring queries: how many times the passage holds the
    /// needle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_score: Option<f32>,
    /// Rank in the semantic ranking, from 1, when the passage is in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic_rank: Option<u32>,
    /// Cosine similarity of the query and the passage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    pub document: HitDocument,
}

/// Result of `search_documents`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SearchResults {
    /// The mode that ran.
    pub mode: SearchMode,
    /// Why semantic ranking was not used, when it was asked for or would be the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic_unavailable: Option<String>,
    /// Configured workspace roots that do not exist yet; each is used once it appears.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_roots: Vec<String>,
    /// True while this process runs an index pass: what is not indexed yet is not found.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub indexing: bool,
    pub hits: Vec<SearchHit>,
}

/// A checked request.
#[derive(Debug, Clone)]
struct Plan {
    query: String,
    limit: usize,
    mode: SearchMode,
    /// The root to search when one was named.
    workspace: Option<String>,
    path_prefix: Option<String>,
    file_types: Vec<String>,
    group_by: Grouping,
    /// An index pass runs: the answer says so, and is cached apart from later ones.
    indexing: bool,
}

impl Plan {
    fn filtered(&self) -> bool {
        self.path_prefix.is_some() || !self.file_types.is_empty()
    }

    /// How deep each ranking goes: fusion and grouping need more than the final count.
    fn depth(&self) -> usize {
        let grouped = match self.group_by {
            Grouping::Passage => self.limit,
            Grouping::Document => self.limit * 5,
        };
        match self.mode {
            SearchMode::Hybrid => grouped.max(MIN_FUSION_DEPTH),
            _ => grouped,
        }
    }
}

/// A passage from either ranking, keyed by (document, first line).
#[derive(Debug, Default)]
struct Candidate {
    document_id: i64,
    workspace: String,
    path: String,
    start_line: u32,
    end_line: u32,
    text: String,
    text_rank: Option<u32>,
    text_score: Option<f32>,
    semantic_rank: Option<u32>,
    similarity: Option<f32>,
    score: f64,
}

impl Engine {
    pub async fn search_documents(&self, request: SearchDocuments) -> Result<SearchResults> {
        let unavailable = self.semantic().unavailable();
        let (plan, fell_back) = self.plan(request, unavailable.is_none())?;
        let roots = match &plan.workspace {
            Some(root) => vec![root.clone()],
            None => self.all_roots(),
        };
        let lookup = Lookup {
            operation: "search_documents",
            params: json!({
                "query": plan.query, "limit": plan.limit, "mode": plan.mode,
                "workspace": plan.workspace, "path_prefix": plan.path_prefix,
                "file_types": plan.file_types, "group_by": plan.group_by,
                "model": self.embedder_id(), "indexing": plan.indexing,
            }),
            class: TtlClass::Search,
            scopes: search_scopes(roots, plan.mode),
        };
        let mut results: SearchResults = self.cached(lookup, self.run_search(plan)).await?;
        if fell_back {
            results.semantic_unavailable = unavailable;
        }
        // Not cached: a root may appear while the answer is.
        results.missing_roots = self.missing_roots();
        Ok(results)
    }

    /// Checks the request and picks the mode; true when semantic ranking was wanted (asked
    /// for, or the default) but cannot run.
    fn plan(&self, request: SearchDocuments, semantic_ready: bool) -> Result<(Plan, bool)> {
        let query = request.query.trim().to_owned();
        check_query(&query)?;
        let limit = validate::count("limit", request.limit, DEFAULT_LIMIT, MAX_LIMIT)? as usize;
        let wanted = request.mode.unwrap_or(SearchMode::Hybrid);
        let (mode, fell_back) = match wanted {
            SearchMode::Semantic | SearchMode::Hybrid if !semantic_ready => {
                (SearchMode::Text, true)
            }
            mode => (mode, false),
        };
        // Counted as the index cuts grams: a run of white space is one character.
        if mode == SearchMode::Substring
            && crate::index::fold(&query).chars().count() < MIN_SUBSTRING_CHARS
        {
            return Err(EngineError::invalid(
                "query",
                format!(
                    "substring search needs at least {MIN_SUBSTRING_CHARS} characters \
                     (a run of white space counts as one)"
                ),
            ));
        }
        let workspace = request
            .workspace
            .as_deref()
            .map(|path| self.workspace_root(path))
            .transpose()?;
        let plan = Plan {
            query,
            limit,
            mode,
            workspace,
            path_prefix: request.path_prefix.map(check_prefix).transpose()?,
            file_types: check_file_types(request.file_types.unwrap_or_default())?,
            group_by: request.group_by.unwrap_or_default(),
            indexing: self.documents().activity.is_indexing(),
        };
        Ok((plan, fell_back))
    }

    /// The canonical root that `given` names, by its name or its path.
    pub(super) fn workspace_root(&self, given: &str) -> Result<String> {
        let root = self
            .documents()
            .workspaces
            .root("workspace", given)
            .map_err(path_error)?;
        Ok(root.to_string_lossy().into_owned())
    }

    /// Configured roots that do not exist (yet), as configured.
    pub fn missing_roots(&self) -> Vec<String> {
        self.documents()
            .workspaces
            .missing()
            .iter()
            .map(|root| root.to_string_lossy().into_owned())
            .collect()
    }

    pub(super) fn all_roots(&self) -> Vec<String> {
        self.documents()
            .workspaces
            .roots()
            .iter()
            .map(|root| root.to_string_lossy().into_owned())
            .collect()
    }

    async fn run_search(&self, plan: Plan) -> Result<SearchResults> {
        let started = std::time::Instant::now();
        let allowed = self.allowed_documents(&plan).await?;
        let mut candidates: HashMap<(i64, u32), Candidate> = HashMap::new();
        // The two rankings run at once: the query's embedding takes longest.
        let by_words = async {
            match plan.mode {
                SearchMode::Semantic => Ok(None),
                _ => self.text_ranking(&plan, allowed.clone()).await.map(Some),
            }
        };
        let by_meaning = async {
            if !matches!(plan.mode, SearchMode::Semantic | SearchMode::Hybrid) {
                return Ok(None);
            }
            let hits = self
                .rank_by_meaning(
                    Collection::Passages,
                    &plan.query,
                    plan.depth(),
                    allowed.clone(),
                )
                .await?;
            let passages = self.store().passages(&passage_ids(&hits)).await?;
            Ok::<_, EngineError>(Some((hits, passages)))
        };
        let (by_words, by_meaning) = tokio::try_join!(by_words, by_meaning)?;
        if let Some(hits) = by_words {
            merge_text(&mut candidates, hits);
        }
        if let Some((hits, passages)) = by_meaning {
            merge_semantic(&mut candidates, hits, passages);
        }
        let ranked = rank(candidates, plan.mode, plan.group_by, plan.limit);
        let ranked_in = started.elapsed();
        let documents: Vec<i64> = ranked.iter().map(|c| c.document_id).collect();
        let metadata: HashMap<i64, DocumentMeta> = self
            .store()
            .document_metadata(&documents)
            .await?
            .into_iter()
            .map(|meta| (meta.id, meta))
            .collect();
        tracing::debug!(
            ranked_us = ranked_in.as_micros() as u64,
            elapsed_us = started.elapsed().as_micros() as u64,
            "search ran"
        );
        Ok(SearchResults {
            mode: plan.mode,
            semantic_unavailable: None,
            missing_roots: Vec::new(),
            indexing: plan.indexing,
            // A passage whose document left the store since the index saw it is not shown.
            hits: ranked
                .into_iter()
                .filter_map(|candidate| {
                    let meta = metadata.get(&candidate.document_id)?;
                    Some(to_hit(candidate, meta))
                })
                .collect(),
        })
    }

    /// The documents a path or type filter admits; None when every document may match.
    async fn allowed_documents(&self, plan: &Plan) -> Result<Option<Arc<HashSet<i64>>>> {
        let semantic = matches!(plan.mode, SearchMode::Semantic | SearchMode::Hybrid);
        if !(plan.filtered() || semantic && plan.workspace.is_some()) {
            return Ok(None);
        }
        let workspaces: Vec<String> = plan.workspace.iter().cloned().collect();
        let filter = DocumentFilter {
            workspaces: &workspaces,
            path_prefix: plan.path_prefix.as_deref(),
            file_types: &plan.file_types,
        };
        let ids = self.store().filtered_documents(&filter).await?;
        Ok(Some(Arc::new(ids.into_iter().collect())))
    }

    async fn text_ranking(
        &self,
        plan: &Plan,
        allowed: Option<Arc<HashSet<i64>>>,
    ) -> Result<Vec<TextHit>> {
        let index = self.text_index()?;
        let (query, depth, mode, workspace) = (
            plan.query.clone(),
            plan.depth(),
            plan.mode,
            plan.workspace.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let filter = TextFilter {
                workspace: workspace.as_deref(),
                documents: allowed.as_deref(),
            };
            match mode {
                SearchMode::Substring => index.search_substring(&query, depth, filter),
                _ => index.search_words(&query, depth, filter),
            }
        })
        .await
        .map_err(join_error)?
        .map_err(index_error)
    }
}

/// What a search reads: the workspaces' documents, and their vectors when ranking by meaning.
fn search_scopes(roots: Vec<String>, mode: SearchMode) -> Vec<Scope> {
    let by_meaning = matches!(mode, SearchMode::Semantic | SearchMode::Hybrid);
    let mut scopes: Vec<Scope> = roots.iter().cloned().map(Scope::Workspace).collect();
    if by_meaning {
        scopes.extend(roots.into_iter().map(Scope::PassageVectors));
    }
    scopes
}

impl Candidate {
    /// A passage not yet ranked by either list.
    fn passage(
        document_id: i64,
        workspace: String,
        path: String,
        lines: (u32, u32),
        text: String,
    ) -> Self {
        Self {
            document_id,
            workspace,
            path,
            start_line: lines.0,
            end_line: lines.1,
            text,
            ..Self::default()
        }
    }
}

fn merge_text(candidates: &mut HashMap<(i64, u32), Candidate>, hits: Vec<TextHit>) {
    for (rank, hit) in hits.into_iter().enumerate() {
        let document_id = hit.doc_id as i64;
        let candidate = candidates
            .entry((document_id, hit.start_line))
            .or_insert_with(|| {
                let lines = (hit.start_line, hit.end_line);
                Candidate::passage(document_id, hit.workspace, hit.path, lines, hit.text)
            });
        candidate.text_rank = Some(rank as u32 + 1);
        candidate.text_score = Some(hit.score);
    }
}

fn merge_semantic(
    candidates: &mut HashMap<(i64, u32), Candidate>,
    hits: Vec<VectorHit>,
    passages: Vec<PassageRecord>,
) {
    let mut passages: HashMap<i64, PassageRecord> = passages
        .into_iter()
        .map(|passage| (passage.id, passage))
        .collect();
    for (rank, hit) in hits.into_iter().enumerate() {
        // Gone since the vectors were read: a later search will not see it either.
        let Some(passage) = passages.remove(&hit.passage_id) else {
            continue;
        };
        let candidate = candidates
            .entry((passage.document_id, passage.start_line))
            .or_insert_with(|| {
                let lines = (passage.start_line, passage.end_line);
                let (workspace, path) = (passage.workspace, passage.path);
                Candidate::passage(passage.document_id, workspace, path, lines, passage.text)
            });
        candidate.semantic_rank = Some(rank as u32 + 1);
        candidate.similarity = Some(hit.similarity);
    }
}

/// Scores the candidates for the mode, best first, one per document when grouped.
fn rank(
    candidates: HashMap<(i64, u32), Candidate>,
    mode: SearchMode,
    group_by: Grouping,
    limit: usize,
) -> Vec<Candidate> {
    let mut ranked: Vec<Candidate> = candidates
        .into_values()
        .map(|mut candidate| {
            candidate.score = match mode {
                SearchMode::Hybrid => {
                    reciprocal(candidate.text_rank) + reciprocal(candidate.semantic_rank)
                }
                SearchMode::Semantic => f64::from(candidate.similarity.unwrap_or_default()),
                _ => f64::from(candidate.text_score.unwrap_or_default()),
            };
            candidate
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.path.cmp(&b.path))
            .then(a.start_line.cmp(&b.start_line))
    });
    if group_by == Grouping::Document {
        let mut seen = HashSet::new();
        ranked.retain(|candidate| seen.insert(candidate.document_id));
    }
    ranked.truncate(limit);
    ranked
}

fn reciprocal(rank: Option<u32>) -> f64 {
    rank.map_or(0.0, |rank| 1.0 / (RRF_K + f64::from(rank)))
}

fn passage_ids(hits: &[VectorHit]) -> Vec<i64> {
    hits.iter().map(|hit| hit.passage_id).collect()
}

fn to_hit(candidate: Candidate, meta: &DocumentMeta) -> SearchHit {
    SearchHit {
        workspace: candidate.workspace,
        path: candidate.path,
        start_line: candidate.start_line,
        end_line: candidate.end_line,
        snippet: candidate.text,
        score: candidate.score,
        text_rank: candidate.text_rank,
        text_score: candidate.text_score,
        semantic_rank: candidate.semantic_rank,
        similarity: candidate.similarity,
        document: HitDocument {
            size: meta.size,
            modified: crate::model::from_millis(meta.modified_ms),
            file_type: meta.file_type.clone(),
            indexed_at: crate::model::from_millis(meta.indexed_at),
        },
    }
}

pub(super) fn check_query(query: &str) -> Result<()> {
    if query.is_empty() {
        return Err(EngineError::invalid("query", "must not be empty"));
    }
    if query.len() > MAX_QUERY_BYTES {
        return Err(EngineError::invalid(
            "query",
            format!("is {} bytes; the limit is {MAX_QUERY_BYTES}", query.len()),
        ));
    }
    Ok(())
}

/// A relative path prefix: no leading `/`, no `..` part, no control characters.
fn check_prefix(prefix: String) -> Result<String> {
    validate::path("path_prefix", &prefix)?;
    if prefix.starts_with('/') || prefix.split('/').any(|part| part == "..") {
        return Err(EngineError::invalid(
            "path_prefix",
            "must be relative to the workspace root and must not contain '..'",
        ));
    }
    Ok(prefix)
}

/// Extensions, lowercased and without a leading dot, sorted (they are part of a cache key).
fn check_file_types(types: Vec<String>) -> Result<Vec<String>> {
    if types.len() > MAX_FILE_TYPES {
        return Err(EngineError::invalid(
            "file_types",
            format!("has {} entries; the limit is {MAX_FILE_TYPES}", types.len()),
        ));
    }
    let mut checked = Vec::with_capacity(types.len());
    for file_type in types {
        let file_type = file_type.trim().trim_start_matches('.').to_lowercase();
        validate::key("file_types", &file_type)?;
        if file_type.contains('/') {
            return Err(EngineError::invalid(
                "file_types",
                format!("'{file_type}' is not an extension"),
            ));
        }
        checked.push(file_type);
    }
    checked.sort();
    checked.dedup();
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(path: &str, text_rank: Option<u32>, semantic_rank: Option<u32>) -> Candidate {
        Candidate {
            document_id: path.len() as i64,
            path: path.into(),
            text_rank,
            text_score: text_rank.map(|rank| 10.0 / rank as f32),
            semantic_rank,
            similarity: semantic_rank.map(|rank| 1.0 / rank as f32),
            ..Candidate::default()
        }
    }

    fn ranked_paths(candidates: Vec<Candidate>, mode: SearchMode) -> Vec<String> {
        let map = candidates
            .into_iter()
            .map(|c| ((c.document_id, c.start_line), c))
            .collect();
        rank(map, mode, Grouping::Passage, 10)
            .into_iter()
            .map(|c| c.path)
            .collect()
    }

    #[test]
    fn fusion_prefers_passages_both_rankings_agree_on() {
        let candidates = vec![
            candidate("a", Some(1), None),
            candidate("bb", Some(3), Some(2)),
            candidate("ccc", None, Some(1)),
        ];
        assert_eq!(
            ranked_paths(candidates, SearchMode::Hybrid),
            ["bb", "a", "ccc"]
        );
    }

    #[test]
    fn single_modes_order_by_their_own_scores() {
        let candidates = || {
            vec![
                candidate("a", Some(2), Some(1)),
                candidate("bb", Some(1), Some(2)),
            ]
        };
        assert_eq!(ranked_paths(candidates(), SearchMode::Text), ["bb", "a"]);
        assert_eq!(
            ranked_paths(candidates(), SearchMode::Semantic),
            ["a", "bb"]
        );
    }

    #[test]
    fn prefixes_and_types_are_checked() {
        assert!(check_prefix("Lib/json/".into()).is_ok());
        assert!(check_prefix("/etc".into()).is_err());
        assert!(check_prefix("Lib/../..".into()).is_err());
        assert_eq!(
            check_file_types(vec![".PY".into(), "md".into(), "py".into()]).unwrap(),
            ["md", "py"]
        );
        assert!(check_file_types(vec!["a/b".into()]).is_err());
    }
}
