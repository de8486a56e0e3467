//! One ProviderPool actor per provider: it owns the provider's health counters (and, with the
//! resilience work, its circuit state) and publishes a snapshot the request path and
//! `/health` read without a mailbox round trip.

use actix::prelude::*;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::sync::Arc;

/// The outcome of one upstream attempt.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub ok: bool,
    /// HTTP status, or 0 when there was none (timeout, reset).
    pub status: u16,
    pub latency_ms: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct AttemptBatch(pub Vec<AttemptRecord>);

/// What `/health` shows for a provider.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolHealth {
    pub requests: u64,
    pub failures: u64,
    pub consecutive_failures: u64,
    pub last_status: Option<u16>,
    pub mean_latency_ms: u64,
}

pub struct ProviderPoolActor {
    health: PoolHealth,
    latency_total: u64,
    snapshot: Arc<ArcSwap<PoolHealth>>,
}

impl Actor for ProviderPoolActor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(super::MAILBOX_CAPACITY);
    }
}

impl Handler<AttemptBatch> for ProviderPoolActor {
    type Result = ();
    fn handle(&mut self, batch: AttemptBatch, _ctx: &mut Self::Context) {
        let h = &mut self.health;
        for r in batch.0 {
            h.requests += 1;
            self.latency_total += r.latency_ms;
            h.last_status = (r.status != 0).then_some(r.status);
            if r.ok {
                h.consecutive_failures = 0;
            } else {
                h.failures += 1;
                h.consecutive_failures += 1;
            }
        }
        h.mean_latency_ms = self.latency_total / h.requests.max(1);
        self.snapshot.store(Arc::new(h.clone()));
    }
}

/// Address plus the published snapshot.
#[derive(Clone)]
pub struct PoolStatsHandle {
    pub addr: Addr<ProviderPoolActor>,
    snapshot: Arc<ArcSwap<PoolHealth>>,
}

impl PoolStatsHandle {
    pub fn start(arbiter: &ArbiterHandle) -> PoolStatsHandle {
        let snapshot = Arc::new(ArcSwap::from_pointee(PoolHealth::default()));
        let shared = Arc::clone(&snapshot);
        let addr = ProviderPoolActor::start_in_arbiter(arbiter, move |_| ProviderPoolActor {
            health: PoolHealth::default(),
            latency_total: 0,
            snapshot: shared,
        });
        PoolStatsHandle { addr, snapshot }
    }

    pub fn health(&self) -> Arc<PoolHealth> {
        self.snapshot.load_full()
    }
}
