//! Fallbacks: request-level `fallbacks`, alias `fallbacks:`, which failures fall back and which do
//! not, and what the client sees after a fallback.

use serde_json::{Value, json};
use switchyard_e2e::client::{chat_body, stream_body};
use switchyard_e2e::upstream::MODEL_SUFFIX;
use switchyard_e2e::{Gateway, MockUpstream, standard_config};

fn with_fallbacks(model: &str, user: &str, fallbacks: &[&str]) -> Value {
    let mut body = chat_body(model, user);
    body["fallbacks"] = json!(fallbacks);
    body
}

#[tokio::test]
async fn request_fallback_answers_when_the_primary_fails() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let reply = gw
        .chat(&with_fallbacks("up/fail-500", "rescue me", &["local/echo"]))
        .await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["choices"][0]["message"]["content"], "rescue me", "{v:#}");
    assert_eq!(v["extra_fields"]["provider"], "local", "{v:#}");
    assert_eq!(v["extra_fields"]["model_deployment"], "echo", "{v:#}");
    assert_eq!(v["extra_fields"]["model_requested"], "up/fail-500", "{v:#}");
    assert_ne!(v["model"], format!("fail-500{MODEL_SUFFIX}"), "{v:#}");
    for rec in up.requests() {
        assert!(
            rec.json().get("fallbacks").is_none(),
            "`fallbacks` must never reach the upstream: {}",
            String::from_utf8_lossy(&rec.body)
        );
    }
}

#[tokio::test]
async fn fallback_to_an_openai_target_names_the_answering_model() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let reply = gw
        .chat(&with_fallbacks("local/fault-500", "over to you", &["up/gpt-4o-mini"]))
        .await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["model"], format!("gpt-4o-mini{MODEL_SUFFIX}"), "{v:#}");
    assert_eq!(v["extra_fields"]["provider"], "up", "{v:#}");
    assert_eq!(v["extra_fields"]["model_deployment"], "gpt-4o-mini", "{v:#}");
    assert_eq!(v["choices"][0]["message"]["content"], "upstream saw: over to you");
    let rec = up.last_request().json();
    assert_eq!(rec["model"], "gpt-4o-mini");
    assert!(rec.get("fallbacks").is_none(), "{rec}");
}

#[tokio::test]
async fn alias_fallbacks_in_order() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["models"]["flaky"] = json!({
        "targets": [{"provider": "up", "model": "fail-500", "weight": 1}],
        "fallbacks": ["up/fail-503", "gpt"],
    });
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("flaky", "alias fallback")).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["model"], format!("gpt-4o{MODEL_SUFFIX}"), "{v:#}");
    assert_eq!(v["extra_fields"]["provider"], "up", "{v:#}");
    assert_eq!(v["extra_fields"]["model_requested"], "flaky", "{v:#}");
    assert_eq!(v["extra_fields"]["model_deployment"], "gpt-4o", "{v:#}");
    let order: Vec<String> = up.requests().iter().map(|r| r.model()).collect();
    let first = |m: &str| order.iter().position(|x| x == m);
    assert!(
        first("fail-500") < first("fail-503") && first("fail-503") < first("gpt-4o"),
        "targets are tried in order: primary, then fallbacks as listed; got {order:?}"
    );
}

#[tokio::test]
async fn every_target_failing_is_502() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let reply = gw
        .chat(&with_fallbacks("up/fail-500", "doomed", &["up/fail-503"]))
        .await;
    reply.assert_status(502);
    reply.assert_error_shape();
    assert!(!up.requests_for("fail-503").is_empty(), "the fallback was tried");
    gw.assert_serving().await;
}

#[tokio::test]
async fn timeout_falls_back_at_once_without_retry() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let mut slow = cfg["providers"]["up"].clone();
    slow["first_byte_timeout"] = json!("1s");
    cfg["providers"]["slowp"] = slow;
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw
        .chat(&with_fallbacks("slowp/slow", "too slow", &["local/echo"]))
        .await;
    reply.assert_status(200);
    assert_eq!(reply.json()["extra_fields"]["provider"], "local");
    assert_eq!(
        up.requests_for("slow").len(),
        1,
        "a silent upstream is not retried on the same target"
    );
}

#[tokio::test]
async fn context_length_falls_back_and_is_not_resent() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let reply = gw
        .chat(&with_fallbacks("up/context-400", "too long", &["up/gpt-4o"]))
        .await;
    reply.assert_status(200);
    assert_eq!(reply.json()["model"], format!("gpt-4o{MODEL_SUFFIX}"));
    assert_eq!(
        up.requests_for("context-400").len(),
        1,
        "a context-length error is never resent unchanged"
    );
}

#[tokio::test]
async fn content_filter_does_not_fall_back() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let reply = gw
        .chat(&with_fallbacks("local/fault-content-filter", "nope", &["up/gpt-4o"]))
        .await;
    reply.assert_status(400);
    reply.assert_error_shape();
    assert!(
        up.requests().is_empty(),
        "a content-filter refusal is not routed around"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn other_client_errors_are_returned_as_is() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let reply = gw
        .chat(&with_fallbacks("up/fail-404", "no such model", &["local/echo"]))
        .await;
    reply.assert_status(404);
    reply.assert_error_shape();
    assert_eq!(up.requests().len(), 1, "a client error is not routed around");
    gw.assert_serving().await;
}

/// The upstream refusing the operator's key is not the client's error: the next target serves.
#[tokio::test]
async fn a_refused_key_falls_back() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let reply = gw
        .chat(&with_fallbacks("up/fail-401", "bad key", &["local/echo"]))
        .await;
    reply.assert_status(200);
    assert_eq!(reply.json()["extra_fields"]["provider"], "local", "{}", reply.text());
    gw.assert_serving().await;
}

#[tokio::test]
async fn streamed_fallback_names_the_answering_model_on_every_chunk() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));

    let mut body = stream_body("local/fault-500", "stream rescue");
    body["fallbacks"] = json!(["up/gpt-4o"]);
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "upstream saw: stream rescue");
    for c in sse.chunks() {
        assert_eq!(c["model"], format!("gpt-4o{MODEL_SUFFIX}"), "{c}");
    }
    let last = sse.chunks().last().copied().cloned().expect("chunks");
    assert_eq!(last["extra_fields"]["provider"], "up", "{last}");

    let mut body = stream_body("up/fail-500", "stream rescue 2");
    body["fallbacks"] = json!(["local/echo"]);
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "stream rescue 2");
    let last = sse.chunks().last().copied().cloned().expect("chunks");
    assert_eq!(last["extra_fields"]["provider"], "local", "{last}");
}

#[tokio::test]
async fn stream_whose_first_event_is_an_error_falls_back() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let mut body = stream_body("up/stream-error-first", "first event fails");
    body["fallbacks"] = json!(["local/echo"]);
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    assert_eq!(
        sse.content(),
        "first event fails",
        "a first event that is an error counts as a failed attempt; {}",
        sse.dump()
    );
    let last = sse.chunks().last().copied().cloned().expect("chunks");
    assert_eq!(last["extra_fields"]["provider"], "local", "{last}");
}

#[tokio::test]
async fn stream_whose_first_event_is_an_error_without_fallback() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let sse = gw
        .stream(&stream_body("up/stream-error-first", "first event fails"))
        .await;
    assert_eq!(
        sse.status,
        502,
        "nothing was sent yet, so the failure is a plain error; {}",
        sse.dump()
    );
    let v: Value = serde_json::from_str(&sse.raw).expect("a JSON error body, not SSE");
    assert!(v["error"]["message"].is_string(), "{v:#}");
    gw.assert_serving().await;
}

#[tokio::test]
async fn when_everything_fails_the_client_gets_the_primary_error() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let reply = gw
        .chat(&with_fallbacks(
            "up/context-400",
            "too long everywhere",
            &["up/fail-503"],
        ))
        .await;
    reply.assert_status(400);
    let err = reply.assert_error_shape();
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("maximum context length")),
        "all targets failed: the primary's error is returned; {}",
        reply.text()
    );
    assert!(!up.requests_for("fail-503").is_empty(), "the fallback was tried");
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_stream_that_ends_before_its_first_chunk_is_a_failed_attempt() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let sse = gw.stream(&stream_body("up/empty-stream", "nothing comes")).await;
    assert_eq!(sse.status, 502, "an empty stream is not a success; {}", sse.dump());

    let mut body = stream_body("up/empty-stream", "nothing comes");
    body["fallbacks"] = json!(["local/echo"]);
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "nothing comes", "{}", sse.dump());
}
