//! Opening the database: first-time setup under a file lock, pragmas, version checks, migrations.
//!
//! Invariant: an existing database file is opened as it is. Nothing here creates a new file
//! over it, resets it or deletes it, whatever fails.

use std::{
    fs::File,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use sqlx::{
    ConnectOptions, Connection, SqlitePool,
    migrate::Migrator,
    sqlite::{
        SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqliteJournalMode,
        SqlitePoolOptions, SqliteSynchronous,
    },
};

use super::{
    error::{Result, StoreError},
    read_only::ReadOnlyConnections,
};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "context-store.db";
/// Taken exclusively while a process creates or migrates the database.
const SETUP_LOCK_FILE: &str = "setup.lock";
/// How long one statement waits for another process's write lock before SQLITE_BUSY.
pub(super) const BUSY_TIMEOUT_MS: u64 = 2000;
const BUSY_TIMEOUT: Duration = Duration::from_millis(BUSY_TIMEOUT_MS);
/// The design's pool size; SQLite serialises writers anyway, readers run side by side in WAL.
const MAX_CONNECTIONS: u32 = 5;
/// 3.51.3 fixes the WAL-reset bug that corrupts databases written by several processes.
const MIN_SQLITE_VERSION: (u32, u32, u32) = (3, 51, 3);

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The pool, and what was wrong with the file when it is damaged.
pub struct Opened {
    pub pool: SqlitePool,
    pub damage: Option<String>,
}

/// Opens (creating on first use) the database in `data_dir` and brings its schema up to date.
/// A damaged file is opened read-only, without migrations, so that what can be read is served.
pub async fn open_pool(data_dir: &Path) -> Result<Opened> {
    create_data_dir(data_dir)?;
    let _setup = SetupLock::acquire(data_dir).await?;
    let path = data_dir.join(DATABASE_FILE);
    match open_writable(&path).await {
        Ok(pool) => Ok(Opened { pool, damage: None }),
        Err(error) => match error.into_damage() {
            Ok(StoreError::Corrupt(cause)) => Ok(Opened {
                pool: read_only(&path),
                damage: Some(cause.to_string()),
            }),
            Ok(other) | Err(other) => Err(other),
        },
    }
}

async fn open_writable(path: &Path) -> Result<SqlitePool> {
    let pool = connect(path).await?;
    if let Err(error) = prepare(&pool).await {
        pool.close().await;
        return Err(error);
    }
    Ok(pool)
}

/// Connections made on first use, read-only: every query on an unreadable file then fails
/// with SQLite's own account of the damage, and nothing can write to it.
fn read_only(path: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT);
    SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_lazy_with(options)
}

async fn prepare(pool: &SqlitePool) -> Result<()> {
    check_sqlite_version(pool).await?;
    check_schema_not_newer(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(())
}

fn create_data_dir(data_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
        path: data_dir.to_owned(),
        source,
    })
}

async fn connect(path: &Path) -> Result<SqlitePool> {
    // Created only when absent: a file that exists but fails to open is reported, never replaced.
    let create = !path.exists();
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    if create {
        create_file(options.clone()).await?;
    }
    let read_only = ReadOnlyConnections::default();
    let noted = read_only.clone();
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .min_connections(1)
        // A ping before every acquire costs a round trip to the connection thread per
        // query; a broken SQLite connection shows itself on first use anyway.
        .test_before_acquire(false)
        .after_connect(move |connection, _| {
            let read_only = noted.clone();
            Box::pin(async move { read_only.note_new(connection).await })
        })
        .before_acquire(move |connection, _| {
            let read_only = read_only.clone();
            Box::pin(async move {
                Ok(read_only.keeps(connection).await? && still_usable(connection).await?)
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// False for a connection that would refuse every `BEGIN`: after SQLITE_FULL or an I/O
/// error SQLite may roll a transaction back on its own, and then sqlx's own ROLLBACK fails
/// and leaves its transaction count at 1. Checked only after a transaction was dropped.
async fn still_usable(connection: &mut SqliteConnection) -> sqlx::Result<bool> {
    if !connection.is_in_transaction() {
        return Ok(true);
    }
    // The dropped transaction's ROLLBACK may still be queued: a round trip waits for it.
    connection.ping().await?;
    let usable = !connection.is_in_transaction();
    if !usable {
        tracing::debug!("dropping a connection stuck in a transaction SQLite already ended");
    }
    Ok(usable)
}

/// Creates the file with incremental auto-vacuum. Done once here, not as a connect option:
/// setting it is a write on every new connection, and those would all fail on a full disk.
async fn create_file(options: SqliteConnectOptions) -> Result<()> {
    let mut connection = options
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        .connect()
        .await?;
    // On an empty file, VACUUM writes the header that fixes the auto-vacuum mode.
    sqlx::query("VACUUM").execute(&mut connection).await?;
    connection.close().await?;
    Ok(())
}

async fn check_sqlite_version(pool: &SqlitePool) -> Result<()> {
    let found: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(pool)
        .await?;
    if parse_version(&found) >= Some(MIN_SQLITE_VERSION) {
        return Ok(());
    }
    let (major, minor, patch) = MIN_SQLITE_VERSION;
    Err(StoreError::SqliteTooOld {
        found,
        required: format!("{major}.{minor}.{patch}"),
    })
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('.').map(u32::from_str);
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

/// Refuses a database that a newer binary migrated, before sqlx would fail less clearly.
async fn check_schema_not_newer(pool: &SqlitePool) -> Result<()> {
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    if !has_table {
        return Ok(());
    }
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await?;
    let known = latest_known_version();
    match found {
        Some(found) if found > known => Err(StoreError::SchemaTooNew { found, known }),
        _ => Ok(()),
    }
}

/// The newest schema version this binary carries.
pub fn latest_known_version() -> i64 {
    MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0)
}

/// An exclusive lock on `setup.lock`, so that processes started at once on an empty
/// directory create and migrate the database one after another instead of racing.
struct SetupLock {
    _file: File,
}

impl SetupLock {
    async fn acquire(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(SETUP_LOCK_FILE);
        let locked = tokio::task::spawn_blocking(move || lock_exclusive(&path))
            .await
            .map_err(|join| StoreError::DataDir {
                path: data_dir.to_owned(),
                source: std::io::Error::other(join),
            })?;
        locked.map(|file| SetupLock { _file: file })
    }
}

fn lock_exclusive(path: &PathBuf) -> Result<File> {
    let to_error = |source| StoreError::DataDir {
        path: path.clone(),
        source,
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(to_error)?;
    // Released when the file is dropped, or by the OS if the process dies.
    file.lock().map_err(to_error)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(parse_version("3.51.3"), Some((3, 51, 3)));
        assert!(parse_version("3.9.0") < Some(MIN_SQLITE_VERSION));
        assert!(parse_version("3.100.0") > Some(MIN_SQLITE_VERSION));
        assert_eq!(parse_version("garbage"), None);
    }
}
