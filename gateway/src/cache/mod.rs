//! The response cache (DESIGN §4): an exact tier and, when `cache.semantic.enabled`, a
//! semantic tier; entries in memory or in Redis (`cache.backend`).
//!
//! - A request is looked up only when the cache is enabled and it asks for it: the
//!   `x-bf-cache-key` header (its value is the tenant's namespace) or an alias with
//!   `cache: true`. Everything else costs nothing here.
//! - Entries are keyed by [`CacheId`] (tenant + canonical request) and by form: a plain answer
//!   and a stream are stored apart, each replayed in its own form (a stream as its chunks,
//!   without the original pacing).
//! - An answer is stored only when it is whole: a plain answer from a provider, a stream that
//!   ended with `[DONE]` and no error event. A hit costs 0 and is recorded against no provider.
//! - In memory: bounded by entries (`cache.max_entries`) and bytes (`cache.max_bytes`), each
//!   with its TTL (`cache.ttl`, or the request's `x-bf-cache-ttl`); no lock on the request
//!   path (moka). In Redis ([`redis_store`]): shared by replicas, expired by Redis, written
//!   after the answer left, and an outage is a miss.
//! - The semantic tier ([`semantic`]) points conversations' embeddings at exact entries; with
//!   Redis its index is fed from a Redis stream ([`feed`]) so every replica finds every entry.

pub mod convert;
pub mod feed;
pub mod key;
pub mod redis_store;
pub mod semantic;
mod stored;

pub use key::CacheId;

use crate::config::{CacheConfig, RedisConfig};
use moka::sync::Cache;
use redis_store::{RedisCommand, RedisStore};
use semantic::SemanticIndex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchyard_plugin_api::host::Payload;

/// Default entry lifetime when `cache.ttl` is not set.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Default bound when `cache.max_entries` is not set.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// Default bound when `cache.max_bytes` is not set.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default semantic threshold when `cache.semantic.threshold` is not set.
pub const DEFAULT_THRESHOLD: f64 = 0.8;

/// One stored answer.
#[derive(Debug)]
pub struct CachedAnswer {
    /// The tenant it belongs to (for clearing a namespace).
    pub namespace: Arc<str>,
    /// The provider and model that produced it.
    pub provider: Arc<str>,
    pub model_deployment: Arc<str>,
    pub body: CachedBody,
    pub ttl: Duration,
}

impl CachedAnswer {
    /// Roughly the bytes it holds (payloads and names), for the memory bound.
    fn weight(&self) -> u32 {
        let payloads: usize = match &self.body {
            CachedBody::Plain(p) => p.json.len() + 64,
            CachedBody::Stream(chunks) => chunks.iter().map(|c| c.json.len() + 64).sum(),
        };
        let names = self.namespace.len() + self.provider.len() + self.model_deployment.len();
        u32::try_from(payloads + names + 128).unwrap_or(u32::MAX)
    }
}

#[derive(Debug)]
pub enum CachedBody {
    /// The unified answer, as the provider's codec produced it (before hooks and finishing).
    Plain(Payload),
    /// The stream's unified chunks, in order.
    Stream(Vec<Payload>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct EntryKey {
    id: CacheId,
    stream: bool,
}

/// Each entry lives for its own TTL.
struct PerEntryTtl;

impl moka::Expiry<EntryKey, Arc<CachedAnswer>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &EntryKey,
        value: &Arc<CachedAnswer>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Lookups and stores since start, for `/admin/status`.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Exact hits.
    pub hits: AtomicU64,
    pub semantic_hits: AtomicU64,
    /// Lookups that found nothing (in any tier asked).
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    /// Semantic lookups skipped because the embedding failed (the request went on, a miss).
    pub embedding_failures: AtomicU64,
}

/// Where entries live.
enum Store {
    Memory(Cache<EntryKey, Arc<CachedAnswer>>),
    Redis(Arc<RedisStore>),
}

/// The semantic tier: which model embeds conversations, how close is close enough, and the
/// index of stored conversations.
pub struct SemanticTier {
    pub index: Arc<SemanticIndex>,
    /// `cache.semantic.embedding` (`provider/model`), whole and split.
    pub embedding: Arc<str>,
    pub provider: Arc<str>,
    pub model: Arc<str>,
    pub threshold: f64,
}

/// What a cache is built from: a reload that leaves it unchanged keeps the entries.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub cache: CacheConfig,
    pub redis: RedisConfig,
}

pub struct ResponseCache {
    store: Store,
    pub semantic: Option<SemanticTier>,
    pub default_ttl: Duration,
    pub settings: CacheSettings,
    pub stats: CacheStats,
}

impl ResponseCache {
    /// The cache of `settings`; an `Err` names what in `redis.url` is wrong.
    pub fn new(settings: &CacheSettings) -> Result<ResponseCache, String> {
        let config = &settings.cache;
        let max_entries = config.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
        let store = match (config.backend.as_deref(), settings.redis.url.as_deref()) {
            (Some("redis"), Some(url)) => {
                Store::Redis(Arc::new(RedisStore::new(url, settings.redis.timeout.map(|t| t.0))?))
            }
            _ => {
                // One capacity bounds both: each entry weighs its bytes, and at least a fair
                // share of `max_bytes` (max_bytes / max_entries), so no more than `max_entries`
                // entries fit and they never take more than `max_bytes`.
                let max_bytes = config.max_bytes.map_or(DEFAULT_MAX_BYTES, |b| b.0);
                let share = u32::try_from((max_bytes / max_entries.max(1)).max(1)).unwrap_or(u32::MAX);
                Store::Memory(
                    Cache::builder()
                        .max_capacity(max_bytes)
                        .weigher(move |_, answer: &Arc<CachedAnswer>| answer.weight().max(share))
                        .expire_after(PerEntryTtl)
                        .support_invalidation_closures()
                        .build(),
                )
            }
        };
        let semantic = config
            .semantic
            .enabled
            .then(|| {
                let embedding = config.semantic.embedding.as_deref()?;
                let (provider, model) = embedding.split_once('/')?;
                Some(SemanticTier {
                    index: Arc::new(SemanticIndex::new(max_entries)),
                    embedding: Arc::from(embedding),
                    provider: Arc::from(provider),
                    model: Arc::from(model),
                    threshold: config.semantic.threshold.unwrap_or(DEFAULT_THRESHOLD),
                })
            })
            .flatten();
        Ok(ResponseCache {
            store,
            semantic,
            default_ttl: config.ttl.map_or(DEFAULT_TTL, |t| t.0),
            settings: settings.clone(),
            stats: CacheStats::default(),
        })
    }

    /// The Redis backend, if that is where entries live.
    pub fn redis(&self) -> Option<&Arc<RedisStore>> {
        match &self.store {
            Store::Redis(r) => Some(r),
            Store::Memory(_) => None,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.store {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// The stored answer for `id` (of `namespace`) in the form asked for, if any: stored in
    /// that form, or in the other one where it converts exactly ([`convert`]). A backend
    /// failure is a miss (counted by the backend).
    pub async fn get(&self, namespace: &str, id: CacheId, stream: bool) -> Option<Arc<CachedAnswer>> {
        match &self.store {
            Store::Memory(entries) => {
                if let Some(hit) = entries.get(&EntryKey { id, stream }) {
                    return Some(hit);
                }
                let other = entries.get(&EntryKey { id, stream: !stream })?;
                converted(&other, stream).map(Arc::new)
            }
            Store::Redis(redis) => {
                let want = RedisStore::key(namespace, id, stream);
                let other = RedisStore::key(namespace, id, !stream);
                let (found, other) = redis.get_pair(&want, &other).await?;
                let read = |(bytes, left): (Vec<u8>, Duration)| {
                    let answer = stored::decode(&bytes, left);
                    if answer.is_none() {
                        tracing::warn!(cache_id = %id.hex(), "cache: an entry in Redis is not one this version reads; a miss");
                    }
                    answer
                };
                if let Some(answer) = found.and_then(read) {
                    return Some(Arc::new(answer));
                }
                converted(&other.and_then(read)?, stream).map(Arc::new)
            }
        }
    }

    /// Stores `answer` (in Redis: after the caller has moved on).
    pub fn insert(&self, id: CacheId, answer: CachedAnswer) {
        let stream = matches!(answer.body, CachedBody::Stream(_));
        if answer.ttl.is_zero() {
            return;
        }
        match &self.store {
            Store::Memory(entries) => entries.insert(EntryKey { id, stream }, Arc::new(answer)),
            Store::Redis(redis) => {
                let Some(bytes) = stored::encode(&answer) else {
                    return;
                };
                redis.set_later(RedisStore::key(&answer.namespace, id, stream), bytes, answer.ttl);
            }
        }
        self.stats.stores.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a stored conversation's embedding to the semantic index (and, with Redis, to the
    /// stream every replica's index is fed from).
    pub fn index_semantic(&self, partition: CacheId, id: CacheId, vector: &[f32], ttl: Duration) {
        let Some(tier) = &self.semantic else {
            return;
        };
        let expires = semantic::now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        tier.index.insert(partition, id, vector, expires);
        if let Store::Redis(redis) = &self.store {
            let max = self.settings.cache.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
            redis.later(RedisCommand::Cmd(feed::xadd(partition, id, expires, vector, max)));
        }
    }

    /// Removes the entry `id` in both forms; whether there was one.
    pub async fn remove(&self, id: CacheId) -> Result<bool, redis_store::RedisError> {
        if let Some(tier) = &self.semantic {
            tier.index.remove_everywhere(id);
        }
        match &self.store {
            Store::Memory(entries) => {
                let plain = entries.remove(&EntryKey { id, stream: false }).is_some();
                let stream = entries.remove(&EntryKey { id, stream: true }).is_some();
                Ok(plain || stream)
            }
            Store::Redis(redis) => Ok(redis.remove(id).await? > 0),
        }
    }

    /// Removes every entry of `namespace` (in memory, in the background: entries stop being
    /// served at once).
    pub async fn clear_namespace(&self, namespace: &str) -> Result<(), redis_store::RedisError> {
        match &self.store {
            Store::Memory(entries) => {
                let namespace: Arc<str> = Arc::from(namespace);
                // Only fails when invalidation closures are not enabled, which `new` does.
                let _ = entries.invalidate_entries_if(move |_, v| *v.namespace == *namespace);
                Ok(())
            }
            Store::Redis(redis) => redis.clear_namespace(namespace).await.map(|_| ()),
        }
    }

    /// Entries held in memory (`None` with Redis: counting its keys is a scan).
    pub fn entry_count(&self) -> Option<u64> {
        match &self.store {
            Store::Memory(entries) => {
                entries.run_pending_tasks();
                Some(entries.entry_count())
            }
            Store::Redis(_) => None,
        }
    }
}

/// `answer` in the other form, where that is exact.
fn converted(answer: &CachedAnswer, stream: bool) -> Option<CachedAnswer> {
    let body = match (&answer.body, stream) {
        (CachedBody::Plain(p), true) => CachedBody::Stream(convert::plain_to_stream(p)?),
        (CachedBody::Stream(chunks), false) => CachedBody::Plain(convert::stream_to_plain(chunks)?),
        _ => return None,
    };
    Some(CachedAnswer {
        namespace: Arc::clone(&answer.namespace),
        provider: Arc::clone(&answer.provider),
        model_deployment: Arc::clone(&answer.model_deployment),
        body,
        ttl: answer.ttl,
    })
}

/// The semantic part of a miss: where its embedding goes once the answer is stored.
pub struct SemanticTicket {
    pub partition: CacheId,
    pub vector: Vec<f32>,
}

/// What a cacheable request carries from the lookup phase to where its answer is stored.
pub struct CacheTicket {
    pub cache: Arc<ResponseCache>,
    pub id: CacheId,
    pub namespace: Arc<str>,
    pub ttl: Duration,
    /// `x-bf-cache-no-store`: looked up, never stored.
    pub store: bool,
    /// `extra_fields.cache_debug` of the miss.
    pub debug: String,
    pub semantic: Option<SemanticTicket>,
}

impl CacheTicket {
    /// `extra_fields.cache_debug` for a miss (the id the answer is stored under).
    pub fn miss_debug(&self) -> String {
        self.debug.clone()
    }

    pub fn store_plain(&self, answer: &Payload, provider: &Arc<str>, model_deployment: &Arc<str>) {
        self.store(CachedBody::Plain(answer.clone()), provider, model_deployment);
    }

    pub fn store(&self, body: CachedBody, provider: &Arc<str>, model_deployment: &Arc<str>) {
        if !self.store {
            return;
        }
        self.cache.insert(
            self.id,
            CachedAnswer {
                namespace: Arc::clone(&self.namespace),
                provider: Arc::clone(provider),
                model_deployment: Arc::clone(model_deployment),
                body,
                ttl: self.ttl,
            },
        );
        if let Some(s) = &self.semantic
            && !self.ttl.is_zero()
        {
            self.cache.index_semantic(s.partition, self.id, &s.vector, self.ttl);
        }
    }
}

/// The semantic tier's part of `cache_debug`: what embedded the conversation and how.
pub struct SemanticDebug<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub input_tokens: u64,
    pub threshold: f64,
    /// On a semantic hit.
    pub similarity: Option<f32>,
}

/// `extra_fields.cache_debug`, in Bifrost's fields: `cache_hit`, `cache_id`, and `hit_type`
/// on a hit; `provider_used`, `model_used`, `input_tokens` and `threshold` when the semantic
/// tier embedded the request, and `similarity` on a semantic hit. Hand-written: an exact hit
/// is cheaper than nginx proxying the request, and this runs on every one.
pub fn debug_json(hit: bool, id: CacheId, semantic: Option<&SemanticDebug<'_>>) -> String {
    let mut out = String::with_capacity(96);
    out.push_str(if hit {
        "{\"cache_hit\":true"
    } else {
        "{\"cache_hit\":false"
    });
    out.push_str(",\"cache_id\":\"");
    id.write_hex(&mut out);
    out.push('"');
    if hit {
        out.push_str(match semantic.and_then(|s| s.similarity) {
            Some(_) => ",\"hit_type\":\"semantic\"",
            None => ",\"hit_type\":\"direct\"",
        });
    }
    if let Some(s) = semantic {
        use std::fmt::Write;
        out.push_str(",\"provider_used\":");
        out.push_str(&serde_json::to_string(s.provider).unwrap_or_default());
        out.push_str(",\"model_used\":");
        out.push_str(&serde_json::to_string(s.model).unwrap_or_default());
        let _ = write!(
            out,
            ",\"input_tokens\":{},\"threshold\":{}",
            s.input_tokens, s.threshold
        );
        if let Some(sim) = s.similarity {
            let _ = write!(out, ",\"similarity\":{}", (f64::from(sim) * 1e4).round() / 1e4);
        }
    }
    out.push('}');
    out
}

/// What a request asks of the cache, in Bifrost's headers.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CacheHeaders {
    /// `x-bf-cache-key`: cache this request, in this namespace (the tenant).
    pub namespace: Option<String>,
    /// `x-bf-cache-ttl`: this entry's lifetime (`30s`, `5m`, or whole seconds).
    pub ttl: Option<Duration>,
    /// `x-bf-cache-no-store: true`: look up, never store.
    pub no_store: bool,
    /// `x-bf-cache-type`: only the exact (`direct`) or only the semantic tier; unset: both.
    pub only: Option<Tier>,
    /// `x-bf-cache-threshold`: raises the configured semantic threshold for this request
    /// (a lower value is ignored: a client cannot loosen what the operator set).
    pub threshold: Option<f64>,
}

/// A cache tier, as `x-bf-cache-type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Direct,
    Semantic,
}

impl CacheHeaders {
    /// Reads the `x-bf-cache-*` headers from all of a request's (lower-case names, in one
    /// pass: five lookups in the header map cost more than one walk over it); a malformed one
    /// is the client's error, named. Other `x-bf-cache-*` names are ignored.
    pub fn parse<'h>(headers: impl Iterator<Item = (&'h str, &'h [u8])>) -> Result<CacheHeaders, String> {
        let mut out = CacheHeaders::default();
        for (name, value) in headers {
            let Some(which) = name.strip_prefix("x-bf-cache-") else {
                continue;
            };
            let text = std::str::from_utf8(value)
                .ok()
                .filter(|s| s.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
                .ok_or_else(|| format!("{name} must be visible ASCII"))?
                .trim();
            match which {
                "key" => {
                    if text.is_empty() || text.len() > 256 {
                        return Err("x-bf-cache-key must be 1 to 256 characters".into());
                    }
                    out.namespace = Some(text.to_string());
                }
                "ttl" => {
                    let parsed = match text.parse::<u64>() {
                        Ok(secs) => Ok(Duration::from_secs(secs)),
                        Err(_) => crate::config::parse_duration(text),
                    };
                    out.ttl = Some(parsed.map_err(|e| format!("x-bf-cache-ttl `{text}`: {e}"))?);
                }
                "no-store" => {
                    out.no_store = match text {
                        v if v.eq_ignore_ascii_case("true") => true,
                        v if v.eq_ignore_ascii_case("false") => false,
                        other => return Err(format!("x-bf-cache-no-store must be true or false, got `{other}`")),
                    };
                }
                "type" => {
                    out.only = Some(match text {
                        "direct" => Tier::Direct,
                        "semantic" => Tier::Semantic,
                        other => return Err(format!("x-bf-cache-type must be direct or semantic, got `{other}`")),
                    });
                }
                "threshold" => {
                    out.threshold = Some(
                        text.parse::<f64>()
                            .ok()
                            .filter(|v| *v >= 0.0 && *v <= 1.0)
                            .ok_or_else(|| {
                                format!("x-bf-cache-threshold must be a number from 0 to 1, got `{text}`")
                            })?,
                    );
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_and_bad_ones_named() {
        let parse = |pairs: &[(&str, &str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(
                    http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    http::HeaderValue::from_str(v).expect("value"),
                );
            }
            CacheHeaders::parse(h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
        };
        assert_eq!(parse(&[]), Ok(CacheHeaders::default()));
        let h = parse(&[
            ("x-bf-cache-key", "team-a"),
            ("x-bf-cache-ttl", "90"),
            ("x-bf-cache-no-store", "TRUE"),
            ("x-bf-cache-type", "direct"),
        ])
        .expect("valid");
        assert_eq!(h.namespace.as_deref(), Some("team-a"));
        assert_eq!(h.ttl, Some(Duration::from_secs(90)));
        assert!(h.no_store && h.only == Some(Tier::Direct));
        assert_eq!(
            parse(&[("x-bf-cache-threshold", "0.93"), ("x-bf-cache-type", "semantic")]).map(|h| (h.threshold, h.only)),
            Ok((Some(0.93), Some(Tier::Semantic)))
        );
        assert_eq!(
            parse(&[("x-bf-cache-ttl", "2m")]).map(|h| h.ttl),
            Ok(Some(Duration::from_secs(120)))
        );
        for (name, value, says) in [
            ("x-bf-cache-ttl", "soon", "x-bf-cache-ttl"),
            ("x-bf-cache-no-store", "yes", "true or false"),
            ("x-bf-cache-type", "fuzzy", "direct or semantic"),
            ("x-bf-cache-key", " ", "1 to 256"),
            ("x-bf-cache-threshold", "1.5", "from 0 to 1"),
            ("x-bf-cache-threshold", "high", "from 0 to 1"),
        ] {
            let e = parse(&[(name, value)]).expect_err("refused");
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn memory_is_bounded_by_entries_and_by_bytes() {
        let answer = |bytes: usize| CachedAnswer {
            namespace: Arc::from("n"),
            provider: Arc::from("p"),
            model_deployment: Arc::from("m"),
            body: CachedBody::Plain(Payload {
                json: vec![b' '; bytes],
                ..Payload::default()
            }),
            ttl: Duration::from_secs(60),
        };
        let bounded = |max_entries: u64, max_bytes: u64, bytes: usize| {
            let cache = ResponseCache::new(&CacheSettings {
                cache: CacheConfig {
                    max_entries: Some(max_entries),
                    max_bytes: Some(crate::config::Size(max_bytes)),
                    ..CacheConfig::default()
                },
                redis: RedisConfig::default(),
            })
            .expect("memory cache");
            for i in 0..50u8 {
                cache.insert(CacheId([i; 16]), answer(bytes));
            }
            cache.entry_count().expect("memory")
        };
        assert!(bounded(5, 1 << 20, 10) <= 5, "small answers: the entry bound");
        let by_bytes = bounded(1000, 40 * 1024, 8 * 1024);
        assert!((1..=5).contains(&by_bytes), "8 KiB answers in 40 KiB: {by_bytes}");
    }

    #[actix_rt::test]
    async fn entries_are_kept_per_form_and_removed_by_id_or_namespace() {
        let cache = ResponseCache::new(&CacheSettings {
            cache: CacheConfig::default(),
            redis: RedisConfig::default(),
        })
        .expect("memory cache");
        let answer = |ns: &str, stream: bool| CachedAnswer {
            namespace: Arc::from(ns),
            provider: Arc::from("p"),
            model_deployment: Arc::from("m"),
            body: if stream {
                CachedBody::Stream(vec![Payload::default()])
            } else {
                CachedBody::Plain(Payload::default())
            },
            ttl: Duration::from_secs(60),
        };
        let a = CacheId::of("a", br#"{"x":1}"#).expect("id");
        let b = CacheId::of("b", br#"{"x":1}"#).expect("id");
        cache.insert(a, answer("a", false));
        assert!(cache.get("", a, false).await.is_some());
        assert!(
            cache.get("", a, true).await.is_none(),
            "a plain entry does not answer a stream"
        );
        cache.insert(a, answer("a", true));
        cache.insert(b, answer("b", false));
        assert!(cache.remove(a).await.expect("memory"));
        assert!(cache.get("", a, false).await.is_none() && cache.get("", a, true).await.is_none());
        assert!(!cache.remove(a).await.expect("memory"));
        cache.insert(a, answer("a", false));
        cache.clear_namespace("b").await.expect("memory");
        assert!(cache.get("", b, false).await.is_none());
        assert!(cache.get("", a, false).await.is_some());
        // A zero TTL stores nothing.
        let mut zero = answer("a", true);
        zero.ttl = Duration::ZERO;
        cache.insert(b, zero);
        assert!(cache.get("", b, true).await.is_none());
    }
}
