//! The response cache (DESIGN §4), exact tier, in memory.
//!
//! - A request is looked up only when the cache is enabled and it asks for it: the
//!   `x-bf-cache-key` header (its value is the tenant's namespace) or an alias with
//!   `cache: true`. Everything else costs nothing here.
//! - Entries are keyed by [`CacheId`] (tenant + canonical request) and by form: a plain answer
//!   and a stream are stored apart, each replayed in its own form (a stream as its chunks,
//!   without the original pacing).
//! - An answer is stored only when it is whole: a plain answer from a provider, a stream that
//!   ended with `[DONE]` and no error event. A hit costs 0 and is recorded against no provider.
//! - Bounded by entries (`cache.max_entries`), each with its TTL (`cache.ttl`, or the request's
//!   `x-bf-cache-ttl`); concurrent reads and writes take no lock on the request path (moka).

pub mod key;

pub use key::CacheId;

use crate::config::CacheConfig;
use moka::sync::Cache;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchyard_plugin_api::host::Payload;

/// Default entry lifetime when `cache.ttl` is not set.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Default bound when `cache.max_entries` is not set.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;

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
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
}

pub struct ResponseCache {
    entries: Cache<EntryKey, Arc<CachedAnswer>>,
    pub default_ttl: Duration,
    /// The config it was built from: a reload that leaves it unchanged keeps the entries.
    pub config: CacheConfig,
    pub stats: CacheStats,
}

impl ResponseCache {
    pub fn new(config: &CacheConfig) -> ResponseCache {
        let entries = Cache::builder()
            .max_capacity(config.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES))
            .expire_after(PerEntryTtl)
            .support_invalidation_closures()
            .build();
        ResponseCache {
            entries,
            default_ttl: config.ttl.map_or(DEFAULT_TTL, |t| t.0),
            config: config.clone(),
            stats: CacheStats::default(),
        }
    }

    /// The stored answer for `id` in the form asked for, if any (counted as a hit or miss).
    pub fn get(&self, id: CacheId, stream: bool) -> Option<Arc<CachedAnswer>> {
        let found = self.entries.get(&EntryKey { id, stream });
        let counter = if found.is_some() {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn insert(&self, id: CacheId, answer: CachedAnswer) {
        let stream = matches!(answer.body, CachedBody::Stream(_));
        if answer.ttl.is_zero() {
            return;
        }
        self.entries.insert(EntryKey { id, stream }, Arc::new(answer));
        self.stats.stores.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes the entry `id` in both forms; whether there was one.
    pub fn remove(&self, id: CacheId) -> bool {
        let plain = self.entries.remove(&EntryKey { id, stream: false }).is_some();
        let stream = self.entries.remove(&EntryKey { id, stream: true }).is_some();
        plain || stream
    }

    /// Removes every entry of `namespace` (in the background: entries stop being served at once).
    pub fn clear_namespace(&self, namespace: &str) {
        let namespace: Arc<str> = Arc::from(namespace);
        // Only fails when invalidation closures are not enabled, which `new` does.
        let _ = self
            .entries
            .invalidate_entries_if(move |_, v| *v.namespace == *namespace);
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

/// What a cacheable request carries from the lookup phase to where its answer is stored.
pub struct CacheTicket {
    pub cache: Arc<ResponseCache>,
    pub id: CacheId,
    pub namespace: Arc<str>,
    pub ttl: Duration,
    /// `x-bf-cache-no-store`: looked up, never stored.
    pub store: bool,
}

impl CacheTicket {
    /// `extra_fields.cache_debug` for a miss (the id the answer is stored under).
    pub fn miss_debug(&self) -> String {
        debug_json(false, self.id)
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
    }
}

/// `{"cache_hit":…,"cache_id":"…"}` plus `"hit_type":"direct"` on a hit.
pub fn debug_json(hit: bool, id: CacheId) -> String {
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
        out.push_str(",\"hit_type\":\"direct\"");
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
    /// `x-bf-cache-type: semantic`: only the semantic tier (not active yet: no lookup).
    pub semantic_only: bool,
}

impl CacheHeaders {
    /// Reads the headers (`header` gives a header's bytes by name); a malformed one is the
    /// client's error, named.
    pub fn parse<'h>(header: impl Fn(&str) -> Option<&'h [u8]>) -> Result<CacheHeaders, String> {
        let text = |name: &str| -> Result<Option<&'h str>, String> {
            header(name)
                .map(|v| {
                    std::str::from_utf8(v)
                        .ok()
                        .filter(|s| s.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
                        .ok_or_else(|| format!("{name} must be visible ASCII"))
                })
                .transpose()
        };
        let mut out = CacheHeaders::default();
        if let Some(ns) = text("x-bf-cache-key")? {
            let ns = ns.trim();
            if ns.is_empty() || ns.len() > 256 {
                return Err("x-bf-cache-key must be 1 to 256 characters".into());
            }
            out.namespace = Some(ns.to_string());
        }
        if let Some(ttl) = text("x-bf-cache-ttl")? {
            let ttl = ttl.trim();
            let parsed = match ttl.parse::<u64>() {
                Ok(secs) => Ok(Duration::from_secs(secs)),
                Err(_) => crate::config::parse_duration(ttl),
            };
            out.ttl = Some(parsed.map_err(|e| format!("x-bf-cache-ttl `{ttl}`: {e}"))?);
        }
        if let Some(v) = text("x-bf-cache-no-store")? {
            out.no_store = match v.trim() {
                v if v.eq_ignore_ascii_case("true") => true,
                v if v.eq_ignore_ascii_case("false") => false,
                other => return Err(format!("x-bf-cache-no-store must be true or false, got `{other}`")),
            };
        }
        if let Some(kind) = text("x-bf-cache-type")? {
            out.semantic_only = match kind.trim() {
                "direct" => false,
                "semantic" => true,
                other => return Err(format!("x-bf-cache-type must be direct or semantic, got `{other}`")),
            };
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
            CacheHeaders::parse(|name| h.get(name).map(|v| v.as_bytes()))
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
        assert!(h.no_store && !h.semantic_only);
        assert_eq!(
            parse(&[("x-bf-cache-ttl", "2m")]).map(|h| h.ttl),
            Ok(Some(Duration::from_secs(120)))
        );
        for (name, value, says) in [
            ("x-bf-cache-ttl", "soon", "x-bf-cache-ttl"),
            ("x-bf-cache-no-store", "yes", "true or false"),
            ("x-bf-cache-type", "fuzzy", "direct or semantic"),
            ("x-bf-cache-key", " ", "1 to 256"),
        ] {
            let e = parse(&[(name, value)]).expect_err("refused");
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn entries_are_kept_per_form_and_removed_by_id_or_namespace() {
        let cache = ResponseCache::new(&CacheConfig::default());
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
        assert!(cache.get(a, false).is_some());
        assert!(cache.get(a, true).is_none(), "a plain entry does not answer a stream");
        cache.insert(a, answer("a", true));
        cache.insert(b, answer("b", false));
        assert!(cache.remove(a));
        assert!(cache.get(a, false).is_none() && cache.get(a, true).is_none());
        assert!(!cache.remove(a));
        cache.insert(a, answer("a", false));
        cache.clear_namespace("b");
        assert!(cache.get(b, false).is_none());
        assert!(cache.get(a, false).is_some());
        // A zero TTL stores nothing.
        let mut zero = answer("a", true);
        zero.ttl = Duration::ZERO;
        cache.insert(b, zero);
        assert!(cache.get(b, true).is_none());
    }
}
