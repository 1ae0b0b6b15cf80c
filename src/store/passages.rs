//! SQL for passages and their vectors.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::error::Result;

/// A passage waiting for its vector.
#[derive(Debug, Clone)]
pub struct Unembedded {
    pub id: i64,
    pub path: String,
    pub text: String,
}

/// A passage with where it comes from.
#[derive(Debug, Clone)]
pub struct PassageRecord {
    pub id: i64,
    pub document_id: i64,
    pub workspace: String,
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub text: String,
}

/// Vectors written and removed since a version.
#[derive(Debug, Default)]
pub struct VectorChanges {
    /// The version these changes bring a follower to.
    pub version: i64,
    /// Every vector, not only changed ones (nothing in `removed`): the follower started
    /// from 0, or the removal logs were pruned past it. The follower starts again from these.
    pub full: bool,
    /// (passage id, document id, vector) of the current model.
    pub added: Vec<(i64, i64, Vec<f32>)>,
    pub removed: Vec<i64>,
    /// (message rowid, conversation rowid, vector) of the current model.
    pub messages_added: Vec<(i64, i64, Vec<f32>)>,
    pub messages_removed: Vec<i64>,
}

/// Which documents a search may return.
#[derive(Debug, Default, Clone)]
pub struct DocumentFilter<'a> {
    pub workspaces: &'a [String],
    pub path_prefix: Option<&'a str>,
    pub file_types: &'a [String],
}

/// Claims up to `limit` passages without a vector for `lease_ms`, so that other processes
/// leave them alone meanwhile.
pub async fn claim_unembedded(
    pool: &SqlitePool,
    limit: u32,
    now: i64,
    lease_ms: i64,
) -> Result<Vec<Unembedded>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT p.id, d.path, p.text FROM passages p JOIN documents d ON d.id = p.document_id \
         WHERE p.vector IS NULL AND p.claimed_until < ? ORDER BY p.id LIMIT ?",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    for (id, ..) in &rows {
        sqlx::query("UPDATE passages SET claimed_until = ? WHERE id = ?")
            .bind(now + lease_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|(id, path, text)| Unembedded { id, path, text })
        .collect())
}

/// Stores vectors made by `embedder`; passages deleted meanwhile are skipped. Returns the
/// workspaces whose passages changed.
pub async fn store_vectors(
    pool: &SqlitePool,
    embedder: &str,
    vectors: &[(i64, Vec<f32>)],
) -> Result<Vec<String>> {
    store_vectors_with(
        pool,
        "UPDATE passages SET vector = ?, embedder = ?, claimed_until = 0 WHERE id = ? \
         RETURNING (SELECT workspace FROM documents WHERE documents.id = passages.document_id)",
        embedder,
        vectors,
    )
    .await
}

/// Runs `update` (vector, embedder, id; returning the row's cache owner) for each vector in
/// one transaction; the distinct owners of the rows that still existed.
pub(super) async fn store_vectors_with(
    pool: &SqlitePool,
    update: &'static str,
    embedder: &str,
    vectors: &[(i64, Vec<f32>)],
) -> Result<Vec<String>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut owners = Vec::new();
    for (id, vector) in vectors {
        let owner: Option<String> = sqlx::query_scalar(update)
            .bind(encode(vector))
            .bind(embedder)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(owner) = owner
            && !owners.contains(&owner)
        {
            owners.push(owner);
        }
    }
    tx.commit().await?;
    Ok(owners)
}

/// Clears vectors (of passages and messages) made by any other model than `embedder`, so
/// that they are embedded again; how many there were.
pub async fn clear_other_models(pool: &SqlitePool, embedder: &str) -> Result<u64> {
    let messages = super::recall::clear_other_models(pool, embedder).await?;
    let done = sqlx::query(
        "UPDATE passages SET vector = NULL, embedder = NULL, claimed_until = 0 \
         WHERE embedder IS NOT NULL AND embedder != ?",
    )
    .bind(embedder)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() + messages)
}

/// What changed after `since`, read in one snapshot so that nothing falls between.
pub async fn vector_changes(
    pool: &SqlitePool,
    embedder: &str,
    since: i64,
) -> Result<VectorChanges> {
    let mut tx = pool.begin().await?;
    let version: i64 = sqlx::query_scalar("SELECT version FROM vector_state WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    if version == since {
        return Ok(VectorChanges {
            version,
            ..VectorChanges::default()
        });
    }
    let floor = super::maintenance::log_floor(&mut tx, "vectors").await?;
    let since = if since < floor { 0 } else { since };
    let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT id, document_id, vector FROM passages \
         WHERE version > ? AND vector IS NOT NULL AND embedder = ?",
    )
    .bind(since)
    .bind(embedder)
    .fetch_all(&mut *tx)
    .await?;
    let removed = if since == 0 {
        Vec::new()
    } else {
        sqlx::query_scalar("SELECT passage_id FROM vector_removals WHERE version > ?")
            .bind(since)
            .fetch_all(&mut *tx)
            .await?
    };
    let (messages_added, messages_removed) =
        super::recall::vector_changes(&mut tx, embedder, since).await?;
    tx.commit().await?;
    Ok(VectorChanges {
        version,
        full: since == 0,
        messages_added,
        messages_removed,
        added: rows
            .into_iter()
            .map(|(id, document_id, bytes)| (id, document_id, decode(&bytes)))
            .collect(),
        removed,
    })
}

/// Passages by id with their documents, in no particular order.
pub async fn by_ids(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<PassageRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<Sqlite>::new(
        "SELECT p.id, p.document_id, d.workspace, d.path, p.start_line, p.end_line, p.text \
         FROM passages p JOIN documents d ON d.id = p.document_id WHERE p.id IN",
    );
    super::push_list(&mut query, ids);
    let rows: Vec<(i64, i64, String, String, u32, u32, String)> =
        query.build_query_as().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, document_id, workspace, path, start_line, end_line, text)| PassageRecord {
                id,
                document_id,
                workspace,
                path,
                start_line,
                end_line,
                text,
            },
        )
        .collect())
}

/// Ids of the documents a filter admits.
pub async fn filtered_documents(
    pool: &SqlitePool,
    filter: &DocumentFilter<'_>,
) -> Result<Vec<i64>> {
    let mut query = QueryBuilder::<Sqlite>::new("SELECT id FROM documents WHERE 1 = 1");
    if !filter.workspaces.is_empty() {
        query.push(" AND workspace IN");
        super::push_list(&mut query, filter.workspaces);
    }
    if let Some(prefix) = filter.path_prefix {
        // substr rather than LIKE: a prefix holding % or _ means itself.
        query.push(" AND substr(path, 1, length(");
        query.push_bind(prefix);
        query.push(")) = ");
        query.push_bind(prefix);
    }
    if !filter.file_types.is_empty() {
        query.push(" AND file_type IN");
        super::push_list(&mut query, filter.file_types);
    }
    Ok(query.build_query_scalar().fetch_all(pool).await?)
}

/// Passages still waiting for a vector, in one workspace or in all.
pub async fn waiting(pool: &SqlitePool, workspace: Option<&str>) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM passages p JOIN documents d ON d.id = p.document_id \
         WHERE p.vector IS NULL AND (?1 IS NULL OR d.workspace = ?1)",
    )
    .bind(workspace)
    .fetch_one(pool)
    .await?)
}

pub(super) fn encode(vector: &[f32]) -> Vec<u8> {
    vector
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

pub(super) fn decode(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|quad| f32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]]))
        .collect()
}
