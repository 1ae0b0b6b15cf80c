//! SQL for per-user preferences.

use serde_json::Value;
use sqlx::SqlitePool;

use super::{
    error::{Result, StoreError},
    generations,
};
use crate::model::{Preference, ScopeGeneration, from_millis};

type PreferenceRow = (String, String, i64);

/// Inserts or replaces a preference and bumps `invalidates`; true when the key was new.
pub async fn set(
    pool: &SqlitePool,
    user_id: &str,
    key: &str,
    value: &Value,
    now: i64,
    invalidates: &[String],
) -> Result<(bool, Vec<ScopeGeneration>)> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let existed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM preferences WHERE user_id = ? AND key = ?)",
    )
    .bind(user_id)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO preferences (user_id, key, value, updated_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(key)
    .bind(value.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let generations = generations::bump_in(&mut tx, invalidates).await?;
    tx.commit().await?;
    Ok((!existed, generations))
}

/// All of a user's preferences, by key.
pub async fn all(pool: &SqlitePool, user_id: &str) -> Result<Vec<Preference>> {
    let rows: Vec<PreferenceRow> = sqlx::query_as(
        "SELECT key, value, updated_at FROM preferences WHERE user_id = ? ORDER BY key",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(preference_from_row).collect()
}

/// The named preferences that exist, by key.
pub async fn some(pool: &SqlitePool, user_id: &str, keys: &[String]) -> Result<Vec<Preference>> {
    let keys = serde_json::to_string(keys).expect("a list of strings always serialises");
    let rows: Vec<PreferenceRow> = sqlx::query_as(
        "SELECT key, value, updated_at FROM preferences \
         WHERE user_id = ? AND key IN (SELECT value FROM json_each(?)) ORDER BY key",
    )
    .bind(user_id)
    .bind(keys)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(preference_from_row).collect()
}

/// Deletes a preference, bumping `invalidates` if it existed; true when it existed.
pub async fn delete(
    pool: &SqlitePool,
    user_id: &str,
    key: &str,
    invalidates: &[String],
) -> Result<(bool, Vec<ScopeGeneration>)> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query("DELETE FROM preferences WHERE user_id = ? AND key = ?")
        .bind(user_id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    let existed = done.rows_affected() == 1;
    let generations = match existed {
        true => generations::bump_in(&mut tx, invalidates).await?,
        false => Vec::new(),
    };
    tx.commit().await?;
    Ok((existed, generations))
}

fn preference_from_row((key, value, updated_at): PreferenceRow) -> Result<Preference> {
    let value = serde_json::from_str(&value)
        .map_err(|error| StoreError::Decode(format!("preference {key}: {error}")))?;
    Ok(Preference {
        key,
        value,
        updated_at: from_millis(updated_at),
    })
}
