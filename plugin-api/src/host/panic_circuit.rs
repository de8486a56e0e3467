//! Whether a provider instance whose plugin keeps panicking may be called: a circuit over
//! the instance, like the gateway's per-key circuit breaker.
//!
//! - **Counting**: panics *in a row* count — any call that returns normally (success or an
//!   error the plugin reported) resets the count. So code that is broken for every input is
//!   switched off, while a panic that only some inputs trigger (one client's odd request)
//!   cannot switch the instance off for everyone else as long as other calls succeed.
//! - **Open**: after [`PanicPolicy::limit`] panics in a row every call fails fast for
//!   [`PanicPolicy::cooldown`].
//! - **Probe**: after the cooldown exactly one call is let through (claimed atomically). If
//!   it returns normally the instance is enabled again with a count of zero; if it panics the
//!   instance is off for another cooldown. Calls while the probe is out fail fast too. Calls
//!   are synchronous, so the probe always reports back.
//!
//! The whole state is one atomic word, so the call path costs one relaxed load before and one
//! after a call; anything more happens only once something has panicked.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// After this many panics in a row, an instance is switched off for a cooldown (the default
/// [`PanicPolicy::limit`]).
pub const PANIC_LIMIT: u32 = 5;

/// How long an instance stays off by default ([`PanicPolicy::cooldown`]).
pub const PANIC_COOLDOWN: Duration = Duration::from_secs(10);

/// How a provider instance reacts to panics; set by the host per configured provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanicPolicy {
    /// Panics in a row that switch the instance off (at least 1).
    pub limit: u32,
    /// How long it stays off before one probe call is let through.
    pub cooldown: Duration,
}

impl Default for PanicPolicy {
    fn default() -> Self {
        PanicPolicy {
            limit: PANIC_LIMIT,
            cooldown: PANIC_COOLDOWN,
        }
    }
}

// Layout of the state word:
// - bits 0..48: the time (ms on `now_ms`'s clock) until which the instance is off; 0 = on;
// - bits 48..63: panics in a row (saturating);
// - bit 63: the probe is out (the time bits are then 0).
const UNTIL: u64 = (1 << 48) - 1;
const COUNT_SHIFT: u32 = 48;
const COUNT_MAX: u64 = (1 << 15) - 1;
const PROBE: u64 = 1 << 63;
/// Set when calls must go through the slow path (off or probing).
const BLOCKED: u64 = UNTIL | PROBE;

/// Milliseconds on a monotonic clock that starts near the first panic (never 0).
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    (epoch.elapsed().as_millis() as u64 + 1).min(UNTIL)
}

fn count_of(word: u64) -> u64 {
    (word >> COUNT_SHIFT) & COUNT_MAX
}

/// The right to make one call, from [`PanicCircuit::admit`]; hand it back with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "report the call's outcome with the ticket"]
pub(crate) enum Ticket {
    Normal,
    /// The one call let through after a cooldown.
    Probe,
}

#[derive(Debug)]
pub(crate) struct PanicCircuit {
    word: AtomicU64,
    /// Every panic caught since the instance was created, for status pages.
    total: AtomicU32,
    limit: u64,
    cooldown_ms: u64,
}

impl PanicCircuit {
    pub(crate) fn new(policy: PanicPolicy) -> PanicCircuit {
        PanicCircuit {
            word: AtomicU64::new(0),
            total: AtomicU32::new(0),
            limit: u64::from(policy.limit).clamp(1, COUNT_MAX),
            cooldown_ms: u64::try_from(policy.cooldown.as_millis()).map_or(UNTIL, |ms| ms.min(UNTIL)),
        }
    }

    pub(crate) fn panics(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }

    /// Off, or back on only for a probe (which has not yet succeeded).
    pub(crate) fn is_disabled(&self) -> bool {
        self.word.load(Ordering::Relaxed) & BLOCKED != 0
    }

    /// May a call be made now? `None`: fail fast.
    #[inline]
    pub(crate) fn admit(&self) -> Option<Ticket> {
        self.admit_at(now_ms)
    }

    /// [`PanicCircuit::admit`] on a given clock (read only when the instance is off).
    #[inline]
    fn admit_at(&self, now: impl FnOnce() -> u64) -> Option<Ticket> {
        let word = self.word.load(Ordering::Relaxed);
        if word & BLOCKED == 0 {
            return Some(Ticket::Normal);
        }
        self.admit_blocked(word, now())
    }

    #[cold]
    fn admit_blocked(&self, mut word: u64, now: u64) -> Option<Ticket> {
        loop {
            if word & PROBE != 0 {
                return None;
            }
            let until = word & UNTIL;
            if until == 0 {
                // A probe succeeded since the first load.
                return Some(Ticket::Normal);
            }
            if now < until {
                return None;
            }
            // The cooldown is over: exactly one caller wins the probe.
            let probing = (word & !UNTIL) | PROBE;
            match self
                .word
                .compare_exchange_weak(word, probing, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(Ticket::Probe),
                Err(current) => word = current,
            }
        }
    }

    /// The call returned normally (whatever status it reported).
    #[inline]
    pub(crate) fn returned(&self, ticket: Ticket) {
        match ticket {
            Ticket::Probe => self.word.store(0, Ordering::Release),
            Ticket::Normal => {
                let word = self.word.load(Ordering::Relaxed);
                // Only a count to reset; a call admitted before the instance was switched off
                // does not switch it back on (that is the probe's job).
                if word != 0 && word & BLOCKED == 0 {
                    let _ = self.word.compare_exchange(word, 0, Ordering::AcqRel, Ordering::Relaxed);
                }
            }
        }
    }

    /// The call panicked (the plugin's boundary guard caught it).
    #[cold]
    pub(crate) fn panicked(&self, ticket: Ticket) {
        self.panicked_at(ticket, now_ms());
    }

    fn panicked_at(&self, ticket: Ticket, now: u64) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let off_until = now.saturating_add(self.cooldown_ms).min(UNTIL);
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let count = (count_of(word) + 1).min(COUNT_MAX);
            let next = match ticket {
                // The probe failed: off for another cooldown.
                Ticket::Probe => (count << COUNT_SHIFT) | off_until,
                // Already off (or probing): a call admitted earlier changes nothing.
                Ticket::Normal if word & BLOCKED != 0 => return,
                Ticket::Normal if count >= self.limit => (count << COUNT_SHIFT) | off_until,
                Ticket::Normal => count << COUNT_SHIFT,
            };
            match self
                .word
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(current) => word = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn circuit(limit: u32, cooldown_ms: u64) -> PanicCircuit {
        PanicCircuit::new(PanicPolicy {
            limit,
            cooldown: Duration::from_millis(cooldown_ms),
        })
    }

    fn trip(c: &PanicCircuit, now: u64) {
        while !c.is_disabled() {
            let ticket = c.admit_at(|| now).expect("admitted while on");
            c.panicked_at(ticket, now);
        }
    }

    #[test]
    fn panics_in_a_row_switch_it_off_and_a_normal_return_resets_the_count() {
        let c = circuit(3, 100);
        for _ in 0..2 {
            c.panicked_at(Ticket::Normal, 10);
        }
        c.returned(Ticket::Normal);
        for _ in 0..2 {
            c.panicked_at(Ticket::Normal, 10);
        }
        assert!(!c.is_disabled(), "two in a row after a success are under the limit");
        c.panicked_at(Ticket::Normal, 10);
        assert!(c.is_disabled());
        assert_eq!(c.panics(), 5);
        assert_eq!(c.admit_at(|| 109), None, "off during the cooldown");
    }

    #[test]
    fn after_the_cooldown_one_probe_then_on_again() {
        let c = circuit(2, 100);
        trip(&c, 1000);
        assert_eq!(c.admit_at(|| 1099), None);
        assert_eq!(c.admit_at(|| 1100), Some(Ticket::Probe));
        assert_eq!(c.admit_at(|| 5000), None, "the probe is out");
        // A call admitted before the switch-off returning now does not switch it back on.
        c.returned(Ticket::Normal);
        assert!(c.is_disabled());
        c.returned(Ticket::Probe);
        assert!(!c.is_disabled());
        assert_eq!(c.admit_at(|| 5000), Some(Ticket::Normal));
        // The count was reset: one panic is under the limit of two again.
        c.panicked_at(Ticket::Normal, 5000);
        assert!(!c.is_disabled());
    }

    #[test]
    fn a_failed_probe_means_another_cooldown() {
        let c = circuit(2, 100);
        trip(&c, 1000);
        assert_eq!(c.admit_at(|| 1100), Some(Ticket::Probe));
        c.panicked_at(Ticket::Probe, 1150);
        assert_eq!(c.admit_at(|| 1249), None);
        assert_eq!(c.admit_at(|| 1250), Some(Ticket::Probe));
    }

    #[test]
    fn exactly_one_of_many_racing_callers_gets_the_probe() {
        for _ in 0..50 {
            let c = Arc::new(circuit(1, 10));
            trip(&c, 1000);
            let start = Arc::new(Barrier::new(8));
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (c, start) = (Arc::clone(&c), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        c.admit_at(|| 2000)
                    })
                })
                .collect();
            let tickets: Vec<_> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
            assert_eq!(
                tickets.iter().filter(|t| **t == Some(Ticket::Probe)).count(),
                1,
                "{tickets:?}"
            );
            assert_eq!(tickets.iter().filter(|t| t.is_none()).count(), 7, "{tickets:?}");
        }
    }

    #[test]
    fn policy_values_are_bounded() {
        let c = PanicCircuit::new(PanicPolicy {
            limit: 0,
            cooldown: Duration::MAX,
        });
        c.panicked_at(Ticket::Normal, 1);
        assert!(c.is_disabled(), "a limit of 0 acts as 1");
        assert_eq!(c.admit_at(|| UNTIL - 1), None, "a huge cooldown saturates, never wraps");
    }
}
