//! One configuration, read from flags, `CONTEXT_STORE_*` variables and an optional TOML file.
//!
//! Precedence is defaults < file < environment < flags. clap already merges flags over the
//! environment; every field is optional there, so a field clap leaves empty falls back to the
//! file and then to the default constant.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Args;
use serde::Deserialize;

use crate::{cache::CacheConfig, embed::EmbedderSource};

/// The user that a tool call means when it names none.
pub const DEFAULT_USER_ID: &str = "default";
/// Cap on one tool result, in bytes of JSON; clients cut long results (Claude Code near 25k tokens).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Cap on one message's `content`, in bytes of UTF-8.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Cap on the messages one `save_conversation` call may carry.
pub const DEFAULT_MAX_MESSAGES_PER_CALL: usize = 500;
/// L1 capacity: 64 MiB of cached values is small beside a desktop's memory and holds
/// thousands of assembled contexts.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// L1 entry bound: 10,000 (the design's 100 items is a floor, far too few for many users).
pub const DEFAULT_CACHE_MAX_ENTRIES: u64 = 10_000;
/// The design's TTL classes.
pub const DEFAULT_CONTEXT_TTL_SECS: u64 = 3600;
pub const DEFAULT_EMBEDDING_TTL_SECS: u64 = 24 * 3600;
pub const DEFAULT_SEARCH_TTL_SECS: u64 = 30 * 60;
/// History pages and preferences; invalidation keeps them fresh, the TTL only bounds memory.
pub const DEFAULT_RECORDS_TTL_SECS: u64 = 10 * 60;
/// How often a process reads other processes' invalidations from SQLite.
pub const DEFAULT_CACHE_SYNC_MS: u64 = 50;
pub const DEFAULT_CACHE_NAMESPACE: &str = "context-store";
/// Files larger than this are not indexed.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// How often `serve` checkpoints the WAL.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
/// Complete backups kept by rotation.
pub const DEFAULT_BACKUP_KEEP: usize = 7;
/// Name of the data directory under the platform's data folder.
const APP_DIR: &str = "context-store";

/// Settings of a context-store process.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// TOML file with any of these settings (keys as the long flags, e.g. `data-dir`).
    /// Flags and environment variables override it.
    #[arg(long, global = true, env = "CONTEXT_STORE_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Folder that holds the database, the search index and (by default) the backups.
    /// Default: the platform's data folder, e.g. `~/.local/share/context-store`.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_DATA_DIR",
        value_name = "DIR"
    )]
    pub data_dir: Option<PathBuf>,

    /// A workspace root that document tools may read and index; repeat for several.
    /// The variable `CONTEXT_STORE_WORKSPACES` takes a `:`-separated list.
    #[arg(long = "workspace", global = true, value_name = "DIR")]
    #[serde(default, rename = "workspaces")]
    pub workspaces: Vec<PathBuf>,

    /// The user a tool call means when it names no `user_id`. Default: `default`.
    #[arg(long, global = true, env = "CONTEXT_STORE_USER_ID", value_name = "ID")]
    pub user_id: Option<String>,

    /// Redis URL for the shared second cache tier, e.g. `redis://127.0.0.1:6379/0`.
    /// Unset: no Redis, the in-process cache and SQLite only.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_REDIS_URL",
        value_name = "URL"
    )]
    pub redis_url: Option<String>,

    /// Keep the index up to date as workspace files change (`serve` only): index the roots
    /// at start, then re-index what changes. Default: true; `--watch false` turns it off.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_WATCH",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub watch: Option<bool>,

    /// Serve only these tools (comma-separated, e.g. `get_context,search_documents`); the
    /// others are neither listed nor callable. Default: every tool.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_TOOLS",
        value_name = "NAMES",
        value_delimiter = ','
    )]
    pub tools: Option<Vec<String>>,

    /// Serve only tools that read, and refuse the others with a tool error. Default: false.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_READ_ONLY",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub read_only: Option<bool>,

    /// Where embeddings come from: `auto` (the HTTP endpoint when `--embedding-url` is set,
    /// else the model in `--model-dir` when present, else none), `onnx`, `http` or `none`.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_EMBEDDER",
        value_name = "KIND"
    )]
    pub embedder: Option<EmbedderKind>,

    /// Folder of the all-MiniLM-L6-v2 ONNX model (see `scripts/fetch-model.sh`).
    /// Default: `<data-dir>/models/all-MiniLM-L6-v2` when it holds a model, else the folder
    /// every data directory shares, `~/.cache/context-store/models/all-MiniLM-L6-v2`.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_MODEL_DIR",
        value_name = "DIR"
    )]
    pub model_dir: Option<PathBuf>,

    /// Base URL of an OpenAI-compatible embeddings API (`POST {url}/embeddings`), e.g.
    /// Ollama's `http://127.0.0.1:11434/v1`.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_EMBEDDING_URL",
        value_name = "URL"
    )]
    pub embedding_url: Option<String>,

    /// The model name sent to the embeddings API. Default: `all-minilm`.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_EMBEDDING_MODEL",
        value_name = "NAME"
    )]
    pub embedding_model: Option<String>,

    /// Files larger than this many bytes are not indexed. Default: 2097152 (2 MiB).
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_MAX_FILE_BYTES",
        value_name = "BYTES"
    )]
    pub max_file_bytes: Option<u64>,

    /// Prefix of every Redis key, so that several deployments can share one Redis.
    /// Default: `context-store`.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_CACHE_NAMESPACE",
        value_name = "PREFIX"
    )]
    pub cache_namespace: Option<String>,

    /// In-process cache capacity in bytes. Default: 67108864 (64 MiB).
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_CACHE_MAX_BYTES",
        value_name = "BYTES"
    )]
    pub cache_max_bytes: Option<u64>,

    /// In-process cache capacity in entries. Default: 10000.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_CACHE_MAX_ENTRIES",
        value_name = "N"
    )]
    pub cache_max_entries: Option<u64>,

    /// TTL of assembled contexts, in seconds. Default: 3600.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_TTL_CONTEXT_SECS",
        value_name = "SECS"
    )]
    pub ttl_context_secs: Option<u64>,

    /// TTL of document embeddings, in seconds. Default: 86400.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_TTL_EMBEDDING_SECS",
        value_name = "SECS"
    )]
    pub ttl_embedding_secs: Option<u64>,

    /// TTL of search results, in seconds. Default: 1800.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_TTL_SEARCH_SECS",
        value_name = "SECS"
    )]
    pub ttl_search_secs: Option<u64>,

    /// TTL of cached history pages and preferences, in seconds. Default: 600.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_TTL_RECORDS_SECS",
        value_name = "SECS"
    )]
    pub ttl_records_secs: Option<u64>,

    /// How often to pick up other processes' cache invalidations, in milliseconds; the
    /// bound on how long another process may serve an entry this one invalidated. Default: 50.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_CACHE_SYNC_MS",
        value_name = "MS"
    )]
    pub cache_sync_ms: Option<u64>,

    /// How often `serve` checkpoints the WAL without waiting for readers, e.g. `30s`
    /// (a bare number is minutes). Default: 30s.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_CHECKPOINT_INTERVAL",
        value_name = "INTERVAL"
    )]
    pub checkpoint_interval: Option<Interval>,

    /// Largest tool result in bytes of JSON; longer results are cut with `truncated: true`
    /// and a cursor to continue. Default: 262144 (256 KiB).
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_MAX_RESPONSE_BYTES",
        value_name = "BYTES"
    )]
    pub max_response_bytes: Option<usize>,

    /// Largest `content` of one message, in bytes. Default: 1048576 (1 MiB).
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_MAX_MESSAGE_BYTES",
        value_name = "BYTES"
    )]
    pub max_message_bytes: Option<usize>,

    /// Folder for backups. Default: `<data-dir>/backups`.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_BACKUP_DIR",
        value_name = "DIR"
    )]
    pub backup_dir: Option<PathBuf>,

    /// Complete backups to keep; older ones are deleted after each new one. Default: 7.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_BACKUP_KEEP",
        value_name = "N"
    )]
    pub backup_keep: Option<usize>,

    /// Also write a backup this often while serving, e.g. `6h`, `30m`, `90s` (a bare number
    /// is minutes; none by default). Every server with this setting writes its own; give it
    /// to one of them.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_BACKUP_INTERVAL",
        value_name = "INTERVAL"
    )]
    pub backup_interval: Option<Interval>,

    /// Most messages one `save_conversation` call may carry. Default: 500.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_STORE_MAX_MESSAGES_PER_CALL",
        value_name = "N"
    )]
    pub max_messages_per_call: Option<usize>,
}

/// Where embeddings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmbedderKind {
    Auto,
    Onnx,
    Http,
    None,
}

/// The default name sent to an embeddings API (Ollama's all-MiniLM-L6-v2).
pub const DEFAULT_EMBEDDING_MODEL: &str = "all-minilm";

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("no data directory given and the platform has no data folder; pass --data-dir")]
    NoDataDir,
    #[error("{name} must be greater than zero")]
    Zero { name: &'static str },
    #[error("--embedder http needs --embedding-url (or CONTEXT_STORE_EMBEDDING_URL)")]
    NoEmbeddingUrl,
}

impl Config {
    /// Fills what flags and environment left empty from the config file, if one is named,
    /// and from `CONTEXT_STORE_WORKSPACES`.
    pub fn resolve(mut self) -> Result<Self, ConfigError> {
        if self.workspaces.is_empty()
            && let Some(list) = std::env::var_os("CONTEXT_STORE_WORKSPACES")
        {
            self.workspaces = std::env::split_paths(&list)
                .filter(|path| !path.as_os_str().is_empty())
                .collect();
        }
        let merged = match self.config.clone() {
            Some(path) => self.or(Self::from_file(&path)?),
            None => self,
        };
        merged.validate()?;
        Ok(merged)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Field by field, keeps `self` where set and takes `lower` elsewhere.
    fn or(self, lower: Self) -> Self {
        Self {
            config: self.config,
            data_dir: self.data_dir.or(lower.data_dir),
            workspaces: if self.workspaces.is_empty() {
                lower.workspaces
            } else {
                self.workspaces
            },
            user_id: self.user_id.or(lower.user_id),
            redis_url: self.redis_url.or(lower.redis_url),
            max_response_bytes: self.max_response_bytes.or(lower.max_response_bytes),
            max_message_bytes: self.max_message_bytes.or(lower.max_message_bytes),
            max_messages_per_call: self.max_messages_per_call.or(lower.max_messages_per_call),
            max_file_bytes: self.max_file_bytes.or(lower.max_file_bytes),
            watch: self.watch.or(lower.watch),
            tools: self.tools.or(lower.tools),
            read_only: self.read_only.or(lower.read_only),
            embedder: self.embedder.or(lower.embedder),
            model_dir: self.model_dir.or(lower.model_dir),
            embedding_url: self.embedding_url.or(lower.embedding_url),
            embedding_model: self.embedding_model.or(lower.embedding_model),
            cache_namespace: self.cache_namespace.or(lower.cache_namespace),
            cache_max_bytes: self.cache_max_bytes.or(lower.cache_max_bytes),
            cache_max_entries: self.cache_max_entries.or(lower.cache_max_entries),
            ttl_context_secs: self.ttl_context_secs.or(lower.ttl_context_secs),
            ttl_embedding_secs: self.ttl_embedding_secs.or(lower.ttl_embedding_secs),
            ttl_search_secs: self.ttl_search_secs.or(lower.ttl_search_secs),
            ttl_records_secs: self.ttl_records_secs.or(lower.ttl_records_secs),
            cache_sync_ms: self.cache_sync_ms.or(lower.cache_sync_ms),
            backup_dir: self.backup_dir.or(lower.backup_dir),
            backup_keep: self.backup_keep.or(lower.backup_keep),
            backup_interval: self.backup_interval.or(lower.backup_interval),
            checkpoint_interval: self.checkpoint_interval.or(lower.checkpoint_interval),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let as_u64 = |value: Option<usize>| value.map(|n| n as u64);
        let sizes = [
            ("max-response-bytes", as_u64(self.max_response_bytes)),
            ("max-message-bytes", as_u64(self.max_message_bytes)),
            ("max-messages-per-call", as_u64(self.max_messages_per_call)),
            ("backup-keep", as_u64(self.backup_keep)),
            ("max-file-bytes", self.max_file_bytes),
            ("cache-max-bytes", self.cache_max_bytes),
            ("cache-max-entries", self.cache_max_entries),
            ("ttl-context-secs", self.ttl_context_secs),
            ("ttl-embedding-secs", self.ttl_embedding_secs),
            ("ttl-search-secs", self.ttl_search_secs),
            ("ttl-records-secs", self.ttl_records_secs),
            ("cache-sync-ms", self.cache_sync_ms),
            (
                "backup-interval",
                self.backup_interval.map(|interval| interval.0.as_secs()),
            ),
            (
                "checkpoint-interval",
                self.checkpoint_interval
                    .map(|interval| interval.0.as_secs()),
            ),
        ];
        match sizes.into_iter().find(|(_, value)| *value == Some(0)) {
            Some((name, _)) => Err(ConfigError::Zero { name }),
            None => Ok(()),
        }
    }

    /// The data directory: the configured one, else the platform's data folder.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => dirs::data_dir()
                .map(|base| base.join(APP_DIR))
                .ok_or(ConfigError::NoDataDir),
        }
    }

    pub fn user_id(&self) -> &str {
        self.user_id.as_deref().unwrap_or(DEFAULT_USER_ID)
    }

    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES)
    }

    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
    }

    /// The cache settings, defaults filled in (all but the store's identity).
    pub fn cache(&self) -> CacheConfig {
        let secs = |value: Option<u64>, default: u64| Duration::from_secs(value.unwrap_or(default));
        CacheConfig {
            l1_max_bytes: self.cache_max_bytes.unwrap_or(DEFAULT_CACHE_MAX_BYTES),
            l1_max_entries: self.cache_max_entries.unwrap_or(DEFAULT_CACHE_MAX_ENTRIES),
            context_ttl: secs(self.ttl_context_secs, DEFAULT_CONTEXT_TTL_SECS),
            embedding_ttl: secs(self.ttl_embedding_secs, DEFAULT_EMBEDDING_TTL_SECS),
            search_ttl: secs(self.ttl_search_secs, DEFAULT_SEARCH_TTL_SECS),
            records_ttl: secs(self.ttl_records_secs, DEFAULT_RECORDS_TTL_SECS),
            namespace: self
                .cache_namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_CACHE_NAMESPACE.to_owned()),
            redis_url: self.redis_url.clone(),
            // Filled in from the database once it is open.
            store: None,
            max_value_bytes: cache_value_cap(self.max_response_bytes()),
        }
    }

    /// Where embeddings come from, resolved against what is on disk.
    pub fn embedder_source(&self, data_dir: &Path) -> Result<EmbedderSource, ConfigError> {
        let model_dir = self
            .model_dir
            .clone()
            .unwrap_or_else(|| default_model_dir(data_dir));
        let http = |base_url: String| EmbedderSource::Http {
            base_url,
            model: self
                .embedding_model
                .clone()
                .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL.to_owned()),
        };
        Ok(
            match (
                self.embedder.unwrap_or(EmbedderKind::Auto),
                &self.embedding_url,
            ) {
                (EmbedderKind::None, _) => {
                    EmbedderSource::Disabled("semantic search is off (--embedder none)".into())
                }
                (EmbedderKind::Http, None) => return Err(ConfigError::NoEmbeddingUrl),
                (EmbedderKind::Http | EmbedderKind::Auto, Some(url)) => http(url.clone()),
                (EmbedderKind::Onnx, _) => EmbedderSource::Onnx(model_dir),
                (EmbedderKind::Auto, None) if model_dir.join("model.onnx").is_file() => {
                    EmbedderSource::Onnx(model_dir)
                }
                (EmbedderKind::Auto, None) => EmbedderSource::Disabled(format!(
                    "no embedding model in {}: run scripts/fetch-model.sh with that folder, or \
                 pass --model-dir or --embedding-url",
                    model_dir.display()
                )),
            },
        )
    }

    /// Which tools `serve` offers.
    pub fn tool_profile(&self) -> ToolProfile {
        ToolProfile {
            only: self.tools.as_ref().map(|names| {
                names
                    .iter()
                    .map(|name| name.trim().to_owned())
                    .filter(|name| !name.is_empty())
                    .collect()
            }),
            read_only: self.read_only.unwrap_or(false),
        }
    }

    pub fn watch(&self) -> bool {
        self.watch.unwrap_or(true)
    }

    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES)
    }

    pub fn cache_sync_interval(&self) -> Duration {
        Duration::from_millis(self.cache_sync_ms.unwrap_or(DEFAULT_CACHE_SYNC_MS))
    }

    /// Where backups go and how many are kept.
    pub fn backups(&self, data_dir: &Path) -> crate::engine::BackupSettings {
        crate::engine::BackupSettings {
            dir: self
                .backup_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("backups")),
            keep: self.backup_keep.unwrap_or(DEFAULT_BACKUP_KEEP),
        }
    }

    /// How often a serving process checkpoints the WAL.
    pub fn checkpoint_interval(&self) -> Duration {
        self.checkpoint_interval
            .map_or(DEFAULT_CHECKPOINT_INTERVAL, |interval| interval.0)
    }

    /// How often a serving process writes a backup, if it does.
    pub fn backup_interval(&self) -> Option<Duration> {
        self.backup_interval.map(|interval| interval.0)
    }

    pub fn max_messages_per_call(&self) -> usize {
        self.max_messages_per_call
            .unwrap_or(DEFAULT_MAX_MESSAGES_PER_CALL)
    }
}

/// A period such as `90s`, `30m`, `6h` or `1d`; a bare number is minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Interval(pub Duration);

impl std::str::FromStr for Interval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let seconds_per_unit = match unit {
            "s" => 1,
            "" | "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => {
                return Err(format!(
                    "{text:?}: expected a number with s, m, h or d, e.g. 6h"
                ));
            }
        };
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: expected a number with s, m, h or d, e.g. 6h"))?;
        Ok(Interval(Duration::from_secs(
            number.saturating_mul(seconds_per_unit),
        )))
    }
}

impl TryFrom<String> for Interval {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// The tools a server offers: `--tools` and `--read-only`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolProfile {
    /// Only these tools, when set.
    pub only: Option<std::collections::BTreeSet<String>>,
    /// Only the tools that read.
    pub read_only: bool,
}

/// The data directory's own model folder when it holds a model, else the shared one that
/// `scripts/fetch-model.sh` fills by default, so one download serves every data directory.
fn default_model_dir(data_dir: &Path) -> PathBuf {
    let own = data_dir.join("models").join(crate::embed::MODEL_DIR_NAME);
    if own.join("model.onnx").is_file() {
        return own;
    }
    dirs::cache_dir()
        .map(|cache| {
            cache
                .join("context-store")
                .join("models")
                .join(crate::embed::MODEL_DIR_NAME)
        })
        .unwrap_or(own)
}

/// The largest cached value read from Redis: twice the response cap, since a cached value
/// may hold a little more than an answer shows, and never under 1 MiB.
fn cache_value_cap(max_response_bytes: usize) -> usize {
    max_response_bytes.saturating_mul(2).max(1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_looked_for_in_the_data_directory_then_in_the_shared_folder() {
        let data_dir = tempfile::tempdir().unwrap();
        let shared = default_model_dir(data_dir.path());
        assert!(shared.ends_with("context-store/models/all-MiniLM-L6-v2"));
        assert!(!shared.starts_with(data_dir.path()));
        let own = data_dir.path().join("models/all-MiniLM-L6-v2");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("model.onnx"), b"").unwrap();
        assert_eq!(default_model_dir(data_dir.path()), own);
    }

    #[test]
    fn intervals_read_units_and_default_to_minutes() {
        let secs = |text: &str| {
            text.parse::<Interval>()
                .map(|interval| interval.0.as_secs())
        };
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("30"), Ok(1800));
        assert_eq!(secs("6h"), Ok(21_600));
        assert_eq!(secs("1d"), Ok(86_400));
        assert!(secs("6 hours").is_err());
        assert!(secs("h").is_err());
    }

    #[test]
    fn set_fields_win_over_the_file() {
        let flags = Config {
            user_id: Some("flag-user".into()),
            ..Config::default()
        };
        let file: Config = toml::from_str(
            "user-id = \"file-user\"\nredis-url = \"redis://x\"\nworkspaces = [\"/a\"]",
        )
        .unwrap();
        let merged = flags.or(file);
        assert_eq!(merged.user_id(), "flag-user");
        assert_eq!(merged.redis_url.as_deref(), Some("redis://x"));
        assert_eq!(merged.workspaces, vec![PathBuf::from("/a")]);
    }

    #[test]
    fn defaults_fill_what_nobody_set() {
        let config = Config::default();
        assert_eq!(config.user_id(), DEFAULT_USER_ID);
        assert_eq!(config.max_response_bytes(), DEFAULT_MAX_RESPONSE_BYTES);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<Config>("data_dirr = \"/x\"").is_err());
    }

    #[test]
    fn zero_limits_are_refused() {
        let config = Config {
            max_message_bytes: Some(0),
            ..Config::default()
        };
        assert!(matches!(config.validate(), Err(ConfigError::Zero { .. })));
    }
}
