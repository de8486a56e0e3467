//! Anthropic usage → OpenAI usage, and `stop_reason` → `finish_reason`: the two mappings the
//! response and the stream share.
//!
//! Anthropic counts input in three disjoint parts: `input_tokens` (after the last cache
//! breakpoint), `cache_read_input_tokens` and `cache_creation_input_tokens`. OpenAI's
//! `prompt_tokens` is the whole prompt, with `prompt_tokens_details.cached_tokens` a subset of
//! it. So `prompt_tokens` is the sum of all three, `cached_tokens` the cache reads, and
//! `cache_write_tokens` (the gateway's own detail, priced separately) the cache writes.
//! `usage.cache_creation.ephemeral_1h_input_tokens`, the writes to a 1-hour cache (priced
//! higher than 5-minute ones), becomes `cache_write_1h_tokens`, a part of the writes.
//! Thinking is part of `output_tokens`, and Anthropic does not report it apart, so no
//! `reasoning_tokens` are claimed.

use crate::messages::UsageView;
use switchyard_plugin_api::sdk::unified::{UsageJson, UsageParts};
use switchyard_plugin_api::sdk::{TokenCount, Usage};

/// What Anthropic's usage reports beside the counts: cache reads and cache writes, not
/// thinking apart from output.
pub(crate) const USAGE_PARTS: UsageParts = UsageParts {
    cached: true,
    cache_write: true,
    reasoning: false,
};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub cache_write_1h: u64,
}

impl TokenCounts {
    pub(crate) fn from_view(view: &UsageView) -> TokenCounts {
        let mut counts = TokenCounts::default();
        counts.update(view);
        counts
    }

    /// Takes every count the view has (a later `message_delta` restates the final ones).
    pub(crate) fn update(&mut self, view: &UsageView) {
        let set = |slot: &mut u64, count: Option<TokenCount>| {
            if let Some(c) = count {
                *slot = c.0;
            }
        };
        set(&mut self.input, view.input_tokens);
        set(&mut self.output, view.output_tokens);
        set(&mut self.cache_read, view.cache_read_input_tokens);
        set(&mut self.cache_write, view.cache_creation_input_tokens);
        set(
            &mut self.cache_write_1h,
            view.cache_creation.as_ref().and_then(|c| c.ephemeral_1h_input_tokens),
        );
    }

    pub(crate) fn prompt(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }

    pub(crate) fn to_usage(self) -> Usage {
        let prompt_tokens = self.prompt();
        Usage {
            prompt_tokens,
            completion_tokens: self.output,
            total_tokens: prompt_tokens.saturating_add(self.output),
            cached_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            cache_write_1h_tokens: self.cache_write_1h.min(self.cache_write),
            reasoning_tokens: 0,
        }
    }

    /// OpenAI's `CompletionUsage` object.
    pub(crate) fn to_openai(self) -> UsageJson {
        UsageJson::new(self.to_usage(), USAGE_PARTS)
    }
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`. `tool_use` becomes `tool_calls`
/// only when a client tool was called: an answer through the response-format tool is `stop`.
pub(crate) fn finish_reason(stop_reason: Option<&str>, client_tool_called: bool) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") if client_tool_called => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn (a server tool paused the turn), an answer
        // through the response tool, and anything newer: the model stopped on its own.
        _ if client_tool_called => "tool_calls",
        _ => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_tokens_include_the_cache() {
        let view = UsageView {
            input_tokens: Some(TokenCount(20)),
            output_tokens: Some(TokenCount(7)),
            cache_creation_input_tokens: Some(TokenCount(100)),
            cache_read_input_tokens: Some(TokenCount(1000)),
            cache_creation: None,
        };
        let counts = TokenCounts::from_view(&view);
        let usage = counts.to_usage();
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
            (1120, 7, 1127)
        );
        assert_eq!((usage.cached_tokens, usage.cache_write_tokens), (1000, 100));
        let json = serde_json::to_string(&counts.to_openai()).expect("json");
        assert_eq!(
            json,
            r#"{"prompt_tokens":1120,"completion_tokens":7,"total_tokens":1127,"prompt_tokens_details":{"cached_tokens":1000,"cache_write_tokens":100}}"#
        );
    }

    #[test]
    fn one_hour_cache_writes_are_a_part_of_the_writes_never_more() {
        let view = |write, one_hour| UsageView {
            cache_creation_input_tokens: Some(TokenCount(write)),
            cache_creation: Some(crate::messages::CacheCreationView {
                ephemeral_1h_input_tokens: Some(TokenCount(one_hour)),
            }),
            ..UsageView::default()
        };
        let usage = TokenCounts::from_view(&view(100, 40)).to_usage();
        assert_eq!((usage.cache_write_tokens, usage.cache_write_1h_tokens), (100, 40));
        // An upstream claiming more 1-hour writes than writes: capped at the writes.
        let usage = TokenCounts::from_view(&view(100, 400)).to_usage();
        assert_eq!((usage.cache_write_tokens, usage.cache_write_1h_tokens), (100, 100));
    }

    #[test]
    fn later_counts_replace_earlier_ones() {
        let mut counts = TokenCounts::from_view(&UsageView {
            input_tokens: Some(TokenCount(5)),
            output_tokens: Some(TokenCount(1)),
            ..UsageView::default()
        });
        counts.update(&UsageView {
            output_tokens: Some(TokenCount(42)),
            ..UsageView::default()
        });
        assert_eq!((counts.input, counts.output), (5, 42));
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("end_turn"), false), "stop");
        assert_eq!(finish_reason(Some("stop_sequence"), false), "stop");
        assert_eq!(finish_reason(Some("max_tokens"), true), "length");
        assert_eq!(finish_reason(Some("tool_use"), true), "tool_calls");
        assert_eq!(finish_reason(Some("tool_use"), false), "stop");
        assert_eq!(finish_reason(Some("refusal"), false), "content_filter");
        assert_eq!(finish_reason(Some("pause_turn"), false), "stop");
        assert_eq!(finish_reason(None, false), "stop");
    }
}
