//! The admin endpoints and who may call them (DESIGN §3 "Admin"): with `admin.key`
//! configured, a request must carry `Authorization: Bearer <key>`; without one, only loopback
//! clients are served. `/health` is not among them: it says only that the daemon is alive.

use super::AppState;
use super::error::HttpError;
use super::respond::{self, ErrorDetails, error_response};
use crate::config::AdminConfig;
use crate::resilience::breaker::now_ms;
use crate::routing::resolve_key;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

/// Who may use the admin endpoints.
pub enum AdminAccess {
    /// Requests must carry this key as a Bearer token.
    Key(Box<[u8]>),
    /// No key: loopback clients only.
    LoopbackOnly,
}

/// Never prints the key.
impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminAccess::Key(_) => "AdminAccess::Key(..)",
            AdminAccess::LoopbackOnly => "AdminAccess::LoopbackOnly",
        })
    }
}

impl AdminAccess {
    /// From `admin.key`; a key whose environment variable is unset leaves admin to loopback
    /// clients, with a warning (as a provider key whose variable is unset is disabled).
    pub fn from_config(cfg: &AdminConfig, warnings: &mut Vec<String>) -> AdminAccess {
        let Some(value) = &cfg.key else {
            return AdminAccess::LoopbackOnly;
        };
        match resolve_key(value) {
            Ok(key) if !key.is_empty() => AdminAccess::Key(key.into_bytes().into_boxed_slice()),
            Ok(_) => AdminAccess::LoopbackOnly,
            Err(var) => {
                warnings.push(format!(
                    "admin.key: environment variable {var} is not set; admin endpoints answer loopback clients only"
                ));
                AdminAccess::LoopbackOnly
            }
        }
    }

    /// Whether `req` may use an admin endpoint.
    pub fn check(&self, req: &HttpRequest) -> Result<(), HttpError> {
        match self {
            AdminAccess::Key(key) => {
                let given = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| bearer_token(v.as_bytes()))
                    .unwrap_or_default();
                if same_secret(key, given) {
                    Ok(())
                } else {
                    Err(HttpError::AdminKeyRequired)
                }
            }
            AdminAccess::LoopbackOnly => match req.peer_addr() {
                Some(peer) if is_loopback(peer.ip()) => Ok(()),
                _ => Err(HttpError::AdminLoopbackOnly),
            },
        }
    }
}

/// The token of `Bearer <token>` (the scheme in any case, as RFC 9110 allows).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(rest.trim_ascii())
}

/// Compares in a time that depends on the expected key's length only, so response times
/// tell nothing about how much of a guess was right.
fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

/// 127.0.0.0/8 and ::1, also as an IPv4-mapped IPv6 address (a dual-stack listener).
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The answer to a caller that may not use an admin endpoint.
fn refused(req: &HttpRequest, e: &HttpError) -> HttpResponse {
    let response = error_response(e, &respond::request_id(req), &ErrorDetails::none());
    tracing::info!(
        path = req.path(),
        status = response.status().as_u16(),
        "admin request refused"
    );
    response
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `GET /admin/status`: providers (plugin, keys by index, circuits, in-flight counts, health
/// counters), the body budget, and report batches dropped.
pub async fn status(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = state.admin.check(&req) {
        return refused(&req, &e);
    }
    let table = state.router.current();
    let now = now_ms();
    let providers: serde_json::Map<String, serde_json::Value> = table
        .providers
        .iter()
        .map(|(name, p)| {
            let circuits: Vec<_> = (0..p.breaker.slot_count())
                .map(|slot| p.breaker.state(slot, now))
                .collect();
            // Usable keys only, named by their place in the config; never their value.
            let keys: Vec<_> = p
                .keys
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "index": k.index,
                        "weight": k.weight,
                        "models": k.models.as_deref().unwrap_or(&["*".to_string()]),
                    })
                })
                .collect();
            let (in_flight, retrying) = p.budget.load();
            (
                name.clone(),
                serde_json::json!({
                    "plugin": p.codec.plugin_name(),
                    "local": p.codec.is_local(),
                    "plugin_disabled": p.codec.is_disabled(),
                    "plugin_panics": p.codec.panic_count(),
                    "keys": keys,
                    // One per usable key, in the order of `keys` (one for a provider
                    // without keys).
                    "circuits": circuits,
                    "in_flight": in_flight,
                    "retries_in_flight": retrying,
                    "stats": &*p.health.snapshot(),
                }),
            )
        })
        .collect();
    let budget = &crate::body_budget::IN_FLIGHT;
    respond::ok_json(
        &req,
        serde_json::json!({
            "providers": providers,
            // In config order (pre phases run in it; post, chunk and done phases in reverse).
            "hooks": table.hooks.hooks.iter().map(|h| h.status()).collect::<Vec<_>>(),
            "body_budget": {
                "limit_bytes": budget.limit(),
                "in_use_bytes": budget.in_use(),
                "refused": budget.refused(),
            },
            "dropped_report_batches": crate::actors::outbox::DROPPED_BATCHES.load(Ordering::Relaxed),
            "cache": table.cache.as_ref().map(|c| serde_json::json!({
                "backend": c.backend_name(),
                "entries": c.entry_count(),
                "hits": c.stats.hits.load(Ordering::Relaxed),
                "semantic_hits": c.stats.semantic_hits.load(Ordering::Relaxed),
                "misses": c.stats.misses.load(Ordering::Relaxed),
                "stores": c.stats.stores.load(Ordering::Relaxed),
                "backend_errors": c.redis().map_or(0, |r| r.errors.load(Ordering::Relaxed)),
                "semantic": c.semantic.as_ref().map(|s| serde_json::json!({
                    "embedding": &*s.embedding,
                    "threshold": s.threshold,
                    "indexed": s.index.len(),
                    "embedding_failures": c.stats.embedding_failures.load(Ordering::Relaxed),
                })),
            })),
            "cost": {
                "priced_models": table.prices.len(),
                // Answers with usage whose model has no price: they carried no usage.cost.
                "unpriced_answers": crate::cost::unpriced_answers(),
            },
            "reloads": {
                "ok": crate::reload::RELOADS_OK.load(Ordering::Relaxed),
                "failed": crate::reload::RELOADS_FAILED.load(Ordering::Relaxed),
                "file_events": crate::reload::FILE_EVENTS.load(Ordering::Relaxed),
                "last_error": crate::reload::LAST_ERROR.lock().ok().and_then(|e| e.clone()),
            },
        }),
    )
}

/// The cache's backend (Redis) failed an admin request: 503, and nothing was claimed done.
fn backend_down(req: &HttpRequest, e: &crate::cache::redis_store::RedisError) -> HttpResponse {
    tracing::warn!(error = %e, "admin: the cache backend failed");
    error_response(
        &HttpError::Unavailable("the cache's Redis"),
        &respond::request_id(req),
        &ErrorDetails::none(),
    )
}

/// The cache an admin request acts on: refused without admin access, 404 with the cache off.
fn admin_cache(req: &HttpRequest, state: &AppState) -> Result<Arc<crate::cache::ResponseCache>, HttpError> {
    state.admin.check(req)?;
    state.router.current().cache.clone().ok_or(HttpError::CacheDisabled)
}

/// `DELETE /admin/cache/{cache_id}`: removes one cached answer (both its plain and streamed
/// form). 200 `{"deleted": true}`, or 404 when there is no such entry.
pub async fn delete_cache_entry(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let cache = match admin_cache(&req, &state) {
        Ok(cache) => cache,
        Err(e) => return refused(&req, &e),
    };
    let id = path.into_inner();
    let Some(parsed) = crate::cache::CacheId::from_hex(&id) else {
        let e = HttpError::BadRequest(format!(
            "`{}` is not a cache id (32 hex digits, as in extra_fields.cache_debug.cache_id)",
            crate::observability::escaped(&id)
        ));
        return error_response(&e, &respond::request_id(&req), &ErrorDetails::none());
    };
    let removed = match cache.remove(parsed).await {
        Ok(removed) => removed,
        Err(e) => return backend_down(&req, &e),
    };
    if !removed {
        return error_response(
            &HttpError::NotFound(format!("no cached answer with id {id}")),
            &respond::request_id(&req),
            &ErrorDetails::none(),
        );
    }
    respond::ok_json(&req, serde_json::json!({"deleted": true, "cache_id": id}))
}

/// `DELETE /admin/cache?cache_key=NS`: removes every cached answer of the namespace `NS` (the
/// `x-bf-cache-key` they were stored under; an empty value is the namespace of aliases with
/// `cache: true`).
pub async fn clear_cache(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let cache = match admin_cache(&req, &state) {
        Ok(cache) => cache,
        Err(e) => return refused(&req, &e),
    };
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string());
    let Some(namespace) = query.ok().and_then(|q| q.get("cache_key").cloned()) else {
        let e = HttpError::BadRequest("give the namespace to clear: DELETE /admin/cache?cache_key=NS".into());
        return error_response(&e, &respond::request_id(&req), &ErrorDetails::none());
    };
    if let Err(e) = cache.clear_namespace(&namespace).await {
        return backend_down(&req, &e);
    }
    respond::ok_json(&req, serde_json::json!({"cleared": true, "cache_key": namespace}))
}

/// `POST /admin/reload`: re-reads the config file now. 200 with what changed, or 422 with the
/// message `switchyard check` would print (the running config stays).
pub async fn reload(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = state.admin.check(&req) {
        return error_response(&e, &respond::request_id(&req), &ErrorDetails::none());
    }
    let Some(watcher) = &state.reload else {
        let e = HttpError::Unavailable("config reload");
        return error_response(&e, &respond::request_id(&req), &ErrorDetails::none());
    };
    match watcher.send(crate::reload::Reload(crate::reload::Trigger::Admin)).await {
        Ok(Ok(summary)) => respond::ok_json(&req, serde_json::json!({"status": "reloaded", "changes": summary})),
        Ok(Err(message)) => {
            let e = HttpError::InvalidConfig(message);
            error_response(&e, &respond::request_id(&req), &ErrorDetails::none())
        }
        Err(_) => {
            let e = HttpError::Unavailable("the config watcher");
            error_response(&e, &respond::request_id(&req), &ErrorDetails::none())
        }
    }
}

/// `GET /v1/usage?start=&end=`: usage per provider and model for a time range (DESIGN §3),
/// from the ledger's time buckets (see `actors::usage_ledger`). `start` and `end` are each an
/// RFC 3339 time or Unix seconds; `end` defaults to now and `start` to the daemon's start.
/// A bucket is counted when its start lies in `[start, end)`; `range` in the answer gives
/// the edges, how precisely they were honoured (`minute` or `hour`) and since when usage is
/// kept. `from`/`to` repeat the range's edges for clients of the answer before ranges.
pub async fn usage(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = state.admin.check(&req) {
        return refused(&req, &e);
    }
    let range = match usage_range(req.query_string()) {
        Ok(range) => range,
        Err(e) => return error_response(&e, &respond::request_id(&req), &ErrorDetails::none()),
    };
    let Some(report) = state.ledger.usage(range).await else {
        let e = HttpError::Unavailable("the usage ledger");
        return error_response(&e, &respond::request_id(&req), &ErrorDetails::none());
    };
    let mut body = report.to_json();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("object".into(), "usage".into());
        obj.insert("from".into(), report.range.start.into());
        obj.insert("to".into(), report.range.end.into());
    }
    respond::ok_json(&req, body)
}

/// A bad `/v1/usage` query: a 400 whose error names the parameter in `param`.
struct UsageQueryError {
    param: Option<&'static str>,
    error: HttpError,
}

impl UsageQueryError {
    fn new(param: Option<&'static str>, message: String) -> UsageQueryError {
        UsageQueryError {
            param,
            error: HttpError::BadRequest(message),
        }
    }
}

impl super::error::ClientError for UsageQueryError {
    fn status(&self) -> actix_web::http::StatusCode {
        self.error.status()
    }
    fn error_object(&self) -> serde_json::Value {
        let mut object = self.error.error_object();
        object["param"] = self.param.into();
        object
    }
    fn retry_after(&self) -> Option<u64> {
        self.error.retry_after()
    }
}

/// The range of a `/v1/usage` query string (`from`/`to` are refused with the right names;
/// other parameters are ignored).
fn usage_range(query: &str) -> Result<crate::actors::usage_ledger::UsageRange, UsageQueryError> {
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(query)
        .map_err(|e| UsageQueryError::new(None, format!("the query string of /v1/usage is malformed: {e}")))?;
    let time = |param: &'static str| -> Result<Option<u64>, UsageQueryError> {
        let Some(value) = query.get(param) else {
            return Ok(None);
        };
        usage_time(value).map(Some).ok_or_else(|| {
            let shown: String = value.chars().take(64).collect();
            UsageQueryError::new(
                Some(param),
                format!(
                    "`{param}` must be an RFC 3339 time (`2026-12-05T10:00:00Z`, or with an offset such as \
                     `+01:00`, sent as `%2B01:00`) or Unix seconds (`1796464800`), up to the year 9999; got `{}`",
                    crate::observability::escaped(shown)
                ),
            )
        })
    };
    // Names a reader might guess: refused with the right ones, never silently ignored.
    for (guess, right) in [("from", "start"), ("to", "end")] {
        if query.contains_key(guess) {
            return Err(UsageQueryError::new(
                Some(guess),
                format!("/v1/usage takes `{right}`, not `{guess}` (RFC 3339 or Unix seconds)"),
            ));
        }
    }
    let range = crate::actors::usage_ledger::UsageRange {
        start: time("start")?,
        end: time("end")?,
    };
    // Only against an `end` given: a `start` later than now is an empty range, not a client
    // error (its clock may be ahead of ours).
    if let (Some(start), Some(end)) = (range.start, range.end)
        && start > end
    {
        return Err(UsageQueryError::new(
            Some("start"),
            format!("`start` ({start}) is after `end` ({end}) (Unix seconds)"),
        ));
    }
    Ok(range)
}

/// 9999-12-31T23:59:59Z, the latest RFC 3339 time: a larger number is more likely to be
/// milliseconds than a time.
const LATEST_USAGE_TIME: u64 = 253_402_300_799;

/// Unix seconds from Unix seconds or an RFC 3339 time, rounded up (a bucket's start, whole
/// seconds, is at or after a time exactly when it is at or after that time rounded up).
/// RFC 3339 as `humantime::parse_rfc3339_weak` reads it (a space for the `T` and a missing
/// `Z` accepted), plus lowercase letters and any `±HH:MM` offset.
fn usage_time(value: &str) -> Option<u64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().filter(|&secs| secs <= LATEST_USAGE_TIME);
    }
    let upper = value.to_ascii_uppercase();
    let (local, offset) = match split_utc_offset(&upper) {
        // `Z` and an offset both: no time.
        Some((local, _)) if local.ends_with('Z') => return None,
        Some(split) => split,
        None => (upper.as_str(), 0),
    };
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    let fraction = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let secs = unix_secs(t)
        .checked_add(u64::from(fraction > 0))?
        .checked_add_signed(-offset)?;
    (secs <= LATEST_USAGE_TIME).then_some(secs)
}

/// `(time, offset seconds)` of an RFC 3339 time ending in `±HH:MM` (humantime reads UTC
/// times only), `None` when there is no such offset. In a query string an unescaped `+` reads
/// as a space, so a space before the final `HH:MM` is taken for a `+`.
fn split_utc_offset(value: &str) -> Option<(&str, i64)> {
    let b = value.as_bytes();
    // The offset follows at least `YYYY-MM-DDTHH:MM:SS`.
    let at = b.len().checked_sub(6).filter(|&at| at >= 19)?;
    let sign = match b[at] {
        b'+' | b' ' => 1,
        b'-' => -1,
        _ => return None,
    };
    let two = |i: usize| -> Option<i64> {
        let (tens, ones) = (b[i], b[i + 1]);
        (tens.is_ascii_digit() && ones.is_ascii_digit()).then(|| i64::from((tens - b'0') * 10 + (ones - b'0')))
    };
    let (hours, minutes) = (two(at + 1)?, two(at + 4)?);
    (b[at + 3] == b':' && hours < 24 && minutes < 60)
        .then_some((value.get(..at)?, sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ClientError;
    use actix_web::test::TestRequest;

    fn request(peer: &str, auth: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(peer.parse().expect("socket address"));
        if let Some(a) = auth {
            r = r.insert_header((header::AUTHORIZATION, a));
        }
        r.to_http_request()
    }

    fn code(result: Result<(), HttpError>) -> Option<String> {
        result
            .err()
            .map(|e| e.error_object()["code"].as_str().unwrap_or("").to_string())
    }

    #[test]
    fn without_a_key_only_loopback_clients_are_served() {
        let access = AdminAccess::LoopbackOnly;
        for peer in [
            "127.0.0.1:1000",
            "127.9.8.7:1000",
            "[::1]:1000",
            "[::ffff:127.0.0.1]:1000",
        ] {
            assert_eq!(code(access.check(&request(peer, None))), None, "{peer}");
        }
        for peer in [
            "10.0.0.1:1000",
            "192.168.1.2:1000",
            "[2001:db8::1]:1000",
            "[::ffff:10.0.0.1]:1000",
        ] {
            assert_eq!(
                code(access.check(&request(peer, None))).as_deref(),
                Some("admin_loopback_only"),
                "{peer}"
            );
        }
    }

    #[test]
    fn with_a_key_the_bearer_token_must_match_from_anywhere() {
        let access = AdminAccess::Key(b"admin-secret-1".to_vec().into_boxed_slice());
        for auth in [
            "Bearer admin-secret-1",
            "bearer admin-secret-1",
            "BEARER  admin-secret-1 ",
        ] {
            assert_eq!(code(access.check(&request("10.1.2.3:5", Some(auth)))), None, "{auth:?}");
        }
        for auth in [
            None,
            Some("Bearer admin-secret-"),
            Some("Bearer admin-secret-12"),
            Some("Bearer admin-secret-2"),
            Some("Basic admin-secret-1"),
            Some("admin-secret-1"),
            Some("Bearer"),
        ] {
            assert_eq!(
                code(access.check(&request("127.0.0.1:5", auth))).as_deref(),
                Some("invalid_admin_key"),
                "{auth:?}: loopback is no substitute for the key"
            );
        }
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"abc", b""));
        // Extra bytes beyond the key that happen to be zero must not pass either.
        assert!(!same_secret(b"abc", b"abc\0"));
    }

    #[test]
    fn an_unset_key_variable_warns_naming_the_field_and_falls_back_to_loopback() {
        let mut warnings = Vec::new();
        let cfg = AdminConfig {
            key: Some("env.SWITCHYARD_TEST_ADMIN_KEY_NEVER_SET".into()),
        };
        let access = AdminAccess::from_config(&cfg, &mut warnings);
        assert!(matches!(access, AdminAccess::LoopbackOnly), "{access:?}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("admin.key:") && warnings[0].contains("SWITCHYARD_TEST_ADMIN_KEY_NEVER_SET"),
            "{warnings:?}"
        );
        let literal = AdminConfig {
            key: Some("literal-admin-key".into()),
        };
        let access = AdminAccess::from_config(&literal, &mut warnings);
        assert!(matches!(&access, AdminAccess::Key(k) if &**k == b"literal-admin-key"));
        assert_eq!(
            format!("{access:?}"),
            "AdminAccess::Key(..)",
            "Debug never shows the key"
        );
    }
}
