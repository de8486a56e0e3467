//! Costs against figures worked out by hand from the providers' published prices (USD per
//! million tokens), with the rates read from the bundled table.

use super::*;
use crate::cost::PriceTable;
use switchyard_plugin_api::host::Usage;

fn price(key: &str) -> std::sync::Arc<ModelPrice> {
    PriceTable::bundled()
        .get(key)
        .unwrap_or_else(|| panic!("{key} is in the bundled table"))
}

fn usage(prompt: u64, cached: u64, cache_write: u64, cache_write_1h: u64, completion: u64, reasoning: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        cached_tokens: cached,
        cache_write_tokens: cache_write,
        cache_write_1h_tokens: cache_write_1h,
        reasoning_tokens: reasoning,
    }
}

fn assert_cost(got: Cost, input: f64, output: f64) {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12;
    assert!(
        close(got.input_tokens_cost, input) && close(got.output_tokens_cost, output),
        "got {got:?}, expected input {input} output {output}"
    );
    assert!(close(got.total_cost, input + output), "{got:?}");
    assert_eq!(got.request_cost, 0.0);
}

#[test]
fn openai_cached_input_is_priced_at_the_cache_rate_not_twice() {
    // gpt-4o: $2.50 input, $1.25 cached input, $10 output.
    // 1000 prompt tokens of which 400 cached: 600 × 2.5e-6 + 400 × 1.25e-6 = 0.002.
    let got = Cost::of(&usage(1000, 400, 0, 0, 500, 0), &price("openai/gpt-4o"));
    assert_cost(got, 0.002, 0.005);
}

#[test]
fn openai_reasoning_tokens_are_output() {
    // o3: $2 input, $0.50 cached, $8 output; reasoning is billed as output.
    // input 1000 × 2e-6 + 1000 × 5e-7 = 0.0025; output (500 + 2500) × 8e-6 = 0.024.
    let got = Cost::of(&usage(2000, 1000, 0, 0, 3000, 2500), &price("openai/o3"));
    assert_cost(got, 0.0025, 0.024);
}

#[test]
fn anthropic_cache_reads_and_both_kinds_of_writes_each_at_their_rate() {
    // claude-sonnet-4-5: $3 input, $15 output, $0.30 cache read, $3.75 5-minute write,
    // $6 1-hour write. Anthropic's usage: input 12, cache read 1800, cache writes 200 (150 for
    // 5 minutes, 50 for 1 hour), output 9; the codec reports prompt_tokens 2012.
    // input 12 × 3e-6 + 1800 × 3e-7 + 150 × 3.75e-6 + 50 × 6e-6 = 0.0014385; output 9 × 1.5e-5.
    let got = Cost::of(
        &usage(2012, 1800, 200, 50, 9, 0),
        &price("anthropic/claude-sonnet-4-5-20250929"),
    );
    assert_cost(got, 0.0014385, 0.000135);
}

#[test]
fn gemini_thoughts_are_output_and_long_prompts_take_the_upper_tier() {
    // gemini-2.5-pro: up to 200k prompt tokens $1.25 input, $0.125 cached, $10 output;
    // above, $2.50, $0.25 and $15. Thoughts (300 of the 500 completion tokens) are output.
    let pro = price("gemini/gemini-2.5-pro");
    assert_cost(Cost::of(&usage(1000, 0, 0, 0, 500, 300), &pro), 0.00125, 0.005);
    // 250k prompt, 50k of it cached: 200000 × 2.5e-6 + 50000 × 2.5e-7 = 0.5125; 1000 × 1.5e-5.
    assert_cost(Cost::of(&usage(250_000, 50_000, 0, 0, 1000, 0), &pro), 0.5125, 0.015);
    // Exactly 200k is not above it.
    assert_cost(Cost::of(&usage(200_000, 0, 0, 0, 0, 0), &pro), 0.25, 0.0);
}

#[test]
fn inconsistent_parts_are_capped_so_no_token_is_priced_twice() {
    // Cached + writes above the prompt, reasoning above the completion (a broken upstream).
    let parts = UsageParts::of(&usage(100, 80, 50, 70, 10, 25));
    assert_eq!(
        parts,
        UsageParts {
            uncached_input: 0,
            cache_read: 80,
            cache_write_5m: 0,
            cache_write_1h: 20,
            output_text: 0,
            reasoning: 10,
        }
    );
}

#[test]
fn missing_cache_and_reasoning_rates_fall_back_to_the_rate_they_refine() {
    let flat = ModelPrice {
        input_cost_per_token: 1e-6,
        output_cost_per_token: 2e-6,
        cache_read_input_token_cost: None,
        cache_creation_input_token_cost: None,
        cache_creation_input_token_cost_above_1hr: None,
        output_cost_per_reasoning_token: None,
        tiers: Vec::new(),
    };
    // Every prompt token at 1e-6 and every completion token at 2e-6, however split.
    assert_cost(Cost::of(&usage(1000, 300, 200, 100, 100, 40), &flat), 0.001, 0.0002);
}

#[test]
fn the_json_is_the_four_fields_in_plain_decimals() {
    let cost = Cost::of(&usage(1, 0, 0, 0, 1, 0), &price("openai/gpt-4o"));
    assert_eq!(
        String::from_utf8(cost.to_json()).expect("utf-8"),
        r#"{"input_tokens_cost":0.0000025,"output_tokens_cost":0.00001,"request_cost":0.0,"total_cost":0.0000125}"#
    );
    let json = |usd: f64| {
        let c = Cost {
            input_tokens_cost: usd,
            output_tokens_cost: 0.0,
            request_cost: 0.0,
            total_cost: usd,
        };
        let text = String::from_utf8(c.to_json()).expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        (text, v["total_cost"].as_f64())
    };
    assert_eq!(json(0.0).1, Some(0.0));
    assert!(json(0.0).0.contains(r#""total_cost":0.0}"#));
    assert!(json(12.5).0.contains(r#""total_cost":12.5}"#));
    assert!(json(1e-12).0.contains(r#""total_cost":0.000000000001}"#));
    assert_eq!(json(0.5275).1, Some(0.5275));
    // Far beyond any bill: still a number.
    assert!(json(1e30).1.is_some());
}
