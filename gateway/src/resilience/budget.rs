//! A retry budget per provider, so a failing provider cannot multiply its own load: retries
//! in progress may not exceed a share of the requests in progress, plus a small floor so a
//! quiet gateway can still retry.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Retries in progress may be at most this percentage of requests in progress…
const BUDGET_PERCENT: usize = 20;
/// …plus this many, whatever the load.
const MIN_RETRY_CONCURRENCY: usize = 3;

#[derive(Debug, Default)]
pub struct RetryBudget {
    in_flight: AtomicUsize,
    retrying: AtomicUsize,
}

/// Counts one request (or one retry) for as long as it lives.
#[must_use]
pub struct Active<'a>(&'a AtomicUsize);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RetryBudget {
    /// Counts a request working on this provider (its first attempt and any retries).
    pub fn enter(&self) -> Active<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Active(&self.in_flight)
    }

    /// A retry's share of the budget, held through its backoff and its attempt; `None` when
    /// the budget is spent.
    pub fn try_retry(&self) -> Option<Active<'_>> {
        let allowed = MIN_RETRY_CONCURRENCY + self.in_flight.load(Ordering::Relaxed) * BUDGET_PERCENT / 100;
        let taken = self.retrying.fetch_add(1, Ordering::Relaxed);
        if taken >= allowed {
            self.retrying.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Active(&self.retrying))
    }

    /// (requests in progress, retries in progress), for `/admin/status`.
    pub fn load(&self) -> (usize, usize) {
        (
            self.in_flight.load(Ordering::Relaxed),
            self.retrying.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_allows_a_few_retries_when_quiet() {
        let b = RetryBudget::default();
        let _r = b.enter();
        let held: Vec<_> = (0..MIN_RETRY_CONCURRENCY)
            .map(|_| b.try_retry().expect("within floor"))
            .collect();
        assert!(b.try_retry().is_none());
        drop(held);
        assert!(b.try_retry().is_some());
    }

    #[test]
    fn the_budget_grows_with_load_to_a_fifth_of_it() {
        let b = RetryBudget::default();
        let requests: Vec<_> = (0..100).map(|_| b.enter()).collect();
        let retries: Vec<_> = std::iter::from_fn(|| b.try_retry()).take(1000).collect();
        assert_eq!(retries.len(), MIN_RETRY_CONCURRENCY + 20);
        drop(retries);
        drop(requests);
        assert_eq!(b.load(), (0, 0));
    }
}
