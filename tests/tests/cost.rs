//! `usage.cost` end to end: the real daemon, the real provider plugins, and mock upstreams that
//! report usage the way each provider does. Expected figures are worked out here from the
//! providers' published prices (USD per million tokens) and the usage the answer reports, not
//! read from the gateway's table.

use serde_json::{Value, json};
use switchyard_e2e::anthropic_upstream::{ANTHROPIC_KEY, AnthropicUpstream, CACHE_READ, CACHE_WRITE, CACHE_WRITE_1H};
use switchyard_e2e::client::{chat_body, stream_body};
use switchyard_e2e::gemini_upstream::{GEMINI_KEY, GeminiUpstream};
use switchyard_e2e::{Gateway, MockUpstream, standard_config, to_yaml};

const PER_M: f64 = 1e-6;

/// Published prices: (input, cached input, output), USD per million tokens.
const GPT_4O: (f64, f64, f64) = (2.50, 1.25, 10.00);
const GPT_4O_MINI: (f64, f64, f64) = (0.15, 0.075, 0.60);

fn count(usage: &Value, path: &str) -> f64 {
    usage.pointer(path).and_then(Value::as_u64).unwrap_or(0) as f64
}

/// `usage.cost` of an OpenAI-style usage object at `(input, cached, output)` prices: cached
/// prompt tokens at the cached rate (not also at the input rate), reasoning as output.
fn openai_cost(usage: &Value, (input, cached, output): (f64, f64, f64)) -> (f64, f64) {
    let prompt = count(usage, "/prompt_tokens");
    let hit = count(usage, "/prompt_tokens_details/cached_tokens");
    let completion = count(usage, "/completion_tokens");
    (
        ((prompt - hit) * input + hit * cached) * PER_M,
        completion * output * PER_M,
    )
}

fn assert_cost(usage: &Value, (input, output): (f64, f64)) {
    let cost = &usage["cost"];
    let got = |k: &str| cost[k].as_f64().unwrap_or_else(|| panic!("usage.cost.{k} in {usage}"));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 + b.abs() * 1e-9;
    assert!(
        close(got("input_tokens_cost"), input),
        "input: expected {input}, {usage}"
    );
    assert!(
        close(got("output_tokens_cost"), output),
        "output: expected {output}, {usage}"
    );
    assert_eq!(got("request_cost"), 0.0, "{usage}");
    assert!(close(got("total_cost"), input + output), "total: {usage}");
    assert!(input > 0.0 && output > 0.0, "a real answer costs something: {usage}");
}

async fn unpriced(gw: &Gateway) -> u64 {
    gw.get("/admin/status").await.json()["cost"]["unpriced_answers"]
        .as_u64()
        .expect("cost.unpriced_answers")
}

#[tokio::test]
async fn plain_and_streamed_openai_answers_carry_their_cost() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));

    // The `gpt` alias → gpt-4o; the mock reports cached and reasoning tokens.
    let v = gw
        .chat(&chat_body("gpt", "what does it cost"))
        .await
        .assert_status(200)
        .json();
    assert!(count(&v["usage"], "/prompt_tokens_details/cached_tokens") > 0.0, "{v}");
    assert!(
        count(&v["usage"], "/completion_tokens_details/reasoning_tokens") > 0.0,
        "{v}"
    );
    assert_cost(&v["usage"], openai_cost(&v["usage"], GPT_4O));

    // A stream: the cost rides with the usage on the last chunk, in both of the client's forms.
    for include_usage in [false, true] {
        let mut body = stream_body("gpt", "what does a stream cost");
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let sse = gw.stream(&body).await;
        assert!(sse.has_done(), "{}", sse.raw);
        let chunks = sse.chunks();
        let (last, earlier) = chunks.split_last().expect("chunks");
        assert_cost(&last["usage"], openai_cost(&last["usage"], GPT_4O));
        assert!(
            earlier.iter().all(|c| c["usage"].get("cost").is_none()),
            "only the last chunk has a cost: {}",
            sse.raw
        );
        assert_eq!(
            last["choices"].as_array().is_some_and(Vec::is_empty),
            include_usage,
            "{last}"
        );
    }
    assert_eq!(unpriced(&gw).await, 0);
}

#[tokio::test]
async fn after_a_fallback_the_answering_models_price_applies() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["models"]["cheap-after-failure"] = json!({
        "targets": [{"provider": "up", "model": "fail-503", "weight": 1}],
        "fallbacks": ["up/gpt-4o-mini"],
    });
    let gw = Gateway::start_cfg(&cfg);
    let v = gw
        .chat(&chat_body("cheap-after-failure", "fall back"))
        .await
        .assert_status(200)
        .json();
    assert_eq!(v["extra_fields"]["model_deployment"], "gpt-4o-mini", "{v}");
    assert_cost(&v["usage"], openai_cost(&v["usage"], GPT_4O_MINI));
}

#[tokio::test]
async fn an_unknown_model_gets_no_cost_never_a_zero_and_is_counted() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["models"]["mystery"] = json!({"targets": [{"provider": "up", "model": "mystery-model-7", "weight": 1}]});
    let gw = Gateway::start_cfg(&cfg);
    // Warned once, at load, naming the alias and the target.
    assert!(
        gw.logs().contains("models.mystery: no price for up/mystery-model-7"),
        "{}",
        gw.logs()
    );
    let before = unpriced(&gw).await;
    let v = gw.chat(&chat_body("mystery", "hi")).await.assert_status(200).json();
    assert!(v["usage"]["total_tokens"].as_u64().is_some_and(|t| t > 0), "{v}");
    assert!(v["usage"].get("cost").is_none(), "no price, no cost: {v}");
    // Named directly as provider/model: the same.
    let sse = gw.stream(&stream_body("up/another-mystery", "hi")).await;
    let last = *sse.chunks().last().expect("chunks");
    assert!(last["usage"]["total_tokens"].as_u64().is_some(), "{}", sse.raw);
    assert!(last["usage"].get("cost").is_none(), "{}", sse.raw);
    assert_eq!(unpriced(&gw).await, before + 2);
}

#[tokio::test]
async fn overrides_win_over_the_bundled_table_and_price_new_models() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["models"]["house"] = json!({"targets": [{"provider": "up", "model": "house-model", "weight": 1}]});
    cfg["pricing"] = json!({"overrides": {
        // The plugin's name and the model, as in the table: replaces only the input rate.
        "openai/gpt-4o": {"input_cost_per_token": 5e-6},
        // The configured provider's name: a model the table does not know.
        "up/house-model": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
    }});
    let gw = Gateway::start_cfg(&cfg);
    let v = gw.chat(&chat_body("gpt", "override")).await.assert_status(200).json();
    // The cached rate is still the table's ($1.25/M); the input rate is the override's.
    assert_cost(&v["usage"], openai_cost(&v["usage"], (5.0, 1.25, 10.0)));
    let v = gw.chat(&chat_body("house", "house")).await.assert_status(200).json();
    // No cached rate given: cached tokens at the input rate.
    assert_cost(&v["usage"], openai_cost(&v["usage"], (1.0, 1.0, 2.0)));
}

#[tokio::test]
async fn bad_pricing_is_refused_at_startup_naming_the_entry() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["pricing"] = json!({"overrides": {"up/new-model": {"input_cost_per_token": 1e-6}}});
    let (code, out) = Gateway::start_expect_failure(&to_yaml(&cfg));
    assert_ne!(code, Some(0));
    assert!(out.contains("pricing.overrides.up/new-model"), "{out}");
    assert!(out.contains("output_cost_per_token"), "{out}");

    cfg["pricing"] = json!({"overrides": {"openai/gpt-4o": {"input_cost_per_token": -1}}});
    let (_, out) = Gateway::start_expect_failure(&to_yaml(&cfg));
    assert!(out.contains("non-negative"), "{out}");

    cfg["pricing"] = json!({"file": "/nonexistent/prices.json"});
    let (_, out) = Gateway::start_expect_failure(&to_yaml(&cfg));
    assert!(
        out.contains("pricing.file") && out.contains("/nonexistent/prices.json"),
        "{out}"
    );
}

/// Anthropic counts input in disjoint parts (uncached, cache read, cache write by lifetime);
/// each is priced at its own rate. claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75
/// 5-minute write, $6 1-hour write, $15 output.
#[tokio::test]
async fn anthropic_cache_reads_and_writes_are_priced_apart() {
    let up = MockUpstream::start();
    let anthropic = AnthropicUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["claude"] = json!({
        "plugin": "anthropic",
        "base_url": anthropic.base_url(),
        "keys": [{"value": ANTHROPIC_KEY}],
        "retries": {"max": 0},
    });
    cfg["models"]["sonnet"] = json!({"targets": [{"provider": "claude", "model": "claude-sonnet-4-5"}]});
    let gw = Gateway::start_cfg(&cfg);
    let expected = |usage: &Value| {
        let prompt = count(usage, "/prompt_tokens");
        let (read, write, write_1h) = (CACHE_READ as f64, CACHE_WRITE as f64, CACHE_WRITE_1H as f64);
        let uncached = prompt - read - write;
        assert!(uncached > 0.0, "{usage}");
        (
            (uncached * 3.0 + read * 0.30 + (write - write_1h) * 3.75 + write_1h * 6.0) * PER_M,
            count(usage, "/completion_tokens") * 15.0 * PER_M,
        )
    };
    let v = gw
        .chat(&chat_body("sonnet", "price my cache"))
        .await
        .assert_status(200)
        .json();
    assert_eq!(
        count(&v["usage"], "/prompt_tokens_details/cached_tokens"),
        CACHE_READ as f64,
        "{v}"
    );
    assert_cost(&v["usage"], expected(&v["usage"]));
    let sse = gw.stream(&stream_body("sonnet", "price my streamed cache")).await;
    let last = *sse.chunks().last().expect("chunks");
    assert_cost(&last["usage"], expected(&last["usage"]));
}

/// Gemini reports thoughts apart from the answer; both are output. gemini-2.5-pro up to 200k
/// prompt tokens: $1.25 input, $0.125 cached, $10 output.
#[tokio::test]
async fn gemini_thoughts_are_billed_as_output() {
    let up = MockUpstream::start();
    let gem = GeminiUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["gem"] = json!({
        "plugin": "gemini",
        "base_url": gem.base_url(),
        "keys": [{"value": GEMINI_KEY}],
        "options": {"api_version": "v1beta"},
    });
    cfg["models"]["pro"] = json!({"targets": [{"provider": "gem", "model": "gemini-2.5-pro"}]});
    let gw = Gateway::start_cfg(&cfg);
    let mut body = chat_body("pro", "think, then price it");
    body["reasoning_effort"] = json!("low");
    let v = gw.chat(&body).await.assert_status(200).json();
    let usage = &v["usage"];
    let reasoning = count(usage, "/completion_tokens_details/reasoning_tokens");
    assert!(reasoning > 0.0, "the mock thought: {v}");
    // completion_tokens includes the thoughts: all of it at the output rate.
    assert_cost(usage, openai_cost(usage, (1.25, 0.125, 10.0)));
    let sse = gw
        .stream(&{
            let mut b = stream_body("pro", "stream it");
            b["reasoning_effort"] = json!("low");
            b
        })
        .await;
    let last = *sse.chunks().last().expect("chunks");
    assert_cost(&last["usage"], openai_cost(&last["usage"], (1.25, 0.125, 10.0)));
}
