//! One ProviderHealth actor per provider: it owns the provider's health counters and the
//! failure windows of its circuit breakers, and publishes what the request path and
//! `/admin/status` read without a mailbox round trip (a stats snapshot; the breaker's atomic slots).

use crate::resilience::breaker::now_ms;
use crate::resilience::{CircuitBreaker, FailureWindow};
use actix::prelude::*;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

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

/// What `/admin/status` shows for a provider.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HealthStats {
    pub requests: u64,
    pub failures: u64,
    pub consecutive_failures: u64,
    pub last_status: Option<u16>,
    pub mean_latency_ms: u64,
}

/// An attempt's outcome for the circuit breaker of one key slot. Sent at once rather than
/// batched: a circuit should open on the failure that trips it, not a batch later.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct CircuitReport {
    pub slot: usize,
    /// The attempt was the half-open circuit's probe.
    pub probe: bool,
    pub ok: bool,
}

pub struct ProviderHealth {
    health: HealthStats,
    latency_total: u64,
    snapshot: Arc<ArcSwap<HealthStats>>,
    breaker: Arc<CircuitBreaker>,
    windows: Vec<FailureWindow>,
    provider: Arc<str>,
}

impl Handler<CircuitReport> for ProviderHealth {
    type Result = ();
    fn handle(&mut self, r: CircuitReport, _ctx: &mut Self::Context) {
        let Some(window) = self.windows.get_mut(r.slot) else {
            return;
        };
        let cooldown_ms = self.breaker.config.cooldown.as_millis() as u64;
        match (r.probe, r.ok) {
            (true, true) => {
                window.clear();
                self.breaker.close(r.slot);
                tracing::info!(provider = %self.provider, key_slot = r.slot, "circuit closed: the probe succeeded");
            }
            (true, false) => {
                self.breaker.open(r.slot, now_ms());
                tracing::warn!(provider = %self.provider, key_slot = r.slot, cooldown_ms, "circuit re-opened: the probe failed");
            }
            (false, true) => {}
            (false, false) => {
                // Failures of requests that started before the circuit opened change nothing.
                if self.breaker.is_closed(r.slot) && window.record(Instant::now(), &self.breaker.config) {
                    self.breaker.open(r.slot, now_ms());
                    tracing::warn!(
                        provider = %self.provider,
                        key_slot = r.slot,
                        failures = self.breaker.config.failures,
                        cooldown_ms,
                        "circuit opened"
                    );
                }
            }
        }
    }
}

impl Actor for ProviderHealth {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(super::MAILBOX_CAPACITY);
    }
}

impl Handler<AttemptBatch> for ProviderHealth {
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
pub struct ProviderHealthHandle {
    pub addr: Addr<ProviderHealth>,
    snapshot: Arc<ArcSwap<HealthStats>>,
}

impl ProviderHealthHandle {
    pub fn start(arbiter: &ArbiterHandle, provider: Arc<str>, breaker: Arc<CircuitBreaker>) -> ProviderHealthHandle {
        let snapshot = Arc::new(ArcSwap::from_pointee(HealthStats::default()));
        let shared = Arc::clone(&snapshot);
        let addr = ProviderHealth::start_in_arbiter(arbiter, move |_| ProviderHealth {
            health: HealthStats::default(),
            latency_total: 0,
            snapshot: shared,
            windows: (0..breaker.slot_count()).map(|_| FailureWindow::default()).collect(),
            breaker,
            provider,
        });
        ProviderHealthHandle { addr, snapshot }
    }

    pub fn snapshot(&self) -> Arc<HealthStats> {
        self.snapshot.load_full()
    }
}
