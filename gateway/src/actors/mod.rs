//! Actors own the gateway's mutable state; the request path never waits on them.
//!
//! - [`router::Router`] owns the routing snapshot (swapped on reload; read via `ArcSwap`);
//!   [`crate::reload::ConfigWatcher`] builds the new ones.
//! - [`provider_health::ProviderHealth`] (one per provider) owns health counters and the
//!   circuit breakers' failure windows.
//! - [`usage_ledger::UsageLedger`] owns the usage ledger (cost and budgets later).
//!
//! Three different things were once all called "pool"; now each name says what it holds:
//! `ProviderHealth` (this actor), `upstream::Egress` (a provider's HTTP client, concurrency
//! limit and header rules) and `upstream::ConnPool` (kept-alive upstream connections).
//!
//! Requests report to them through [`outbox`]: per-worker batches flushed with bounded
//! `try_send`, so there is no cross-thread message per request and no unbounded queue.

pub mod outbox;
pub mod provider_health;
pub mod router;
pub mod usage_ledger;

/// Mailbox capacity of every actor, in batches. A full mailbox drops the batch and counts it.
pub const MAILBOX_CAPACITY: usize = 1024;
