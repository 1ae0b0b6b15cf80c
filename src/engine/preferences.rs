//! Per-user preferences: small JSON values under string keys.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Engine, caching::preference_scopes, error::Result, validate};
use crate::{
    cache::{Lookup, Scope, TtlClass},
    model::to_millis,
};

/// Most keys one `get_preferences` call may name.
const MAX_KEYS_PER_CALL: usize = 100;

/// Arguments of `set_preference`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPreference {
    /// Whose preference. Defaults to the server's configured user.
    pub user_id: Option<String>,
    /// Name of the preference, e.g. `language` or `editor.tab_width`.
    pub key: String,
    /// Any JSON value but null, up to 64 KiB.
    #[schemars(schema_with = "crate::model::preference_value_schema")]
    pub value: Value,
}

/// Result of `set_preference`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PreferenceSet {
    pub user_id: String,
    pub key: String,
    #[schemars(schema_with = "crate::model::preference_value_schema")]
    pub value: Value,
    pub updated_at: DateTime<Utc>,
    /// True when the key was new, false when an existing value was replaced.
    pub created: bool,
}

/// Arguments of `get_preferences`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetPreferences {
    /// Whose preferences. Defaults to the server's configured user.
    pub user_id: Option<String>,
    /// Only these keys; all keys when absent.
    pub keys: Option<Vec<String>>,
}

/// Result of `get_preferences`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Preferences {
    pub user_id: String,
    /// Value by key.
    pub preferences: BTreeMap<String, Value>,
    /// Requested keys that have no value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// Arguments of `delete_preference`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletePreference {
    /// Whose preference. Defaults to the server's configured user.
    pub user_id: Option<String>,
    /// Name of the preference to delete.
    pub key: String,
}

/// Result of `delete_preference`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PreferenceDeleted {
    pub user_id: String,
    pub key: String,
    /// False when there was no such preference.
    pub deleted: bool,
}

impl Engine {
    pub async fn set_preference(&self, request: SetPreference) -> Result<PreferenceSet> {
        let user_id = self.user_or_default(request.user_id.as_deref())?;
        validate::key("key", &request.key)?;
        validate::json_size("value", &request.value)?;
        if request.value.is_null() {
            return Err(super::EngineError::invalid(
                "value",
                "null is not a preference value; delete_preference removes one",
            ));
        }
        let now = crate::model::now();
        let invalidates = preference_scopes(&user_id);
        let (created, generations) = self
            .store()
            .set_preference(
                &user_id,
                &request.key,
                &request.value,
                to_millis(now),
                &invalidates,
            )
            .await?;
        self.after_write(&generations).await;
        Ok(PreferenceSet {
            user_id,
            key: request.key,
            value: request.value,
            updated_at: now,
            created,
        })
    }

    pub async fn preferences(&self, request: GetPreferences) -> Result<Preferences> {
        let user_id = self.user_or_default(request.user_id.as_deref())?;
        if let Some(keys) = &request.keys {
            check_keys(keys)?;
        }
        let mut keys = request.keys;
        if let Some(keys) = &mut keys {
            keys.sort();
            keys.dedup();
        }
        let lookup = Lookup {
            operation: "get_preferences",
            params: json!({"user_id": user_id, "keys": keys}),
            class: TtlClass::Records,
            scopes: vec![Scope::Preferences(user_id.clone())],
        };
        self.cached(lookup, self.load_preferences(user_id, keys))
            .await
    }

    async fn load_preferences(
        &self,
        user_id: String,
        keys: Option<Vec<String>>,
    ) -> Result<Preferences> {
        let found = self.store().preferences(&user_id, keys.as_deref()).await?;
        let preferences: BTreeMap<String, Value> = found
            .into_iter()
            .map(|preference| (preference.key, preference.value))
            .collect();
        let missing = keys
            .unwrap_or_default()
            .into_iter()
            .filter(|key| !preferences.contains_key(key))
            .collect();
        Ok(Preferences {
            user_id,
            preferences,
            missing,
        })
    }

    pub async fn delete_preference(&self, request: DeletePreference) -> Result<PreferenceDeleted> {
        let user_id = self.user_or_default(request.user_id.as_deref())?;
        validate::key("key", &request.key)?;
        let invalidates = preference_scopes(&user_id);
        let (deleted, generations) = self
            .store()
            .delete_preference(&user_id, &request.key, &invalidates)
            .await?;
        self.after_write(&generations).await;
        Ok(PreferenceDeleted {
            user_id,
            key: request.key,
            deleted,
        })
    }
}

fn check_keys(keys: &[String]) -> Result<()> {
    if keys.len() > MAX_KEYS_PER_CALL {
        return Err(super::EngineError::invalid(
            "keys",
            format!(
                "names {} keys; the limit is {MAX_KEYS_PER_CALL}",
                keys.len()
            ),
        ));
    }
    keys.iter()
        .enumerate()
        .try_for_each(|(index, key)| validate::key(&format!("keys[{index}]"), key))
}
