//! A process-wide budget of body bytes held in memory: request bodies being read or parsed,
//! and upstream answers read whole. Each body leases bytes as they arrive and gives them back
//! when its buffer is dropped; a body that cannot get its bytes is refused at once (503
//! `server_busy`), never queued. `server.max_body_size` bounds one body; this bounds all of
//! them together, so a burst of large bodies cannot exhaust memory.
//!
//! The budget counts body bytes, not allocator overhead (a growing buffer may briefly hold up
//! to twice its length): size it with that margin.

use std::sync::atomic::{AtomicU64, Ordering};

/// The one budget of the process. Unlimited until [`BodyBudget::set_limit`] is called (the
/// daemon does so at start from `server.max_in_flight_body`).
pub static IN_FLIGHT: BodyBudget = BodyBudget::new(u64::MAX);

#[derive(Debug)]
pub struct BodyBudget {
    limit: AtomicU64,
    used: AtomicU64,
    /// Bodies refused because the budget was spent (for `/admin/status`).
    refused: AtomicU64,
}

/// The budget is spent: the body would not fit now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the gateway holds as many body bytes as server.max_in_flight_body allows")]
pub struct BudgetSpent;

impl BodyBudget {
    pub const fn new(limit: u64) -> BodyBudget {
        BodyBudget {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes leased right now.
    pub fn in_use(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether `bytes` more would fit now (a hint: another body may take them first).
    pub fn has_room_for(&self, bytes: u64) -> bool {
        self.in_use().saturating_add(bytes) <= self.limit()
    }

    /// An empty lease, grown as a body's bytes arrive.
    pub fn lease(&self) -> Lease<'_> {
        Lease { budget: self, bytes: 0 }
    }

    /// Counts a body refused before any of it was leased (see [`BodyBudget::has_room_for`]).
    pub fn note_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Bytes a body holds from the budget, given back on drop.
#[derive(Debug)]
#[must_use]
pub struct Lease<'a> {
    budget: &'a BodyBudget,
    bytes: u64,
}

impl Lease<'_> {
    /// Takes `bytes` more from the budget, or nothing when they do not fit.
    pub fn grow(&mut self, bytes: u64) -> Result<(), BudgetSpent> {
        let budget = self.budget;
        let limit = budget.limit();
        // A compare-and-swap rather than add-then-undo: a refused body must not make the
        // count overshoot, even for a moment, or it would refuse others that fit.
        let taken = budget.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            used.checked_add(bytes).filter(|&total| total <= limit)
        });
        if taken.is_err() {
            budget.refused.fetch_add(1, Ordering::Relaxed);
            return Err(BudgetSpent);
        }
        self.bytes += bytes;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_take_bytes_until_the_limit_and_give_them_back_on_drop() {
        let budget = BodyBudget::new(100);
        let mut a = budget.lease();
        a.grow(60).expect("fits");
        let mut b = budget.lease();
        assert_eq!(b.grow(50), Err(BudgetSpent), "60 + 50 > 100");
        assert_eq!(budget.in_use(), 60, "a refused grow takes nothing");
        assert_eq!(budget.refused(), 1);
        b.grow(40).expect("60 + 40 fits exactly");
        assert!(!budget.has_room_for(1));
        drop(a);
        assert_eq!(budget.in_use(), 40);
        b.grow(60).expect("room again after a lease was dropped");
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn concurrent_leases_never_exceed_the_limit() {
        let budget = BodyBudget::new(1000);
        // What the successful leases hold together, counted apart from the budget.
        let held = AtomicU64::new(0);
        let peak = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        let mut l = budget.lease();
                        if l.grow(300).is_ok() {
                            let now = held.fetch_add(300, Ordering::SeqCst) + 300;
                            peak.fetch_max(now, Ordering::SeqCst);
                            held.fetch_sub(300, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 1000, "{}", peak.load(Ordering::SeqCst));
        assert_eq!(budget.in_use(), 0);
    }
}
