//! The routing snapshot: aliases → weighted targets, providers with their keys and pools.
//! Built once from a validated config; read lock-free by every request.

use crate::config::{GatewayConfig, ProviderConfig};
use crate::error::GatewayError;
use crate::redact::Redactor;
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
}

impl ProviderRuntime {
    /// Weighted random choice among the keys allowed for `model`. `Ok(None)` when the
    /// provider needs no key (none configured, e.g. a local vLLM or the mock).
    pub fn pick_key(&self, model: &str) -> Result<Option<&ApiKey>, GatewayError> {
        if !self.keys_configured {
            return Ok(None);
        }
        let eligible = || self.keys.iter().filter(|k| k.allows(model));
        let total: f64 = eligible().map(|k| k.weight).sum();
        if total <= 0.0 {
            return Err(GatewayError::NoUsableKey {
                provider: self.name.to_string(),
                model: model.to_string(),
            });
        }
        let mut point = fastrand::f64() * total;
        let mut last = None;
        for k in eligible() {
            if point < k.weight {
                return Ok(Some(k));
            }
            point -= k.weight;
            last = Some(k);
        }
        Ok(last)
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
    fn pick(&self) -> Option<&Target> {
        let total: f64 = self.targets.iter().map(|t| t.weight).sum();
        let mut point = fastrand::f64() * total;
        for t in &self.targets {
            if point < t.weight {
                return Some(t);
            }
            point -= t.weight;
        }
        // Rounding can leave the point at the very end.
        self.targets.last()
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
