//! The routing snapshot: aliases → weighted targets, providers with their keys and pools.
//! Built once from a validated config; read lock-free by every request.

use crate::config::{GatewayConfig, ProviderConfig};
use crate::error::GatewayError;
use crate::redact::Redactor;
use crate::resilience::breaker::now_ms;
use crate::resilience::{Admission, CircuitBreaker, RetryBudget, RetryPolicy};
use crate::upstream::ProviderPool;
use indexmap::IndexMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_plugin_api::host::ProviderCodec;

/// A usable API key (its env var resolved).
#[derive(Debug)]
pub struct ApiKey {
    pub secret: Arc<str>,
    pub weight: f64,
    /// `None` = every model.
    pub models: Option<Vec<String>>,
}

impl ApiKey {
    fn allows(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.iter().any(|x| x == model))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub timeout: Duration,
    pub first_byte: Duration,
    pub first_token: Option<Duration>,
    pub stream_idle: Option<Duration>,
}

/// One configured provider, ready to serve.
pub struct ProviderRuntime {
    pub name: Arc<str>,
    pub codec: Arc<ProviderCodec>,
    /// Usable keys (env resolved). Empty with `keys_configured` = nothing usable.
    pub keys: Vec<ApiKey>,
    pub keys_configured: bool,
    pub pool: ProviderPool,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    pub budget: RetryBudget,
    /// One slot per usable key (index in `keys`), or one for a provider without keys.
    pub breaker: Arc<CircuitBreaker>,
}

/// The key an attempt uses, with its circuit-breaker slot.
#[derive(Debug, Clone, Copy)]
pub struct KeyPick<'a> {
    /// `None` when the provider needs no key (none configured, e.g. a local vLLM or the mock).
    pub key: Option<&'a ApiKey>,
    pub slot: usize,
    /// This attempt is the half-open circuit's one probe: its outcome closes or reopens it.
    pub probe: bool,
}

impl ProviderRuntime {
    /// Weighted random choice among the keys allowed for `model` whose circuit is not open.
    pub fn pick_key(&self, model: &str) -> Result<KeyPick<'_>, GatewayError> {
        let now = now_ms();
        if !self.keys_configured {
            return match self.breaker.admit(0, now) {
                Admission::Open { retry_in } => Err(self.circuit_open(model, retry_in)),
                a => Ok(KeyPick {
                    key: None,
                    slot: 0,
                    probe: a == Admission::Probe,
                }),
            };
        }
        if !self.keys.iter().any(|k| k.allows(model)) {
            return Err(GatewayError::NoUsableKey {
                provider: self.name.to_string(),
                model: model.to_string(),
            });
        }
        let usable = |i: usize, k: &ApiKey| k.allows(model) && self.breaker.is_available(i, now);
        let total: f64 = self
            .keys
            .iter()
            .enumerate()
            .filter(|(i, k)| usable(*i, k))
            .map(|(_, k)| k.weight)
            .sum();
        // Weighted pick first; should another worker win a half-open probe in between, the
        // remaining usable keys are tried in order.
        let mut point = fastrand::f64() * total;
        let chosen = self
            .keys
            .iter()
            .enumerate()
            .filter(|(i, k)| usable(*i, k))
            .find(|(_, k)| {
                let hit = point < k.weight;
                point -= k.weight;
                hit
            })
            .map(|(i, _)| i);
        let order = chosen.into_iter().chain(0..self.keys.len());
        let mut soonest = self.breaker.config.cooldown;
        for i in order {
            let k = &self.keys[i];
            if !k.allows(model) {
                continue;
            }
            match self.breaker.admit(i, now) {
                Admission::Open { retry_in } => soonest = soonest.min(retry_in),
                a => {
                    return Ok(KeyPick {
                        key: Some(k),
                        slot: i,
                        probe: a == Admission::Probe,
                    });
                }
            }
        }
        Err(self.circuit_open(model, soonest))
    }

    fn circuit_open(&self, model: &str, retry_in: Duration) -> GatewayError {
        GatewayError::CircuitOpen {
            provider: self.name.to_string(),
            model: model.to_string(),
            retry_in,
        }
    }

    /// Whether some key for `model` has a circuit a request could use now.
    pub fn is_available(&self, model: &str) -> bool {
        let now = now_ms();
        if !self.keys_configured {
            return self.breaker.is_available(0, now);
        }
        self.keys
            .iter()
            .enumerate()
            .any(|(i, k)| k.allows(model) && self.breaker.is_available(i, now))
    }
}

/// A provider and an upstream model.
#[derive(Clone)]
pub struct Target {
    pub provider: Arc<ProviderRuntime>,
    pub model: Arc<str>,
    pub weight: f64,
}

pub struct Alias {
    pub targets: Vec<Target>,
    pub fallbacks: Vec<String>,
}

impl Alias {
    /// Weighted random choice among the targets whose provider has a usable circuit for
    /// the model; when every circuit is open, among all (the attempt then fails fast with
    /// `circuit_open` and the fallbacks serve).
    fn pick(&self) -> Option<&Target> {
        if self.targets.len() == 1 {
            return self.targets.first();
        }
        let healthy = |t: &&Target| t.provider.is_available(&t.model);
        let any_healthy = self.targets.iter().any(|t| healthy(&t));
        let candidates = || self.targets.iter().filter(move |t| !any_healthy || healthy(t));
        let total: f64 = candidates().map(|t| t.weight).sum();
        let mut point = fastrand::f64() * total;
        let mut last = None;
        for t in candidates() {
            if point < t.weight {
                return Some(t);
            }
            point -= t.weight;
            last = Some(t);
        }
        // Rounding can leave the point at the very end.
        last
    }
}

pub struct RouteTable {
    pub providers: IndexMap<String, Arc<ProviderRuntime>>,
    pub aliases: IndexMap<String, Alias>,
    pub redactor: Arc<Redactor>,
}

impl RouteTable {
    pub fn alias_count(&self) -> usize {
        self.aliases.len()
    }

    pub fn provider_count(&self) -> usize {
        self.providers.len()
    }

    /// One target for a model string: an alias (weighted pick) or `provider/model`.
    pub fn resolve(&self, model: &str) -> Option<Target> {
        if let Some(alias) = self.aliases.get(model) {
            return alias.pick().cloned();
        }
        let (provider, upstream_model) = model.split_once('/')?;
        if upstream_model.is_empty() {
            return None;
        }
        let provider = self.providers.get(provider)?;
        Some(Target {
            provider: Arc::clone(provider),
            model: Arc::from(upstream_model),
            weight: 1.0,
        })
    }

    /// The ordered targets to try: the primary, then the request's `fallbacks` if it gave
    /// any, else the alias's configured ones.
    pub fn plan(&self, model: &str, request_fallbacks: &[String]) -> Result<Vec<Target>, GatewayError> {
        let primary = self.resolve(model).ok_or_else(|| GatewayError::ModelNotFound {
            model: model.to_string(),
        })?;
        let configured = self
            .aliases
            .get(model)
            .map(|a| a.fallbacks.as_slice())
            .unwrap_or_default();
        let (fallbacks, from_request) = if request_fallbacks.is_empty() {
            (configured, false)
        } else {
            (request_fallbacks, true)
        };
        let mut plan = Vec::with_capacity(1 + fallbacks.len());
        plan.push(primary);
        for f in fallbacks {
            match self.resolve(f) {
                Some(t) => plan.push(t),
                None if from_request => {
                    return Err(GatewayError::bad_request(
                        format!(
                            "fallback `{f}` is neither a configured alias nor provider/model with a configured provider"
                        ),
                        "model_not_found",
                        Some("fallbacks"),
                    ));
                }
                // Validated at startup; a reload may have removed it since. Skip.
                None => {}
            }
        }
        Ok(plan)
    }

    /// Every model id a client may ask for: aliases, then `provider/model` of targets.
    pub fn model_ids(&self) -> Vec<(String, String)> {
        let mut ids: Vec<(String, String)> = self
            .aliases
            .keys()
            .map(|a| (a.clone(), "switchyard".to_string()))
            .collect();
        for alias in self.aliases.values() {
            for t in &alias.targets {
                let id = format!("{}/{}", t.provider.name, t.model);
                if !ids.iter().any(|(x, _)| *x == id) {
                    ids.push((id, t.provider.name.to_string()));
                }
            }
        }
        ids
    }
}

/// A warning produced while building the table (e.g. a key whose env var is unset).
pub type BuildWarnings = Vec<String>;

/// Resolves a key value: `env.VAR` reads the environment.
pub fn resolve_key(value: &str) -> Result<String, String> {
    match value.strip_prefix("env.") {
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(var.to_string()),
        },
        None => Ok(value.to_string()),
    }
}

/// Usable keys of a provider, with warnings for disabled ones.
pub fn build_keys(name: &str, p: &ProviderConfig, warnings: &mut BuildWarnings) -> Vec<ApiKey> {
    let mut keys = Vec::new();
    for (i, k) in p.keys.iter().enumerate() {
        match resolve_key(&k.value) {
            Ok(secret) => keys.push(ApiKey {
                secret: Arc::from(secret),
                weight: k.weight,
                models: (!k.models.iter().any(|m| m == "*")).then(|| k.models.clone()),
            }),
            Err(var) => warnings.push(format!(
                "providers.{name}.keys[{i}]: environment variable {var} is not set; this key is disabled"
            )),
        }
    }
    keys
}

/// Builds the aliases over already-built providers.
pub fn build_aliases(
    cfg: &GatewayConfig,
    providers: &IndexMap<String, Arc<ProviderRuntime>>,
) -> IndexMap<String, Alias> {
    cfg.models
        .iter()
        .map(|(name, m)| {
            let targets = m
                .targets
                .iter()
                .filter_map(|t| {
                    providers.get(&t.provider).map(|p| Target {
                        provider: Arc::clone(p),
                        model: Arc::from(t.model.as_str()),
                        weight: t.weight,
                    })
                })
                .collect();
            (
                name.clone(),
                Alias {
                    targets,
                    fallbacks: m.fallbacks.clone(),
                },
            )
        })
        .collect()
}
