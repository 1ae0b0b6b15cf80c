//! SQL for indexed documents' metadata.

use sqlx::SqlitePool;

use super::error::Result;

/// What the store knows of one indexed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRecord {
    pub id: i64,
    pub path: String,
    pub size: i64,
    pub modified_ms: i64,
    /// None while its passages are being (re)written.
    pub checksum: Option<String>,
}

/// A file about to be (re)indexed.
#[derive(Debug)]
pub struct PendingDocument<'a> {
    pub workspace: &'a str,
    pub path: &'a str,
    pub size: i64,
    pub modified_ms: i64,
    pub file_type: &'a str,
    pub now: i64,
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

/// Records a document as pending (checksum cleared) and returns its id, stable across updates.
pub async fn mark_pending(pool: &SqlitePool, document: &PendingDocument<'_>) -> Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO documents (workspace, path, size, modified_ms, file_type, checksum, indexed_at) \
         VALUES (?, ?, ?, ?, ?, NULL, ?) \
         ON CONFLICT (workspace, path) DO UPDATE SET size = excluded.size, \
           modified_ms = excluded.modified_ms, file_type = excluded.file_type, checksum = NULL \
         RETURNING id",
    )
    .bind(document.workspace)
    .bind(document.path)
    .bind(document.size)
    .bind(document.modified_ms)
    .bind(document.file_type)
    .bind(document.now)
    .fetch_one(pool)
    .await?;
    Ok(id)
}

/// Marks documents whose passages are committed to the index: (id, checksum, chunks).
pub async fn mark_indexed(
    pool: &SqlitePool,
    indexed: &[(i64, String, i64)],
    now: i64,
) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for (id, checksum, chunks) in indexed {
        sqlx::query("UPDATE documents SET checksum = ?, chunks = ?, indexed_at = ? WHERE id = ?")
            .bind(checksum)
            .bind(chunks)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
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

pub async fn delete(pool: &SqlitePool, ids: &[i64]) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for id in ids {
        sqlx::query("DELETE FROM documents WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Documents and passages, in one workspace or in all.
pub async fn counts(pool: &SqlitePool, workspace: Option<&str>) -> Result<(i64, i64)> {
    let counts = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents WHERE ?1 IS NULL OR workspace = ?1",
    )
    .bind(workspace)
    .fetch_one(pool)
    .await?;
    Ok(counts)
}
