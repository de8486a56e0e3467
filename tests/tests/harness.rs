//! Checks of the mock upstream itself (no daemon involved), so a failure elsewhere can be trusted to
//! be the gateway's.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_e2e::client::{Reply, Sse, http};
use switchyard_e2e::upstream::{MODEL_SUFFIX, RATELIMIT_REMAINING};
use switchyard_e2e::{MockUpstream, UPSTREAM_KEY};

async fn post(up: &MockUpstream, body: &Value) -> reqwest::Result<reqwest::Response> {
    http()
        .post(format!("{}/chat/completions", up.base_url()))
        .header("authorization", format!("Bearer {UPSTREAM_KEY}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).expect("serialise"))
        .send()
        .await
}

#[tokio::test]
async fn mock_upstream_answers_like_openai() {
    let up = MockUpstream::start();
    let body = json!({"model": "gpt-4o", "n": 2, "logprobs": true, "top_logprobs": 2,
        "messages": [{"role": "user", "content": "hello there"}]});
    let reply = Reply::read(post(&up, &body).await.expect("request")).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], format!("gpt-4o{MODEL_SUFFIX}"));
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["choices"][0]["message"]["content"], "upstream saw: hello there");
    assert_eq!(
        v["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens_details"]["reasoning_tokens"], 2);
    assert_eq!(
        reply.header("x-ratelimit-remaining-requests").as_deref(),
        Some(RATELIMIT_REMAINING)
    );
    let rec = up.last_request();
    assert_eq!(rec.path, "/v1/chat/completions");
    assert_eq!(rec.json(), body);
}

#[tokio::test]
async fn mock_upstream_streams_fragmented_sse() {
    let up = MockUpstream::start();
    let body = json!({"model": "gpt-4o", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "héllo wörld 日本語 ✓"}]});
    let sse = Sse::read(post(&up, &body).await.expect("request")).await;
    assert!(sse.read_error.is_none(), "{}", sse.dump());
    assert!(sse.has_done(), "{}", sse.dump());
    assert!(sse.raw.contains("\r\n"), "some events use CRLF");
    assert!(sse.raw.contains(": keep-alive"), "comments are sent");
    assert_eq!(sse.content(), "upstream saw: héllo wörld 日本語 ✓");
    let last = sse.chunks().last().copied().cloned().expect("chunks");
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["total_tokens"].as_u64().is_some());
}

#[tokio::test]
async fn mock_upstream_fault_modes() {
    let up = MockUpstream::start();
    let msg = |model: &str, stream: bool| json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "x"}]});
    let cut = Sse::read(post(&up, &msg("stream-cut", true)).await.expect("request")).await;
    assert!(
        cut.read_error.is_some(),
        "stream-cut must break the body: {}",
        cut.dump()
    );
    assert!(!cut.has_done());

    let no_done = Sse::read(post(&up, &msg("stream-no-done", true)).await.expect("request")).await;
    assert!(no_done.read_error.is_none(), "{}", no_done.dump());
    assert!(!no_done.has_done());
    assert_eq!(no_done.content(), "upstream saw: x");

    assert!(
        post(&up, &msg("reset", false)).await.is_err(),
        "reset gives no response"
    );

    let limited = Reply::read(post(&up, &msg("fail-429", false)).await.expect("request")).await;
    limited.assert_status(429);
    assert_eq!(limited.header("retry-after").as_deref(), Some("1"));
    assert_eq!(limited.json()["error"]["code"], "rate_limit_exceeded");

    let leaky = Reply::read(post(&up, &msg("leaky-401", false)).await.expect("request")).await;
    leaky.assert_status(401);
    assert!(leaky.text().contains(UPSTREAM_KEY));

    let garbage = Reply::read(post(&up, &msg("garbage", false)).await.expect("request")).await;
    assert!(serde_json::from_slice::<Value>(&garbage.body).is_err());

    let tools = json!({"model": "m", "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let reply = Reply::read(post(&up, &tools).await.expect("request")).await;
    let v = reply.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );

    let recorded = up.wait_for_requests(7, Duration::from_secs(5)).await;
    assert_eq!(recorded.len(), 7);
}
