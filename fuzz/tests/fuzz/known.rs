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

/// Token counts are not range-checked (DESIGN §7: every number from an upstream is).
const USAGE_UNCHECKED: &str = "an upstream's token count reaches the host unchecked: the SDK's TokenCount turns \
    1e300 into u64::MAX (plugin-api/src/sdk/mod.rs, TokenCount::visit_f64) and takes any u64; Gemini's \
    usageMetadata takes any u64 (plugins/gemini/src/gemini.rs); the sums saturate at u64::MAX. The ledger then \
    adds them with `+=` (gateway/src/actors/cost_tracker.rs), which overflows";

/// Bytes that are not UTF-8 pass through the OpenAI codec.
const OPENAI_NOT_UTF8: &str = "the OpenAI codec forwards an upstream body or chunk whose strings hold bytes that are not \
    UTF-8 (here Latin-1 \\xe9) unchanged: CompletionView::parse only skips strings (IgnoredAny), which serde_json does \
    without checking UTF-8, and the stream's tail template (plugins/openai/src/tail_template.rs) matches string bodies \
    without checking it either; the client receives a body that is not JSON text (RFC 8259 §8.1)";

/// Every bug the fuzzer found that is not fixed yet.
pub const KNOWN_FAILURES: &[KnownFailure] = &[
    KnownFailure {
        target: "sse",
        check: "sse.limit_split",
        detail_contains: "",
        reproducer: "known-long-comment-split.sse",
        bug: "whether SseParser drops an event as oversized depends on how the stream was split: feed \
              (plugin-api/src/sdk/sse.rs) bounds an unfinished line by its raw length (field name and prefix \
              included, comments and `id:` lines too) plus the event's data, a finished one by its data value only \
              (comments not at all); so a long comment split across reads drops the event it is in, and a data \
              line a few bytes under the limit is kept whole but dropped when split",
    },
    KnownFailure {
        target: "openai-stream",
        check: "usage.range",
        detail_contains: "",
        reproducer: "known-usage-1e300.sse",
        bug: USAGE_UNCHECKED,
    },
    KnownFailure {
        target: "openai-response",
        check: "usage.range",
        detail_contains: "",
        reproducer: "known-usage-1e300.json",
        bug: USAGE_UNCHECKED,
    },
    KnownFailure {
        target: "anthropic-stream",
        check: "usage.range",
        detail_contains: "",
        reproducer: "known-usage-1e300.sse",
        bug: USAGE_UNCHECKED,
    },
    KnownFailure {
        target: "anthropic-response",
        check: "usage.range",
        detail_contains: "",
        reproducer: "known-usage-1e300.json",
        bug: USAGE_UNCHECKED,
    },
    KnownFailure {
        target: "gemini-stream",
        check: "usage.range",
        detail_contains: "",
        reproducer: "known-usage-huge.sse",
        bug: USAGE_UNCHECKED,
    },
    KnownFailure {
        target: "gemini-response",
        check: "usage.range",
        detail_contains: "",
        reproducer: "known-usage-huge.json",
        bug: USAGE_UNCHECKED,
    },
    KnownFailure {
        target: "openai-stream",
        check: "payload.utf8",
        detail_contains: "",
        reproducer: "known-invalid-utf8.sse",
        bug: OPENAI_NOT_UTF8,
    },
    KnownFailure {
        target: "openai-response",
        check: "payload.utf8",
        detail_contains: "",
        reproducer: "known-invalid-utf8.json",
        bug: OPENAI_NOT_UTF8,
    },
    KnownFailure {
        target: "openai-stream",
        check: "payload.json",
        detail_contains: "key must be a string",
        reproducer: "known-head-without-members.sse",
        bug: "an OpenAI chunk `{,\"choices\":[…]}` is forwarded although it is not JSON: SharedHead::learn \
              (plugins/openai/src/stream.rs) checks the head by parsing `{` + `}`, which is valid, so a head with \
              no members (`{,`) is accepted and the chunk is then read from its tail alone",
    },
    KnownFailure {
        target: "openai-stream",
        check: "stream.no_end",
        detail_contains: "",
        reproducer: "known-cut-without-finish.sse",
        bug: "an OpenAI stream that the upstream closes after some chunks, with neither a finish_reason nor \
              [DONE], ends without an error item (plugins/openai/src/stream.rs, ChatStream::finish); the relay \
              (gateway/src/pipeline/relay.rs, next_frame) then writes [DONE] after the cut answer, as if complete",
    },
];

pub fn for_target(target: &str) -> Vec<&'static KnownFailure> {
    KNOWN_FAILURES.iter().filter(|k| k.target == target).collect()
}
