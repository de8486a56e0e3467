//! The `gemini` provider plugin end to end: the real daemon loads `libswitchyard_gemini.so` by name
//! and translates OpenAI-shaped requests for a mock Gemini API upstream
//! ([`switchyard_e2e::gemini_upstream`]) that speaks Google's wire protocol and refuses what the real
//! service refuses. Checked on both sides: what the client gets, and what the upstream received.
//! The last test drives the official `openai` Python SDK against `gem/gemini-…` models.

use serde_json::{Value, json};
use switchyard_e2e::client::{assert_completion_schema, chat_body, stream_body};
use switchyard_e2e::gemini_upstream::{
    CACHED_TOKENS, GEMINI_KEY, GeminiUpstream, MODEL_VERSION_SUFFIX, THOUGHT_TOKENS, is_stream, model_in_path,
};
use switchyard_e2e::python::{python, run_pytest};
use switchyard_e2e::upstream::MODEL_SUFFIX;
use switchyard_e2e::{Gateway, MockUpstream, RecordedRequest, Reply, Sse, UPSTREAM_KEY, standard_config};

const MODEL: &str = "gemini-2.5-flash";
const CLIENT_KEY: &str = "sk-client-key-for-the-gateway-must-not-leak";

/// [`standard_config`] plus provider `gem` (the gemini plugin at `gem`), alias `gemini` →
/// `gem/gemini-2.5-flash`, and aliases whose Gemini target fails in a given way, each with the
/// OpenAI-backed `gpt` as fallback.
fn config(up: &MockUpstream, gem: &GeminiUpstream) -> Value {
    let mut cfg = standard_config(up);
    cfg["providers"]["gem"] = json!({
        "plugin": "gemini",
        "base_url": gem.base_url(),
        "keys": [{"value": GEMINI_KEY, "weight": 1.0, "models": ["*"]}],
        "connect_timeout": "2s",
        "timeout": "30s",
        "first_byte_timeout": "20s",
        "stream_idle_timeout": "20s",
        "options": {"api_version": "v1beta"},
        // Failures here are the tests' subject: a breaker must not route around them.
        "circuit_breaker": {"failures": 1000, "window": "30s", "cooldown": "1s", "auth_failure_cooldown": "0s"},
    });
    cfg["models"]["gemini"] = json!({"targets": [{"provider": "gem", "model": MODEL, "weight": 1}]});
    for fault in ["unavailable", "blocked", "too-long", "exhausted"] {
        cfg["models"][format!("{fault}-then-gpt")] = json!({
            "targets": [{"provider": "gem", "model": fault, "weight": 1}],
            "fallbacks": ["gpt"],
        });
    }
    cfg
}

fn start() -> (MockUpstream, GeminiUpstream, Gateway) {
    let up = MockUpstream::start();
    let gem = GeminiUpstream::start();
    let gw = Gateway::start_cfg(&config(&up, &gem));
    (up, gem, gw)
}

/// What every request reaching the Gemini upstream must look like: the configured key in
/// `x-goog-api-key` only, nothing of the client's credentials, no key in the URL.
#[track_caller]
fn assert_clean_upstream_request(rec: &RecordedRequest) {
    assert_eq!(rec.method, "POST");
    assert!(rec.path.starts_with("/v1beta/models/"), "{}", rec.path);
    assert!(
        !rec.path.contains("key=") && !rec.path.contains(GEMINI_KEY),
        "the key must never be in the URL: {}",
        rec.path
    );
    assert_eq!(rec.header_all("x-goog-api-key"), vec![GEMINI_KEY], "{:?}", rec.headers);
    assert_eq!(rec.header("authorization"), None, "{:?}", rec.headers);
    let everything = format!("{:?} {}", rec.headers, String::from_utf8_lossy(&rec.body));
    assert!(
        !everything.contains(CLIENT_KEY),
        "the client's key reached Gemini: {everything}"
    );
    assert!(
        !everything.contains(UPSTREAM_KEY),
        "another provider's key reached Gemini"
    );
    let body = rec.json();
    for field in ["model", "messages", "stream", "stream_options", "fallbacks"] {
        assert!(
            body.get(field).is_none(),
            "OpenAI field `{field}` reached Gemini: {body}"
        );
    }
}

async fn chat(gw: &Gateway, model: &str) -> Reply {
    gw.chat(&chat_body(model, "x")).await
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

// ============================================================================ happy paths

#[tokio::test]
async fn chat_through_the_gemini_plugin() {
    let (_up, gem, gw) = start();
    let body = json!({
        "model": "gem/gemini-2.5-flash",
        "messages": [{"role": "user", "content": "hello gemini"}],
        "temperature": 0.4,
        "max_tokens": 100,
    });
    let reply = gw
        .post_with(
            "/v1/chat/completions",
            &body,
            &[("authorization", &format!("Bearer {CLIENT_KEY}"))],
        )
        .await;
    reply.assert_status(200);
    let v = reply.json();
    assert_completion_schema(&v);
    assert_eq!(
        v["choices"][0]["message"]["content"], "gemini saw: hello gemini",
        "{v:#}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v:#}");
    assert_eq!(
        v["model"],
        format!("{MODEL}{MODEL_VERSION_SUFFIX}"),
        "Gemini's modelVersion: {v:#}"
    );
    assert!(
        v["id"].as_str().is_some_and(|id| id.starts_with("gemini-mock-")),
        "responseId: {v:#}"
    );
    let usage = &v["usage"];
    assert!(usage["prompt_tokens"].as_u64().is_some_and(|n| n > 10), "{v:#}");
    assert_eq!(usage["completion_tokens"], 4, "candidatesTokenCount: {v:#}");
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], CACHED_TOKENS, "{v:#}");
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0, "{v:#}");
    let extra = &v["extra_fields"];
    assert_eq!(extra["provider"], "gem", "{v:#}");
    assert_eq!(extra["model_requested"], "gem/gemini-2.5-flash", "{v:#}");
    assert_eq!(extra["model_deployment"], MODEL, "{v:#}");
    assert_eq!(extra["request_type"], "chat_completion", "{v:#}");

    let rec = gem.last_request();
    assert_clean_upstream_request(&rec);
    assert_eq!(rec.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert!(!is_stream(&rec));
    assert_eq!(
        rec.json(),
        json!({
            "contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}],
            "generationConfig": {"temperature": 0.4, "maxOutputTokens": 100},
        })
    );

    // Through an alias as well.
    let reply = gw.chat(&chat_body("gemini", "via alias")).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "gemini saw: via alias");
    assert_eq!(reply.json()["extra_fields"]["model_requested"], "gemini");
}

#[tokio::test]
async fn system_multi_turn_images_and_sampling() {
    let (_up, gem, gw) = start();
    let body = json!({
        "model": "gemini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "Remember the number 7."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in the picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
            ]},
        ],
        "n": 2,
        "stop": ["<END>"],
        "seed": 11,
        "top_p": 0.5,
        "max_completion_tokens": 64,
    });
    let reply = gw.chat(&body).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_completion_schema(&v);
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2, "candidateCount → two choices: {v:#}");
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i, "{v:#}");
        assert_eq!(c["message"]["content"], "gemini saw: What is in the picture?", "{v:#}");
    }

    let rec = gem.last_request();
    assert_clean_upstream_request(&rec);
    let sent = rec.json();
    assert_eq!(
        sent["systemInstruction"],
        json!({"parts": [{"text": "You are terse."}, {"text": "Answer in English."}]})
    );
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Remember the number 7."}]},
            {"role": "model", "parts": [{"text": "Noted."}]},
            {"role": "user", "parts": [
                {"text": "What is in the picture?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
            ]},
        ])
    );
    assert_eq!(
        sent["generationConfig"],
        json!({"topP": 0.5, "candidateCount": 2, "maxOutputTokens": 64, "stopSequences": ["<END>"], "seed": 11})
    );
}

#[tokio::test]
async fn streams_with_and_without_the_usage_chunk() {
    let (_up, gem, gw) = start();
    let message = "stream me: héllo wörld 日本語 ✓ 🚀";

    // Without include_usage: usage rides on the finish chunk, no chunk has empty choices.
    let sse = gw.stream(&stream_body("gem/gemini-2.5-flash", message)).await;
    sse.assert_complete();
    assert_eq!(sse.content(), format!("gemini saw: {message}"), "{}", sse.dump());
    let chunks = sse.chunks();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant", "{}", sse.dump());
    for c in &chunks {
        assert_eq!(c["model"], format!("{MODEL}{MODEL_VERSION_SUFFIX}"), "{c}");
        assert_eq!(c["extra_fields"]["provider"], "gem", "{c}");
    }
    assert!(sse.empty_choice_chunks().is_empty(), "{}", sse.dump());
    let finish = finish_chunks(&sse);
    assert_eq!(finish.len(), 1, "{}", sse.dump());
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
    let usage = &finish[0]["usage"];
    assert!(usage["total_tokens"].as_u64().is_some_and(|n| n > 0), "{}", sse.dump());
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"], CACHED_TOKENS,
        "{usage}"
    );
    assert_eq!(sse.chunks().iter().filter(|c| c["usage"].is_object()).count(), 1);
    assert!(
        std::ptr::eq(*chunks.last().expect("chunks"), finish[0]),
        "the finish chunk is last"
    );

    let rec = gem.last_request();
    assert_clean_upstream_request(&rec);
    assert_eq!(
        rec.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(rec.header("accept"), Some("text/event-stream"));

    // With include_usage: OpenAI's form, a last chunk with empty choices and the usage.
    let mut body = stream_body("gemini", "with usage");
    body["stream_options"] = json!({"include_usage": true});
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "gemini saw: with usage");
    let empty = sse.empty_choice_chunks();
    assert_eq!(empty.len(), 1, "{}", sse.dump());
    let last = *sse.chunks().last().expect("chunks");
    assert!(std::ptr::eq(last, empty[0]), "the usage chunk is last; {}", sse.dump());
    assert!(last["usage"]["total_tokens"].as_u64().is_some_and(|n| n > 0), "{last}");
    let finish = finish_chunks(&sse);
    assert_eq!(finish.len(), 1);
    assert!(
        finish[0]["usage"].is_null(),
        "usage only on the usage chunk: {}",
        sse.dump()
    );
    assert_eq!(gem.requests().len(), 2);
}

#[tokio::test]
async fn tools_round_trip() {
    let (_up, gem, gw) = start();
    let tool = json!({
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
                "additionalProperties": false,
            },
            "strict": true,
        },
    });
    let first = json!({
        "model": "gemini",
        "messages": [{"role": "user", "content": "Lisbon"}],
        "tools": [tool],
        "tool_choice": "auto",
    });
    let reply = gw.chat(&first).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_completion_schema(&v);
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v:#}");
    assert!(choice["message"]["content"].is_null(), "{v:#}");
    let call = choice["message"]["tool_calls"][0].clone();
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().expect("arguments")).expect("JSON");
    assert_eq!(args, json!({"query": "Lisbon"}));
    let id = call["id"].as_str().expect("a generated id").to_owned();
    assert!(id.starts_with("call_"), "{id}");
    assert!(
        call.pointer("/extra_content/google/thought_signature").is_some(),
        "the signature travels with the call: {call}"
    );

    let sent = gem.last_request().json();
    assert_eq!(
        sent["tools"],
        json!([{"functionDeclarations": [{
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "OBJECT", "properties": {"query": {"type": "STRING"}}, "required": ["query"]},
        }]}]),
        "a strict schema reaches Gemini without the keywords it refuses"
    );
    assert_eq!(sent["toolConfig"], json!({"functionCallingConfig": {"mode": "AUTO"}}));

    // The client runs the tool and answers; the assistant message goes back as the API returned it.
    let second = json!({
        "model": "gemini",
        "messages": [
            {"role": "user", "content": "Lisbon"},
            choice["message"].clone(),
            {"role": "tool", "tool_call_id": id, "content": "{\"temperature\": 21}"},
        ],
        "tools": [first["tools"][0].clone()],
    });
    let reply = gw.chat(&second).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "gemini got get_weather: {\"temperature\":21}");
    assert_eq!(reply.json()["choices"][0]["finish_reason"], "stop");

    let rec = gem.last_request();
    assert_clean_upstream_request(&rec);
    let sent = rec.json();
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Lisbon"}]},
            {"role": "model", "parts": [{
                "functionCall": {"name": "get_weather", "args": {"query": "Lisbon"}},
                "thoughtSignature": "bW9jay1zaWduYXR1cmU=",
            }]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temperature": 21}}}]},
        ])
    );

    // Streamed: one complete call in a delta, with its index and id.
    let mut body = first.clone();
    body["stream"] = json!(true);
    body["messages"] = json!([{"role": "user", "content": "Quito"}]);
    body["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    let calls: Vec<&Value> = sse
        .chunks()
        .into_iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .collect();
    assert_eq!(calls.len(), 1, "{}", sse.dump());
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], "{\"query\":\"Quito\"}");
    assert!(calls[0]["id"].as_str().is_some_and(|id| id.starts_with("call_")));
    assert_eq!(finish_chunks(&sse)[0]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        gem.last_request().json()["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
}

#[tokio::test]
async fn reasoning_and_structured_output() {
    let (_up, gem, gw) = start();
    let mut body = chat_body("gemini", "why is the sky blue");
    body["reasoning_effort"] = json!("low");
    let reply = gw.chat(&body).await;
    reply.assert_status(200);
    let v = reply.json();
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], "gemini saw: why is the sky blue", "{v:#}");
    assert_eq!(message["reasoning"], "Thinking about: why is the sky blue", "{v:#}");
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"], THOUGHT_TOKENS,
        "{v:#}"
    );
    assert_eq!(
        v["usage"]["completion_tokens"].as_u64(),
        Some(7 + THOUGHT_TOKENS),
        "completion = candidates + thoughts: {v:#}"
    );
    assert_eq!(
        gem.last_request().json()["generationConfig"],
        json!({"thinkingConfig": {"includeThoughts": true, "thinkingBudget": 1024}})
    );

    // Streamed thoughts arrive as `reasoning` deltas before the content.
    let mut body = stream_body("gemini", "think out loud");
    body["reasoning_effort"] = json!("medium");
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    let reasoning: String = sse
        .chunks()
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/reasoning").and_then(Value::as_str))
        .collect();
    assert_eq!(reasoning, "Thinking about: think out loud", "{}", sse.dump());
    assert_eq!(sse.content(), "gemini saw: think out loud");
    let usage = &finish_chunks(&sse)[0]["usage"];
    assert_eq!(
        usage["completion_tokens_details"]["reasoning_tokens"], THOUGHT_TOKENS,
        "{usage}"
    );

    // Structured output: the JSON Schema becomes Gemini's responseSchema, its property order
    // kept in `propertyOrdering`. Sent as raw text: this crate's `json!` may sort keys.
    let body = r#"{"model": "gemini", "messages": [{"role": "user", "content": "structured"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "echo", "strict": true,
            "schema": {"type": "object",
                "properties": {"gemini_saw": {"type": "string"}, "confidence": {"type": ["number", "null"]}},
                "required": ["gemini_saw", "confidence"], "additionalProperties": false}}}}"#;
    let reply = gw
        .post_raw(
            "/v1/chat/completions",
            body.as_bytes().to_vec(),
            Some("application/json"),
        )
        .await;
    reply.assert_status(200);
    let content: Value = serde_json::from_str(&reply.content()).expect("the content is JSON");
    assert_eq!(content, json!({"gemini_saw": "structured"}));
    assert_eq!(
        gem.last_request().json()["generationConfig"],
        json!({
            "responseMimeType": "application/json",
            "responseSchema": {
                "type": "OBJECT",
                "properties": {"gemini_saw": {"type": "STRING"}, "confidence": {"type": "NUMBER", "nullable": true}},
                "required": ["gemini_saw", "confidence"],
                "propertyOrdering": ["gemini_saw", "confidence"],
            },
        })
    );
}

// ============================================================================ failures

#[tokio::test]
async fn gemini_errors_are_mapped_for_openai_clients() {
    let (up, gem, gw) = start();

    let reply = chat(&gw, "gem/unavailable").await;
    let err = reply.assert_error(502, "unavailable");
    assert_eq!(err["type"], "server_error");
    let message = err["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("gem") && message.contains("The model is overloaded"),
        "the upstream's message, naming the provider: {message}"
    );

    let err = chat(&gw, "gem/exhausted").await.assert_error(429, "resource_exhausted");
    assert_eq!(err["type"], "rate_limit_error");

    let err = chat(&gw, "gem/too-long")
        .await
        .assert_error(400, "context_length_exceeded");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("input token count"),
        "{err}"
    );

    let err = chat(&gw, "gem/blocked").await.assert_error(400, "content_filter");
    assert_eq!(err["type"], "invalid_request_error");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("blockReason SAFETY"),
        "a clear reason: {err}"
    );

    let err = chat(&gw, "gem/missing").await.assert_error(404, "not_found");
    assert_eq!(err["type"], "not_found_error");
    // The upstream refusing the operator's key is the gateway's failure, not the client's
    // auth error.
    let err = chat(&gw, "gem/unauthenticated")
        .await
        .assert_error(502, "upstream_auth_failed");
    assert_eq!(err["type"], "server_error");
    // The error object wrapped in a list.
    let err = chat(&gw, "gem/internal").await.assert_error(502, "internal");
    assert!(
        err["message"].as_str().unwrap_or_default().contains("internal error"),
        "{err}"
    );

    // A blocked prompt in a stream fails before the first byte: a plain JSON error.
    let sse = gw.stream(&stream_body("gem/blocked", "x")).await;
    assert_eq!(sse.status, 400, "{}", sse.dump());
    let err: Value = serde_json::from_str(&sse.raw).expect("a JSON error body");
    assert_eq!(err["error"]["code"], "content_filter", "{err}");

    for rec in gem.requests() {
        assert_clean_upstream_request(&rec);
    }
    assert!(up.requests().is_empty(), "no fallback was configured");
    gw.assert_serving().await;
}

#[tokio::test]
async fn failures_that_may_succeed_elsewhere_fall_back_and_refusals_do_not() {
    let (up, gem, gw) = start();
    for (alias, fault) in [
        ("unavailable-then-gpt", "unavailable"),
        ("exhausted-then-gpt", "exhausted"),
        ("too-long-then-gpt", "too-long"),
    ] {
        let reply = gw.chat(&chat_body(alias, "rescue me")).await;
        reply.assert_status(200);
        let v = reply.json();
        assert_eq!(
            v["choices"][0]["message"]["content"], "upstream saw: rescue me",
            "{alias}: {v:#}"
        );
        assert_eq!(v["extra_fields"]["provider"], "up", "{alias}: {v:#}");
        assert_eq!(v["model"], format!("gpt-4o{MODEL_SUFFIX}"), "{alias}: {v:#}");
        assert!(
            !gem.requests_for(fault).is_empty(),
            "{alias}: the Gemini target was tried first"
        );
    }
    // Streams fall back too (nothing had reached the client yet).
    let sse = gw.stream(&stream_body("unavailable-then-gpt", "stream rescue")).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "upstream saw: stream rescue");
    let served_by_gpt = up.requests().len();
    assert_eq!(served_by_gpt, 4);

    // A safety refusal is final: no fallback routes around it.
    let reply = gw.chat(&chat_body("blocked-then-gpt", "refused")).await;
    reply.assert_error(400, "content_filter");
    assert_eq!(up.requests().len(), served_by_gpt, "a refusal must not fall back");
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_and_no_done() {
    let (_up, gem, gw) = start();
    let sse = gw.stream(&stream_body("gem/stream-cut", "cut me off please")).await;
    assert_eq!(sse.status, 200, "{}", sse.dump());
    assert!(
        !sse.chunks().is_empty(),
        "chunks before the cut reached the client; {}",
        sse.dump()
    );
    assert!(sse.content().starts_with("gemini"), "{}", sse.dump());
    assert_eq!(sse.errors().len(), 1, "an error event ends the stream; {}", sse.dump());
    assert!(!sse.has_done(), "a cut stream never ends with [DONE]; {}", sse.dump());
    sse.assert_chunk_indexes();
    assert_eq!(model_in_path(&gem.last_request()).as_deref(), Some("stream-cut"));

    // Not streamed: the truncated body is a 502, not a short answer.
    let reply = gw.chat(&chat_body("gem/stream-cut", "x")).await;
    reply.assert_status(502);
    reply.assert_error_shape();
    gw.assert_serving().await;
}

#[tokio::test]
async fn key_problems_are_gateway_auth_failures_that_leak_nothing() {
    let up = MockUpstream::start();
    let gem = GeminiUpstream::start();
    let mut cfg = config(&up, &gem);
    let wrong_key = "AIzaSy-e2e-WRONG-key-0000000000000000";
    let mut wrong = cfg["providers"]["gem"].clone();
    wrong["keys"] = json!([{"value": wrong_key}]);
    cfg["providers"]["gem-wrong"] = wrong;
    let mut keyless = cfg["providers"]["gem"].clone();
    if let Some(provider) = keyless.as_object_mut() {
        provider.remove("keys");
    }
    cfg["providers"]["gem-keyless"] = keyless;
    let gw = Gateway::start_cfg(&cfg);

    // Google answers 400 API_KEY_INVALID: the operator's key is wrong, which is the gateway's
    // failure (502), never the client's own authentication error.
    let reply = gw.chat(&chat_body("gem-wrong/gemini-2.5-flash", "x")).await;
    let err = reply.assert_error(502, "upstream_auth_failed");
    assert_eq!(err["type"], "server_error");
    assert!(!reply.text().contains(wrong_key));
    let rec = gem.last_request();
    assert_eq!(rec.header("x-goog-api-key"), Some(wrong_key));
    assert!(!rec.path.contains("key="));

    // No key configured: no header is sent, and Google's 403 is reported the same way.
    let reply = gw.chat(&chat_body("gem-keyless/gemini-2.5-flash", "x")).await;
    let err = reply.assert_error(502, "upstream_auth_failed");
    assert_eq!(err["type"], "server_error");
    assert_eq!(gem.last_request().header("x-goog-api-key"), None);
    gw.assert_serving().await;
}

// ============================================================================ the openai Python SDK

#[test]
fn openai_python_sdk_against_gemini() {
    let python = python();
    let up = MockUpstream::start();
    let gem = GeminiUpstream::start();
    let gw = Gateway::start_cfg(&config(&up, &gem));
    let env = [
        ("E2E_GATEWAY_URL", gw.base_url()),
        ("E2E_GEMINI_MODEL", format!("gem/{MODEL}")),
        ("E2E_GEMINI_ALIAS", "gemini".to_owned()),
        ("E2E_GEMINI_ANSWERED_MODEL", format!("{MODEL}{MODEL_VERSION_SUFFIX}")),
        ("E2E_GEMINI_PROVIDER", "gem".to_owned()),
        ("E2E_CACHED_TOKENS", CACHED_TOKENS.to_string()),
        ("E2E_THOUGHT_TOKENS", THOUGHT_TOKENS.to_string()),
        ("E2E_CLIENT_KEY", CLIENT_KEY.to_owned()),
    ];
    let (ok, output) = run_pytest(&python, "tests/python/test_gemini_openai_sdk.py", &env);
    assert!(
        ok,
        "the openai Python SDK tests against Gemini failed:\n{output}\n--- daemon output ---\n{}",
        gw.logs()
    );

    let requests = gem.requests();
    assert!(requests.len() >= 6, "{} requests", requests.len());
    for rec in &requests {
        assert_clean_upstream_request(rec);
    }
    assert!(requests.iter().any(is_stream), "the SDK streamed");
    // The SDK sent back the assistant message it got (with the call's signature) and the result.
    let round_trip = requests
        .iter()
        .map(RecordedRequest::json)
        .find(|b| {
            b["contents"]
                .as_array()
                .is_some_and(|c| c.iter().any(|t| t.pointer("/parts/0/functionResponse").is_some()))
        })
        .expect("a request with a function response");
    assert_eq!(
        round_trip["contents"][1]["parts"][0]["thoughtSignature"], "bW9jay1zaWduYXR1cmU=",
        "{round_trip:#}"
    );
    assert!(up.requests().is_empty(), "nothing reached the OpenAI upstream");
}
