//! Checks that need more than one field: references between sections, weights, URLs.
//! (Types, units and unknown keys are already checked while parsing.)

use super::error::nearest;
use super::schema::GatewayConfig;

/// One problem, with the dotted path it sits at and a fix when there is an obvious one.
#[derive(Debug)]
pub struct Issue {
    pub path: Vec<String>,
    pub message: String,
    pub fix: Option<String>,
}

fn issue(path: &[&str], message: String, fix: Option<String>) -> Issue {
    Issue {
        path: path.iter().map(|s| s.to_string()).collect(),
        message,
        fix,
    }
}

/// Positive, and small enough that summing every weight of an alias or a provider's keys
/// stays finite (a weighted pick multiplies a random number by that sum).
fn weight_ok(w: f64) -> bool {
    w.is_finite() && w > 0.0 && w <= 1e9
}

/// The cache backends this version knows.
const CACHE_BACKENDS: [&str; 2] = ["memory", "redis"];

pub fn validate(cfg: &GatewayConfig) -> Result<(), Issue> {
    if cfg.server.max_body_size.0 == 0 {
        return Err(issue(
            &["server", "max_body_size"],
            "must be more than 0".into(),
            Some("e.g. 32MiB".into()),
        ));
    }
    if cfg.server.body_budget() < cfg.server.max_body_size.0 {
        return Err(issue(
            &["server", "max_in_flight_body"],
            format!(
                "{} bytes is less than server.max_body_size ({} bytes), so a body of the allowed size could never be read",
                cfg.server.body_budget(),
                cfg.server.max_body_size.0
            ),
            Some("raise it, or leave it out for 8 × max_body_size".into()),
        ));
    }
    if cfg.admin.key.as_ref().is_some_and(|k| k.trim().is_empty()) {
        return Err(issue(
            &["admin", "key"],
            "the admin key is empty".into(),
            Some("use env.VAR to read it from the environment, or leave admin.key out for loopback-only admin".into()),
        ));
    }
    for (name, p) in &cfg.providers {
        let at = |field: &'static str| vec!["providers", name.as_str(), field];
        if name.is_empty() || name.contains('/') {
            return Err(issue(
                &["providers", name],
                format!("provider name `{name}` must be non-empty and contain no `/`"),
                None,
            ));
        }
        if p.plugin.trim().is_empty() {
            return Err(issue(
                &at("plugin"),
                "plugin must name a plugin (e.g. openai, mock) or a path".into(),
                None,
            ));
        }
        if let Some(url) = &p.base_url {
            let parsed = url::Url::parse(url);
            if !matches!(parsed.as_ref().map(|u| u.scheme()), Ok("http" | "https")) {
                return Err(issue(
                    &at("base_url"),
                    format!("`{url}` is not an http(s) URL"),
                    Some("e.g. https://api.openai.com/v1".into()),
                ));
            }
            // The HTTP client takes URLs as they are written; what `url` would have normalised
            // (spaces, non-ASCII host names) must be caught here, not on every request.
            if url.parse::<http::Uri>().is_err() {
                return Err(issue(
                    &at("base_url"),
                    format!("`{url}` contains characters a URL cannot carry as they are"),
                    Some("percent-encode them; write a non-ASCII host name in its xn-- form".into()),
                ));
            }
        }
        if p.concurrency == 0 {
            return Err(issue(&at("concurrency"), "must be at least 1".into(), None));
        }
        for (i, k) in p.keys.iter().enumerate() {
            let idx = i.to_string();
            let path = ["providers", name.as_str(), "keys", idx.as_str()];
            if !weight_ok(k.weight) {
                return Err(issue(
                    &path,
                    format!("key weight {} must be a positive number up to 1e9", k.weight),
                    None,
                ));
            }
            if k.value.trim().is_empty() {
                return Err(issue(
                    &path,
                    "key value is empty".into(),
                    Some("use env.VAR to read it from the environment".into()),
                ));
            }
            if k.models.is_empty() {
                return Err(issue(
                    &path,
                    "models is empty, so this key could never be used".into(),
                    Some("use [\"*\"] for all models".into()),
                ));
            }
        }
        for header in p.forward_headers.iter().flatten() {
            if let Some(reason) = crate::upstream::forward::refuse_reason(header) {
                return Err(issue(
                    &at("forward_headers"),
                    reason,
                    Some("remove it; upstream credentials go under keys: or headers:".into()),
                ));
            }
        }
        for header in p.headers.keys() {
            if http::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(issue(
                    &at("headers"),
                    format!("`{header}` is not a valid header name"),
                    None,
                ));
            }
        }
    }
    let provider_names = || cfg.providers.keys().map(String::as_str);
    let unknown_provider = |path: &[&str], name: &str| {
        let fix = nearest(name, provider_names())
            .map(|n| format!("did you mean `{n}`?"))
            .or_else(|| {
                Some(format!(
                    "add it under providers: (known: {})",
                    provider_names().collect::<Vec<_>>().join(", ")
                ))
            });
        issue(path, format!("provider `{name}` is not configured"), fix)
    };
    for (alias, m) in &cfg.models {
        if m.targets.is_empty() {
            return Err(issue(
                &["models", alias, "targets"],
                "an alias needs at least one target".into(),
                Some("e.g. targets: [{provider: local, model: echo}]".into()),
            ));
        }
        for t in &m.targets {
            if !cfg.providers.contains_key(&t.provider) {
                return Err(unknown_provider(&["models", alias, "targets"], &t.provider));
            }
            if !weight_ok(t.weight) {
                return Err(issue(
                    &["models", alias, "targets"],
                    format!("target weight {} must be a positive number up to 1e9", t.weight),
                    None,
                ));
            }
            if t.model.trim().is_empty() {
                return Err(issue(
                    &["models", alias, "targets"],
                    "target model is empty".into(),
                    None,
                ));
            }
        }
        for f in &m.fallbacks {
            if cfg.models.contains_key(f) {
                continue;
            }
            match f.split_once('/') {
                Some((p, model)) if !model.is_empty() => {
                    if !cfg.providers.contains_key(p) {
                        return Err(unknown_provider(&["models", alias, "fallbacks"], p));
                    }
                }
                _ => {
                    let fix = nearest(f, cfg.models.keys().map(String::as_str))
                        .map(|n| format!("did you mean `{n}`?"))
                        .or_else(|| Some("write another alias or provider/model".into()));
                    return Err(issue(
                        &["models", alias, "fallbacks"],
                        format!("fallback `{f}` is neither an alias nor provider/model"),
                        fix,
                    ));
                }
            }
        }
    }
    if let Some(backend) = cfg.cache.backend.as_deref() {
        if !CACHE_BACKENDS.contains(&backend) {
            let fix = nearest(backend, CACHE_BACKENDS)
                .map(|n| format!("did you mean `{n}`?"))
                .or_else(|| Some(format!("one of: {}", CACHE_BACKENDS.join(", "))));
            return Err(issue(
                &["cache", "backend"],
                format!("unknown cache backend `{backend}`"),
                fix,
            ));
        }
        if backend == "redis" && cfg.redis.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
            return Err(issue(
                &["redis", "url"],
                "cache.backend: redis needs the Redis to use".into(),
                Some("e.g. redis: {url: redis://127.0.0.1:6379}".into()),
            ));
        }
    }
    if let Some(url) = cfg.redis.url.as_deref()
        && !matches!(
            url::Url::parse(url).as_ref().map(|u| u.scheme()),
            Ok("redis" | "rediss")
        )
    {
        return Err(issue(
            &["redis", "url"],
            format!("`{url}` is not a redis:// or rediss:// URL"),
            Some("e.g. redis://127.0.0.1:6379".into()),
        ));
    }
    if let Some(t) = cfg.redis.timeout
        && (t.0.is_zero() || t.0 > std::time::Duration::from_secs(10))
    {
        return Err(issue(
            &["redis", "timeout"],
            "must be more than 0 and at most 10s".into(),
            Some("e.g. timeout: 100ms".into()),
        ));
    }
    if cfg.cache.max_entries == Some(0) {
        return Err(issue(
            &["cache", "max_entries"],
            "must be at least 1".into(),
            Some("e.g. max_entries: 100000".into()),
        ));
    }
    if cfg.cache.max_bytes.is_some_and(|b| b.0 < 1024) {
        return Err(issue(
            &["cache", "max_bytes"],
            "must be at least 1KiB".into(),
            Some("e.g. max_bytes: 256MiB".into()),
        ));
    }
    let semantic = &cfg.cache.semantic;
    if let Some(t) = semantic.threshold
        && !(t > 0.0 && t <= 1.0)
    {
        return Err(issue(
            &["cache", "semantic", "threshold"],
            format!("{t} is not a cosine similarity threshold"),
            Some("a number above 0 and at most 1, e.g. 0.8".into()),
        ));
    }
    if cfg.cache.enabled && semantic.enabled {
        let embedding = semantic.embedding.as_deref().unwrap_or("");
        match embedding.split_once('/') {
            Some((provider, model)) if !model.is_empty() => {
                if !cfg.providers.contains_key(provider) {
                    let fix = nearest(provider, cfg.providers.keys().map(String::as_str))
                        .map(|n| format!("did you mean `{n}/{model}`?"))
                        .or_else(|| Some("name a provider configured under providers:".into()));
                    return Err(issue(
                        &["cache", "semantic", "embedding"],
                        format!("unknown provider `{provider}`"),
                        fix,
                    ));
                }
            }
            _ => {
                return Err(issue(
                    &["cache", "semantic", "embedding"],
                    format!("`{embedding}` is not provider/model"),
                    Some(
                        "e.g. embedding: openai/text-embedding-3-small (or local/mock-embed with the mock provider)"
                            .into(),
                    ),
                ));
            }
        }
    }
    for (i, h) in cfg.hooks.iter().enumerate() {
        let idx = i.to_string();
        if h.plugin.trim().is_empty() {
            return Err(issue(
                &["hooks", idx.as_str(), "plugin"],
                "hook plugin is empty".into(),
                None,
            ));
        }
        if h.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(issue(
                &["hooks", idx.as_str(), "name"],
                "hook name is empty".into(),
                Some("remove `name` to use the plugin name, or give a label".into()),
            ));
        }
        if cfg.hooks[..i].iter().any(|other| other.name() == h.name()) {
            return Err(issue(
                &["hooks", idx.as_str(), "name"],
                format!("two hooks are named `{}`", h.name()),
                Some("give each hook its own `name` (logs and /admin/status tell them apart by it)".into()),
            ));
        }
        if h.models.is_empty() || h.models.iter().any(|m| m.trim().is_empty()) {
            return Err(issue(
                &["hooks", idx.as_str(), "models"],
                "`models` needs at least one non-empty entry".into(),
                Some("use [\"*\"] for every request, or list aliases / provider/model names".into()),
            ));
        }
    }
    Ok(())
}
