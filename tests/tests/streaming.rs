//! Streaming chat completions (SSE): framing, chunk indexes, usage placement, mid-stream faults.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_e2e::client::{http, stream_body};
use switchyard_e2e::upstream::{MODEL_SUFFIX, RATELIMIT_REMAINING, SLOW_DELAY};
use switchyard_e2e::{Gateway, MockUpstream, Sse, standard_config};

fn start(up: &MockUpstream) -> Gateway {
    Gateway::start_cfg(&standard_config(up))
}

fn finish_chunks(sse: &Sse) -> Vec<&Value> {
    sse.chunks()
        .into_iter()
        .filter(|c| {
            c["choices"]
                .as_array()
                .is_some_and(|ch| ch.iter().any(|x| x["finish_reason"].is_string()))
        })
        .collect()
}

#[tokio::test]
async fn stream_roundtrip_with_usage_on_the_finish_chunk() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let message = "stream me: héllo wörld 日本語 ✓ emoji 🚀";
    let sse = gw
        .stream_with(
            "/v1/chat/completions",
            &stream_body("gpt", message),
            &[("x-request-id", "e2e-stream-1")],
        )
        .await;
    sse.assert_complete();
    assert_eq!(
        sse.content(),
        format!("upstream saw: {message}"),
        "content reassembled from fragmented upstream SSE (split mid-UTF-8); {}",
        sse.dump()
    );
    assert_eq!(sse.header("x-request-id").as_deref(), Some("e2e-stream-1"));
    assert_eq!(
        sse.header("x-ratelimit-remaining-requests").as_deref(),
        Some(RATELIMIT_REMAINING),
        "x-ratelimit-* headers are passed back on streams too"
    );
    for c in sse.chunks() {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["model"], format!("gpt-4o{MODEL_SUFFIX}"), "{c}");
        assert!(
            c["extra_fields"]["latency"].as_u64().is_some(),
            "every chunk carries extra_fields.latency in whole ms: {c}"
        );
    }
    assert!(
        sse.empty_choice_chunks().is_empty(),
        "without stream_options.include_usage no chunk may have empty choices; {}",
        sse.dump()
    );
    let finish = finish_chunks(&sse);
    assert_eq!(finish.len(), 1, "one finish chunk; {}", sse.dump());
    let usage = &finish[0]["usage"];
    assert!(
        usage["total_tokens"].as_u64().is_some_and(|n| n > 0),
        "usage rides on the chunk carrying finish_reason; {}",
        sse.dump()
    );
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 4, "{usage}");
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 2, "{usage}");
    let with_usage = sse.chunks().iter().filter(|c| c["usage"].is_object()).count();
    assert_eq!(with_usage, 1, "usage appears once; {}", sse.dump());

    let last = sse.chunks().last().copied().cloned().expect("chunks");
    assert_eq!(last["extra_fields"]["provider"], "up", "{last}");
    assert_eq!(last["extra_fields"]["model_requested"], "gpt", "{last}");
    assert_eq!(last["extra_fields"]["model_deployment"], "gpt-4o", "{last}");
    assert!(last["extra_fields"]["latency"].as_u64().is_some(), "{last}");

    let rec = up.last_request().json();
    assert_eq!(rec["stream"], true);
    assert_eq!(
        rec["stream_options"]["include_usage"], true,
        "the upstream always receives include_usage: true; got {rec}"
    );
    assert_eq!(rec["model"], "gpt-4o");
}

#[tokio::test]
async fn stream_include_usage_gives_a_final_usage_chunk() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let mut body = stream_body("gpt", "usage please");
    body["stream_options"] = json!({"include_usage": true, "include_obfuscation": false});
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "upstream saw: usage please");
    let chunks = sse.chunks();
    let last = chunks.last().expect("chunks");
    assert_eq!(
        last["choices"],
        json!([]),
        "with include_usage the last chunk has empty choices; {}",
        sse.dump()
    );
    assert!(
        last["usage"]["total_tokens"].as_u64().is_some_and(|n| n > 0),
        "{}",
        sse.dump()
    );
    assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    assert_eq!(
        sse.empty_choice_chunks().len(),
        1,
        "only the usage chunk has empty choices; {}",
        sse.dump()
    );
    let rec = up.last_request().json();
    assert_eq!(
        rec["stream_options"],
        json!({"include_usage": true, "include_obfuscation": false}),
        "other stream_options reach the upstream unchanged"
    );
}

#[tokio::test]
async fn stream_include_usage_false_is_still_asked_upstream() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let mut body = stream_body("gpt", "no usage for me");
    body["stream_options"] = json!({"include_usage": false});
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    assert!(sse.empty_choice_chunks().is_empty(), "{}", sse.dump());
    let finish = finish_chunks(&sse);
    assert_eq!(finish.len(), 1, "{}", sse.dump());
    assert!(finish[0]["usage"]["total_tokens"].as_u64().is_some(), "{}", sse.dump());
    assert_eq!(up.last_request().json()["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn stream_with_n_choices_and_logprobs() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let mut body = stream_body("gpt", "many");
    body["n"] = json!(2);
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(1);
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    assert_eq!(sse.content_of(0), "upstream saw: many");
    assert_eq!(sse.content_of(1), "upstream saw: many");
    assert!(sse.empty_choice_chunks().is_empty(), "{}", sse.dump());
    let with_logprobs = sse
        .chunks()
        .iter()
        .filter(|c| c["choices"][0]["logprobs"]["content"].is_array())
        .count();
    assert!(with_logprobs > 0, "logprobs pass through; {}", sse.dump());
}

#[tokio::test]
async fn stream_tool_call_deltas() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let mut body = stream_body("gpt", "Oslo");
    body["tools"] = json!([{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]);
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    let mut name = String::new();
    let mut args = String::new();
    for c in sse.chunks() {
        if let Some(calls) = c["choices"][0]["delta"]["tool_calls"].as_array() {
            for call in calls {
                if let Some(n) = call["function"]["name"].as_str() {
                    name.push_str(n);
                }
                if let Some(a) = call["function"]["arguments"].as_str() {
                    args.push_str(a);
                }
            }
        }
    }
    assert_eq!(name, "get_weather", "{}", sse.dump());
    let args: Value = serde_json::from_str(&args).expect("arguments reassemble to JSON");
    assert_eq!(args, json!({"query": "Oslo"}));
    let finish = finish_chunks(&sse);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn stream_through_the_mock_provider() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["local"]["options"] = json!({"words_per_chunk": 1});
    let gw = Gateway::start_cfg(&cfg);
    let message = "one two three four five";
    let sse = gw.stream(&stream_body("local/echo", message)).await;
    sse.assert_complete();
    assert_eq!(sse.content(), message, "{}", sse.dump());
    let content_chunks = sse
        .chunks()
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert!(
        content_chunks >= 5,
        "words_per_chunk: 1 gives one chunk per word; {}",
        sse.dump()
    );
    assert!(sse.empty_choice_chunks().is_empty(), "{}", sse.dump());
    let last = sse.chunks().last().copied().cloned().expect("chunks");
    assert_eq!(last["extra_fields"]["provider"], "local", "{last}");
}

#[tokio::test]
async fn stream_on_the_openai_prefixed_paths() {
    let up = MockUpstream::start();
    let gw = start(&up);
    for path in ["/openai/v1/chat/completions", "/openai/chat/completions"] {
        let sse = gw.stream_with(path, &stream_body("gpt", "prefixed"), &[]).await;
        sse.assert_complete();
        assert_eq!(sse.content(), "upstream saw: prefixed", "{path}");
    }
}

#[tokio::test]
async fn stream_cut_mid_body_ends_with_an_error_event() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let sse = gw.stream(&stream_body("up/stream-cut", "cut me")).await;
    assert_eq!(sse.status, 200, "the stream had started; {}", sse.dump());
    assert!(
        !sse.chunks().is_empty(),
        "the chunks before the cut are delivered; {}",
        sse.dump()
    );
    sse.assert_chunk_indexes();
    assert!(
        !sse.has_done(),
        "a truncated stream must not end with [DONE]; {}",
        sse.dump()
    );
    let last = sse.json_events().last().copied().cloned().expect("events");
    assert!(
        last["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "the last event must be an error event with a message; {}",
        sse.dump()
    );
    assert!(last["error"]["type"].is_string(), "{last}");
    assert!(
        last["error"].get("code").is_some_and(|c| c.is_string() || c.is_null()),
        "error events carry message, type and code: {last}"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn stream_ending_without_done_is_finalised() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let sse = gw.stream(&stream_body("up/stream-no-done", "finish me")).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "upstream saw: finish me");
    let finish = finish_chunks(&sse);
    assert_eq!(finish.len(), 1, "{}", sse.dump());
    assert!(finish[0]["usage"]["total_tokens"].as_u64().is_some(), "{}", sse.dump());

    let mut body = stream_body("up/stream-no-done", "with usage");
    body["stream_options"] = json!({"include_usage": true});
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    assert_eq!(sse.chunks().last().map(|c| c["choices"].clone()), Some(json!([])));
}

#[tokio::test]
async fn silent_stream_hits_stream_idle_timeout() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let mut idle = cfg["providers"]["up"].clone();
    idle["stream_idle_timeout"] = json!("1s");
    cfg["providers"]["idle"] = idle;
    let gw = Gateway::start_cfg(&cfg);
    let sse = gw.stream(&stream_body("idle/idle-stream", "then silence")).await;
    assert_eq!(sse.status, 200, "{}", sse.dump());
    assert!(!sse.chunks().is_empty(), "{}", sse.dump());
    assert!(
        !sse.has_done(),
        "an idle-timed-out stream must not end with [DONE]; {}",
        sse.dump()
    );
    let last = sse.json_events().last().copied().cloned().expect("events");
    assert!(
        last["error"]["message"].is_string(),
        "the stream ends with an error event; {}",
        sse.dump()
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn stream_errors_before_the_first_byte_are_plain_json() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let sse = gw.stream(&stream_body("no-such-model", "x")).await;
    assert_eq!(sse.status, 404, "{}", sse.dump());
    let v: Value = serde_json::from_str(&sse.raw).expect("a JSON error body, not SSE");
    assert_eq!(v["error"]["code"], "model_not_found", "{v:#}");

    let sse = gw.stream(&stream_body("up/fail-500", "x")).await;
    assert_eq!(sse.status, 502, "{}", sse.dump());
    let v: Value = serde_json::from_str(&sse.raw).expect("a JSON error body, not SSE");
    assert!(v["error"]["message"].is_string(), "{v:#}");
    gw.assert_serving().await;
}

#[tokio::test]
async fn malformed_upstream_event_is_skipped() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let sse = gw.stream(&stream_body("up/stream-malformed", "skip the bad one")).await;
    sse.assert_complete();
    assert_eq!(
        sse.content(),
        "upstream saw: skip the bad one",
        "a malformed upstream event is skipped and the stream goes on; {}",
        sse.dump()
    );
    gw.assert_serving().await;
}

/// A streamed request whose response has started (200), left for the test to read or drop.
async fn open_stream(gw: &Gateway, model: &str) -> reqwest::Response {
    let resp = http()
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&stream_body(model, "bye")).expect("serialise"))
        .send()
        .await
        .expect("stream starts");
    assert_eq!(resp.status().as_u16(), 200);
    resp
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let mut resp = open_stream(&gw, "up/drip-stream-long").await;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("drip0") {
        match resp.chunk().await {
            Ok(Some(c)) => seen.extend_from_slice(&c),
            other => panic!("stream ended early: {other:?}"),
        }
    }
    drop(resp);
    assert!(
        up.wait_for_aborts(1, Duration::from_secs(10)).await,
        "after the client went away the gateway must cancel the upstream request (the mock \
         upstream finished writing its whole stream instead)"
    );
    gw.assert_serving().await;
}

/// A client that goes away while the upstream is silent (a model thinking) is noticed at once,
/// not at the gateway's next write: the upstream request is cancelled before it sends more.
#[tokio::test]
async fn client_disconnect_during_upstream_silence_cancels_the_upstream_stream() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let mut resp = open_stream(&gw, "up/idle-stream").await;
    // The first chunk arrives; then the upstream goes silent for SLOW_DELAY.
    let first = resp.chunk().await.expect("a first chunk").expect("data");
    assert!(!first.is_empty());
    drop(resp);
    // The upstream sees its connection closed during the silence. (Were the client's absence
    // noticed only by a failed write, that would come after the silence, at the earliest.)
    assert!(
        up.wait_for_aborts(1, SLOW_DELAY / 2).await,
        "the gateway kept the upstream request open for a client that had gone"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn stream_upstream_errors_before_the_first_byte() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let mut slow = cfg["providers"]["up"].clone();
    slow["first_byte_timeout"] = json!("1s");
    cfg["providers"]["slowp"] = slow;
    let gw = Gateway::start_cfg(&cfg);

    let sse = gw.stream(&stream_body("up/fail-401", "x")).await;
    assert_eq!(sse.status, 502, "{}", sse.dump());
    let v: Value = serde_json::from_str(&sse.raw).expect("a JSON error body, not SSE");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Incorrect API key provided")),
        "{v:#}"
    );

    let sse = gw.stream(&stream_body("slowp/slow", "x")).await;
    assert_eq!(sse.status, 504, "{}", sse.dump());
    let v: Value = serde_json::from_str(&sse.raw).expect("a JSON error body, not SSE");
    assert_eq!(v["error"]["code"], "upstream_timeout", "{v:#}");
    gw.assert_serving().await;
}
