//! The CostTracker actor receives usage from every answered request (batched per worker) and
//! keeps the ledger. Prices, `usage.cost` and budgets build on this path later.

use actix::prelude::*;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub provider: Arc<str>,
    pub model: Arc<str>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct UsageBatch(pub Vec<UsageRecord>);

#[derive(Debug, Clone, Default, Serialize)]
pub struct LedgerLine {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

/// Totals keyed by `provider/model`.
pub type Ledger = BTreeMap<String, LedgerLine>;

pub struct CostTracker {
    ledger: Ledger,
    snapshot: Arc<ArcSwap<Ledger>>,
}

impl Actor for CostTracker {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(super::MAILBOX_CAPACITY);
    }
}

impl Handler<UsageBatch> for CostTracker {
    type Result = ();
    fn handle(&mut self, batch: UsageBatch, _ctx: &mut Self::Context) {
        // One key buffer per batch: a key is allocated only the first time it is seen.
        let mut key = String::new();
        for r in batch.0 {
            key.clear();
            key.push_str(&r.provider);
            key.push('/');
            key.push_str(&r.model);
            if !self.ledger.contains_key(key.as_str()) {
                self.ledger.insert(key.clone(), LedgerLine::default());
            }
            let Some(line) = self.ledger.get_mut(key.as_str()) else {
                continue;
            };
            line.requests += 1;
            line.prompt_tokens += r.prompt_tokens;
            line.completion_tokens += r.completion_tokens;
            line.cached_tokens += r.cached_tokens;
            line.reasoning_tokens += r.reasoning_tokens;
        }
        self.snapshot.store(Arc::new(self.ledger.clone()));
    }
}

#[derive(Clone)]
pub struct CostTrackerHandle {
    pub addr: Addr<CostTracker>,
    snapshot: Arc<ArcSwap<Ledger>>,
}

impl CostTrackerHandle {
    pub fn start(arbiter: &ArbiterHandle) -> CostTrackerHandle {
        let snapshot = Arc::new(ArcSwap::from_pointee(Ledger::new()));
        let shared = Arc::clone(&snapshot);
        let addr = CostTracker::start_in_arbiter(arbiter, move |_| CostTracker {
            ledger: Ledger::new(),
            snapshot: shared,
        });
        CostTrackerHandle { addr, snapshot }
    }

    pub fn ledger(&self) -> Arc<Ledger> {
        self.snapshot.load_full()
    }
}
