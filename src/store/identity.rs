//! SQL for the store's identity: the random id and cache secret made with the database.

use sqlx::SqlitePool;

use super::error::Result;
use crate::model::StoreIdentity;

/// The identity row, made by the migration that created its table.
pub async fn read(pool: &SqlitePool) -> Result<StoreIdentity> {
    let (store_id, cache_secret): (String, Vec<u8>) =
        sqlx::query_as("SELECT store_id, cache_secret FROM store_identity WHERE only_row = 1")
            .fetch_one(pool)
            .await?;
    Ok(StoreIdentity {
        store_id,
        cache_secret,
    })
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[tokio::test]
    async fn each_database_has_its_own_identity_and_keeps_it() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let identity = Store::open(first.path())
            .await
            .unwrap()
            .identity()
            .await
            .unwrap();
        let other = Store::open(second.path())
            .await
            .unwrap()
            .identity()
            .await
            .unwrap();
        assert_eq!(identity.store_id.len(), 32);
        assert_eq!(identity.cache_secret.len(), 32);
        assert_ne!(identity.store_id, other.store_id);
        assert_ne!(identity.cache_secret, other.cache_secret);
        let reopened = Store::open(first.path())
            .await
            .unwrap()
            .identity()
            .await
            .unwrap();
        assert_eq!(reopened, identity);
    }

    /// A database made before the identity existed gets one when it is next opened.
    #[tokio::test]
    async fn an_older_database_gets_an_identity_on_its_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        for statement in [
            "DROP TABLE store_identity",
            "DELETE FROM _sqlx_migrations WHERE version = 20261203191500",
        ] {
            sqlx::query(statement).execute(&store.pool).await.unwrap();
        }
        assert!(store.identity().await.is_err());
        store.pool.close().await;
        let reopened = Store::open(dir.path()).await.unwrap();
        assert_eq!(reopened.identity().await.unwrap().store_id.len(), 32);
    }
}
