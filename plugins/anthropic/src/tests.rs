//! The plugin driven through the real C ABI, exactly as the gateway loads and calls it. The
//! golden translation tests (`golden.rs`) use the same helpers.

use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use switchyard_plugin_api::abi::{PluginDecl, chunk_flag, error_kind};
use switchyard_plugin_api::host::{self, CallError, CallInfo, HttpRequestParts, Item, LoadError, Usage};

// The export macro's entry symbol, reached by its C name as the host's loader does.
unsafe extern "C" {
    fn switchyard_plugin_entry_v1() -> *const PluginDecl;
}

fn library() -> host::PluginLibrary {
    // SAFETY: the static declaration exported by this crate.
    unsafe { host::from_declaration(switchyard_plugin_entry_v1(), Path::new("in-process")) }.expect("valid declaration")
}

pub(crate) fn codec_with(base_url: Option<&str>, options: &str) -> Result<host::ProviderCodec, LoadError> {
    let base_url = base_url.map_or("null".to_string(), |u| format!("\"{u}\""));
    let setup = format!(r#"{{"name":"claude","base_url":{base_url},"options":{options}}}"#);
    library().provider("claude", setup.as_bytes())
}

pub(crate) fn codec() -> host::ProviderCodec {
    codec_with(None, "{}").expect("default instance")
}

pub(crate) const KEY: &str = "sk-ant-api03-test-secret";
/// 2025-03-10T01:25:52Z: `created` in every translated answer.
pub(crate) const NOW_MS: u64 = 1_741_569_952_000;

pub(crate) fn call(stream: bool, api_key: &str) -> CallInfo<'_> {
    CallInfo {
        stream,
        unix_time_ms: NOW_MS,
        model: "claude-sonnet-4-5",
        api_key,
        request_id: "req-1",
        ..CallInfo::default()
    }
}

fn header<'a>(req: &'a HttpRequestParts, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Encodes `request` (a unified request) and returns the Anthropic body as JSON.
pub(crate) fn encode(request: &Value, stream: bool) -> Value {
    let bytes = serde_json::to_vec(request).expect("request json");
    let req = codec().encode_request(&call(stream, KEY), &bytes).expect("encoded");
    serde_json::from_slice(&req.body).expect("body is JSON")
}

#[track_caller]
pub(crate) fn plugin_error<T: std::fmt::Debug>(result: Result<T, CallError>) -> host::PluginError {
    match result {
        Err(CallError::Plugin(e)) => e,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- declaration and setup

#[test]
fn declaration_names_the_anthropic_provider() {
    let lib = library();
    assert_eq!(lib.name, "anthropic");
    assert_eq!(lib.version, env!("CARGO_PKG_VERSION"));
    assert!(lib.is_provider() && !lib.is_local());
}

#[test]
fn bad_options_are_refused_at_create() {
    let err = codec_with(None, r#"{"api_version":"2023-06-01"}"#).expect_err("unknown option");
    let text = err.to_string();
    assert!(text.contains("unknown option `api_version`"), "{text}");
    assert!(text.contains("anthropic_version, default_max_tokens"), "{text}");
    let err = codec_with(None, r#"{"default_max_tokens":"lots"}"#).expect_err("wrong type");
    assert!(err.to_string().contains("default_max_tokens"), "{err}");
    let err = codec_with(Some("api.anthropic.com"), "{}").expect_err("no scheme");
    assert!(err.to_string().contains("http:// or https://"), "{err}");
}

// ---------------------------------------------------------------- encode

const HELLO: &[u8] = br#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hello"}]}"#;

#[test]
fn encode_sends_the_key_and_version_headers() {
    let req = codec().encode_request(&call(false, KEY), HELLO).expect("encoded");
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://api.anthropic.com/v1/messages");
    assert_eq!(header(&req, "x-api-key"), Some(KEY));
    assert_eq!(header(&req, "anthropic-version"), Some("2023-06-01"));
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(header(&req, "accept"), Some("application/json"));
    assert_eq!(header(&req, "authorization"), None);
    // The key goes in its header and nowhere else.
    let elsewhere = req
        .headers
        .iter()
        .filter(|(n, _)| n != "x-api-key")
        .any(|(_, v)| v.contains(KEY));
    assert!(!elsewhere && !req.url.contains(KEY) && !String::from_utf8_lossy(&req.body).contains(KEY));
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    assert_eq!(
        body,
        json!({"model":"claude-sonnet-4-5","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"Hello"}]}]})
    );

    let req = codec().encode_request(&call(true, KEY), HELLO).expect("stream");
    assert_eq!(header(&req, "accept"), Some("text/event-stream"));
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    assert_eq!(body["stream"], true);
}

#[test]
fn encode_without_a_key_and_with_options() {
    let codec = codec_with(
        Some("http://127.0.0.1:9/"),
        r#"{"anthropic_version":"2099-01-01","default_max_tokens":512}"#,
    )
    .expect("custom instance");
    let req = codec.encode_request(&call(false, ""), HELLO).expect("encoded");
    assert_eq!(req.url, "http://127.0.0.1:9/v1/messages");
    assert_eq!(header(&req, "x-api-key"), None);
    assert_eq!(header(&req, "anthropic-version"), Some("2099-01-01"));
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    assert_eq!(body["max_tokens"], 512);
}

#[test]
fn untranslatable_requests_are_refused_with_the_field_named() {
    let c = codec();
    let refuse = |request: Value| {
        let bytes = serde_json::to_vec(&request).expect("json");
        plugin_error(c.encode_request(&call(false, KEY), &bytes))
    };
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (json!({"model": "m", "messages": user, "n": 2}), "n"),
        (
            json!({"model": "m", "messages": user, "modalities": ["text", "audio"]}),
            "modalities",
        ),
        (
            json!({"model": "m", "messages": user, "reasoning_effort": "extreme"}),
            "reasoning_effort",
        ),
        (
            json!({"model": "m", "messages": user, "reasoning_effort": "low", "max_tokens": 800}),
            "max_completion_tokens",
        ),
        (
            json!({"model": "m", "messages": user, "tool_choice": "sometimes", "tools": []}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "messages": user, "response_format": {"type": "yaml"}}),
            "response_format.type",
        ),
        (
            json!({"model": "m", "messages": user, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
            "response_format.json_schema.schema",
        ),
        (
            json!({"model": "m", "messages": user, "max_completion_tokens": 0}),
            "max_completion_tokens",
        ),
        (
            json!({"model": "m", "messages": [{"role": "function", "name": "f", "content": "1"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "critic", "content": "1"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "1"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_data": "data:text/csv;base64,YQ=="}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}),
            "messages[0].tool_calls[0].id",
        ),
        (
            json!({"model": "m", "messages": user, "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "messages": user, "tools": [{"type": "function", "function": {"name": "switchyard_json_response"}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"model": "m", "messages": user, "tools": [{"type": "function", "function": {"name": "a"}}], "tool_choice": {"type": "function", "function": {"name": "b"}}}),
            "tool_choice",
        ),
    ];
    for (request, param) in cases {
        let e = refuse(request.clone());
        assert_eq!(
            (e.status, e.kind, e.retryable, e.param.as_deref()),
            (400, error_kind::INVALID_REQUEST, false, Some(param)),
            "{request}: {e:?}"
        );
        assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));
    }
    for garbage in [&b"[]"[..], b"", b"{\"model\":\"m\"}", b"{\"messages\":7}"] {
        let e = plugin_error(c.encode_request(&call(false, KEY), garbage));
        assert_eq!((e.status, e.kind), (400, error_kind::INVALID_REQUEST), "{garbage:?}");
    }
}

// ---------------------------------------------------------------- decode

pub(crate) const MESSAGE: &str = r#"{
  "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-5-20250929",
  "content": [{"type": "text", "text": "Hello! How can I help?"}],
  "stop_reason": "end_turn",
  "stop_sequence": null,
  "usage": {"input_tokens": 12, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 1800,
            "cache_creation": {"ephemeral_5m_input_tokens": 150, "ephemeral_1h_input_tokens": 50},
            "output_tokens": 9, "service_tier": "standard"}
}"#;

#[test]
fn decode_translates_and_reports_usage() {
    let resp = codec()
        .decode_response(&call(false, KEY), 200, MESSAGE.as_bytes())
        .expect("decoded");
    assert_eq!(&*resp.model, "claude-sonnet-4-5-20250929");
    assert_eq!(
        resp.usage,
        Some(Usage {
            prompt_tokens: 2012,
            completion_tokens: 9,
            total_tokens: 2021,
            cached_tokens: 1800,
            cache_write_tokens: 200,
            cache_write_1h_tokens: 50,
            reasoning_tokens: 0,
        })
    );
    let v: Value = serde_json::from_slice(&resp.json).expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["created"], 1_741_569_952);
    assert_eq!(v["choices"][0]["message"]["content"], "Hello! How can I help?");
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 1800);
}

#[test]
fn garbage_and_error_bodies_are_not_responses() {
    let c = codec();
    for garbage in [
        &b"<html>502 Bad Gateway</html>"[..],
        b"",
        b"[1,2]",
        br#"{"id":"msg_1""#,
        br#"{"id":"msg_1","type":"message"}"#,
    ] {
        let e = plugin_error(c.decode_response(&call(false, KEY), 200, garbage));
        assert_eq!((e.status, e.kind), (502, error_kind::MALFORMED), "{garbage:?}");
    }
    let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let e = plugin_error(c.decode_response(&call(false, KEY), 200, body));
    assert_eq!((e.status, e.kind, e.retryable), (529, error_kind::OVERLOADED, true));
    assert_eq!(e.message, "Overloaded");
}

#[test]
fn decode_error_through_the_abi() {
    let c = codec();
    let body = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210345 tokens > 200000 maximum"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
    let e = c.decode_error(&call(false, KEY), 400, body).expect("error");
    assert_eq!(
        (e.status, e.kind, e.retryable),
        (400, error_kind::CONTEXT_LENGTH, false)
    );
    assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
    assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));
    assert_eq!(e.message, "prompt is too long: 210345 tokens > 200000 maximum");

    let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let e = c.decode_error(&call(false, KEY), 529, body).expect("error");
    assert_eq!((e.status, e.kind, e.retryable), (529, error_kind::OVERLOADED, true));
    assert_eq!(e.code.as_deref(), Some("overloaded_error"));

    let body = br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
    let e = c.decode_error(&call(false, KEY), 429, body).expect("error");
    assert_eq!((e.status, e.kind, e.retryable), (429, error_kind::RATE_LIMIT, true));

    let body = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
    let e = c.decode_error(&call(false, KEY), 401, body).expect("error");
    assert_eq!(
        (e.status, e.kind, e.retryable),
        (401, error_kind::AUTHENTICATION, false)
    );

    let e = c
        .decode_error(
            &call(false, KEY),
            500,
            br#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
        )
        .expect("error");
    assert_eq!((e.status, e.kind, e.retryable), (500, error_kind::SERVER, true));
}

// ---------------------------------------------------------------- streaming

/// What a stream produced, comparable across runs.
#[derive(Debug, PartialEq, Eq, Clone)]
pub(crate) enum Got {
    Chunk {
        json: String,
        model: String,
        flags: u64,
        usage: Option<Usage>,
    },
    Done,
    Error {
        status: u16,
        kind: u64,
        retryable: bool,
        message: String,
    },
    Other(String),
}

fn got(item: &Item) -> Got {
    match item {
        Item::Chunk(p) => Got::Chunk {
            json: String::from_utf8_lossy(&p.json).into_owned(),
            model: p.model.to_string(),
            flags: p.flags,
            usage: p.usage,
        },
        Item::Done => Got::Done,
        Item::Error(e) => Got::Error {
            status: e.status,
            kind: e.kind,
            retryable: e.retryable,
            message: e.message.clone(),
        },
        other => Got::Other(format!("{other:?}")),
    }
}

/// Feeds `fragments` to one stream decoder; returns its items and warnings.
pub(crate) fn run_stream(codec: &Arc<host::ProviderCodec>, fragments: &[&[u8]]) -> (Vec<Got>, Vec<String>) {
    let info = call(true, KEY);
    let mut decoder = codec.open_stream(&info).expect("stream");
    let mut items = Vec::new();
    let mut warnings = Vec::new();
    for fragment in fragments {
        decoder.feed(&info, fragment, &mut items).expect("fed");
        warnings.append(&mut decoder.take_warnings());
    }
    decoder.finish(&info, &mut items).expect("finished");
    warnings.append(&mut decoder.take_warnings());
    (items.iter().map(got).collect(), warnings)
}

/// One SSE event as Anthropic writes it: named, with the same name as the data's `type`.
pub(crate) fn event(data: &str, eol: &str) -> String {
    let name = serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "message".into());
    format!("event: {name}{eol}data: {data}{eol}{eol}")
}

/// A realistic stream: usage with cache reads, thinking with a signature, text with escapes
/// and multi-byte characters, two parallel tool calls whose arguments arrive in fragments
/// (split inside a UTF-8 character's escape-free bytes), pings, `tool_use` stop.
pub(crate) const STREAM_EVENTS: &[&str] = &[
    r#"{"type":"message_start","message":{"id":"msg_01Stream7nQ2","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":3}}}"#,
    r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
    r#"{"type": "ping"}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Two cities, so two calls;"}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" they can run in parallel."}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkgIBRABGAIqQKZ7sig=="}}"#,
    r#"{"type":"content_block_stop","index":0}"#,
    r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
    r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking \"Zürich\""}}"#,
    r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" and São Paulo…\n"}}"#,
    r#"{"type":"content_block_stop","index":1}"#,
    r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01A9q","name":"get_weather","input":{}}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Zü"}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"rich\"}"}}"#,
    r#"{"type":"content_block_stop","index":2}"#,
    r#"{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_01B7x","name":"get_weather","input":{}}}"#,
    r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}"#,
    r#"{"type": "ping"}"#,
    r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"\"São Paulo\"}"}}"#,
    r#"{"type":"content_block_stop","index":3}"#,
    r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
    r#"{"type":"message_stop"}"#,
];

pub(crate) fn stream_text(events: &[&str], eol: &str) -> String {
    events.iter().map(|e| event(e, eol)).collect()
}

#[test]
fn stream_items_are_flagged_and_end_with_usage_then_done() {
    let c = Arc::new(codec());
    let (items, warnings) = run_stream(&c, &[stream_text(STREAM_EVENTS, "\n").as_bytes()]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let n = items.len();
    assert!(matches!(items[n - 1], Got::Done), "{items:?}");
    let Got::Chunk {
        flags, usage, model, ..
    } = &items[n - 2]
    else {
        panic!("{items:?}")
    };
    assert_eq!(*flags, chunk_flag::EMPTY_CHOICES | chunk_flag::HAS_USAGE);
    assert_eq!(model, "claude-sonnet-4-5-20250929");
    assert_eq!(
        *usage,
        Some(Usage {
            prompt_tokens: 2520,
            completion_tokens: 89,
            total_tokens: 2609,
            cached_tokens: 2048,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: 0,
        })
    );
    let Got::Chunk { flags, json, .. } = &items[n - 3] else {
        panic!("{items:?}")
    };
    assert_eq!(*flags, chunk_flag::FINISH_REASON);
    assert!(json.contains(r#""finish_reason":"tool_calls""#), "{json}");
    // Every other chunk is a plain delta chunk, and the first one carries the role.
    for (i, item) in items[..n - 3].iter().enumerate() {
        let Got::Chunk { flags, json, usage, .. } = item else {
            panic!("{items:?}")
        };
        assert_eq!((*flags, *usage), (0, None), "{json}");
        let v: Value = serde_json::from_str(json).expect("chunk json");
        assert_eq!(v["choices"][0]["delta"].get("role").is_some(), i == 0, "{json}");
    }
}

#[test]
fn stream_split_at_every_byte_gives_the_same_items() {
    let c = Arc::new(codec());
    for eol in ["\n", "\r\n", "\r"] {
        let stream = stream_text(STREAM_EVENTS, eol);
        let bytes = stream.as_bytes();
        let (whole, _) = run_stream(&c, &[bytes]);
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            let (items, warnings) = run_stream(&c, &[a, b]);
            assert_eq!(items, whole, "eol {eol:?}, split at {split}");
            assert!(warnings.is_empty(), "eol {eol:?}, split at {split}: {warnings:?}");
        }
        let bytes: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run_stream(&c, &bytes).0, whole, "eol {eol:?}, byte by byte");
    }
}

#[test]
fn an_error_event_ends_the_stream() {
    let c = Arc::new(codec());
    // Overloaded right after message_start: nothing was sent yet, so the host can fall back.
    let stream = stream_text(
        &[
            STREAM_EVENTS[0],
            r#"{"type": "ping"}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            STREAM_EVENTS[7],
            STREAM_EVENTS[8],
        ],
        "\n",
    );
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(
        items,
        [Got::Error {
            status: 529,
            kind: error_kind::OVERLOADED,
            retryable: true,
            message: "Overloaded".into()
        }]
    );
    // Mid-answer: the chunks so far, then the error, and nothing after it.
    let stream = stream_text(
        &[
            STREAM_EVENTS[0],
            STREAM_EVENTS[7],
            STREAM_EVENTS[8],
            r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
            STREAM_EVENTS[9],
            STREAM_EVENTS[21],
            STREAM_EVENTS[22],
        ],
        "\n",
    );
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        matches!(
            &items[1],
            Got::Error {
                status: 500,
                retryable: true,
                ..
            }
        ),
        "{items:?}"
    );
    // An `event: error` whose data is not an Anthropic error body still ends the stream.
    let (items, _) = run_stream(&c, &[b"event: error\ndata: upstream went away\n\n"]);
    assert!(matches!(&items[..], [Got::Error { status: 502, .. }]), "{items:?}");
}

#[test]
fn malformed_events_are_skipped_with_a_warning() {
    let c = Arc::new(codec());
    let mut stream = stream_text(&STREAM_EVENTS[..1], "\n");
    stream += "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":\n\n";
    stream += "data: not json\n\n";
    stream += "data: {\"type\":\"content_block_start\",\"index\":0}\n\n";
    stream += "data: {\"type\":\"content_block_delta\",\"index\":9,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n";
    stream += "data: {\"type\":\"content_block_start\",\"index\":99999999999,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    stream += "data: {\"type\":\"brand_new_event\",\"x\":1}\n\n";
    stream += &stream_text(&STREAM_EVENTS[7..11], "\n");
    stream += &stream_text(&[STREAM_EVENTS[21], STREAM_EVENTS[22]], "\n");
    let (items, warnings) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(warnings.len(), 5, "{warnings:?}");
    assert!(
        warnings.iter().all(|w| w.starts_with("skipped malformed stream event")),
        "{warnings:?}"
    );
    // Two text chunks, the finish, the usage, done.
    assert_eq!(items.len(), 5, "{items:?}");
    assert_eq!(items[4], Got::Done);
}

#[test]
fn a_stream_cut_before_its_end_is_an_error_not_a_short_answer() {
    let c = Arc::new(codec());
    let stream = stream_text(&STREAM_EVENTS[..10], "\n");
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    let last = items.last().expect("items");
    assert!(
        matches!(last, Got::Error { status: 502, kind, .. } if *kind == error_kind::MALFORMED),
        "{items:?}"
    );
    // Only `message_stop` missing: the answer is whole, so it completes.
    let stream = stream_text(&STREAM_EVENTS[..22], "\n");
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(items.last(), Some(&Got::Done), "{items:?}");
    // Nothing at all.
    let (items, _) = run_stream(&c, &[]);
    assert!(matches!(&items[..], [Got::Error { .. }]), "{items:?}");
}

#[test]
fn nothing_follows_message_stop() {
    let c = Arc::new(codec());
    let mut stream = stream_text(&[STREAM_EVENTS[0], STREAM_EVENTS[21], STREAM_EVENTS[22]], "\n");
    stream += &stream_text(&[STREAM_EVENTS[7], STREAM_EVENTS[8]], "\n");
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(items.len(), 3, "{items:?}");
    let Got::Chunk { json, .. } = &items[0] else {
        panic!("{items:?}")
    };
    // An empty answer still gives the client a role and a finish reason.
    let v: Value = serde_json::from_str(json).expect("json");
    assert_eq!(v["choices"][0]["delta"], json!({"role": "assistant"}));
    // `tool_use` without a client tool call: the model simply stopped.
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

// ---------------------------------------------------------------- robustness

/// A small deterministic generator (no dependency, same cases on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mangle(rng: &mut Lcg, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(bytes.len());
        match rng.below(5) {
            0 => bytes[at] = rng.next() as u8,
            1 => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 => {
                let end = (at + rng.below(200)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.below(bytes.len());
                bytes.splice(to..to, copy);
            }
            3 => bytes.insert(at, [b'\n', b'\r', b'{', b'"', b':', 0xC3][rng.below(6)]),
            _ => bytes.truncate(at),
        }
        if bytes.is_empty() {
            break;
        }
    }
    bytes
}

#[test]
fn the_stream_decoder_survives_mangled_input() {
    let c = Arc::new(codec());
    let clean = stream_text(STREAM_EVENTS, "\r\n");
    let mut rng = Lcg(0x5eed);
    for case in 0..300 {
        let bytes = mangle(&mut rng, clean.as_bytes());
        let mut fragments = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (a, b) = rest.split_at(1 + rng.below(rest.len().min(97)));
            fragments.push(a);
            rest = b;
        }
        // `run_stream` fails on any plugin fault (a panic included).
        let (items, _) = run_stream(&c, &fragments);
        // Whatever happened, the stream ended exactly once: DONE or an error, nothing after.
        let ends: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i, Got::Done | Got::Error { .. }))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(ends, [items.len() - 1], "case {case}: {items:?}");
        for item in &items {
            if let Got::Chunk { json, .. } = item {
                serde_json::from_str::<Value>(json).unwrap_or_else(|e| panic!("case {case}: {e}: {json}"));
            }
        }
    }
}

#[test]
fn the_request_encoder_survives_mangled_input() {
    let c = codec();
    let clean = serde_json::to_vec(&json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "reasoning_effort": "low",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "text", "text": "hé"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}]}))
    .expect("json");
    let mut rng = Lcg(0xC0FFEE);
    for case in 0..500 {
        let bytes = mangle(&mut rng, &clean);
        match c.encode_request(&call(case % 2 == 0, KEY), &bytes) {
            Ok(req) => {
                serde_json::from_slice::<Value>(&req.body).unwrap_or_else(|e| panic!("case {case}: {e}"));
            }
            Err(CallError::Plugin(e)) => assert_eq!(e.status, 400, "case {case}: {e:?}"),
            Err(other) => panic!("case {case}: {other:?}"),
        }
    }
}
