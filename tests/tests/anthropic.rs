//! The `anthropic` plugin end to end: the real daemon loads `libswitchyard_anthropic.so` by name,
//! clients speak OpenAI's API, and the mock Anthropic Messages API (`anthropic_upstream`) checks and
//! records what arrives. Also drives `tests/python/test_anthropic_openai_sdk.py` (the official
//! `openai` SDK against `anthropic/claude-…` models).

use serde_json::{Value, json};
use switchyard_e2e::anthropic_upstream::{
    ANTHROPIC_KEY, API_VERSION, AnthropicUpstream, CACHE_READ, CACHE_WRITE, MODEL_SUFFIX, THINKING_SIGNATURE,
};
use switchyard_e2e::client::{Sse, assert_chunk_schema, assert_completion_schema, chat_body, stream_body};
use switchyard_e2e::paths::workspace_root;
use switchyard_e2e::python::{python, run_pytest};
use switchyard_e2e::upstream::MODEL_SUFFIX as OPENAI_MODEL_SUFFIX;
use switchyard_e2e::{Gateway, MockUpstream, UPSTREAM_KEY, standard_config};

const CLIENT_KEY: &str = "sk-client-key-that-must-never-reach-anthropic";

fn claude_provider(anthropic: &AnthropicUpstream) -> Value {
    json!({
        "plugin": "anthropic",
        "base_url": anthropic.base_url(),
        "keys": [{"value": ANTHROPIC_KEY, "weight": 1.0, "models": ["*"]}],
        "connect_timeout": "2s",
        "timeout": "30s",
        "first_byte_timeout": "20s",
        "stream_idle_timeout": "20s",
        "retries": {"max": 0},
    })
}

/// [`standard_config`] plus provider `claude` (the anthropic plugin at the mock) and aliases:
/// `sonnet` → `claude/claude-sonnet-4-5`; `long-context` → `claude/prompt-too-long`, falling back
/// to `claude/claude-opus-4-1`; `busy` → `claude/overloaded`, falling back to `gpt` (the OpenAI
/// mock); `flaky-stream` → `claude/stream-error`, falling back to `gpt`.
fn config(anthropic: &AnthropicUpstream, up: &MockUpstream) -> Value {
    let mut cfg = standard_config(up);
    cfg["providers"]["claude"] = claude_provider(anthropic);
    cfg["models"]["sonnet"] = json!({"targets": [{"provider": "claude", "model": "claude-sonnet-4-5", "weight": 1}]});
    cfg["models"]["long-context"] = json!({
        "targets": [{"provider": "claude", "model": "prompt-too-long", "weight": 1}],
        "fallbacks": ["claude/claude-opus-4-1"],
    });
    cfg["models"]["busy"] = json!({
        "targets": [{"provider": "claude", "model": "overloaded", "weight": 1}],
        "fallbacks": ["gpt"],
    });
    cfg["models"]["flaky-stream"] = json!({
        "targets": [{"provider": "claude", "model": "stream-error", "weight": 1}],
        "fallbacks": ["gpt"],
    });
    cfg
}

struct Setup {
    anthropic: AnthropicUpstream,
    openai: MockUpstream,
    gw: Gateway,
}

fn start() -> Setup {
    let anthropic = AnthropicUpstream::start();
    let openai = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&anthropic, &openai));
    Setup { anthropic, openai, gw }
}

/// The client's own credentials, which the gateway must never forward.
fn client_headers() -> [(&'static str, &'static str); 2] {
    [
        ("authorization", "Bearer sk-client-key-that-must-never-reach-anthropic"),
        ("x-api-key", CLIENT_KEY),
    ]
}

#[track_caller]
fn assert_upstream_auth(anthropic: &AnthropicUpstream) {
    let requests = anthropic.requests();
    assert!(!requests.is_empty(), "no request reached the mock Anthropic API");
    for rec in &requests {
        assert_eq!(rec.method, "POST");
        assert_eq!(rec.path, "/v1/messages");
        assert_eq!(
            rec.header_all("x-api-key"),
            vec![ANTHROPIC_KEY],
            "the configured key, once, and only it"
        );
        assert_eq!(rec.header_all("anthropic-version"), vec![API_VERSION]);
        assert!(rec.header("authorization").is_none(), "{:?}", rec.headers);
        let headers = format!("{:?}", rec.headers);
        assert!(
            !headers.contains(CLIENT_KEY),
            "the client's key reached the upstream: {headers}"
        );
        assert!(
            rec.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{headers}"
        );
    }
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

/// (id, name, arguments) of every tool call in a stream, reassembled by `index`.
fn streamed_tool_calls(sse: &Sse) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for c in sse.chunks() {
        for choice in c["choices"].as_array().into_iter().flatten() {
            for call in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
                let i = call["index"].as_u64().expect("tool call index") as usize;
                while calls.len() <= i {
                    calls.push(Default::default());
                }
                calls[i].0 += call["id"].as_str().unwrap_or_default();
                calls[i].1 += call["function"]["name"].as_str().unwrap_or_default();
                calls[i].2 += call["function"]["arguments"].as_str().unwrap_or_default();
            }
        }
    }
    calls
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

// ---------------------------------------------------------------------------------------------
// Success paths
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn chat_roundtrip_through_the_anthropic_plugin() {
    let s = start();
    let reply =
        s.gw.post_with(
            "/v1/chat/completions",
            &chat_body("sonnet", "hello claude"),
            &client_headers(),
        )
        .await;
    reply.assert_status(200);
    let v = reply.json();
    assert_completion_schema(&v);
    assert_eq!(
        v["choices"][0]["message"]["content"], "upstream saw: hello claude",
        "{v:#}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v:#}");
    assert_eq!(v["model"], format!("claude-sonnet-4-5{MODEL_SUFFIX}"), "{v:#}");
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("msg_mock")), "{v:#}");
    let extra = &v["extra_fields"];
    assert_eq!(extra["provider"], "claude", "{v:#}");
    assert_eq!(extra["model_requested"], "sonnet", "{v:#}");
    assert_eq!(extra["model_deployment"], "claude-sonnet-4-5", "{v:#}");
    assert_eq!(extra["request_type"], "chat_completion", "{v:#}");

    // OpenAI counts cached input inside prompt_tokens; Anthropic reports it apart.
    let usage = &v["usage"];
    let input = 10 + 2; // the mock: 10 + words
    assert_eq!(usage["prompt_tokens"], input + CACHE_READ + CACHE_WRITE, "{usage}");
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], CACHE_READ, "{usage}");
    assert_eq!(
        usage["prompt_tokens_details"]["cache_write_tokens"], CACHE_WRITE,
        "{usage}"
    );

    assert_upstream_auth(&s.anthropic);
    let rec = s.anthropic.last_request();
    assert!(
        rec.header("accept").is_some_and(|a| a.contains("application/json")),
        "{:?}",
        rec.headers
    );
    assert_eq!(
        rec.json(),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 4096,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "hello claude"}]}]}),
        "the translated request"
    );
    assert!(s.openai.requests().is_empty());
}

#[tokio::test]
async fn provider_slash_model_and_request_fields() {
    let s = start();
    let request = json!({
        "model": "claude/claude-haiku-4-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
            {"role": "assistant", "content": "Ada."},
            {"role": "developer", "content": "Answer in one word."},
            {"role": "user", "content": "Spell it backwards"}
        ],
        "max_completion_tokens": 256,
        "temperature": 0.25,
        "top_p": 0.5,
        "stop": ["END"],
        "user": "user-1234",
        "seed": 7,
        "logprobs": true,
        "x_vendor_extension": {"dropped": true},
    });
    let reply = s.gw.chat(&request).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "upstream saw: Spell it backwards"
    );
    assert_eq!(v["model"], format!("claude-haiku-4-5{MODEL_SUFFIX}"));
    assert_eq!(v["choices"][0]["logprobs"], Value::Null);
    let sent = s.anthropic.last_request().json();
    assert_eq!(
        sent,
        json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 256,
            "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in one word."}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "My name is Ada."}, {"type": "text", "text": "What is my name?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Ada."}]},
                {"role": "user", "content": [{"type": "text", "text": "Spell it backwards"}]}
            ],
            "temperature": 0.25,
            "top_p": 0.5,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "user-1234"},
        }),
        "system messages hoisted, same-role turns merged, OpenAI-only fields dropped"
    );
}

#[tokio::test]
async fn streaming_with_usage_on_the_finish_chunk() {
    let s = start();
    let message = "stream me: héllo wörld 日本語 ✓ \"quoted\" emoji 🚀";
    let sse =
        s.gw.stream_with(
            "/v1/chat/completions",
            &stream_body("sonnet", message),
            &client_headers(),
        )
        .await;
    sse.assert_complete();
    assert_eq!(sse.content(), format!("upstream saw: {message}"), "{}", sse.dump());
    let chunks = sse.chunks();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant", "{}", sse.dump());
    for c in &chunks {
        assert_eq!(c["model"], format!("claude-sonnet-4-5{MODEL_SUFFIX}"), "{c}");
        assert_eq!(c["extra_fields"]["provider"], "claude", "{c}");
    }
    assert!(
        sse.empty_choice_chunks().is_empty(),
        "without include_usage no chunk has empty choices; {}",
        sse.dump()
    );
    let finish = finish_chunks(&sse);
    assert_eq!(finish.len(), 1, "{}", sse.dump());
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
    let usage = &finish[0]["usage"];
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"],
        CACHE_READ,
        "{}",
        sse.dump()
    );
    assert!(usage["completion_tokens"].as_u64().is_some_and(|n| n > 1), "{usage}");
    assert_eq!(
        chunks.iter().filter(|c| c["usage"].is_object()).count(),
        1,
        "usage appears once; {}",
        sse.dump()
    );

    assert_upstream_auth(&s.anthropic);
    let rec = s.anthropic.last_request();
    assert!(rec.header("accept").is_some_and(|a| a.contains("text/event-stream")));
    let sent = rec.json();
    assert_eq!(sent["stream"], true, "{sent}");
    assert!(sent.get("stream_options").is_none(), "OpenAI-only: {sent}");
}

#[tokio::test]
async fn streaming_with_include_usage_ends_with_a_usage_chunk() {
    let s = start();
    let mut body = stream_body("sonnet", "usage please");
    body["stream_options"] = json!({"include_usage": true});
    let sse = s.gw.stream(&body).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "upstream saw: usage please");
    let chunks = sse.chunks();
    let last = chunks.last().expect("chunks");
    assert_eq!(last["choices"], json!([]), "{}", sse.dump());
    assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], CACHE_READ);
    assert_eq!(
        last["usage"]["total_tokens"],
        last["usage"]["prompt_tokens"].as_u64().unwrap_or(0) + last["usage"]["completion_tokens"].as_u64().unwrap_or(0)
    );
    assert_eq!(sse.empty_choice_chunks().len(), 1, "{}", sse.dump());
    let finish = finish_chunks(&sse);
    assert_eq!(finish.len(), 1);
    assert!(finish[0].get("usage").is_none_or(Value::is_null), "{}", sse.dump());
}

#[tokio::test]
async fn tools_round_trip() {
    let s = start();
    let first = json!({"model": "sonnet", "tools": [weather_tool()], "tool_choice": "required",
                       "parallel_tool_calls": false,
                       "messages": [{"role": "user", "content": "Lisbon"}]});
    let reply = s.gw.chat(&first).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_completion_schema(&v);
    let message = &v["choices"][0]["message"];
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v:#}");
    assert_eq!(message["content"], Value::Null, "{v:#}");
    let call = &message["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments = call["function"]["arguments"].as_str().expect("arguments is a string");
    assert_eq!(
        serde_json::from_str::<Value>(arguments).ok(),
        Some(json!({"city": "Lisbon"}))
    );
    let sent = s.anthropic.last_request().json();
    assert_eq!(
        sent["tools"],
        json!([{"name": "get_weather", "description": "Current weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );

    // The client runs the tool and sends the conversation back.
    let second = json!({"model": "sonnet", "tools": [weather_tool()], "messages": [
        {"role": "user", "content": "Lisbon"},
        message.clone(),
        {"role": "tool", "tool_call_id": call["id"], "content": "18°C and sunny"}
    ]});
    let reply = s.gw.chat(&second).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(
        v["choices"][0]["message"]["content"], "tool said: 18°C and sunny",
        "{v:#}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let sent = s.anthropic.last_request().json();
    let id = call["id"].as_str().expect("id");
    assert_eq!(
        sent["messages"][1]["content"],
        json!([{"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": "Lisbon"}}])
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "18°C and sunny"}]})
    );
    assert_upstream_auth(&s.anthropic);
}

#[tokio::test]
async fn tool_calls_stream_with_indexes() {
    let s = start();
    let mut body = stream_body("sonnet", "Quito");
    body["tools"] = json!([weather_tool()]);
    let sse = s.gw.stream(&body).await;
    sse.assert_complete();
    let calls = streamed_tool_calls(&sse);
    assert_eq!(calls.len(), 1, "{}", sse.dump());
    assert!(calls[0].0.starts_with("toolu_mock"), "{calls:?}");
    assert_eq!(calls[0].1, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].2).ok(),
        Some(json!({"city": "Quito"}))
    );
    let finish = finish_chunks(&sse);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "tool_calls", "{}", sse.dump());
}

#[tokio::test]
async fn images_reach_the_upstream_as_blocks() {
    let s = start();
    let request = json!({"model": "sonnet", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what are these?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}}
    ]}]});
    let reply = s.gw.chat(&request).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "upstream saw: what are these? [2 images]");
    let sent = s.anthropic.last_request().json();
    assert_eq!(
        sent["messages"][0]["content"],
        json!([
            {"type": "text", "text": "what are these?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgoAAAANSUhEUg=="}}
        ])
    );
}

#[tokio::test]
async fn reasoning_effort_turns_on_extended_thinking() {
    let s = start();
    let mut body = chat_body("sonnet", "think hard");
    body["reasoning_effort"] = json!("low");
    body["temperature"] = json!(0.3);
    let reply = s.gw.chat(&body).await;
    reply.assert_status(200);
    let v = reply.json();
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], "upstream saw: think hard", "{v:#}");
    assert_eq!(message["reasoning"], "thinking about: think hard", "{v:#}");
    assert_eq!(
        message["reasoning_details"],
        json!([{"type": "reasoning.text", "text": "thinking about: think hard", "signature": THINKING_SIGNATURE}])
    );
    let sent = s.anthropic.last_request().json();
    assert_eq!(sent["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
    assert_eq!(sent["max_tokens"], 4096 + 2048);
    assert!(
        sent.get("temperature").is_none(),
        "thinking fixes the temperature: {sent}"
    );

    // Streamed: reasoning deltas, then the signature, then the content.
    let mut body = stream_body("sonnet", "think streamed");
    body["reasoning_effort"] = json!("low");
    let sse = s.gw.stream(&body).await;
    sse.assert_complete();
    let reasoning: String = sse
        .chunks()
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning"].as_str())
        .collect();
    assert_eq!(reasoning, "thinking about: think streamed", "{}", sse.dump());
    assert!(
        sse.chunks()
            .iter()
            .any(|c| c["choices"][0]["delta"]["reasoning_details"][0]["signature"] == THINKING_SIGNATURE),
        "{}",
        sse.dump()
    );
    assert_eq!(sse.content(), "upstream saw: think streamed");
}

#[tokio::test]
async fn structured_output_comes_back_as_content() {
    let s = start();
    let mut body = chat_body("sonnet", "structured");
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
        "schema": {"type": "object", "properties": {"upstream_saw": {"type": "string"}},
                   "required": ["upstream_saw"], "additionalProperties": false}}});
    let reply = s.gw.chat(&body).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v:#}");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none(), "{v:#}");
    let content = v["choices"][0]["message"]["content"].as_str().expect("content");
    assert_eq!(
        serde_json::from_str::<Value>(content).ok(),
        Some(json!({"upstream_saw": "structured"}))
    );
    let sent = s.anthropic.last_request().json();
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "switchyard_json_response"})
    );

    body["stream"] = json!(true);
    let sse = s.gw.stream(&body).await;
    sse.assert_complete();
    assert_eq!(
        serde_json::from_str::<Value>(&sse.content()).ok(),
        Some(json!({"upstream_saw": "structured"})),
        "{}",
        sse.dump()
    );
    assert!(streamed_tool_calls(&sse).is_empty());
}

#[tokio::test]
async fn refusal_is_content_filter() {
    let s = start();
    let reply = s.gw.chat(&chat_body("claude/refuse", "something bad")).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter", "{v:#}");
    let sse = s.gw.stream(&stream_body("claude/refuse", "something bad")).await;
    sse.assert_complete();
    assert_eq!(finish_chunks(&sse)[0]["choices"][0]["finish_reason"], "content_filter");
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn overloaded_529_is_a_502_with_the_upstream_message() {
    let s = start();
    let reply = s.gw.chat(&chat_body("claude/overloaded", "hi")).await;
    let err = reply.assert_error(502, "overloaded_error");
    let message = err["message"].as_str().unwrap_or_default();
    assert!(message.contains("Overloaded") && message.contains("529"), "{message}");
    assert_eq!(err["type"], "server_error");
    s.gw.assert_serving().await;
}

#[tokio::test]
async fn overloaded_falls_back_to_an_openai_target() {
    let s = start();
    let reply = s.gw.chat(&chat_body("busy", "rescue me")).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(
        v["choices"][0]["message"]["content"], "upstream saw: rescue me",
        "{v:#}"
    );
    assert_eq!(v["model"], format!("gpt-4o{OPENAI_MODEL_SUFFIX}"));
    assert_eq!(v["extra_fields"]["provider"], "up");
    assert_eq!(s.anthropic.requests_for("overloaded").len(), 1);
    assert_eq!(
        s.openai.last_request().header("authorization"),
        Some(&*format!("Bearer {UPSTREAM_KEY}"))
    );
}

#[tokio::test]
async fn rate_limited_is_429() {
    let s = start();
    let reply = s.gw.chat(&chat_body("claude/rate-limited", "hi")).await;
    let err = reply.assert_error(429, "rate_limit_error");
    assert_eq!(err["type"], "rate_limit_error");
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("rate limit")),
        "{err}"
    );
}

#[tokio::test]
async fn prompt_too_long_is_a_context_length_error_that_falls_back() {
    let s = start();
    let reply =
        s.gw.chat(&chat_body("claude/prompt-too-long", "a very long prompt"))
            .await;
    let err = reply.assert_error(400, "context_length_exceeded");
    assert_eq!(err["type"], "invalid_request_error");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("prompt is too long")),
        "{err}"
    );

    let reply = s.gw.chat(&chat_body("long-context", "a very long prompt")).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["model"], format!("claude-opus-4-1{MODEL_SUFFIX}"), "{v:#}");
    assert_eq!(v["extra_fields"]["model_deployment"], "claude-opus-4-1", "{v:#}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "upstream saw: a very long prompt"
    );
}

#[tokio::test]
async fn server_error_and_a_refused_key_are_502() {
    let s = start();
    let reply = s.gw.chat(&chat_body("claude/server-error", "hi")).await;
    let err = reply.assert_error(502, "api_error");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("Internal server error")),
        "{err}"
    );
    let reply = s.gw.chat(&chat_body("claude/not-found", "hi")).await;
    reply.assert_error(404, "not_found_error");

    // A provider configured without a key sends none; the API's 401 is the operator's
    // problem, reported as the gateway's failure.
    let anthropic = AnthropicUpstream::start();
    let up = MockUpstream::start();
    let mut cfg = config(&anthropic, &up);
    cfg["providers"]["claude"]["keys"] = json!([]);
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("claude/claude-sonnet-4-5", "hi")).await;
    let err = reply.assert_error(502, "upstream_auth_failed");
    assert_eq!(err["type"], "server_error");
    let rec = anthropic.last_request();
    assert!(rec.header("x-api-key").is_none(), "{:?}", rec.headers);
}

#[tokio::test]
async fn untranslatable_requests_are_400_before_any_upstream_call() {
    let s = start();
    let mut body = chat_body("sonnet", "two please");
    body["n"] = json!(2);
    let reply = s.gw.chat(&body).await;
    reply.assert_status(400);
    let err = reply.assert_error_shape();
    assert_eq!(err["param"], "n", "{err}");
    assert!(s.anthropic.requests().is_empty());
}

#[tokio::test]
async fn a_stream_error_before_content_falls_back() {
    let s = start();
    let sse = s.gw.stream(&stream_body("flaky-stream", "stream rescue")).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "upstream saw: stream rescue", "{}", sse.dump());
    assert_eq!(sse.chunks()[0]["extra_fields"]["provider"], "up");
    assert_eq!(s.anthropic.requests_for("stream-error").len(), 1);

    // Without a fallback the client gets a plain JSON error, not a broken stream.
    let sse = s.gw.stream(&stream_body("claude/stream-error", "no rescue")).await;
    assert_eq!(sse.status, 502, "{}", sse.dump());
    let v: Value = serde_json::from_str(&sse.raw).expect("a JSON error body");
    assert_eq!(v["error"]["code"], "overloaded_error", "{v}");
}

#[tokio::test]
async fn a_stream_error_mid_answer_ends_the_stream_with_an_error_event() {
    let s = start();
    for model in ["claude/stream-error-late", "claude/stream-truncated"] {
        let sse = s.gw.stream(&stream_body(model, "one two three four five")).await;
        assert_eq!(sse.status, 200, "{model}: {}", sse.dump());
        assert!(
            !sse.has_done(),
            "{model}: a cut stream must not end with [DONE]; {}",
            sse.dump()
        );
        assert!(!sse.chunks().is_empty(), "{model}: {}", sse.dump());
        for c in sse.chunks() {
            assert_chunk_schema(c);
        }
        let errors = sse.errors();
        assert_eq!(errors.len(), 1, "{model}: {}", sse.dump());
        assert!(errors[0]["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(
            "upstream saw: one two three four five".starts_with(&sse.content()),
            "{model}: {}",
            sse.dump()
        );
    }
    s.gw.assert_serving().await;
}

// ---------------------------------------------------------------------------------------------
// The official openai Python SDK
// ---------------------------------------------------------------------------------------------

#[test]
fn openai_python_sdk_against_anthropic_models() {
    let python = python();
    let anthropic = AnthropicUpstream::start();
    let up = MockUpstream::start();
    let mut cfg = config(&anthropic, &up);
    // Users route `anthropic/claude-…`: a provider named after the protocol.
    cfg["providers"]["anthropic"] = claude_provider(&anthropic);
    let gw = Gateway::start_cfg(&cfg);
    let env = [
        ("E2E_GATEWAY_URL", gw.base_url()),
        ("E2E_MODEL", "anthropic/claude-sonnet-4-5".to_owned()),
        ("E2E_UPSTREAM_MODEL", format!("claude-sonnet-4-5{MODEL_SUFFIX}")),
        ("E2E_PROVIDER", "anthropic".to_owned()),
        ("E2E_CACHED_TOKENS", CACHE_READ.to_string()),
        ("E2E_OVERLOADED_MODEL", "anthropic/overloaded".to_owned()),
        ("E2E_RATE_LIMITED_MODEL", "anthropic/rate-limited".to_owned()),
        ("E2E_CONTEXT_MODEL", "anthropic/prompt-too-long".to_owned()),
        ("E2E_CLIENT_KEY", CLIENT_KEY.to_owned()),
    ];
    let (ok, output) = run_pytest(&python, "tests/python/test_anthropic_openai_sdk.py", &env);
    assert!(
        ok,
        "the openai Python SDK tests against Anthropic models failed:\n{output}\n--- daemon output ---\n{}",
        gw.logs()
    );
    // Every test in the script ran and passed (none skipped or left uncollected).
    let script = std::fs::read_to_string(workspace_root().join("tests/python/test_anthropic_openai_sdk.py"))
        .expect("read the Python script");
    let defined = script.lines().filter(|l| l.starts_with("def test_")).count();
    let passed = output.lines().filter(|l| l.starts_with("PASSED ")).count();
    assert_eq!(passed, defined, "pytest output:\n{output}");
    assert_upstream_auth(&anthropic);
    for rec in anthropic.requests() {
        let body = rec.json();
        for field in ["stream_options", "fallbacks", "n", "seed"] {
            assert!(body.get(field).is_none(), "`{field}` reached Anthropic: {body}");
        }
    }
    let tool_results = anthropic
        .requests()
        .iter()
        .filter(|r| r.body.windows(11).any(|w| w == b"tool_result"))
        .count();
    assert!(tool_results >= 1, "the SDK's tool round trip reached the upstream");
    assert!(up.requests().is_empty(), "nothing was routed to the OpenAI mock");
}
