//! SQL for cache scope generations: the cross-process record of cache invalidations.

use sqlx::{Sqlite, SqlitePool, Transaction};

use super::error::Result;
use crate::model::ScopeGeneration;

/// Bumps each scope's generation inside the caller's write transaction, so that data and
/// its invalidation commit together: no process can see the one without the other.
pub async fn bump_in(
    tx: &mut Transaction<'_, Sqlite>,
    scopes: &[String],
) -> Result<Vec<ScopeGeneration>> {
    let mut bumped = Vec::with_capacity(scopes.len());
    for scope in scopes {
        // The write lock is held, so MAX(seq) + 1 is unique and increasing across processes.
        let (generation, seq): (i64, i64) = sqlx::query_as(
            "INSERT INTO cache_generations (scope, generation, seq) \
             VALUES (?1, 1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM cache_generations)) \
             ON CONFLICT (scope) DO UPDATE SET generation = generation + 1, seq = excluded.seq \
             RETURNING generation, seq",
        )
        .bind(scope)
        .fetch_one(&mut **tx)
        .await?;
        bumped.push(ScopeGeneration {
            scope: scope.clone(),
            generation,
            seq,
        });
    }
    Ok(bumped)
}

pub async fn bump(pool: &SqlitePool, scopes: &[String]) -> Result<Vec<ScopeGeneration>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let bumped = bump_in(&mut tx, scopes).await?;
    tx.commit().await?;
    Ok(bumped)
}

/// Generations stamped after `seq`, oldest first.
pub async fn since(pool: &SqlitePool, seq: i64) -> Result<Vec<ScopeGeneration>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT scope, generation, seq FROM cache_generations WHERE seq > ? ORDER BY seq",
    )
    .bind(seq)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(scope, generation, seq)| ScopeGeneration {
            scope,
            generation,
            seq,
        })
        .collect())
}
