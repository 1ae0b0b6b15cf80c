//! SQL for indexed documents: metadata, passages as staged, and the full-text index's queue.

use std::collections::HashMap;

use sqlx::{SqliteConnection, SqlitePool};

use super::error::Result;

/// What the store knows of one indexed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRecord {
    pub id: i64,
    pub path: String,
    pub size: i64,
    pub modified_ms: i64,
    /// SHA-256 of the content its passages were cut from (None in rows of older versions).
    pub checksum: Option<String>,
}

/// A file read and cut into passages, to be recorded.
#[derive(Debug)]
pub struct StagedDocument<'a> {
    pub workspace: &'a str,
    pub path: &'a str,
    pub size: i64,
    pub modified_ms: i64,
    pub file_type: String,
    pub checksum: &'a str,
    pub passages: Vec<NewPassage<'a>>,
}

/// A passage of a staged document.
#[derive(Debug)]
pub struct NewPassage<'a> {
    pub start_line: u32,
    pub end_line: u32,
    pub text: &'a str,
}

/// A document as the full-text index takes it.
#[derive(Debug, Clone)]
pub struct IndexedDocument {
    pub id: i64,
    pub workspace: String,
    pub path: String,
    /// (passage id, start line, end line, text)
    pub passages: Vec<(i64, u32, u32, String)>,
}

pub async fn in_workspace(pool: &SqlitePool, workspace: &str) -> Result<Vec<DocumentRecord>> {
    let rows: Vec<(i64, String, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT id, path, size, modified_ms, checksum FROM documents WHERE workspace = ? ORDER BY path",
    )
    .bind(workspace)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, path, size, modified_ms, checksum)| DocumentRecord {
            id,
            path,
            size,
            modified_ms,
            checksum,
        })
        .collect())
}

/// What staging recorded for one document: its id (stable across updates), its place in the
/// full-text index's queue, and its new passages' ids in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedIds {
    pub document: i64,
    pub seq: i64,
    pub passages: Vec<i64>,
}

/// Records documents with their passages (not yet embedded) and queues them for the
/// full-text index, all in one transaction; what it recorded, in the order given.
pub async fn stage(
    pool: &SqlitePool,
    documents: &[StagedDocument<'_>],
    now: i64,
) -> Result<Vec<StagedIds>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut ids = Vec::with_capacity(documents.len());
    for document in documents {
        ids.push(upsert(&mut tx, document, now).await?);
    }
    let mut passages = replace_passages(&mut tx, &ids, documents).await?;
    let seqs = enqueue(&mut tx, &ids).await?;
    tx.commit().await?;
    Ok(ids
        .into_iter()
        .zip(seqs)
        .map(|(document, seq)| StagedIds {
            document,
            seq,
            passages: passages.remove(&document).unwrap_or_default(),
        })
        .collect())
}

/// Rows bound per multi-row statement: each statement is a round trip to sqlx's connection
/// thread, so thousands of passages go in a few statements (6 parameters a row).
const ROWS_PER_STATEMENT: usize = 500;

/// Deletes the documents' old passages and inserts the new ones (new ids: AUTOINCREMENT);
/// the new ids by document, in passage order.
async fn replace_passages(
    tx: &mut SqliteConnection,
    ids: &[i64],
    documents: &[StagedDocument<'_>],
) -> Result<HashMap<i64, Vec<i64>>> {
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut query =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("DELETE FROM passages WHERE document_id IN");
        super::push_list(&mut query, chunk);
        query.build().execute(&mut *tx).await?;
    }
    let rows: Vec<(i64, usize, &NewPassage<'_>)> = ids
        .iter()
        .zip(documents)
        .flat_map(|(id, document)| {
            document
                .passages
                .iter()
                .enumerate()
                .map(move |(ordinal, passage)| (*id, ordinal, passage))
        })
        .collect();
    let mut inserted: Vec<(i64, i64, i64)> = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO passages (document_id, ordinal, start_line, end_line, text) ",
        );
        query.push_values(chunk, |mut row, (id, ordinal, passage)| {
            row.push_bind(*id)
                .push_bind(*ordinal as i64)
                .push_bind(passage.start_line)
                .push_bind(passage.end_line)
                .push_bind(passage.text);
        });
        // RETURNING gives rows in no set order: each says where it belongs.
        query.push(" RETURNING document_id, ordinal, id");
        inserted.extend(
            query
                .build_query_as::<(i64, i64, i64)>()
                .fetch_all(&mut *tx)
                .await?,
        );
    }
    inserted.sort_unstable();
    let mut by_document: HashMap<i64, Vec<i64>> = HashMap::new();
    for (document, _, id) in inserted {
        by_document.entry(document).or_default().push(id);
    }
    Ok(by_document)
}

async fn upsert(tx: &mut SqliteConnection, document: &StagedDocument<'_>, now: i64) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO documents \
           (workspace, path, size, modified_ms, file_type, checksum, chunks, indexed_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (workspace, path) DO UPDATE SET size = excluded.size, \
           modified_ms = excluded.modified_ms, file_type = excluded.file_type, \
           checksum = excluded.checksum, chunks = excluded.chunks, indexed_at = excluded.indexed_at \
         RETURNING id",
    )
    .bind(document.workspace)
    .bind(document.path)
    .bind(document.size)
    .bind(document.modified_ms)
    .bind(&document.file_type)
    .bind(document.checksum)
    .bind(document.passages.len() as i64)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?)
}

/// Queues documents for the full-text index (to take, or to drop when deleted), each with
/// a new `seq`, so a drain in progress knows it was queued again; the seqs, in order.
async fn enqueue(tx: &mut SqliteConnection, ids: &[i64]) -> Result<Vec<i64>> {
    // The write lock is held: MAX(seq) cannot move under us.
    let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM index_outbox")
        .fetch_one(&mut *tx)
        .await?;
    for (chunk_index, chunk) in ids.chunks(ROWS_PER_STATEMENT).enumerate() {
        let first = last + 1 + (chunk_index * ROWS_PER_STATEMENT) as i64;
        let mut query =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO index_outbox (document_id, seq) ");
        query.push_values(chunk.iter().enumerate(), |mut row, (offset, id)| {
            row.push_bind(*id).push_bind(first + offset as i64);
        });
        query.push(" ON CONFLICT (document_id) DO UPDATE SET seq = excluded.seq");
        query.build().execute(&mut *tx).await?;
    }
    Ok((1..=ids.len() as i64).map(|offset| last + offset).collect())
}

/// Queues documents for the full-text index outside a staging pass (reconciliation).
pub async fn requeue(pool: &SqlitePool, ids: &[i64]) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    enqueue(&mut tx, ids).await?;
    tx.commit().await?;
    Ok(())
}

/// The oldest queued documents: (document id, seq).
pub async fn outbox(pool: &SqlitePool, limit: u32) -> Result<Vec<(i64, i64)>> {
    Ok(
        sqlx::query_as("SELECT document_id, seq FROM index_outbox ORDER BY seq LIMIT ?")
            .bind(limit)
            .fetch_all(pool)
            .await?,
    )
}

/// Takes drained rows off the queue, unless they were queued again meanwhile.
pub async fn outbox_done(pool: &SqlitePool, drained: &[(i64, i64)]) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for (id, seq) in drained {
        sqlx::query("DELETE FROM index_outbox WHERE document_id = ? AND seq = ?")
            .bind(id)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// How many of `ids` are still queued.
pub async fn still_queued(pool: &SqlitePool, ids: &[i64]) -> Result<i64> {
    let mut queued = 0;
    for chunk in ids.chunks(500) {
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT COUNT(*) FROM index_outbox WHERE document_id IN",
        );
        super::push_list(&mut query, chunk);
        let count: i64 = query.build_query_scalar().fetch_one(pool).await?;
        queued += count;
    }
    Ok(queued)
}

/// Documents with their passages, for the full-text index; deleted ids are left out.
pub async fn for_index(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<IndexedDocument>> {
    let mut tx = pool.begin().await?;
    let mut documents = Vec::with_capacity(ids.len());
    for id in ids {
        let found: Option<(String, String)> =
            sqlx::query_as("SELECT workspace, path FROM documents WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((workspace, path)) = found else {
            continue;
        };
        let passages = sqlx::query_as(
            "SELECT id, start_line, end_line, text FROM passages WHERE document_id = ? \
             ORDER BY ordinal",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        documents.push(IndexedDocument {
            id: *id,
            workspace,
            path,
            passages,
        });
    }
    tx.commit().await?;
    Ok(documents)
}

/// Documents with passages that are not queued, with their stamps (highest passage id,
/// passage count): what the full-text index should hold.
pub async fn settled_stamps(pool: &SqlitePool) -> Result<Vec<(i64, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT p.document_id, MAX(p.id), COUNT(*) FROM passages p \
         WHERE p.document_id NOT IN (SELECT document_id FROM index_outbox) \
         GROUP BY p.document_id",
    )
    .fetch_all(pool)
    .await?)
}

/// Records a new size and modified time for a file whose content did not change.
pub async fn touch(pool: &SqlitePool, id: i64, size: i64, modified_ms: i64) -> Result<()> {
    sqlx::query("UPDATE documents SET size = ?, modified_ms = ? WHERE id = ?")
        .bind(size)
        .bind(modified_ms)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes documents (their passages go with them) and queues their removal from the
/// full-text index.
pub async fn delete(pool: &SqlitePool, ids: &[i64]) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for id in ids {
        sqlx::query("DELETE FROM documents WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    enqueue(&mut tx, ids).await?;
    tx.commit().await?;
    Ok(())
}

/// Documents, their passages, and documents queued for the full-text index, in one
/// workspace or in all (queued removals count in all only: their workspace is gone).
pub async fn counts(pool: &SqlitePool, workspace: Option<&str>) -> Result<(i64, i64, i64)> {
    let counts = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM documents WHERE ?1 IS NULL OR workspace = ?1), \
           (SELECT COALESCE(SUM(chunks), 0) FROM documents WHERE ?1 IS NULL OR workspace = ?1), \
           (SELECT COUNT(*) FROM index_outbox o LEFT JOIN documents d ON d.id = o.document_id \
             WHERE ?1 IS NULL OR d.workspace = ?1)",
    )
    .bind(workspace)
    .fetch_one(pool)
    .await?;
    Ok(counts)
}

/// Metadata shown with search hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentMeta {
    pub id: i64,
    pub size: i64,
    pub modified_ms: i64,
    pub file_type: String,
    pub indexed_at: i64,
}

pub async fn metadata(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<DocumentMeta>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "SELECT id, size, modified_ms, file_type, indexed_at FROM documents WHERE id IN",
    );
    super::push_list(&mut query, ids);
    let rows: Vec<MetaRow> = query.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(meta_from_row).collect())
}

type MetaRow = (i64, i64, i64, String, i64);

fn meta_from_row((id, size, modified_ms, file_type, indexed_at): MetaRow) -> DocumentMeta {
    DocumentMeta {
        id,
        size,
        modified_ms,
        file_type,
        indexed_at,
    }
}

/// One page of indexed documents by id after `after`: (id, workspace, path, size).
pub async fn listing(
    pool: &SqlitePool,
    after: i64,
    limit: u32,
) -> Result<Vec<(i64, String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT id, workspace, path, size FROM documents WHERE id > ? ORDER BY id LIMIT ?",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The indexed document at `path` in `workspace`, if any.
pub async fn by_path(
    pool: &SqlitePool,
    workspace: &str,
    path: &str,
) -> Result<Option<DocumentMeta>> {
    let row: Option<MetaRow> = sqlx::query_as(
        "SELECT id, size, modified_ms, file_type, indexed_at FROM documents \
         WHERE workspace = ? AND path = ?",
    )
    .bind(workspace)
    .bind(path)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(meta_from_row))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document<'a>(path: &'a str, texts: &'a [&'a str]) -> StagedDocument<'a> {
        StagedDocument {
            workspace: "/ws",
            path,
            size: 1,
            modified_ms: 1,
            file_type: "py".into(),
            checksum: "c",
            passages: texts
                .iter()
                .enumerate()
                .map(|(line, text)| NewPassage {
                    start_line: line as u32 + 1,
                    end_line: line as u32 + 1,
                    text,
                })
                .collect(),
        }
    }

    /// The ids staging reports are the rows it wrote: each document's passages in order, and
    /// its seq in the queue.
    #[tokio::test]
    async fn staging_reports_the_ids_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).await.unwrap();
        let first = ["a1", "a2", "a3"];
        let second = ["b1"];
        let documents = [document("a.py", &first), document("b.py", &second)];
        let staged = stage(&store.pool, &documents, 5).await.unwrap();
        let again = [document("a.py", &second)];
        let restaged = stage(&store.pool, &again, 6).await.unwrap();

        for (ids, path) in staged[1..].iter().chain(&restaged).zip(["b.py", "a.py"]) {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT p.id, d.path FROM passages p JOIN documents d ON d.id = p.document_id \
                 WHERE p.document_id = ? ORDER BY p.ordinal",
            )
            .bind(ids.document)
            .fetch_all(&store.pool)
            .await
            .unwrap();
            assert_eq!(
                rows.iter().map(|row| row.0).collect::<Vec<_>>(),
                ids.passages
            );
            assert!(rows.iter().all(|row| row.1 == path));
        }
        assert_eq!(staged[0].passages.len(), 3);
        assert!(staged[0].passages.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(restaged[0].document, staged[0].document);
        let queued = outbox(&store.pool, 10).await.unwrap();
        assert_eq!(
            queued,
            [
                (staged[1].document, staged[1].seq),
                (restaged[0].document, restaged[0].seq),
            ]
        );
    }
}
