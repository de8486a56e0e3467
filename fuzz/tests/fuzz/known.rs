//! Bugs the fuzzer found that are not fixed yet.
//!
//! Each entry tolerates one check of one target (so CI stays green while the fix is pending)
//! and names the corpus file that reproduces it: the replay fails if that file stops
//! reproducing the bug, so a fixed bug's entry cannot linger. To fix one: fix the code, delete
//! the entry, keep the corpus file (it is the regression test from then on).

use crate::harness::Violation;

pub struct KnownFailure {
    pub target: &'static str,
    /// The [`Violation::check`] it shows up as.
    pub check: &'static str,
    /// A part of the violation's detail that singles this bug out within the check.
    pub detail_contains: &'static str,
    /// The file in `fuzz/corpus/<target>/` that reproduces it.
    pub reproducer: &'static str,
    /// What is wrong and where.
    pub bug: &'static str,
}

impl KnownFailure {
    pub fn matches(&self, v: &Violation) -> bool {
        v.check == self.check && v.detail.contains(self.detail_contains)
    }
}

/// Every bug the fuzzer found that is not fixed yet. The five it found first (token counts not
/// range-checked; bytes that are not UTF-8, a chunk that is not JSON and a cut stream
/// presented as complete, all three in the OpenAI codec; an SSE size limit that depended on
/// where reads were split) are fixed: their `known-*` reproducers stay in the corpus as
/// regression cases.
pub const KNOWN_FAILURES: &[KnownFailure] = &[];

pub fn for_target(target: &str) -> Vec<&'static KnownFailure> {
    KNOWN_FAILURES.iter().filter(|k| k.target == target).collect()
}
