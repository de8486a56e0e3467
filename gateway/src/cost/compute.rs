//! An answer's cost: its usage split into disjoint parts, each priced at its own rate.
//!
//! The codecs report usage in OpenAI's overlapping form — `prompt_tokens` includes the
//! tokens read from and written to a cache, `completion_tokens` includes reasoning — whatever
//! the provider's own form (each codec converts once: Anthropic's `input_tokens` excludes
//! cache reads and writes, Gemini's candidates exclude thoughts). Here the parts are taken
//! apart again: uncached input, cache read, cache write (5-minute and 1-hour), output text,
//! reasoning.

use super::prices::ModelPrice;
use serde::Serialize;
use switchyard_plugin_api::host::Usage;

/// `usage.cost`, in USD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cost {
    pub input_tokens_cost: f64,
    pub output_tokens_cost: f64,
    /// Per-request fees: none of the bundled prices has one today.
    pub request_cost: f64,
    pub total_cost: f64,
}

/// The disjoint parts of one answer's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageParts {
    pub uncached_input: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub output_text: u64,
    pub reasoning: u64,
}

impl UsageParts {
    /// Takes OpenAI-form usage apart. Parts larger than the count they belong to (a codec's
    /// or an upstream's inconsistency) are capped by it, so no token is priced twice.
    pub fn of(u: &Usage) -> UsageParts {
        let cache_read = u.cached_tokens.min(u.prompt_tokens);
        let cache_write = u.cache_write_tokens.min(u.prompt_tokens - cache_read);
        let cache_write_1h = u.cache_write_1h_tokens.min(cache_write);
        let reasoning = u.reasoning_tokens.min(u.completion_tokens);
        UsageParts {
            uncached_input: u.prompt_tokens - cache_read - cache_write,
            cache_read,
            cache_write_5m: cache_write - cache_write_1h,
            cache_write_1h,
            output_text: u.completion_tokens - reasoning,
            reasoning,
        }
    }
}

impl Cost {
    /// What `usage` costs at `price` (tiered on the whole prompt).
    pub fn of(usage: &Usage, price: &ModelPrice) -> Cost {
        let parts = UsageParts::of(usage);
        let rates = price.rates(usage.prompt_tokens);
        let n = |tokens: u64| tokens as f64;
        let input = n(parts.uncached_input) * rates.input
            + n(parts.cache_read) * rates.cache_read
            + n(parts.cache_write_5m) * rates.cache_write
            + n(parts.cache_write_1h) * rates.cache_write_1h;
        let output = n(parts.output_text) * rates.output + n(parts.reasoning) * rates.reasoning;
        Cost {
            input_tokens_cost: usd(input),
            output_tokens_cost: usd(output),
            request_cost: 0.0,
            total_cost: usd(input + output),
        }
    }

    /// A cache hit: nothing was paid for.
    pub const FREE: Cost = Cost {
        input_tokens_cost: 0.0,
        output_tokens_cost: 0.0,
        request_cost: 0.0,
        total_cost: 0.0,
    };

    /// The JSON object, as it goes into `usage.cost`.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of four finite numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Rounded to a millionth of a cent: below any price's precision, and it keeps binary float
/// noise (`1.5600000000000001e-5`) out of the answers.
fn usd(x: f64) -> f64 {
    (x * 1e12).round() / 1e12
}

#[cfg(test)]
#[path = "compute_tests.rs"]
mod tests;
