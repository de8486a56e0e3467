//! Actors own the gateway's mutable state; the request path never waits on them.
//!
//! - [`router::Router`] owns the routing snapshot (swapped on reload; read via `ArcSwap`).
//! - [`provider_pool::ProviderPoolActor`] (one per provider) owns health counters, later
//!   circuit state.
//! - [`cost_tracker::CostTracker`] owns the usage ledger (cost and budgets later).
//!
//! Requests report to them through [`outbox`]: per-worker batches flushed with bounded
//! `try_send`, so there is no cross-thread message per request and no unbounded queue.

pub mod cost_tracker;
pub mod outbox;
pub mod provider_pool;
pub mod router;

/// Mailbox capacity of every actor, in batches. A full mailbox drops the batch and counts it.
pub const MAILBOX_CAPACITY: usize = 1024;
