//! What keeps a request alive when providers fail: retry delays (backoff, `Retry-After`),
//! a retry budget per provider, and a circuit breaker per provider key. Which failure does
//! what is decided in one place, [`crate::error::GatewayError::on_failure`].

pub mod backoff;
pub mod breaker;
pub mod budget;

pub use backoff::{RetryPolicy, parse_retry_after};
pub use breaker::{Admission, CircuitBreaker, FailureWindow};
pub use budget::RetryBudget;

/// What the pipeline does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// Transient (429, 5xx, refused, reset, connect timeout): the same target again after a
    /// backoff, then the next target.
    Retry,
    /// The upstream rejected the key: the same target with another key at once (no backoff,
    /// no retry budget: each rejection takes one key out of service, so this is bounded by
    /// the key count), else the next target.
    NextKey,
    /// The same target will not do better (a silent upstream, a context-length error, no
    /// usable key, an open circuit): the next target at once.
    NextTarget,
    /// Final: the client's own error or a safety refusal; no target is tried after it.
    Stop,
}
