//! The UsageLedger actor receives usage from every answered request (batched per worker) and
//! keeps the ledger. Prices, `usage.cost` and budgets build on this path later.
//!
//! The ledger's names come from the config, never from a client: a line per configured
//! provider and target model (an alias target or a `provider/model` fallback), and one
//! [`OTHER_MODELS`] line per provider for everything clients route there by
//! `provider/anything`. So its size is bounded by the config, whatever clients send.

use crate::actors::router::RouterHandle;
use crate::routing::RouteTable;
use actix::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub provider: Arc<str>,
    /// The model the request was sent to (`model_deployment`): a configured target, or
    /// whatever a client asked for with `provider/model`.
    pub model: Arc<str>,
    /// The parts of the codec's usage ([`switchyard_plugin_api::host::Usage`]), each as is.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// The gateway estimated these figures because the upstream never reported them (a
    /// stream the client abandoned before its usage arrived).
    pub estimated: bool,
    /// What the answer cost in USD; `None` when its model has no price.
    pub cost_usd: Option<f64>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct UsageBatch(pub Vec<UsageRecord>);

/// Totals for one provider and model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LedgerLine {
    /// Answers with usage (estimated ones included).
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// How many of `requests` carry usage the gateway estimated; their tokens are in the
    /// totals above.
    pub estimated_requests: u64,
    /// USD, over the requests whose model has a price (estimated ones included).
    pub cost_usd: f64,
    /// Requests whose model has no price: their tokens are counted, their cost is not.
    pub unpriced_requests: u64,
}

impl LedgerLine {
    fn add(&mut self, r: &UsageRecord) {
        // Saturating: token counts come from upstreams, and a total must never wrap.
        self.requests = self.requests.saturating_add(1);
        self.prompt_tokens = self.prompt_tokens.saturating_add(r.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(r.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(r.cached_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(r.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(r.reasoning_tokens);
        self.estimated_requests = self.estimated_requests.saturating_add(u64::from(r.estimated));
        match r.cost_usd {
            Some(usd) => self.cost_usd += usd,
            None => self.unpriced_requests = self.unpriced_requests.saturating_add(1),
        }
    }

    fn merge(&mut self, other: &LedgerLine) {
        self.requests = self.requests.saturating_add(other.requests);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(other.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(other.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
        self.estimated_requests = self.estimated_requests.saturating_add(other.estimated_requests);
        self.cost_usd += other.cost_usd;
        self.unpriced_requests = self.unpriced_requests.saturating_add(other.unpriced_requests);
    }
}

/// The ledger line of a provider's models that no alias or fallback names.
pub const OTHER_MODELS: &str = "(other)";

/// The configured `provider → target models`, which the ledger keeps apart.
#[derive(Debug, Default)]
pub struct ConfiguredTargets(HashMap<Arc<str>, HashSet<Arc<str>>>);

impl ConfiguredTargets {
    pub fn of(table: &RouteTable) -> ConfiguredTargets {
        let mut map: HashMap<Arc<str>, HashSet<Arc<str>>> = HashMap::new();
        for (provider, model) in table.configured_targets() {
            map.entry(Arc::clone(provider)).or_default().insert(model);
        }
        ConfiguredTargets(map)
    }

    fn contains(&self, provider: &str, model: &str) -> bool {
        self.0.get(provider).is_some_and(|models| models.contains(model))
    }
}

/// Usage totals since the daemon started, per provider and model.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    providers: BTreeMap<Arc<str>, BTreeMap<Arc<str>, LedgerLine>>,
}

impl Ledger {
    /// Adds one answer's usage to its provider's line for `r.model` if that model is
    /// configured, else to the provider's [`OTHER_MODELS`] line.
    pub fn add(&mut self, r: &UsageRecord, targets: &ConfiguredTargets) {
        let models = match self.providers.get_mut(&*r.provider) {
            Some(m) => m,
            None => self.providers.entry(Arc::clone(&r.provider)).or_default(),
        };
        let model: &str = if targets.contains(&r.provider, &r.model) {
            &r.model
        } else {
            OTHER_MODELS
        };
        match models.get_mut(model) {
            Some(line) => line.add(r),
            None => models.entry(Arc::from(model)).or_default().add(r),
        }
    }

    /// `(provider, model, line)` in name order.
    pub fn lines(&self) -> impl Iterator<Item = (&str, &str, &LedgerLine)> {
        self.providers
            .iter()
            .flat_map(|(p, models)| models.iter().map(move |(m, line)| (&**p, &**m, line)))
    }

    /// `{"total": line, "providers": {name: {"total": line, "models": {name: line}}}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut total = LedgerLine::default();
        let mut providers = serde_json::Map::new();
        for (name, models) in &self.providers {
            let mut provider_total = LedgerLine::default();
            let mut lines = serde_json::Map::new();
            for (model, line) in models {
                provider_total.merge(line);
                lines.insert(model.to_string(), serde_json::json!(line));
            }
            total.merge(&provider_total);
            providers.insert(
                name.to_string(),
                serde_json::json!({ "total": provider_total, "models": lines }),
            );
        }
        serde_json::json!({ "total": total, "providers": providers })
    }
}

pub struct UsageLedger {
    ledger: Ledger,
    /// What readers get; rebuilt on a read after the ledger changed, not on every batch.
    published: Arc<Ledger>,
    changed: bool,
    router: RouterHandle,
    /// The configured targets of the routing table they were taken from (weak: a replaced
    /// table is not kept alive for this).
    targets: ConfiguredTargets,
    targets_of: Weak<RouteTable>,
}

impl Actor for UsageLedger {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(super::MAILBOX_CAPACITY);
    }
}

impl UsageLedger {
    fn new(router: RouterHandle) -> UsageLedger {
        UsageLedger {
            ledger: Ledger::default(),
            published: Arc::new(Ledger::default()),
            changed: false,
            router,
            targets: ConfiguredTargets::default(),
            targets_of: Weak::new(),
        }
    }

    /// The configured targets of the current routing table (recomputed after a reload).
    fn refresh_targets(&mut self) {
        let table = self.router.current();
        if Weak::as_ptr(&self.targets_of) != Arc::as_ptr(&table) {
            self.targets = ConfiguredTargets::of(&table);
            self.targets_of = Arc::downgrade(&table);
        }
    }
}

impl Handler<UsageBatch> for UsageLedger {
    type Result = ();
    fn handle(&mut self, batch: UsageBatch, _ctx: &mut Self::Context) {
        self.refresh_targets();
        for r in &batch.0 {
            self.ledger.add(r, &self.targets);
        }
        self.changed |= !batch.0.is_empty();
    }
}

/// Asks for the current ledger.
#[derive(Message)]
#[rtype(result = "Arc<Ledger>")]
pub struct ReadLedger;

impl Handler<ReadLedger> for UsageLedger {
    type Result = MessageResult<ReadLedger>;
    fn handle(&mut self, _: ReadLedger, _ctx: &mut Self::Context) -> Self::Result {
        if std::mem::take(&mut self.changed) {
            self.published = Arc::new(self.ledger.clone());
        }
        MessageResult(Arc::clone(&self.published))
    }
}

/// How long an admin read waits for the actor (its mailbox may be full under load).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct UsageLedgerHandle {
    pub addr: Addr<UsageLedger>,
    started: SystemTime,
}

impl UsageLedgerHandle {
    /// Starts the actor; `router` tells it which models are configured.
    pub fn start(arbiter: &ArbiterHandle, router: RouterHandle) -> UsageLedgerHandle {
        let addr = UsageLedger::start_in_arbiter(arbiter, move |_| UsageLedger::new(router));
        UsageLedgerHandle {
            addr,
            started: SystemTime::now(),
        }
    }

    /// When the ledger started counting.
    pub fn since(&self) -> SystemTime {
        self.started
    }

    /// The ledger as of every batch the actor has received (admin reads only: this waits
    /// for the actor). `None` when it did not answer in time.
    pub async fn ledger(&self) -> Option<Arc<Ledger>> {
        match tokio::time::timeout(READ_TIMEOUT, self.addr.send(ReadLedger)).await {
            Ok(Ok(ledger)) => Some(ledger),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(pairs: &[(&str, &str)]) -> ConfiguredTargets {
        let mut map: HashMap<Arc<str>, HashSet<Arc<str>>> = HashMap::new();
        for (p, m) in pairs {
            map.entry(Arc::from(*p)).or_default().insert(Arc::from(*m));
        }
        ConfiguredTargets(map)
    }

    fn record(provider: &str, model: &str) -> UsageRecord {
        UsageRecord {
            provider: Arc::from(provider),
            model: Arc::from(model),
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 3,
            cache_write_tokens: 7,
            reasoning_tokens: 2,
            estimated: false,
            cost_usd: Some(0.25),
        }
    }

    #[test]
    fn client_chosen_models_share_one_line_per_provider() {
        let known = targets(&[("up", "gpt-4o"), ("local", "echo")]);
        let mut ledger = Ledger::default();
        for i in 0..10_000 {
            ledger.add(&record("up", &format!("client-made-{i}")), &known);
        }
        ledger.add(&record("up", "gpt-4o"), &known);
        ledger.add(&record("local", "echo"), &known);
        // A configured model of another provider is not this provider's.
        ledger.add(&record("local", "gpt-4o"), &known);
        let lines: Vec<(&str, &str, u64)> = ledger.lines().map(|(p, m, l)| (p, m, l.requests)).collect();
        assert_eq!(
            lines,
            vec![
                ("local", OTHER_MODELS, 1),
                ("local", "echo", 1),
                ("up", OTHER_MODELS, 10_000),
                ("up", "gpt-4o", 1),
            ]
        );
    }

    #[test]
    fn every_usage_part_and_estimates_reach_the_ledger() {
        let known = targets(&[("up", "gpt-4o")]);
        let mut ledger = Ledger::default();
        ledger.add(&record("up", "gpt-4o"), &known);
        let mut estimated = record("up", "gpt-4o");
        estimated.estimated = true;
        estimated.completion_tokens = 40;
        ledger.add(&estimated, &known);
        let mut unpriced = record("up", "gpt-4o");
        unpriced.cost_usd = None;
        ledger.add(&unpriced, &known);
        let line = ledger.lines().next().map(|(_, _, l)| *l);
        assert_eq!(
            line,
            Some(LedgerLine {
                requests: 3,
                prompt_tokens: 30,
                completion_tokens: 50,
                cached_tokens: 9,
                cache_write_tokens: 21,
                reasoning_tokens: 6,
                estimated_requests: 1,
                cost_usd: 0.5,
                unpriced_requests: 1,
            })
        );
    }

    #[test]
    fn totals_never_wrap() {
        let known = targets(&[]);
        let mut ledger = Ledger::default();
        let mut huge = record("up", "x");
        huge.prompt_tokens = u64::MAX;
        ledger.add(&huge, &known);
        ledger.add(&huge, &known);
        assert_eq!(ledger.lines().next().map(|(_, _, l)| l.prompt_tokens), Some(u64::MAX));
        let json = ledger.to_json();
        assert_eq!(json["total"]["prompt_tokens"], u64::MAX);
    }

    #[test]
    fn json_has_totals_per_provider_and_overall() {
        let known = targets(&[("up", "gpt-4o"), ("local", "echo")]);
        let mut ledger = Ledger::default();
        ledger.add(&record("up", "gpt-4o"), &known);
        ledger.add(&record("up", "other"), &known);
        ledger.add(&record("local", "echo"), &known);
        let v = ledger.to_json();
        assert_eq!(v["total"]["requests"], 3, "{v:#}");
        assert_eq!(v["total"]["cache_write_tokens"], 21, "{v:#}");
        assert_eq!(v["providers"]["up"]["total"]["requests"], 2, "{v:#}");
        assert_eq!(v["providers"]["up"]["models"]["gpt-4o"]["prompt_tokens"], 10, "{v:#}");
        assert_eq!(v["providers"]["up"]["models"][OTHER_MODELS]["requests"], 1, "{v:#}");
        assert_eq!(v["providers"]["local"]["models"]["echo"]["requests"], 1, "{v:#}");
    }
}
