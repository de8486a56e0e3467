//! The routing snapshot: aliases → weighted targets, providers with their keys and pools.
//! Built once from a validated config; read lock-free by every request.

use crate::actors::provider_health::ProviderHealthHandle;
use crate::cache::ResponseCache;
use crate::config::{GatewayConfig, ProviderConfig};
use crate::cost::{ModelPrice, PriceTable};
use crate::error::GatewayError;
use crate::redact::Redactor;
use crate::resilience::breaker::now_ms;
use crate::resilience::{Admission, CircuitBreaker, RetryBudget, RetryPolicy};
use crate::upstream::Egress;
use indexmap::IndexMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_plugin_api::host::ProviderCodec;

/// A usable API key (its env var resolved).
#[derive(Debug)]
pub struct ApiKey {
    /// Its position under `providers.NAME.keys` (how status pages name it: never by value).
    pub index: usize,
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
    /// The plugin's declared name (`openai`, `anthropic`, …): with `name`, how a target
    /// finds its price.
    pub plugin_name: Arc<str>,
    /// The [`switchyard_plugin_api::abi::operation`] bits its plugin serves.
    pub operations: u64,
    pub codec: Arc<ProviderCodec>,
    /// Usable keys (env resolved). Empty with `keys_configured` = nothing usable.
    pub keys: Vec<ApiKey>,
    pub keys_configured: bool,
    /// `send_back_raw_response`: every answer carries `raw_request` / `raw_response`.
    pub send_back_raw: bool,
    pub egress: Egress,
    /// The ProviderHealth actor: attempt outcomes and circuit reports go to it.
    pub health: ProviderHealthHandle,
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
        choose_key(&self.keys, self.keys_configured, &self.breaker, model, now_ms()).map_err(|e| match e {
            NoKey::NotAllowed => GatewayError::NoUsableKey {
                provider: self.name.to_string(),
                model: model.to_string(),
            },
            NoKey::Open { retry_in } => self.circuit_open(model, retry_in),
        })
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

/// Why no key could be picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoKey {
    /// No key's allow-list has the model.
    NotAllowed,
    /// Every allowed key's circuit is open; the soonest reopens in about `retry_in`.
    Open { retry_in: Duration },
}

/// The key for one attempt: weighted random among the keys allowed for `model` whose circuit
/// is not open; a half-open circuit's single probe goes to whoever claims it first.
fn choose_key<'a>(
    keys: &'a [ApiKey],
    keys_configured: bool,
    breaker: &CircuitBreaker,
    model: &str,
    now: u64,
) -> Result<KeyPick<'a>, NoKey> {
    if !keys_configured {
        return match breaker.admit(0, now) {
            Admission::Open { retry_in } => Err(NoKey::Open { retry_in }),
            a => Ok(KeyPick {
                key: None,
                slot: 0,
                probe: a == Admission::Probe,
            }),
        };
    }
    if !keys.iter().any(|k| k.allows(model)) {
        return Err(NoKey::NotAllowed);
    }
    let usable = keys
        .iter()
        .enumerate()
        .filter(|(i, k)| k.allows(model) && breaker.is_available(*i, now));
    // Weighted pick first; should another worker win a half-open probe in between, the
    // remaining usable keys are tried in order.
    let chosen = weighted_choice(usable, |(_, k)| k.weight).map(|(i, _)| i);
    let order = chosen.into_iter().chain(0..keys.len());
    let mut soonest = breaker.config.cooldown;
    for i in order {
        let k = &keys[i];
        if !k.allows(model) {
            continue;
        }
        match breaker.admit(i, now) {
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
    Err(NoKey::Open { retry_in: soonest })
}

/// One of `candidates`, each with probability `weight / total weight`; `None` if there are
/// none.
fn weighted_choice<T>(candidates: impl Iterator<Item = T> + Clone, weight: impl Fn(&T) -> f64) -> Option<T> {
    let total: f64 = candidates.clone().map(|c| weight(&c)).sum();
    let mut point = fastrand::f64() * total;
    let mut last = None;
    for c in candidates {
        let w = weight(&c);
        if point < w {
            return Some(c);
        }
        point -= w;
        last = Some(c);
    }
    // Rounding can leave the point at the very end.
    last
}

/// A provider and an upstream model.
#[derive(Clone)]
pub struct Target {
    pub provider: Arc<ProviderRuntime>,
    pub model: Arc<str>,
    pub weight: f64,
    /// The model's price, resolved when the target was built; `None`: answers carry no cost.
    pub price: Option<Arc<ModelPrice>>,
}

pub struct Alias {
    pub targets: Vec<Target>,
    pub fallbacks: Vec<String>,
    /// `cache: true`: answers are cached without the client asking (when the cache is on).
    pub cache: bool,
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
        let candidates = self.targets.iter().filter(move |t| !any_healthy || healthy(t));
        weighted_choice(candidates, |t| t.weight)
    }
}

pub struct RouteTable {
    pub providers: IndexMap<String, Arc<ProviderRuntime>>,
    pub aliases: IndexMap<String, Alias>,
    pub redactor: Arc<Redactor>,
    /// The configured hooks, in config order (empty: the hook phases cost nothing).
    pub hooks: crate::hooks::HookSet,
    /// Prices for targets named at request time (`provider/model`); aliases' targets
    /// resolved theirs when built.
    pub prices: Arc<PriceTable>,
    /// `None` when `cache.enabled` is off: the cache phase then costs nothing.
    pub cache: Option<Arc<ResponseCache>>,
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
            price: self
                .prices
                .resolve(&provider.name, &provider.plugin_name, upstream_model),
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

    /// Every `(provider, model)` the config names: alias targets, `provider/model` fallbacks
    /// with a configured provider, and the semantic cache's embedding model. (What the usage
    /// ledger keeps lines for.)
    pub fn configured_targets(&self) -> impl Iterator<Item = (&Arc<str>, Arc<str>)> {
        let targets = self
            .aliases
            .values()
            .flat_map(|a| a.targets.iter().map(|t| (&t.provider.name, Arc::clone(&t.model))));
        let fallbacks = self.aliases.values().flat_map(|a| &a.fallbacks).filter_map(|f| {
            if self.aliases.contains_key(f) {
                return None;
            }
            let (provider, model) = f.split_once('/')?;
            let provider = self.providers.get(provider)?;
            (!model.is_empty()).then(|| (&provider.name, Arc::from(model)))
        });
        // The semantic cache's embedding model is paid for too: its own line.
        let embedding = self.cache.as_ref().and_then(|c| c.semantic.as_ref()).and_then(|s| {
            let provider = self.providers.get(&*s.provider)?;
            Some((&provider.name, Arc::clone(&s.model)))
        });
        targets.chain(fallbacks).chain(embedding)
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
                index: i,
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
    prices: &PriceTable,
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
                        price: prices.resolve(&p.name, &p.plugin_name, &t.model),
                    })
                })
                .collect();
            (
                name.clone(),
                Alias {
                    targets,
                    fallbacks: m.fallbacks.clone(),
                    cache: m.cache,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::breaker::BreakerConfig;
    use std::sync::Barrier;

    const COOLDOWN: Duration = Duration::from_secs(10);
    const COOLDOWN_MS: u64 = 10_000;

    fn breaker(slots: usize) -> CircuitBreaker {
        CircuitBreaker::new(
            BreakerConfig {
                failures: 5,
                window: Duration::from_secs(30),
                cooldown: COOLDOWN,
                auth_cooldown: Duration::from_secs(300),
            },
            slots,
        )
    }

    fn key(index: usize, weight: f64, models: Option<&[&str]>) -> ApiKey {
        ApiKey {
            index,
            secret: Arc::from(format!("sk-test-{index}")),
            weight,
            models: models.map(|m| m.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// How often each key slot is picked for `model` in `draws` picks at time `now`.
    fn picks(keys: &[ApiKey], breaker: &CircuitBreaker, model: &str, draws: usize, now: u64) -> Vec<usize> {
        let mut counts = vec![0; keys.len()];
        for _ in 0..draws {
            let pick = choose_key(keys, true, breaker, model, now).expect("a key");
            assert!(!pick.probe, "no circuit is half-open");
            counts[pick.slot] += 1;
        }
        counts
    }

    fn share(count: usize, draws: usize) -> f64 {
        count as f64 / draws as f64
    }

    #[test]
    fn weighted_choice_lands_in_proportion_to_the_weights() {
        fastrand::seed(0x5eed_0001);
        let weights = [3.0, 1.0, 0.5];
        let draws = 45_000;
        let mut counts = [0usize; 3];
        for _ in 0..draws {
            let i = weighted_choice(0..weights.len(), |i| weights[*i]).expect("a choice");
            counts[i] += 1;
        }
        // Expected 2/3, 2/9, 1/9; one standard deviation is under 0.25 %.
        for (i, expected) in [2.0 / 3.0, 2.0 / 9.0, 1.0 / 9.0].into_iter().enumerate() {
            let got = share(counts[i], draws);
            assert!(
                (got - expected).abs() < 0.01,
                "candidate {i}: {got:.4} of draws, expected {expected:.4} ({counts:?})"
            );
        }
        assert_eq!(weighted_choice(std::iter::empty::<usize>(), |_| 1.0), None);
        assert_eq!(weighted_choice(std::iter::once(7), |_| 2.0), Some(7));
    }

    #[test]
    fn keys_are_picked_in_proportion_to_their_weights() {
        fastrand::seed(0x5eed_0002);
        let keys = [key(0, 3.0, None), key(1, 1.0, None)];
        let b = breaker(2);
        let draws = 20_000;
        let counts = picks(&keys, &b, "m", draws, 1);
        let got = share(counts[0], draws);
        assert!(
            (got - 0.75).abs() < 0.015,
            "weight 3 of 4 got {got:.4} of draws ({counts:?})"
        );
    }

    #[test]
    fn a_key_whose_allow_list_excludes_the_model_is_never_picked() {
        fastrand::seed(0x5eed_0003);
        let keys = [key(0, 100.0, Some(&["special"])), key(1, 1.0, None)];
        let b = breaker(2);
        assert_eq!(picks(&keys, &b, "ordinary", 2_000, 1), vec![0, 2_000]);
        let counts = picks(&keys, &b, "special", 2_000, 1);
        assert!(counts[0] > 1_900, "the heavier eligible key dominates: {counts:?}");
        let only_special = [key(0, 1.0, Some(&["special"]))];
        assert_eq!(
            choose_key(&only_special, true, &breaker(1), "ordinary", 1).map(|p| p.slot),
            Err(NoKey::NotAllowed)
        );
        // Keys configured but none usable (their env vars unset): nothing allows anything.
        assert_eq!(
            choose_key(&[], true, &breaker(1), "m", 1).map(|p| p.slot),
            Err(NoKey::NotAllowed)
        );
    }

    #[test]
    fn a_key_with_an_open_circuit_is_skipped() {
        fastrand::seed(0x5eed_0004);
        let keys = [key(0, 3.0, None), key(1, 1.0, None)];
        let b = breaker(2);
        let opened_at = 1_000;
        b.open(0, opened_at);
        assert_eq!(picks(&keys, &b, "m", 1_000, opened_at + 1), vec![0, 1_000]);
        b.open(1, opened_at + 4_000);
        // Key 0 reopens at 1 000 + cooldown, key 1 four seconds later.
        let now = opened_at + 5_000;
        match choose_key(&keys, true, &b, "m", now) {
            Err(NoKey::Open { retry_in }) => assert_eq!(
                retry_in,
                Duration::from_millis(opened_at + COOLDOWN_MS - now),
                "the soonest to reopen"
            ),
            other => panic!("every circuit is open: {other:?}"),
        }
    }

    #[test]
    fn after_the_cooldown_exactly_one_concurrent_picker_gets_the_probe() {
        let keys = [key(0, 1.0, None)];
        let b = breaker(1);
        b.open(0, 1_000);
        let after_cooldown = 1_000 + COOLDOWN_MS;
        let pickers = 16;
        let start = Barrier::new(pickers);
        let results: Vec<Result<bool, NoKey>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..pickers)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        choose_key(&keys, true, &b, "m", after_cooldown).map(|p| p.probe)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("picker")).collect()
        });
        let probes = results.iter().filter(|r| **r == Ok(true)).count();
        let refused = results.iter().filter(|r| matches!(r, Err(NoKey::Open { .. }))).count();
        assert_eq!((probes, refused), (1, pickers - 1), "{results:?}");
    }

    #[test]
    fn losers_of_the_probe_race_fall_back_to_a_healthy_key() {
        // Key 0 (heavy, so most pickers try it first) is half-open; key 1 is healthy. A loser
        // is a picker that saw key 0 available and then found its probe taken: many rounds,
        // so that interleaving happens.
        let keys = [key(0, 1_000.0, None), key(1, 1.0, None)];
        let b = breaker(2);
        let after_cooldown = 1_000 + COOLDOWN_MS;
        let pickers = 8;
        for round in 0..200 {
            b.open(0, 1_000);
            let start = Barrier::new(pickers);
            let picks: Vec<(usize, bool)> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..pickers)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            let p = choose_key(&keys, true, &b, "m", after_cooldown).expect("key 1 is healthy");
                            (p.slot, p.probe)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("picker")).collect()
            });
            assert_eq!(
                picks.iter().filter(|p| **p == (0, true)).count(),
                1,
                "round {round}: {picks:?}"
            );
            assert!(
                picks.iter().all(|p| *p == (0, true) || *p == (1, false)),
                "round {round}: everyone else uses the healthy key: {picks:?}"
            );
        }
    }

    #[test]
    fn a_provider_without_keys_uses_its_one_circuit() {
        let b = breaker(1);
        let pick = choose_key(&[], false, &b, "m", 1).expect("keyless");
        assert!(pick.key.is_none() && pick.slot == 0 && !pick.probe);
        b.open(0, 1);
        assert!(matches!(choose_key(&[], false, &b, "m", 2), Err(NoKey::Open { .. })));
        let probe = choose_key(&[], false, &b, "m", 1 + COOLDOWN_MS).expect("probe");
        assert!(probe.probe);
    }
}
