//! An answer's cost: its usage split into disjoint parts, each priced at its own rate.
//!
//! The codecs report usage in OpenAI's overlapping form — `prompt_tokens` includes the
//! tokens read from and written to a cache, `completion_tokens` includes reasoning — whatever
//! the provider's own form (each codec converts once: Anthropic's `input_tokens` excludes
//! cache reads and writes, Gemini's candidates exclude thoughts). Here the parts are taken
//! apart again: uncached input, cache read, cache write (5-minute and 1-hour), output text,
//! reasoning.

use super::prices::ModelPrice;
use switchyard_plugin_api::host::Usage;

/// `usage.cost`, in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
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
        let mut out = Vec::with_capacity(112);
        self.write_json(&mut out);
        out
    }

    /// Appends the JSON object: plain decimals to the pico-dollar (`0.0000175`), written by
    /// hand — on every answer, general float formatting was most of the cost feature's CPU
    /// (measured).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"input_tokens_cost\":");
        write_usd(out, self.input_tokens_cost);
        out.extend_from_slice(b",\"output_tokens_cost\":");
        write_usd(out, self.output_tokens_cost);
        // 0 today; written the same way so a fee shows when one comes.
        out.extend_from_slice(b",\"request_cost\":");
        write_usd(out, self.request_cost);
        out.extend_from_slice(b",\"total_cost\":");
        write_usd(out, self.total_cost);
        out.push(b'}');
    }
}

const PICO_PER_USD: f64 = 1e12;

/// `usd` in whole pico-dollars, rounded half up (non-negative and finite by construction:
/// checked rates, capped counts; the cast saturates anyway). No libm call.
fn picos(usd: f64) -> u64 {
    (usd.max(0.0) * PICO_PER_USD + 0.5) as u64
}

/// Rounded to a millionth of a cent: below any price's precision, and it keeps binary float
/// noise (`1.5600000000000001e-5`) out of the answers.
fn usd(x: f64) -> f64 {
    picos(x) as f64 / PICO_PER_USD
}

/// `usd` as a JSON number with up to 12 decimals and no exponent.
fn write_usd(out: &mut Vec<u8>, usd: f64) {
    const PICO: u64 = 1_000_000_000_000;
    let pico = picos(usd);
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(n.format(pico / PICO).as_bytes());
    out.push(b'.');
    let mut frac = pico % PICO;
    if frac == 0 {
        out.push(b'0');
        return;
    }
    // Trailing zeros dropped first, so the digits left are few (prices have few).
    let mut decimals = 12;
    while frac.is_multiple_of(10) {
        frac /= 10;
        decimals -= 1;
    }
    let digits = n.format(frac);
    out.extend_from_slice(&b"000000000000"[..decimals - digits.len()]);
    out.extend_from_slice(digits.as_bytes());
}

#[cfg(test)]
#[path = "compute_tests.rs"]
mod tests;
