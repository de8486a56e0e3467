//! Cost: what each answer cost, from its usage and the answering model's prices.
//!
//! - [`prices`]: the pricing table (the bundled one generated from LiteLLM's price list, or
//!   `pricing.file`) with `pricing.overrides` merged in, and how a target finds its price.
//! - [`compute`]: usage split into disjoint parts, each priced at its own rate, and the
//!   `usage.cost` object written into answers.
//!
//! A target's price is resolved once, when the routing table is built; an answer's cost is a
//! few multiplications when its usage arrives. A model without a price gets no `cost` field
//! (never a silent 0): warned once at config load, counted per answer.

pub mod compute;
pub mod prices;

use std::sync::atomic::{AtomicU64, Ordering};

pub use compute::Cost;
pub use prices::{ModelPrice, PriceTable};

/// Answers that carried usage but no cost, their model having no price (`/admin/status`).
static UNPRICED_ANSWERS: AtomicU64 = AtomicU64::new(0);

pub fn count_unpriced() {
    UNPRICED_ANSWERS.fetch_add(1, Ordering::Relaxed);
}

pub fn unpriced_answers() -> u64 {
    UNPRICED_ANSWERS.load(Ordering::Relaxed)
}
