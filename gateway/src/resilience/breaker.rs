//! A circuit breaker per provider key (one slot per usable key; one for a keyless provider).
//!
//! The state lives in one atomic word per slot so every worker reads it without a lock:
//! `0` = closed; otherwise the time (ms on the process clock) until which the slot is open.
//! The high bit marks a half-open slot whose single probe request is out. The Egress
//! actor counts failures (a [`FailureWindow`] per slot) and opens and closes circuits; the
//! request path only claims the probe, because exactly one request may win it and that
//! decision cannot wait for a mailbox.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PROBE: u64 = 1 << 63;

/// `providers.NAME.circuit_breaker`, resolved.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    pub failures: u32,
    pub window: Duration,
    pub cooldown: Duration,
    /// How long a key the upstream rejected (401/403) stays out of service.
    pub auth_cooldown: Duration,
}

/// Milliseconds on a monotonic clock that starts near process start (never 0).
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_millis() as u64 + 1
}

/// Whether a request may use a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Closed,
    /// The circuit was open and its cooldown is over: this request is the one probe.
    Probe,
    /// Open (or its probe is out); usable again in about this long.
    Open {
        retry_in: Duration,
    },
}

/// A slot's state for `/admin/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    pub config: BreakerConfig,
    slots: Box<[AtomicU64]>,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig, slots: usize) -> CircuitBreaker {
        CircuitBreaker {
            config,
            slots: (0..slots.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    fn word(&self, slot: usize) -> Option<&AtomicU64> {
        self.slots.get(slot)
    }

    /// Whether a request could use the slot now (without claiming a probe).
    pub fn is_available(&self, slot: usize, now: u64) -> bool {
        self.word(slot).is_none_or(|w| {
            let v = w.load(Ordering::Acquire);
            v == 0 || now >= v & !PROBE
        })
    }

    /// Admits a request to the slot; after a cooldown exactly one caller gets the probe.
    pub fn admit(&self, slot: usize, now: u64) -> Admission {
        let Some(w) = self.word(slot) else {
            return Admission::Closed;
        };
        let v = w.load(Ordering::Acquire);
        if v == 0 {
            return Admission::Closed;
        }
        let until = v & !PROBE;
        if now < until {
            return Admission::Open {
                retry_in: Duration::from_millis(until - now),
            };
        }
        // Cooldown over (or a probe that never reported back has outlived its lease): claim
        // the probe, leased for one cooldown.
        let lease_ms = u64::try_from(self.config.cooldown.as_millis()).unwrap_or(u64::MAX);
        let lease = PROBE | now.saturating_add(lease_ms).min(PROBE - 1);
        match w.compare_exchange(v, lease, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Admission::Probe,
            Err(_) => Admission::Open {
                retry_in: self.config.cooldown,
            },
        }
    }

    /// Opens the slot for one cooldown from `now`.
    pub fn open(&self, slot: usize, now: u64) {
        self.open_for(slot, now, self.config.cooldown);
    }

    /// Opens the slot for `cooldown` from `now` (a key the upstream rejected stays out for
    /// longer than a key that merely failed). Saturating: config durations are bounded, but
    /// the word must never wrap into the probe bit.
    pub fn open_for(&self, slot: usize, now: u64, cooldown: Duration) {
        if let Some(w) = self.word(slot) {
            let until = now.saturating_add(u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX));
            w.store(until.min(PROBE - 1), Ordering::Release);
        }
    }

    pub fn close(&self, slot: usize) {
        if let Some(w) = self.word(slot) {
            w.store(0, Ordering::Release);
        }
    }

    pub fn state(&self, slot: usize, now: u64) -> CircuitState {
        let v = self.word(slot).map_or(0, |w| w.load(Ordering::Acquire));
        match v {
            0 => CircuitState::Closed,
            v if v & PROBE != 0 => CircuitState::HalfOpen,
            v if now >= v => CircuitState::HalfOpen,
            _ => CircuitState::Open,
        }
    }

    /// Whether a probe is out or the slot is open (failures then do not count again).
    pub fn is_closed(&self, slot: usize) -> bool {
        self.word(slot).is_none_or(|w| w.load(Ordering::Acquire) == 0)
    }
}

/// Failures of one slot within the breaker's window (kept by the Egress actor).
#[derive(Debug, Default)]
pub struct FailureWindow {
    times: VecDeque<Instant>,
}

impl FailureWindow {
    /// Records a failure at `at`; true when the slot should open.
    pub fn record(&mut self, at: Instant, config: &BreakerConfig) -> bool {
        while self
            .times
            .front()
            .is_some_and(|t| at.saturating_duration_since(*t) > config.window)
        {
            self.times.pop_front();
        }
        self.times.push_back(at);
        if self.times.len() >= config.failures.max(1) as usize {
            self.times.clear();
            return true;
        }
        false
    }

    pub fn clear(&mut self) {
        self.times.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(
            BreakerConfig {
                failures: 3,
                window: Duration::from_secs(10),
                cooldown: Duration::from_millis(100),
                auth_cooldown: Duration::from_secs(300),
            },
            2,
        )
    }

    #[test]
    fn open_then_exactly_one_probe_then_closed() {
        let b = breaker();
        assert_eq!(b.admit(0, 1000), Admission::Closed);
        b.open(0, 1000);
        assert!(!b.is_available(0, 1050));
        assert_eq!(
            b.admit(0, 1050),
            Admission::Open {
                retry_in: Duration::from_millis(50)
            }
        );
        assert_eq!(b.state(0, 1050), CircuitState::Open);
        // The other key is unaffected.
        assert_eq!(b.admit(1, 1050), Admission::Closed);
        assert!(b.is_available(0, 1100));
        assert_eq!(b.admit(0, 1100), Admission::Probe);
        assert_eq!(b.state(0, 1101), CircuitState::HalfOpen);
        assert!(matches!(b.admit(0, 1101), Admission::Open { .. }));
        b.close(0);
        assert_eq!(b.admit(0, 1102), Admission::Closed);
    }

    #[test]
    fn open_for_a_long_cooldown_outlasts_the_normal_one_and_never_wraps() {
        let b = breaker();
        b.open_for(0, 1000, Duration::from_secs(300));
        assert!(!b.is_available(0, 1000 + 100_000));
        assert_eq!(b.admit(0, 1000 + 300_000), Admission::Probe);
        b.open_for(1, u64::MAX - 5, Duration::MAX);
        assert_eq!(b.state(1, 1000), CircuitState::Open);
        assert!(matches!(b.admit(1, 1000), Admission::Open { .. }));
    }

    #[test]
    fn a_lost_probe_is_replaced_after_its_lease() {
        let b = breaker();
        b.open(0, 1000);
        assert_eq!(b.admit(0, 1100), Admission::Probe);
        assert!(matches!(b.admit(0, 1150), Admission::Open { .. }));
        assert_eq!(b.admit(0, 1200), Admission::Probe);
    }

    #[test]
    fn failures_open_only_within_the_window() {
        let cfg = breaker().config;
        let mut w = FailureWindow::default();
        let t0 = Instant::now();
        assert!(!w.record(t0, &cfg));
        assert!(!w.record(t0 + Duration::from_secs(5), &cfg));
        // The first failure has left the window by now.
        assert!(!w.record(t0 + Duration::from_secs(11), &cfg));
        assert!(w.record(t0 + Duration::from_secs(12), &cfg));
    }
}
