//! Fallbacks across protocols: an Anthropic target that answers 529 overloaded, falling back to a
//! Gemini target, through the real daemon with both plugins loaded dynamically.

use serde_json::{Value, json};
use switchyard_e2e::anthropic_upstream::{ANTHROPIC_KEY, AnthropicUpstream};
use switchyard_e2e::client::{chat_body, stream_body};
use switchyard_e2e::gemini_upstream::{GEMINI_KEY, GeminiUpstream};
use switchyard_e2e::{Gateway, MockUpstream, standard_config};

fn config(up: &MockUpstream, anthropic: &AnthropicUpstream, gem: &GeminiUpstream) -> Value {
    let mut cfg = standard_config(up);
    let provider = |plugin: &str, base_url: String, key: &str| {
        json!({
            "plugin": plugin,
            "base_url": base_url,
            "keys": [{"value": key, "weight": 1.0, "models": ["*"]}],
            "timeout": "30s",
            "first_byte_timeout": "20s",
            "stream_idle_timeout": "20s",
            "retries": {"max": 0},
        })
    };
    cfg["providers"]["claude"] = provider("anthropic", anthropic.base_url(), ANTHROPIC_KEY);
    cfg["providers"]["gem"] = provider("gemini", gem.base_url(), GEMINI_KEY);
    cfg["models"]["resilient"] = json!({
        "targets": [{"provider": "claude", "model": "overloaded", "weight": 1}],
        "fallbacks": ["gem/gemini-2.5-flash"],
    });
    cfg
}

#[tokio::test]
async fn anthropic_529_falls_back_to_gemini() {
    let (up, anthropic, gem) = (
        MockUpstream::start(),
        AnthropicUpstream::start(),
        GeminiUpstream::start(),
    );
    let gw = Gateway::start_cfg(&config(&up, &anthropic, &gem));

    let reply = gw.chat(&chat_body("resilient", "cross the protocols")).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["extra_fields"]["provider"], "gem", "the fallback answered: {v:#}");
    assert_eq!(v["extra_fields"]["model_requested"], "resilient", "{v:#}");
    assert_eq!(v["extra_fields"]["model_deployment"], "gemini-2.5-flash", "{v:#}");
    assert!(
        v["model"].as_str().is_some_and(|m| m.starts_with("gemini-2.5-flash")),
        "the top-level model names the model that answered: {v:#}"
    );
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{v:#}"
    );
    assert!(v["usage"]["total_tokens"].as_u64().is_some_and(|t| t > 0), "{v:#}");
    assert_eq!(
        anthropic.requests().len(),
        1,
        "the overloaded Anthropic target was tried once"
    );
    assert_eq!(gem.requests().len(), 1, "then Gemini, once");

    // The same for a stream: the fallback happens before the first byte reaches the client.
    let sse = gw
        .stream(&stream_body("resilient", "cross the protocols, streamed"))
        .await;
    sse.assert_complete();
    sse.assert_chunk_indexes();
    for chunk in sse.chunks() {
        assert_eq!(chunk["extra_fields"]["provider"], "gem", "{}", sse.dump());
    }
    assert!(!sse.content().is_empty(), "{}", sse.dump());
    gw.assert_serving().await;
}
