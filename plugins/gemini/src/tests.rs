//! The plugin driven through the real C ABI, exactly as the gateway loads and calls it, with
//! golden (insta) snapshots of every translation: `src/snapshots/`.
//!
//! To accept changed snapshots: `INSTA_UPDATE=always cargo test -p switchyard-plugin-gemini`,
//! then review the diff.

use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use switchyard_plugin_api::abi::{PluginDecl, chunk_flag, error_kind};
use switchyard_plugin_api::host::{self, CallError, CallInfo, HttpRequestParts, Item, LoadError, PluginError, Usage};

// The export macro's entry symbol, reached by its C name as the host's loader does.
unsafe extern "C" {
    fn switchyard_plugin_entry_v1() -> *const PluginDecl;
}

fn library() -> host::PluginLibrary {
    // SAFETY: the static declaration exported by this crate.
    unsafe { host::from_declaration(switchyard_plugin_entry_v1(), Path::new("in-process")) }.expect("valid declaration")
}

fn codec_with(base_url: Option<&str>, options: &str) -> Result<host::ProviderCodec, LoadError> {
    let base_url = base_url.map_or("null".to_string(), |u| format!("\"{u}\""));
    let setup = format!(r#"{{"name":"gem","base_url":{base_url},"options":{options}}}"#);
    library().provider("gem", setup.as_bytes())
}

fn codec() -> host::ProviderCodec {
    codec_with(None, "{}").expect("default instance")
}

const KEY: &str = "AIzaSy-test-secret-key";
const MODEL: &str = "gemini-2.5-flash";

fn call_for<'a>(model: &'a str, stream: bool, api_key: &'a str) -> CallInfo<'a> {
    CallInfo {
        stream,
        unix_time_ms: 1_767_225_600_123,
        model,
        api_key,
        request_id: "req-gemini-1",
        ..CallInfo::default()
    }
}

fn call(stream: bool) -> CallInfo<'static> {
    call_for(MODEL, stream, KEY)
}

fn header<'a>(req: &'a HttpRequestParts, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[track_caller]
fn plugin_error<T: std::fmt::Debug>(result: Result<T, CallError>) -> PluginError {
    match result {
        Err(CallError::Plugin(e)) => e,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

fn error_json(e: &PluginError) -> Value {
    json!({
        "status": e.status,
        "kind": e.kind,
        "retryable": e.retryable,
        "message": e.message,
        "type": e.error_type,
        "code": e.code,
        "param": e.param,
    })
}

fn usage_json(u: &Option<Usage>) -> Value {
    match u {
        None => Value::Null,
        Some(u) => json!({
            "prompt": u.prompt_tokens,
            "completion": u.completion_tokens,
            "total": u.total_tokens,
            "cached": u.cached_tokens,
            "cache_write": u.cache_write_tokens,
            "reasoning": u.reasoning_tokens,
        }),
    }
}

// ============================================================================ declaration, setup

#[test]
fn declaration_names_the_gemini_provider() {
    let lib = library();
    assert_eq!(lib.name, "gemini");
    assert_eq!(lib.version, env!("CARGO_PKG_VERSION"));
    assert!(lib.is_provider() && !lib.is_local());
}

#[test]
fn bad_options_are_refused_at_create() {
    let err = codec_with(None, r#"{"region":"us"}"#).expect_err("unknown option");
    let text = err.to_string();
    assert!(
        text.contains("gemini") && text.contains("unknown option `region`"),
        "{text}"
    );
    let err = codec_with(None, r#"{"api_version":true}"#).expect_err("wrong type");
    assert!(err.to_string().contains("must be a string"), "{err}");
    let err = codec_with(Some("ftp://example.com"), "{}").expect_err("bad scheme");
    assert!(err.to_string().contains("http:// or https://"), "{err}");
    let c = codec_with(Some("http://127.0.0.1:1/"), r#"{"api_version":"v1"}"#).expect("v1");
    let req = c
        .encode_request(&call(false), br#"{"messages":[{"role":"user","content":"x"}]}"#)
        .expect("encoded");
    assert_eq!(req.url, "http://127.0.0.1:1/v1/models/gemini-2.5-flash:generateContent");
}

// ============================================================================ encode

fn encode_with(model: &str, body: &Value) -> Result<HttpRequestParts, CallError> {
    let bytes = serde_json::to_vec(body).expect("request json");
    codec().encode_request(&call_for(model, false, KEY), &bytes)
}

/// The Gemini body for `body` (an OpenAI request), through the ABI.
fn encode(body: &Value) -> Value {
    let req = encode_with(MODEL, body).expect("encoded");
    serde_json::from_slice(&req.body).expect("the body is JSON")
}

#[test]
fn the_key_goes_in_its_header_and_nowhere_else() {
    let body = br#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}"#;
    let req = codec().encode_request(&call(false), body).expect("encoded");
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(header(&req, "x-goog-api-key"), Some(KEY));
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(header(&req, "accept"), Some("application/json"));
    assert!(!req.url.contains(KEY) && !req.url.contains("key="));
    let elsewhere = req
        .headers
        .iter()
        .filter(|(n, _)| n != "x-goog-api-key")
        .any(|(_, v)| v.contains(KEY));
    assert!(!elsewhere && !String::from_utf8_lossy(&req.body).contains(KEY));
    assert_eq!(header(&req, "authorization"), None);

    let req = codec().encode_request(&call(true), body).expect("stream");
    assert_eq!(
        req.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(header(&req, "accept"), Some("text/event-stream"));

    // Keyless (a local emulator): no auth header at all.
    let req = codec()
        .encode_request(&call_for("models/gemini-2.0-flash", false, ""), body)
        .expect("keyless");
    assert_eq!(header(&req, "x-goog-api-key"), None);
    assert!(
        req.url.ends_with("/v1beta/models/gemini-2.0-flash:generateContent"),
        "{}",
        req.url
    );
}

#[test]
fn golden_request_basic() {
    insta::assert_json_snapshot!(encode(&json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hello, Gemini!"}],
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 256,
        "user": "user-123",
        "stream": true,
        "stream_options": {"include_usage": true},
        "x_vendor_field": 1,
    })));
}

#[test]
fn golden_request_multi_turn() {
    insta::assert_json_snapshot!(encode(&json!({
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "And of Italy?"},
            {"role": "user", "content": [{"type": "text", "text": "Answer in one word."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Rome"}, {"type": "refusal", "refusal": "(no more)"}]},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "Thanks"},
        ],
    })));
}

#[test]
fn golden_request_system() {
    insta::assert_json_snapshot!(encode(&json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}, {"type": "text", "text": "Never use emoji."}]},
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "A late instruction joins the others."},
        ],
    })));
}

#[test]
fn golden_request_images() {
    insta::assert_json_snapshot!(encode(&json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/photos/cat.JPG?size=large"}},
            {"type": "image_url", "image_url": {"url": "gs://bucket/scan.webp"}},
            {"type": "image_url", "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/abc123"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQK", "filename": "a.pdf"}},
        ]}],
    })));
}

const WEATHER_TOOL: &str = r#"{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit"]}
            },
            "required": ["city", "unit"],
            "additionalProperties": false
        },
        "strict": true
    }
}"#;

fn weather_tool() -> Value {
    serde_json::from_str(WEATHER_TOOL).expect("tool json")
}

#[test]
fn golden_request_tools() {
    insta::assert_json_snapshot!(encode(&json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [
            weather_tool(),
            {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
            {"type": "function", "function": {"name": "ping"}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": true,
    })));
}

#[test]
fn tool_choice_modes() {
    let mode = |choice: Value| {
        let body = encode(&json!({
            "messages": [{"role": "user", "content": "x"}],
            "tools": [weather_tool()],
            "tool_choice": choice,
        }));
        body["toolConfig"]["functionCallingConfig"].clone()
    };
    assert_eq!(mode(json!("auto")), json!({"mode": "AUTO"}));
    assert_eq!(mode(json!("none")), json!({"mode": "NONE"}));
    assert_eq!(mode(json!("required")), json!({"mode": "ANY"}));
    assert_eq!(
        mode(json!({"type": "function", "function": {"name": "get_weather"}})),
        json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]})
    );
    assert_eq!(mode(Value::Null), Value::Null);
    let e = plugin_error(encode_with(
        MODEL,
        &json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}),
    ));
    assert_eq!((e.status, e.param.as_deref()), (400, Some("tool_choice")));
}

#[test]
fn golden_request_tool_results() {
    insta::assert_json_snapshot!(encode(&json!({
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"},
                "extra_content": {"google": {"thought_signature": "CsIBAXLI2ny"}},
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"},
            {"role": "assistant", "content": "It is 21 °C and clear."},
            {"role": "user", "content": "And the time?"},
            {"role": "assistant", "tool_calls": [{"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
        ],
    })));
}

#[test]
fn golden_request_parallel_tool_calls() {
    insta::assert_json_snapshot!(encode(&json!({
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking both.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "18"},
            {"role": "tool", "tool_call_id": "call_b", "content": "sunny, 25"},
            {"role": "user", "content": "Which is warmer?"},
        ],
        "tools": [weather_tool()],
    })));
}

#[test]
fn tool_results_need_a_known_call() {
    let e = plugin_error(encode_with(
        MODEL,
        &json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "call_nowhere", "content": "1"},
        ]}),
    ));
    assert_eq!((e.status, e.kind), (400, error_kind::INVALID_REQUEST));
    assert_eq!(e.param.as_deref(), Some("messages[1].tool_call_id"));
    assert!(e.message.contains("call_nowhere"), "{}", e.message);

    let e = plugin_error(encode_with(
        MODEL,
        &json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]},
        ]}),
    ));
    assert_eq!(e.param.as_deref(), Some("messages[1].tool_calls[0].function.arguments"));
}

#[test]
fn golden_request_reasoning() {
    let body = |effort: &str| {
        json!({
            "messages": [{"role": "user", "content": "Prove there are infinitely many primes."}],
            "reasoning_effort": effort,
        })
    };
    let thinking = |model: &str, body: Value| {
        let req = encode_with(model, &body).expect("encoded");
        let v: Value = serde_json::from_slice(&req.body).expect("json");
        v["generationConfig"]["thinkingConfig"].clone()
    };
    insta::assert_json_snapshot!(json!({
        "gemini-2.5-flash none": thinking(MODEL, body("none")),
        "gemini-2.5-flash minimal": thinking(MODEL, body("minimal")),
        "gemini-2.5-flash low": thinking(MODEL, body("low")),
        "gemini-2.5-flash medium": thinking(MODEL, body("medium")),
        "gemini-2.5-flash high": thinking(MODEL, body("high")),
        "gemini-3-pro-preview low": thinking("gemini-3-pro-preview", body("low")),
        "gemini-3-pro-preview high": thinking("gemini-3-pro-preview", body("high")),
        "gemini-3-flash-preview none": thinking("gemini-3-flash-preview", body("none")),
        "bifrost reasoning.max_tokens": thinking(MODEL, json!({
            "messages": [{"role": "user", "content": "x"}],
            "reasoning": {"effort": "high", "max_tokens": 2048},
        })),
        "bifrost reasoning.effort": thinking(MODEL, json!({
            "messages": [{"role": "user", "content": "x"}],
            "reasoning": {"effort": "low"},
        })),
    }));
    let e = plugin_error(encode_with(MODEL, &body("extreme")));
    assert_eq!((e.status, e.param.as_deref()), (400, Some("reasoning_effort")));
}

#[test]
fn golden_request_structured_output() {
    let schema = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Describe a person."}],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "person",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer", "minimum": 0},
                    "email": {"type": "string", "format": "email"},
                    "address": {"$ref": "#/$defs/Address"},
                    "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                    "nickname": {"type": ["string", "null"]},
                },
                "required": ["name", "age", "email", "address", "tags", "nickname"],
                "additionalProperties": false,
                "$defs": {"Address": {
                    "type": "object",
                    "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
                    "required": ["street", "city"],
                    "additionalProperties": false,
                }},
            },
        }},
    });
    let json_object = json!({
        "messages": [{"role": "user", "content": "Some JSON please."}],
        "response_format": {"type": "json_object"},
    });
    insta::assert_json_snapshot!(json!({
        "json_schema": encode(&schema)["generationConfig"],
        "json_object": encode(&json_object)["generationConfig"],
        "text": encode(&json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}))
            .get("generationConfig"),
    }));
}

#[test]
fn golden_request_stop() {
    insta::assert_json_snapshot!(json!({
        "array": encode(&json!({
            "messages": [{"role": "user", "content": "Count."}],
            "stop": ["\n\n", "END"],
            "max_completion_tokens": 64,
            "max_tokens": 999,
            "n": 2,
            "seed": 42,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.25,
            "top_k": 40,
            "logprobs": true,
            "top_logprobs": 3,
        }))["generationConfig"],
        "string": encode(&json!({"messages": [{"role": "user", "content": "Count."}], "stop": "STOP"}))["generationConfig"],
    }));
}

#[test]
fn requests_gemini_cannot_take_are_400s() {
    let cases = [
        (
            json!({"messages": [{"role": "system", "content": "only a system prompt"}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "narrator", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, {"role": "user", "content": "x"}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "custom", "custom": {"name": "c"}}]}),
            "tools[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}),
            "response_format",
        ),
    ];
    for (body, param) in cases {
        let e = plugin_error(encode_with(MODEL, &body));
        assert_eq!(
            (e.status, e.kind, e.param.as_deref()),
            (400, error_kind::INVALID_REQUEST, Some(param)),
            "{body}: {e:?}"
        );
        assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));
    }
    let e = plugin_error(codec().encode_request(&call(false), b"{\"messages\": 5}"));
    assert_eq!(e.status, 400);
}

// ============================================================================ decode

fn decode(body: &str) -> Value {
    let payload = codec()
        .decode_response(&call(false), 200, body.as_bytes())
        .expect("decoded");
    let response: Value = serde_json::from_slice(&payload.json).expect("the response is JSON");
    json!({
        "response": response,
        "model": &*payload.model,
        "usage_reported": usage_json(&payload.usage),
    })
}

#[test]
fn golden_response_basic() {
    insta::assert_json_snapshot!(decode(
        r#"{
  "candidates": [{
    "content": {"parts": [{"text": "Hello! "}, {"text": "How can I help?"}], "role": "model"},
    "finishReason": "STOP",
    "avgLogprobs": -0.12,
    "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
  }],
  "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5}]},
  "modelVersion": "gemini-2.5-flash",
  "responseId": "Mw1ZaJ7fNq6e1MkP5Y2u8Ak"
}"#
    ));
}

#[test]
fn golden_response_multi_candidate() {
    insta::assert_json_snapshot!(decode(
        r#"{
  "candidates": [
    {"content": {"parts": [{"text": "Heads"}], "role": "model"}, "finishReason": "STOP"},
    {"content": {"parts": [{"text": "Tails, after a long"}], "role": "model"}, "finishReason": "MAX_TOKENS", "index": 1}
  ],
  "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 9, "totalTokenCount": 13},
  "modelVersion": "gemini-2.0-flash-001"
}"#
    ));
}

#[test]
fn golden_response_reasoning() {
    insta::assert_json_snapshot!(decode(
        r#"{
  "candidates": [{
    "content": {"parts": [
      {"text": "**Considering primes**\nSuppose finitely many…", "thought": true},
      {"text": "Multiply them all and add one.", "thought": true},
      {"text": "There are infinitely many primes (Euclid).", "thoughtSignature": "EhsKGQGK0Q=="}
    ], "role": "model"},
    "finishReason": "STOP", "index": 0
  }],
  "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 10, "thoughtsTokenCount": 120, "totalTokenCount": 139},
  "modelVersion": "gemini-2.5-pro",
  "responseId": "resp-thinking"
}"#
    ));
}

#[test]
fn golden_response_tools() {
    insta::assert_json_snapshot!(decode(
        r#"{
  "candidates": [{
    "content": {"parts": [
      {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "unit": "celsius"}}, "thoughtSignature": "CsIBAXLI2ny"}
    ], "role": "model"},
    "finishReason": "STOP", "index": 0
  }],
  "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 12, "totalTokenCount": 52},
  "modelVersion": "gemini-2.5-flash",
  "responseId": "resp-tools"
}"#
    ));
}

#[test]
fn golden_response_parallel_tool_calls() {
    insta::assert_json_snapshot!(decode(
        r#"{
  "candidates": [{
    "content": {"parts": [
      {"text": "Checking both cities."},
      {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
      {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
      {"functionCall": {"name": "get_time"}}
    ], "role": "model"},
    "finishReason": "STOP"
  }],
  "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 30, "totalTokenCount": 70},
  "modelVersion": "gemini-2.5-flash",
  "responseId": "resp-parallel"
}"#
    ));
}

#[test]
fn golden_response_structured_output() {
    insta::assert_json_snapshot!(decode(
        r#"{
  "candidates": [{
    "content": {"parts": [{"text": "{\"name\": \"Ada\", \"age\": 36}"}], "role": "model"},
    "finishReason": "STOP"
  }],
  "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 11, "totalTokenCount": 31},
  "modelVersion": "gemini-2.5-flash"
}"#
    ));
}

#[test]
fn golden_response_stop() {
    let reasons = [
        "STOP",
        "MAX_TOKENS",
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "OTHER",
    ];
    let mapped: serde_json::Map<String, Value> = reasons
        .iter()
        .map(|r| {
            let body = format!(
                r#"{{"candidates":[{{"content":{{"parts":[{{"text":"partial"}}],"role":"model"}},"finishReason":"{r}"}}]}}"#
            );
            let v = decode(&body);
            ((*r).to_string(), v["response"]["choices"][0]["finish_reason"].clone())
        })
        .collect();
    // A candidate stopped by safety before any text: content is null.
    let filtered = decode(
        r#"{"candidates":[{"finishReason":"SAFETY","safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH","blocked":true}]}],
            "usageMetadata":{"promptTokenCount":8,"totalTokenCount":8},"modelVersion":"gemini-2.5-flash","responseId":"r-filtered"}"#,
    );
    insta::assert_json_snapshot!(json!({"finish_reasons": mapped, "filtered_candidate": filtered}));
}

#[test]
fn golden_response_usage_with_caching() {
    insta::assert_json_snapshot!(decode(
        r#"{
  "candidates": [{"content": {"parts": [{"text": "Summary of the cached document."}], "role": "model"}, "finishReason": "STOP"}],
  "usageMetadata": {
    "promptTokenCount": 32768, "cachedContentTokenCount": 32000, "candidatesTokenCount": 48,
    "thoughtsTokenCount": 200, "toolUsePromptTokenCount": 12, "totalTokenCount": 33028,
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 32000}]
  },
  "modelVersion": "gemini-2.5-flash",
  "responseId": "resp-cached"
}"#
    ));
}

#[test]
fn golden_response_logprobs() {
    insta::assert_json_snapshot!(decode(
        r#"{
  "candidates": [{
    "content": {"parts": [{"text": "Hi there"}], "role": "model"},
    "finishReason": "STOP",
    "logprobsResult": {
      "topCandidates": [
        {"candidates": [{"token": "Hi", "logProbability": -0.1}, {"token": "Hello", "logProbability": -2.4}]},
        {"candidates": [{"token": " there", "logProbability": -0.3}]}
      ],
      "chosenCandidates": [{"token": "Hi", "logProbability": -0.1}, {"token": " there", "logProbability": -0.3}]
    }
  }],
  "modelVersion": "gemini-2.5-flash",
  "responseId": "resp-logprobs"
}"#
    ));
}

#[test]
fn golden_response_safety_block() {
    let body = r#"{
  "promptFeedback": {
    "blockReason": "SAFETY",
    "safetyRatings": [
      {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
      {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}
    ]
  },
  "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
  "modelVersion": "gemini-2.5-flash"
}"#;
    let e = plugin_error(codec().decode_response(&call(false), 200, body.as_bytes()));
    assert_eq!(
        (e.status, e.kind, e.retryable),
        (400, error_kind::CONTENT_FILTER, false)
    );
    insta::assert_json_snapshot!(error_json(&e));
}

#[test]
fn decode_without_usage_id_or_model_version() {
    let v = decode(r#"{"candidates":[{"content":{"parts":[{"text":"ok"}]}}]}"#);
    assert_eq!(v["model"], MODEL, "the requested model when Gemini names none");
    assert_eq!(v["response"]["model"], MODEL);
    assert_eq!(v["usage_reported"], Value::Null);
    assert!(v["response"].get("usage").is_none());
    let id = v["response"]["id"].as_str().expect("id");
    assert!(id.starts_with("chatcmpl-") && id.len() > 12, "{id}");
    assert_eq!(v["response"]["created"], 1_767_225_600);
    assert_eq!(v["response"]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn garbage_and_error_bodies_are_not_responses() {
    let c = codec();
    for garbage in [
        &b"<html>502 Bad Gateway</html>"[..],
        b"",
        b"[1,2]",
        br#"{"candidates":[{"content""#,
        br#"{"modelVersion":"gemini-2.5-flash"}"#,
        br#"{"candidates":[]}"#,
    ] {
        let e = plugin_error(c.decode_response(&call(false), 200, garbage));
        assert_eq!((e.status, e.kind), (502, error_kind::MALFORMED), "{garbage:?}");
    }
    let body = br#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#;
    let e = plugin_error(c.decode_response(&call(false), 200, body));
    assert_eq!((e.status, e.kind, e.retryable), (503, error_kind::OVERLOADED, true));
    assert_eq!(e.message, "The model is overloaded. Please try again later.");
}

#[test]
fn golden_errors() {
    let c = codec();
    let cases = [
        (
            429,
            r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#,
        ),
        (
            400,
            r#"{"error":{"code":400,"message":"The input token count (1500000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
        ),
        (
            400,
            r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#,
        ),
        (
            400,
            r#"{"error":{"code":400,"message":"* GenerateContentRequest.contents: contents is not specified\n","status":"INVALID_ARGUMENT"}}"#,
        ),
        (
            401,
            r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#,
        ),
        (
            403,
            r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.","status":"PERMISSION_DENIED"}}"#,
        ),
        (
            404,
            r#"{"error":{"code":404,"message":"models/gemini-9-ultra is not found for API version v1beta, or is not supported for generateContent.","status":"NOT_FOUND"}}"#,
        ),
        (
            500,
            r#"{"error":{"code":500,"message":"An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting","status":"INTERNAL"}}"#,
        ),
        (
            503,
            r#"[{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}]"#,
        ),
        (
            504,
            r#"{"error":{"code":504,"message":"Deadline expired before operation could complete.","status":"DEADLINE_EXCEEDED"}}"#,
        ),
        (502, "<html><body>502 Bad Gateway</body></html>"),
    ];
    let mapped: Vec<Value> = cases
        .iter()
        .map(|(status, body)| {
            let e = c.decode_error(&call(false), *status, body.as_bytes()).expect("decoded");
            json!({"upstream_status": status, "unified": error_json(&e)})
        })
        .collect();
    insta::assert_json_snapshot!(mapped);
}

// ============================================================================ streaming

fn item_json(item: &Item) -> Value {
    match item {
        Item::Chunk(p) => {
            let mut flags = Vec::new();
            if p.flags & chunk_flag::FINISH_REASON != 0 {
                flags.push("finish_reason");
            }
            if p.flags & chunk_flag::EMPTY_CHOICES != 0 {
                flags.push("empty_choices");
            }
            if p.flags & chunk_flag::HAS_USAGE != 0 {
                flags.push("has_usage");
            }
            let chunk: Value = serde_json::from_slice(&p.json).expect("the chunk is JSON");
            json!({"chunk": chunk, "model": &*p.model, "flags": flags, "usage_reported": usage_json(&p.usage)})
        }
        Item::Done => json!("DONE"),
        Item::Error(e) => json!({"error": error_json(e)}),
        other => json!(format!("unexpected item {other:?}")),
    }
}

/// Feeds `fragments` to one decoder; returns its items (as JSON) and warnings.
fn run_stream_for(
    codec: &Arc<host::ProviderCodec>,
    info: &CallInfo<'_>,
    fragments: &[&[u8]],
) -> (Vec<Value>, Vec<String>) {
    let mut decoder = codec.open_stream(info).expect("stream");
    let mut items = Vec::new();
    let mut warnings = Vec::new();
    for fragment in fragments {
        decoder.feed(info, fragment, &mut items).expect("fed");
        warnings.append(&mut decoder.take_warnings());
    }
    decoder.finish(info, &mut items).expect("finished");
    warnings.append(&mut decoder.take_warnings());
    (items.iter().map(item_json).collect(), warnings)
}

fn run_stream(codec: &Arc<host::ProviderCodec>, fragments: &[&[u8]]) -> (Vec<Value>, Vec<String>) {
    run_stream_for(codec, &call(true), fragments)
}

/// A realistic `streamGenerateContent?alt=sse` answer: thoughts first, then text in pieces
/// (one with multi-byte UTF-8), a function call, running usage on every event, and the last
/// event with the finish reason and the final usage.
const STREAM_EVENTS: [&str; 6] = [
    r#"{"candidates": [{"content": {"parts": [{"text": "**Planning**\nThe user wants the weather.", "thought": true}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 30,"totalTokenCount": 30},"modelVersion": "gemini-2.5-flash","responseId": "sse-resp-1"}"#,
    r#"{"candidates": [{"content": {"parts": [{"text": "Let me check "}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 30,"candidatesTokenCount": 3,"totalTokenCount": 33,"thoughtsTokenCount": 40},"modelVersion": "gemini-2.5-flash","responseId": "sse-resp-1"}"#,
    r#"{"candidates": [{"content": {"parts": [{"text": "the café’s city — "}],"role": "model"},"index": 0}],"modelVersion": "gemini-2.5-flash","responseId": "sse-resp-1"}"#,
    r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather","args": {"city": "Paris"}},"thoughtSignature": "CiQBcsjafH"}],"role": "model"},"index": 0}],"modelVersion": "gemini-2.5-flash","responseId": "sse-resp-1"}"#,
    r#"{"candidates": [{"content": {"parts": [{"text": ""}],"role": "model"},"index": 0}],"modelVersion": "gemini-2.5-flash","responseId": "sse-resp-1"}"#,
    r#"{"candidates": [{"content": {"parts": [{"text": ""}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 30,"candidatesTokenCount": 17,"totalTokenCount": 87,"cachedContentTokenCount": 16,"thoughtsTokenCount": 40},"modelVersion": "gemini-2.5-flash","responseId": "sse-resp-1"}"#,
];

fn gemini_stream(eol: &str) -> String {
    let mut s = String::new();
    for (i, event) in STREAM_EVENTS.iter().enumerate() {
        if i == 2 {
            s += &format!(": keep-alive{eol}{eol}");
        }
        s += &format!("data: {event}{eol}{eol}");
    }
    s
}

#[test]
fn golden_stream() {
    let c = Arc::new(codec());
    let (items, warnings) = run_stream(&c, &[gemini_stream("\r\n").as_bytes()]);
    assert!(warnings.is_empty(), "{warnings:?}");
    insta::assert_json_snapshot!(items);
}

#[test]
fn stream_split_at_every_byte_gives_the_same_chunks() {
    let c = Arc::new(codec());
    let (expected, _) = run_stream(&c, &[gemini_stream("\n").as_bytes()]);
    assert_eq!(expected.last(), Some(&json!("DONE")));
    for eol in ["\n", "\r\n", "\r"] {
        let stream = gemini_stream(eol);
        let bytes = stream.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            let (items, warnings) = run_stream(&c, &[a, b]);
            assert_eq!(items, expected, "eol {eol:?}, split at {split}");
            assert!(warnings.is_empty(), "eol {eol:?}, split at {split}: {warnings:?}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run_stream(&c, &singles).0, expected, "eol {eol:?}, byte by byte");
        let awkward: Vec<&[u8]> = bytes.chunks(7).collect();
        assert_eq!(run_stream(&c, &awkward).0, expected, "eol {eol:?}, 7-byte fragments");
    }
}

#[test]
fn golden_stream_parallel_tool_calls_and_candidates() {
    let c = Arc::new(codec());
    let events = [
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}},{"functionCall":{"name":"get_weather","args":{"city":"Rome"}}}],"role":"model"}},{"content":{"parts":[{"text":"I will check."}],"role":"model"},"index":1}],"modelVersion":"gemini-2.5-flash","responseId":"sse-par"}"#,
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_time","args":{}}}],"role":"model"},"finishReason":"STOP"},{"content":{"parts":[{"text":" Done."}],"role":"model"},"finishReason":"MAX_TOKENS","index":1}],"usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":25,"totalTokenCount":75},"modelVersion":"gemini-2.5-flash","responseId":"sse-par"}"#,
    ];
    let stream: String = events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect();
    let (items, warnings) = run_stream(&c, &[stream.as_bytes()]);
    assert!(warnings.is_empty(), "{warnings:?}");
    insta::assert_json_snapshot!(items);
}

#[test]
fn golden_stream_safety_block() {
    let c = Arc::new(codec());
    let stream = "data: {\"promptFeedback\": {\"blockReason\": \"PROHIBITED_CONTENT\"},\"usageMetadata\": {\"promptTokenCount\": 7,\"totalTokenCount\": 7},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"sse-blocked\"}\r\n\r\n";
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    insta::assert_json_snapshot!(items);
}

#[test]
fn a_stream_cut_before_its_finish_reason_is_an_error() {
    let c = Arc::new(codec());
    let cut = format!(
        "data: {}\r\n\r\ndata: {}\r\n\r\ndata: {{\"candidates\": [{{\"content\"",
        STREAM_EVENTS[0], STREAM_EVENTS[1]
    );
    let (items, warnings) = run_stream(&c, &[cut.as_bytes()]);
    assert_eq!(items.len(), 3, "{items:#?}");
    let error = &items[2]["error"];
    assert_eq!(error["status"], 502);
    assert_eq!(error["kind"], error_kind::SERVER);
    assert_eq!(error["retryable"], true);
    assert_eq!(error["code"], "stream_truncated");
    assert!(!items.contains(&json!("DONE")));
    assert_eq!(warnings.len(), 1, "the half event is malformed: {warnings:?}");

    // Nothing at all: also incomplete.
    let (items, _) = run_stream(&c, &[b": keep-alive\r\n\r\n"]);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["error"]["code"], "stream_truncated");
}

#[test]
fn error_events_end_the_stream() {
    let c = Arc::new(codec());
    let stream = format!(
        "data: {}\r\n\r\ndata: {{\"error\": {{\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": \"UNAVAILABLE\"}}}}\r\n\r\ndata: {}\r\n\r\n",
        STREAM_EVENTS[1], STREAM_EVENTS[5]
    );
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(items.len(), 2, "{items:#?}");
    assert_eq!(items[1]["error"]["status"], 503);
    assert_eq!(items[1]["error"]["retryable"], true);
    assert_eq!(items[1]["error"]["message"], "The model is overloaded.");
}

#[test]
fn malformed_events_are_skipped_with_a_warning() {
    let c = Arc::new(codec());
    let stream = format!(
        "data: {}\n\ndata: not json\n\ndata: [1,2]\n\ndata: {{\"candidates\": 5}}\n\ndata: \n\ndata: {}\n\n",
        STREAM_EVENTS[1], STREAM_EVENTS[5]
    );
    let (items, warnings) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .all(|w| w.starts_with("skipped malformed stream event: ")),
        "{warnings:?}"
    );
    let (expected, _) = run_stream(
        &c,
        &[format!("data: {}\n\ndata: {}\n\n", STREAM_EVENTS[1], STREAM_EVENTS[5]).as_bytes()],
    );
    assert_eq!(items, expected);
    assert_eq!(items.last(), Some(&json!("DONE")));
}

#[test]
fn stream_without_usage_or_ids() {
    let c = Arc::new(codec());
    let stream = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}]}\n\n";
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    // content, content, finish, DONE — no usage chunk without usageMetadata.
    assert_eq!(items.len(), 4, "{items:#?}");
    let ids: Vec<&Value> = items[..3].iter().map(|i| &i["chunk"]["id"]).collect();
    assert!(
        ids.iter()
            .all(|id| *id == ids[0] && id.as_str().is_some_and(|s| s.starts_with("chatcmpl-")))
    );
    assert!(
        items[..3]
            .iter()
            .all(|i| i["model"] == MODEL && i["chunk"]["model"] == MODEL)
    );
    assert_eq!(
        items[0]["chunk"]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "a"})
    );
    assert_eq!(items[1]["chunk"]["choices"][0]["delta"], json!({"content": "b"}));
    assert_eq!(items[2]["flags"], json!(["finish_reason"]));
    assert_eq!(items[3], json!("DONE"));
}

#[test]
fn gemini_3_replays_without_a_signature_get_the_documented_sentinel() {
    let body = |signature: Option<&str>| {
        let mut first = json!({"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}});
        if let Some(s) = signature {
            first["extra_content"] = json!({"google": {"thought_signature": s}});
        }
        json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [first, {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
            {"role": "tool", "tool_call_id": "c2", "content": "2"},
        ]})
    };
    let signatures = |model: &str, signature: Option<&str>| {
        let req = encode_with(model, &body(signature)).expect("encoded");
        let v: Value = serde_json::from_slice(&req.body).expect("json");
        let parts = v["contents"][1]["parts"].as_array().expect("model parts").clone();
        parts.iter().map(|p| p["thoughtSignature"].clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        signatures("gemini-3-pro-preview", None),
        [json!("skip_thought_signature_validator"), Value::Null]
    );
    assert_eq!(
        signatures("gemini-3-pro-preview", Some("real")),
        [json!("real"), Value::Null]
    );
    assert_eq!(
        signatures(MODEL, None),
        [Value::Null, Value::Null],
        "older models need none"
    );
}

/// A small deterministic generator (xorshift), so the mangled inputs are the same on every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mangled_streams_never_panic_and_always_end_exactly_once() {
    let c = Arc::new(codec());
    let info = call(true);
    let clean = gemini_stream("\r\n").into_bytes();
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for round in 0..300 {
        let mut bytes = clean.clone();
        // Flip, drop or insert a few bytes; sometimes cut the tail off.
        for _ in 0..noise.below(6) {
            let at = noise.below(bytes.len());
            match noise.below(3) {
                0 => bytes[at] = (noise.next() & 0xFF) as u8,
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, b"{}[]\":,\r\n\xC3"[noise.below(10)]),
            }
        }
        if noise.below(4) == 0 {
            bytes.truncate(noise.below(bytes.len()));
        }
        let mut decoder = c.open_stream(&info).expect("stream");
        let mut items = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (a, b) = rest.split_at(1 + noise.below(rest.len().min(40)));
            decoder
                .feed(&info, a, &mut items)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            rest = b;
        }
        decoder
            .finish(&info, &mut items)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let ends: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i, Item::Done | Item::Error(_)))
            .map(|(at, _)| at)
            .collect();
        assert_eq!(ends, [items.len() - 1], "round {round}: one end, last: {items:?}");
        for item in &items {
            if let Item::Chunk(p) = item {
                serde_json::from_slice::<Value>(&p.json)
                    .unwrap_or_else(|e| panic!("round {round}: chunk not JSON: {e}"));
            }
        }
        // The same bytes as one response body: an answer or an error, never a panic.
        let decoded = c.decode_response(&call(false), 200, &bytes);
        assert!(
            matches!(decoded, Ok(_) | Err(CallError::Plugin(_))),
            "round {round}: {decoded:?}"
        );
        let _ = c
            .decode_error(&call(false), 500, &bytes)
            .expect("an error is always produced");
    }
}

// ============================================================================ embeddings

const EMBED_MODEL: &str = "gemini-embedding-001";

fn embed_call(request_id: &str) -> CallInfo<'_> {
    CallInfo {
        operation: "embeddings",
        model: EMBED_MODEL,
        request_id,
        ..call(false)
    }
}

fn embed_encode(c: &host::ProviderCodec, request_id: &str, body: &Value) -> Result<HttpRequestParts, CallError> {
    c.encode_request(&embed_call(request_id), &serde_json::to_vec(body).expect("json"))
}

/// Google's answer for two texts (vectors shortened).
const EMBED_RESPONSE: &str = r#"{
  "embeddings": [
    {"values": [0.013168523, -0.008711934, -0.046782676]},
    {"values": [-0.0012, 0.5, 1]}
  ]
}"#;

#[test]
fn declaration_serves_chat_and_embeddings() {
    use switchyard_plugin_api::abi::operation;
    assert_eq!(library().operations, operation::CHAT | operation::EMBEDDINGS);
}

#[test]
fn golden_embeddings_request() {
    let c = codec();
    let body = json!({"model": EMBED_MODEL, "input": ["What is the meaning of life?", "caf\u{e9}"],
        "dimensions": 768, "encoding_format": "float", "user": "u-1"});
    let req = embed_encode(&c, "req-e1", &body).expect("encoded");
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(header(&req, "accept"), Some("application/json"));
    assert_eq!(header(&req, "x-goog-api-key"), Some(KEY));
    assert!(!req.url.contains(KEY));
    let sent: Value = serde_json::from_slice(&req.body).expect("json body");
    assert_eq!(
        sent,
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "What is the meaning of life?"}]},
             "outputDimensionality": 768},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "café"}]},
             "outputDimensionality": 768}
        ]})
    );
    // One string, no dimensions, no key.
    let keyless = CallInfo {
        api_key: "",
        ..embed_call("req-e2")
    };
    let req = c.encode_request(&keyless, br#"{"input":"hello"}"#).expect("encoded");
    assert_eq!(header(&req, "x-goog-api-key"), None);
    let sent: Value = serde_json::from_slice(&req.body).expect("json body");
    assert_eq!(
        sent,
        json!({"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}}]})
    );
}

#[test]
fn golden_embeddings_response() {
    let c = codec();
    embed_encode(&c, "req-e3", &json!({"input": ["The meaning of life", "x"]})).expect("encoded");
    let resp = c
        .decode_response(&embed_call("req-e3"), 200, EMBED_RESPONSE.as_bytes())
        .expect("decoded");
    let json: Value = serde_json::from_slice(&resp.json).expect("json");
    assert_eq!(
        json,
        json!({"object": "list", "data": [
            {"object": "embedding", "index": 0, "embedding": [0.013168523, -0.008711934, -0.046782676]},
            {"object": "embedding", "index": 1, "embedding": [-0.0012, 0.5, 1.0]}
        ], "model": "gemini-embedding-001", "usage": {"prompt_tokens": 6, "total_tokens": 6}})
    );
    assert_eq!(&*resp.model, EMBED_MODEL);
    // ceil(19 / 4) + ceil(1 / 4): estimated, Gemini reports no usage for embeddings.
    assert_eq!(
        resp.usage
            .map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens)),
        Some((6, 0, 6))
    );
}

#[test]
fn base64_is_written_when_the_client_asked_for_it() {
    let c = codec();
    embed_encode(&c, "req-b64", &json!({"input": "x", "encoding_format": "base64"})).expect("encoded");
    let resp = c
        .decode_response(&embed_call("req-b64"), 200, br#"{"embeddings":[{"values":[1,-2]}]}"#)
        .expect("decoded");
    let json: Value = serde_json::from_slice(&resp.json).expect("json");
    assert_eq!(json["data"][0]["embedding"], "AACAPwAAAMA=");
}

#[test]
fn an_answer_without_its_request_is_floats_with_no_usage() {
    // Decoded by an instance that never encoded it (or after it was pushed out).
    let resp = codec()
        .decode_response(&embed_call("unknown"), 200, EMBED_RESPONSE.as_bytes())
        .expect("decoded");
    let json: Value = serde_json::from_slice(&resp.json).expect("json");
    assert_eq!(json["data"][1]["embedding"], json!([-0.0012, 0.5, 1.0]));
    assert_eq!(resp.usage.map(|u| u.prompt_tokens), Some(0));
}

#[test]
fn malformed_embeddings_answers_are_502s() {
    let c = codec();
    for garbage in [
        &b"<html>oops</html>"[..],
        b"",
        b"[]",
        br#"{"embeddings":[{"values":[0.1,"#,
        br#"{}"#,
        br#"{"embeddings":[]}"#,
        br#"{"embeddings":[{}]}"#,
        br#"{"embeddings":[{"values":["0.1"]}]}"#,
        br#"{"embeddings":[{"values":[1e39]}]}"#,
        br#"{"embeddings":[{"values":[0.1,0.2]},{"values":[0.1]}]}"#,
        // A chat answer is not an embeddings answer.
        br#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}"#,
    ] {
        let e = plugin_error(c.decode_response(&embed_call("req-m"), 200, garbage));
        assert_eq!(
            (e.status, e.kind),
            (502, error_kind::MALFORMED),
            "{}: {}",
            String::from_utf8_lossy(garbage),
            e.message
        );
    }
    // Fewer vectors than texts sent.
    embed_encode(&c, "req-count", &json!({"input": ["a", "b", "c"]})).expect("encoded");
    let e = plugin_error(c.decode_response(&embed_call("req-count"), 200, EMBED_RESPONSE.as_bytes()));
    assert!(e.message.contains("2 embeddings for 3 inputs"), "{}", e.message);
    // An error object in a 200 is Google's error, classified.
    let body = br#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#;
    let e = plugin_error(c.decode_response(&embed_call("req-m"), 200, body));
    assert_eq!((e.status, e.kind, e.retryable), (503, error_kind::OVERLOADED, true));
}

#[test]
fn embeddings_requests_gemini_cannot_take_are_400s() {
    let c = codec();
    let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    for (body, param) in [
        (json!({"input": many}), Some("input")),
        (json!({"input": []}), Some("input")),
        (json!({"input": [1, 2]}), None),
        (json!({"input": "x", "dimensions": 0}), Some("dimensions")),
        (json!({"messages": [{"role": "user", "content": "hi"}]}), Some("input")),
    ] {
        let e = plugin_error(embed_encode(&c, "req-bad", &body));
        assert_eq!(
            (e.status, e.kind, e.param.as_deref()),
            (400, error_kind::INVALID_REQUEST, param),
            "{body}"
        );
    }
}

#[test]
fn embeddings_errors_are_google_errors() {
    let c = codec();
    embed_encode(&c, "req-err", &json!({"input": "x"})).expect("encoded");
    let body = br#"{"error":{"code":400,"message":"* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch","status":"INVALID_ARGUMENT"}}"#;
    let e = c.decode_error(&embed_call("req-err"), 400, body).expect("error");
    assert_eq!(
        (e.status, e.kind, e.retryable),
        (400, error_kind::INVALID_REQUEST, false)
    );
    assert!(e.message.contains("at most 100 requests"), "{}", e.message);
    // The failed attempt's entry is gone: a later answer under its id knows nothing of it.
    let resp = c
        .decode_response(&embed_call("req-err"), 200, EMBED_RESPONSE.as_bytes())
        .expect("decoded");
    assert_eq!(resp.usage.map(|u| u.prompt_tokens), Some(0));
}

#[test]
fn the_operation_picks_the_translation() {
    let c = codec();
    // A chat request under the embeddings operation is a bad embeddings request...
    let chat = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let e = plugin_error(c.encode_request(&embed_call("r"), chat));
    assert_eq!(e.param.as_deref(), Some("input"));
    // ...an embeddings body under chat is a bad chat request, and an embeddings answer is
    // not a chat answer.
    let e = plugin_error(c.encode_request(&call(false), br#"{"input":"hi"}"#));
    assert_eq!(e.status, 400);
    let e = plugin_error(c.decode_response(&call(false), 200, EMBED_RESPONSE.as_bytes()));
    assert_eq!((e.status, e.kind), (502, error_kind::MALFORMED));
    // Embeddings never stream; an operation the plugin does not serve is refused.
    assert!(Arc::new(codec()).open_stream(&embed_call("r")).is_err());
    let images = CallInfo {
        operation: "images",
        ..call(false)
    };
    let e = plugin_error(c.encode_request(&images, chat));
    assert_eq!((e.status, e.code.as_deref()), (400, Some("unsupported_operation")));
    let e = plugin_error(c.decode_response(&images, 200, EMBED_RESPONSE.as_bytes()));
    assert_eq!(e.code.as_deref(), Some("unsupported_operation"));
}
