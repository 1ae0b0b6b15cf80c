//! SQL for backups: a consistent copy of the live database, and checks of a database file.

use std::path::Path;

use sqlx::{
    ConnectOptions, Connection, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteConnection},
};

use super::error::Result;

/// What a database file holds, read from the file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// `PRAGMA integrity_check`'s answer: `ok`, or the first problems it found.
    pub integrity: String,
    pub schema_version: i64,
    pub conversations: i64,
    pub messages: i64,
    pub documents: i64,
}

impl FileReport {
    pub fn is_ok(&self) -> bool {
        self.integrity == "ok"
    }
}

/// Writes a consistent snapshot of the database to `target` (which must not exist):
/// `VACUUM INTO` reads inside one transaction, so writers in other processes go on and the
/// copy holds exactly what was committed when it began.
pub async fn vacuum_into(pool: &SqlitePool, target: &Path) -> Result<()> {
    sqlx::query("VACUUM INTO ?")
        .bind(target.to_string_lossy().into_owned())
        .execute(pool)
        .await?;
    Ok(())
}

/// A connection of its own to the file at `path`, read-only, never creating it.
pub(super) async fn open_read_only(path: &Path) -> Result<SqliteConnection> {
    let connection = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .connect()
        .await?;
    Ok(connection)
}

/// Opens the database file at `path` read-only (never creating it) and checks it.
pub async fn inspect_file(path: &Path) -> Result<FileReport> {
    let mut connection = open_read_only(path).await?;
    let report = inspect(&mut connection).await;
    connection.close().await?;
    report
}

/// Checks the live database (`PRAGMA integrity_check` over the whole file).
pub async fn inspect_live(pool: &SqlitePool) -> Result<FileReport> {
    let mut connection = pool.acquire().await?;
    inspect(&mut connection).await
}

async fn inspect(connection: &mut SqliteConnection) -> Result<FileReport> {
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check(20)")
        .fetch_all(&mut *connection)
        .await?;
    let schema_version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut *connection)
            .await?;
    let (conversations, messages, documents): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM conversations), (SELECT COUNT(*) FROM messages), \
                (SELECT COUNT(*) FROM documents)",
    )
    .fetch_one(&mut *connection)
    .await?;
    Ok(FileReport {
        integrity: problems.join("; "),
        schema_version: schema_version.unwrap_or(0),
        conversations,
        messages,
        documents,
    })
}
