//! The YAML config file, as typed structs. Unknown keys are errors everywhere
//! (`deny_unknown_fields`), so a typo never silently does nothing.

use super::units::{Dur, Size};
use indexmap::IndexMap;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub server: ServerConfig,
    pub plugins: PluginsConfig,
    pub providers: IndexMap<String, ProviderConfig>,
    pub models: IndexMap<String, ModelConfig>,
    pub cache: CacheConfig,
    pub pricing: PricingConfig,
    pub hooks: Vec<HookConfig>,
    pub admin: AdminConfig,
    pub redis: RedisConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Larger request bodies are refused with 413.
    pub max_body_size: Size,
    /// How long a client may take to send its request body.
    pub body_read_timeout: Dur,
    /// On SIGTERM/SIGINT, how long in-flight requests and streams may take to finish.
    pub shutdown_timeout: Dur,
    /// A streaming client that has not taken the gateway's last frame for this long has its
    /// stream cut (freeing its provider slot and upstream connection); 0 = never.
    pub stream_write_timeout: Dur,
    /// Body bytes held in memory across all requests at once (request bodies, upstream
    /// answers read whole); past it new bodies get 503 `server_busy`. Default: 8 ×
    /// `max_body_size`.
    pub max_in_flight_body: Option<Size>,
}

impl ServerConfig {
    /// `max_in_flight_body`, or its default.
    pub fn body_budget(&self) -> u64 {
        self.max_in_flight_body
            .map_or_else(|| self.max_body_size.0.saturating_mul(8), |s| s.0)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            max_body_size: Size(32 * 1024 * 1024),
            body_read_timeout: Dur::secs(30),
            shutdown_timeout: Dur::secs(30),
            stream_write_timeout: Dur::secs(30),
            max_in_flight_body: None,
        }
    }
}

/// The one Redis all shared state uses (DESIGN §5): today the cache's `backend: redis`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` or `rediss://…`.
    pub url: Option<String>,
    /// The longest a request waits on Redis for one command (default 100ms): past it the
    /// lookup is a miss, never a slow answer.
    pub timeout: Option<Dur>,
}

/// The admin endpoints (`/admin/*`, `/v1/usage`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The Bearer key admin requests must carry, or `env.VAR`. Unset (or its variable
    /// unset): admin endpoints answer loopback clients only.
    pub key: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Folder holding `libswitchyard_NAME.so`; default: the running binary's folder.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Plugin name (`openai` → `libswitchyard_openai.so` in `plugins.dir`) or a path.
    pub plugin: String,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Dur,
    /// Whole non-streaming request.
    #[serde(default = "defaults::timeout")]
    pub timeout: Dur,
    /// Until response headers arrive.
    #[serde(default = "defaults::timeout")]
    pub first_byte_timeout: Dur,
    /// Streaming: until the first content chunk; 0 = off.
    #[serde(default)]
    pub first_token_timeout: Dur,
    /// Streaming: longest silence between events.
    #[serde(default = "defaults::stream_idle_timeout")]
    pub stream_idle_timeout: Dur,
    #[serde(default)]
    pub retries: RetriesConfig,
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    #[serde(default = "defaults::concurrency")]
    pub concurrency: u32,
    /// Extra headers sent upstream on every request.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// Client headers (`x-bf-eh-NAME`) this provider may receive; unset = tracing and
    /// correlation headers only (`upstream::forward::DEFAULT_FORWARDED`).
    #[serde(default)]
    pub forward_headers: Option<Vec<String>>,
    /// `extra_fields.raw_request` / `raw_response` on every answer from this provider (a
    /// request can ask for them with `x-bf-send-back-raw-response: true`).
    #[serde(default)]
    pub send_back_raw_response: bool,
    /// Plugin-specific options, handed to the plugin as JSON.
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

mod defaults {
    use super::Dur;
    pub fn connect_timeout() -> Dur {
        Dur::secs(5)
    }
    pub fn timeout() -> Dur {
        Dur::secs(30)
    }
    pub fn stream_idle_timeout() -> Dur {
        Dur::secs(60)
    }
    pub fn concurrency() -> u32 {
        1000
    }
    pub fn weight() -> f64 {
        1.0
    }
    pub fn all_models() -> Vec<String> {
        vec!["*".into()]
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key itself, or `env.VAR` to read it from the environment.
    pub value: String,
    #[serde(default = "defaults::weight")]
    pub weight: f64,
    /// Models this key may be used for; `["*"]` = all.
    #[serde(default = "defaults::all_models")]
    pub models: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetriesConfig {
    pub max: u32,
    pub backoff: Dur,
    pub max_backoff: Dur,
}

impl Default for RetriesConfig {
    fn default() -> Self {
        RetriesConfig {
            max: 2,
            backoff: Dur::millis(500),
            max_backoff: Dur::secs(5),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    pub failures: u32,
    pub window: Dur,
    pub cooldown: Dur,
    /// A key the upstream rejects (401/403) is out of service this long, then one probe;
    /// 0 = never taken out of service.
    pub auth_failure_cooldown: Dur,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failures: 5,
            window: Dur::secs(30),
            cooldown: Dur::secs(10),
            auth_failure_cooldown: Dur::secs(300),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub targets: Vec<TargetConfig>,
    /// Ordered: `provider/model` or another alias.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Cache this alias's answers even without an `x-bf-cache-key` header (needs `cache.enabled`).
    #[serde(default)]
    pub cache: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub provider: String,
    pub model: String,
    #[serde(default = "defaults::weight")]
    pub weight: f64,
}

/// The response cache (see `cache`): the exact tier, and the semantic tier when
/// `semantic.enabled`; entries in memory or, with `backend: redis`, in the Redis of `redis.url`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    pub backend: Option<String>,
    pub ttl: Option<Dur>,
    pub max_entries: Option<u64>,
    /// In memory: the most the stored answers may take, in bytes (e.g. `256MiB`).
    pub max_bytes: Option<Size>,
    pub semantic: SemanticCacheConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SemanticCacheConfig {
    pub enabled: bool,
    /// `provider/model` whose embeddings compare conversations; the provider's plugin must
    /// serve the embeddings operation.
    pub embedding: Option<String>,
    /// Cosine similarity a stored conversation must reach to answer (0 < t ≤ 1, default 0.8);
    /// `x-bf-cache-threshold` may raise it per request, never lower it.
    pub threshold: Option<f64>,
}

/// Where prices come from (see `cost::prices`): `file` replaces the bundled table; each
/// `overrides` entry (`provider/model` → rates in the table's field names) wins over it, field
/// by field.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PricingConfig {
    pub file: Option<PathBuf>,
    pub overrides: IndexMap<String, serde_json::Map<String, serde_json::Value>>,
}

/// One `hooks:` entry: a hook plugin, how its failures are handled, and which requests it
/// sees. Pre phases run in list order; post and chunk phases in reverse.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    pub plugin: String,
    /// Label in logs, `/admin/status` and short-circuit answers; default: the plugin name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub on_error: OnError,
    /// The client `model` values (aliases or `provider/model`) the hook applies to; `*`
    /// matches all. Default: all.
    #[serde(default = "all_models")]
    pub models: Vec<String>,
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
}

impl HookConfig {
    /// `name`, else the plugin's name: `plugin:` itself, or for a path its library's name
    /// (`/x/libswitchyard_block_users.so` → `block_users`).
    pub fn name(&self) -> &str {
        if let Some(name) = &self.name {
            return name;
        }
        if !self.plugin.contains('/') {
            return &self.plugin;
        }
        let file = self.plugin.rsplit('/').next().unwrap_or(&self.plugin);
        let stem = file.split('.').next().unwrap_or(file);
        let stem = stem.strip_prefix("lib").unwrap_or(stem);
        let stem = stem.strip_prefix("switchyard_").unwrap_or(stem);
        if stem.is_empty() { &self.plugin } else { stem }
    }
}

fn all_models() -> Vec<String> {
    vec!["*".to_string()]
}

/// What a hook's failure (an error, a panic, an unusable answer) does to the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The request fails with 500 `hook_failed`.
    #[default]
    FailClosed,
    /// The hook is skipped for that phase and the fault counted.
    FailOpen,
}
