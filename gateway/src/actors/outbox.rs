//! Per-worker batching of reports to the actors. Each HTTP worker thread collects records in
//! a thread-local outbox and flushes them as one message per destination when the batch is
//! big enough or old enough (a per-worker ticker covers quiet periods).

use super::provider_health::{AttemptBatch, AttemptRecord, CircuitReport, ProviderHealth};
use super::usage_ledger::{UsageBatch, UsageLedgerHandle, UsageRecord};
use actix::Addr;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Flush when this many records wait…
const BATCH_SIZE: usize = 64;
/// …or the oldest has waited this long.
const MAX_AGE: Duration = Duration::from_millis(200);

/// Batches dropped because a mailbox was full (a visible count, never a silent loss).
pub static DROPPED_BATCHES: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct Outbox {
    usage: Vec<UsageRecord>,
    ledger: Option<Addr<super::usage_ledger::UsageLedger>>,
    attempts: Vec<(Addr<ProviderHealth>, AttemptRecord)>,
    oldest: Option<Instant>,
    ticker_started: bool,
}

thread_local! {
    static OUTBOX: RefCell<Outbox> = RefCell::new(Outbox::default());
}

pub fn record_usage(ledger: &UsageLedgerHandle, record: UsageRecord) {
    push(|o| {
        if o.ledger.is_none() {
            o.ledger = Some(ledger.addr.clone());
        }
        o.usage.push(record);
    });
}

pub fn record_attempt(pool: &Addr<ProviderHealth>, record: AttemptRecord) {
    push(|o| o.attempts.push((pool.clone(), record)));
}

/// A circuit-breaker outcome goes out at once (see [`CircuitReport`]).
pub fn report_circuit(pool: &Addr<ProviderHealth>, report: CircuitReport) {
    if pool.try_send(report).is_err() {
        DROPPED_BATCHES.fetch_add(1, Ordering::Relaxed);
    }
}

fn push(f: impl FnOnce(&mut Outbox)) {
    let due = OUTBOX.with_borrow_mut(|o| {
        f(o);
        let now = Instant::now();
        let oldest = *o.oldest.get_or_insert(now);
        if !o.ticker_started {
            o.ticker_started = true;
            start_ticker();
        }
        o.usage.len() + o.attempts.len() >= BATCH_SIZE || now.duration_since(oldest) >= MAX_AGE
    });
    if due {
        flush();
    }
}

/// A per-worker timer so records do not wait for the next request in quiet periods.
fn start_ticker() {
    tokio::task::spawn_local(async {
        let mut tick = tokio::time::interval(MAX_AGE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            flush();
        }
    });
}

/// Sends everything this worker has collected.
pub fn flush() {
    OUTBOX.with_borrow_mut(Outbox::send_all);
}

impl Outbox {
    fn send_all(&mut self) {
        self.oldest = None;
        let usage = std::mem::take(&mut self.usage);
        if let (Some(ledger), false) = (&self.ledger, usage.is_empty())
            && ledger.try_send(UsageBatch(usage)).is_err()
        {
            DROPPED_BATCHES.fetch_add(1, Ordering::Relaxed);
        }
        // Group by destination; a worker sees few providers, so a linear scan is cheapest.
        let mut groups: Vec<(Addr<ProviderHealth>, Vec<AttemptRecord>)> = Vec::new();
        for (addr, rec) in std::mem::take(&mut self.attempts) {
            match groups.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, v)) => v.push(rec),
                None => groups.push((addr, vec![rec])),
            }
        }
        for (addr, batch) in groups {
            if addr.try_send(AttemptBatch(batch)).is_err() {
                DROPPED_BATCHES.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A worker thread that exits (shutdown) sends what it still holds.
impl Drop for Outbox {
    fn drop(&mut self) {
        self.send_all();
    }
}
