//! The plugin driven through the real C ABI, exactly as the gateway loads and calls it.

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

fn codec_with(base_url: Option<&str>, options: &str) -> Result<host::ProviderCodec, LoadError> {
    let base_url = base_url.map_or("null".to_string(), |u| format!("\"{u}\""));
    let setup = format!(r#"{{"name":"openai","base_url":{base_url},"options":{options}}}"#);
    library().provider("openai", setup.as_bytes())
}

fn codec() -> host::ProviderCodec {
    codec_with(None, "{}").expect("default instance")
}

const KEY: &str = "sk-proj-test-secret";

fn call(stream: bool, api_key: &str) -> CallInfo<'_> {
    CallInfo {
        stream,
        unix_time_ms: 1_741_569_952_000,
        model: "gpt-4o",
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

// ---------------------------------------------------------------- encode

/// Unusual spacing, key order and an unknown field: all must reach the upstream unchanged.
const REQUEST: &[u8] = br#"{ "model":"gpt-4o-2024-08-06","messages":[{"role":"user","content":"Say hi \u00e9"}],
  "stream":true,"stream_options":{"include_usage":true},"x_vendor_knob":  1.50 }"#;

#[test]
fn declaration_names_the_openai_provider() {
    let lib = library();
    assert_eq!(lib.name, "openai");
    assert_eq!(lib.version, env!("CARGO_PKG_VERSION"));
    assert!(lib.is_provider() && !lib.is_local());
}

#[test]
fn encode_forwards_the_body_untouched_with_bearer_auth() {
    let req = codec().encode_request(&call(false, KEY), REQUEST).expect("encoded");
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://api.openai.com/v1/chat/completions");
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(header(&req, "accept"), Some("application/json"));
    assert_eq!(header(&req, "authorization"), Some("Bearer sk-proj-test-secret"));
    assert_eq!(req.body, REQUEST);
    // The key goes in the auth header and nowhere else.
    let elsewhere = req
        .headers
        .iter()
        .filter(|(n, _)| n != "authorization")
        .any(|(_, v)| v.contains(KEY));
    assert!(!elsewhere && !req.url.contains(KEY));

    let req = codec()
        .encode_request(&call(true, KEY), REQUEST)
        .expect("encoded stream");
    assert_eq!(header(&req, "accept"), Some("text/event-stream"));
}

#[test]
fn encode_without_a_key_sends_no_auth_header() {
    let codec = codec_with(Some("http://127.0.0.1:11434/v1/"), "null").expect("keyless local server");
    let req = codec.encode_request(&call(false, ""), REQUEST).expect("encoded");
    assert_eq!(req.url, "http://127.0.0.1:11434/v1/chat/completions");
    assert_eq!(header(&req, "authorization"), None);
    assert_eq!(req.headers.len(), 2);
}

#[test]
fn azure_style_header_and_query() {
    let codec = codec_with(
        Some("https://contoso.openai.azure.com/openai/deployments/gpt-4o"),
        r#"{"auth_header":"api-key","query":"api-version=2024-10-21"}"#,
    )
    .expect("azure instance");
    let req = codec.encode_request(&call(false, KEY), REQUEST).expect("encoded");
    assert_eq!(
        req.url,
        "https://contoso.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(header(&req, "api-key"), Some(KEY));
    assert_eq!(header(&req, "authorization"), None);
}

#[test]
fn bad_options_are_refused_at_create() {
    let err = codec_with(None, r#"{"api_version":"2024-10-21"}"#).expect_err("unknown option");
    let text = err.to_string();
    assert!(
        text.contains("openai") && text.contains("unknown option `api_version`"),
        "{text}"
    );
    let err = codec_with(None, r#"{"chat_path":false}"#).expect_err("wrong type");
    assert!(err.to_string().contains("option `chat_path` must be a string"), "{err}");
    let err = codec_with(Some("ftp://example.com"), "{}").expect_err("bad scheme");
    assert!(err.to_string().contains("http:// or https://"), "{err}");
}

// ---------------------------------------------------------------- decode

const RESPONSE: &str = r#"{
  "id": "chatcmpl-test-0001",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "o3-mini-2025-01-31",
  "choices": [{
    "index": 0,
    "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": null, "annotations": []},
    "logprobs": null,
    "finish_reason": "stop"
  }],
  "usage": {
    "prompt_tokens": 1200, "completion_tokens": 310, "total_tokens": 1510,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0,
      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": null
}"#;

#[test]
fn decode_reports_usage_and_passes_the_body_through() {
    let resp = codec()
        .decode_response(&call(false, KEY), 200, RESPONSE.as_bytes())
        .expect("decoded");
    assert_eq!(resp.json, RESPONSE.as_bytes());
    assert_eq!(&*resp.model, "o3-mini-2025-01-31");
    assert_eq!(
        resp.usage,
        Some(Usage {
            prompt_tokens: 1200,
            completion_tokens: 310,
            total_tokens: 1510,
            cached_tokens: 1024,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: 256,
        })
    );
}

#[test]
fn decode_without_usage_or_model() {
    let body = br#"{"id":"x","object":"chat.completion","choices":[],"usage":null}"#;
    let resp = codec().decode_response(&call(false, KEY), 200, body).expect("decoded");
    assert_eq!(resp.usage, None);
    // No model in the body: the model this attempt asked for.
    assert_eq!(&*resp.model, "gpt-4o");
    let resp = codec()
        .decode_response(&call(false, KEY), 200, br#"{"model":"m","choices":[]}"#)
        .expect("decoded");
    assert_eq!(resp.usage, None);
}

#[track_caller]
fn plugin_error(result: Result<host::Payload, CallError>) -> host::PluginError {
    match result {
        Err(CallError::Plugin(e)) => e,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

#[test]
fn garbage_and_error_bodies_are_not_responses() {
    let c = codec();
    for garbage in [
        &b"<html>502 Bad Gateway</html>"[..],
        b"",
        b"[1,2]",
        br#"{"model":"gpt-4o""#,
        br#"{"model":"gpt-4o"}"#,
    ] {
        let e = plugin_error(c.decode_response(&call(false, KEY), 200, garbage));
        assert_eq!((e.status, e.kind), (502, error_kind::MALFORMED), "{garbage:?}");
    }
    let body = br#"{"error":{"message":"The server had an error processing your request.","type":"server_error","param":null,"code":null}}"#;
    let e = plugin_error(c.decode_response(&call(false, KEY), 200, body));
    assert_eq!((e.status, e.kind, e.retryable), (500, error_kind::SERVER, true));
    assert_eq!(e.message, "The server had an error processing your request.");
    assert_eq!(e.error_type.as_deref(), Some("server_error"));
}

#[test]
fn upstream_extra_fields_are_removed() {
    let body = br#"{"model":"gpt-4o","choices":[],"extra_fields":{"provider":"spoofed"},"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
    let resp = codec().decode_response(&call(false, KEY), 200, body).expect("decoded");
    let json: serde_json::Value = serde_json::from_slice(&resp.json).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})
    );
    assert_eq!(resp.usage.map(|u| u.total_tokens), Some(3));
}

#[test]
fn decode_error_through_the_abi() {
    let body = br#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 200000 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
    let e = codec().decode_error(&call(false, KEY), 400, body).expect("error");
    assert_eq!(
        (e.status, e.kind, e.retryable),
        (400, error_kind::CONTEXT_LENGTH, false)
    );
    assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
    assert_eq!(e.param.as_deref(), Some("messages"));
    assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));
    let e = codec()
        .decode_error(&call(false, KEY), 503, b"upstream connect error")
        .expect("error");
    assert_eq!((e.status, e.kind, e.retryable), (503, error_kind::SERVER, true));
}

// ---------------------------------------------------------------- streaming

/// What a stream produced, comparable across runs.
#[derive(Debug, PartialEq, Eq)]
enum Got {
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
fn run_stream(codec: &Arc<host::ProviderCodec>, fragments: &[&[u8]]) -> (Vec<Got>, Vec<String>) {
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

const ROLE: &str = r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Qn0"}"#;
const CONTENT: &str = r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Caf\u00e9 — ok"},"logprobs":null,"finish_reason":null}],"usage":null}"#;
const TOOL_CALL: &str = r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_abc123","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#;
const TOOL_ARGS: &str = r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#;
const FINISH: &str = r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}"#;
const USAGE: &str = r#"{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,"prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#;

/// A realistic OpenAI stream: keep-alive comments, a role chunk, content with multi-byte
/// UTF-8, tool-call deltas, the finish chunk, the usage-only chunk, `[DONE]`.
fn openai_stream(eol: &str) -> String {
    let mut s = format!(": OPENROUTER PROCESSING{eol}{eol}");
    for chunk in [ROLE, CONTENT, TOOL_CALL, TOOL_ARGS, FINISH] {
        s += &format!("data: {chunk}{eol}{eol}");
    }
    s += &format!(":{eol}data: {USAGE}{eol}{eol}data: [DONE]{eol}{eol}");
    s
}

fn chunk(json: &str, flags: u64, usage: Option<Usage>) -> Got {
    Got::Chunk {
        json: json.into(),
        model: "gpt-4o-2024-08-06".into(),
        flags,
        usage,
    }
}

fn openai_items() -> Vec<Got> {
    let usage = Usage {
        prompt_tokens: 82,
        completion_tokens: 17,
        total_tokens: 99,
        cached_tokens: 64,
        ..Usage::default()
    };
    vec![
        chunk(ROLE, 0, None),
        chunk(CONTENT, 0, None),
        chunk(TOOL_CALL, 0, None),
        chunk(TOOL_ARGS, 0, None),
        chunk(FINISH, chunk_flag::FINISH_REASON, None),
        chunk(USAGE, chunk_flag::EMPTY_CHOICES | chunk_flag::HAS_USAGE, Some(usage)),
        Got::Done,
    ]
}

/// Chunks that share their leading members are read from `choices` on; every case where that
/// could differ from reading them whole falls back to the whole read.
#[test]
fn chunks_with_a_shared_head_read_as_whole_ones() {
    let head = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m-head","system_fingerprint":"fp","#;
    let content = |text: &str| {
        format!(r#"{head}"choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}],"usage":null}}"#)
    };
    let chunks = [
        content("a"),
        content("b"),
        // The tail names the model again: read whole, which refuses the duplicate member.
        format!(r#"{head}"choices":[{{"index":0,"delta":{{}},"finish_reason":null}}],"model":"m-tail"}}"#),
        // Another head: read whole, and learnt.
        r#"{"id":"c2","model":"m2","choices":[{"index":0,"delta":{"content":"c"},"finish_reason":null}]}"#.to_string(),
        r#"{"id":"c2","model":"m2","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_string(),
        // Members after the head that matter are read: extra_fields removed, usage counted.
        r#"{"id":"c2","model":"m2","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2},"extra_fields":{}}"#
            .to_string(),
        // An error object after the head ends the stream.
        r#"{"id":"c2","model":"m2","choices":[],"error":{"message":"boom","type":"server_error"}}"#.to_string(),
    ];
    let body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    let c = Arc::new(codec());
    let (items, warnings) = run_stream(&c, &[body.as_bytes()]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("duplicate field `model`"), "{warnings:?}");
    let with_model = |json: &str, model: &str, flags: u64, usage: Option<Usage>| Got::Chunk {
        json: json.into(),
        model: model.into(),
        flags,
        usage,
    };
    let usage = Usage {
        prompt_tokens: 1,
        completion_tokens: 2,
        total_tokens: 3,
        ..Usage::default()
    };
    let expected_start = [
        with_model(&chunks[0], "m-head", 0, None),
        with_model(&chunks[1], "m-head", 0, None),
        with_model(&chunks[3], "m2", 0, None),
        with_model(&chunks[4], "m2", chunk_flag::FINISH_REASON, None),
    ];
    assert_eq!(items[..4], expected_start[..]);
    // Removing `extra_fields` re-serialises the chunk (key order depends on serde_json's
    // features): compared as JSON.
    let Got::Chunk {
        json,
        model,
        flags,
        usage: got_usage,
    } = &items[4]
    else {
        panic!("{:?}", items[4]);
    };
    let json: serde_json::Value = serde_json::from_str(json).expect("json");
    let want: serde_json::Value = serde_json::from_str(
        r#"{"id":"c2","model":"m2","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
    )
    .expect("json");
    assert_eq!(json, want);
    let empty_with_usage = chunk_flag::EMPTY_CHOICES | chunk_flag::HAS_USAGE;
    assert_eq!(
        (model.as_str(), *flags, *got_usage),
        ("m2", empty_with_usage, Some(usage))
    );
    assert!(
        matches!(&items[5], Got::Error { message, .. } if message.contains("boom")),
        "{:?}",
        items[5]
    );
    assert_eq!(items.len(), 6);
}

#[test]
fn stream_items_are_flagged_and_passed_through() {
    let c = Arc::new(codec());
    let (items, warnings) = run_stream(&c, &[openai_stream("\n").as_bytes()]);
    assert_eq!(items, openai_items());
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn stream_split_at_every_byte_gives_the_same_items() {
    let c = Arc::new(codec());
    for eol in ["\n", "\r\n", "\r"] {
        let stream = openai_stream(eol);
        let bytes = stream.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            let (items, warnings) = run_stream(&c, &[a, b]);
            assert_eq!(items, openai_items(), "eol {eol:?}, split at {split}");
            assert!(warnings.is_empty(), "eol {eol:?}, split at {split}: {warnings:?}");
        }
        let bytes: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run_stream(&c, &bytes).0, openai_items(), "eol {eol:?}, byte by byte");
    }
}

#[test]
fn multi_line_data_and_an_unterminated_last_event() {
    let c = Arc::new(codec());
    // One chunk's JSON spread over two `data:` lines is rejoined with LF (valid JSON
    // whitespace); the last event has no blank line because the upstream just closed.
    let stream = format!(
        "data: {{\"model\":\"m\",\ndata: \"choices\":[{{\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: {USAGE}"
    );
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    // After a finish_reason, a close without [DONE] still ends the stream cleanly.
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[2], Got::Done);
    let Got::Chunk { json, model, flags, .. } = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(
        json,
        "{\"model\":\"m\",\n\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}"
    );
    assert_eq!((model.as_str(), *flags), ("m", chunk_flag::FINISH_REASON));
    assert!(matches!(&items[1], Got::Chunk { usage: Some(u), .. } if u.total_tokens == 99));
}

#[test]
fn a_stream_closed_before_any_finish_reason_ends_with_an_error() {
    let c = Arc::new(codec());
    let stream = format!("data: {ROLE}\n\ndata: {CONTENT}\n\n");
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(
        matches!(&items[2], Got::Error { .. }),
        "a cut answer is an error: {items:?}"
    );
}

#[test]
fn malformed_events_are_skipped_with_a_warning() {
    let c = Arc::new(codec());
    let stream = format!(
        "data: {ROLE}\n\ndata: {{\"choices\":[{{\"delta\":\n\ndata: not json\n\ndata: {{}}\n\ndata: {CONTENT}\n\ndata: [DONE]\n\n"
    );
    let (items, warnings) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(items, [chunk(ROLE, 0, None), chunk(CONTENT, 0, None), Got::Done]);
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .all(|w| w.starts_with("skipped malformed stream event: ")),
        "{warnings:?}"
    );
}

#[test]
fn error_events_end_the_stream_with_a_unified_error() {
    let c = Arc::new(codec());
    // OpenAI's `event: error` carries the error object itself as data.
    let stream = format!(
        "data: {ROLE}\n\nevent: error\ndata: {{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\ndata: {CONTENT}\n\n"
    );
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items[1],
        Got::Error {
            status: 500,
            kind: error_kind::SERVER,
            retryable: true,
            message: "The server had an error while processing your request.".into()
        }
    );
    // A plain data event holding an error object (OpenRouter style) ends the stream too.
    let stream = format!(
        "data: {ROLE}\n\ndata: {{\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"error\":{{\"code\":502,\"message\":\"Provider disconnected\"}},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"\"}},\"finish_reason\":\"error\"}}]}}\n\n"
    );
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(
        items[1],
        Got::Error {
            status: 502,
            kind: error_kind::SERVER,
            retryable: true,
            message: "Provider disconnected".into()
        }
    );
    // A content-filter error is final.
    let (items, _) = run_stream(
        &c,
        &[b"event: error\ndata: {\"error\":{\"message\":\"filtered\",\"code\":\"content_filter\"}}\n\n"],
    );
    assert!(
        matches!(&items[0], Got::Error { kind, retryable: false, .. } if *kind == error_kind::CONTENT_FILTER),
        "{items:?}"
    );
}

#[test]
fn stream_extra_fields_are_removed_and_nothing_follows_done() {
    let c = Arc::new(codec());
    let stream = "data: {\"model\":\"m\",\"choices\":[],\"extra_fields\":{\"chunk_index\":9}}\n\ndata: [DONE]\n\ndata: {\"model\":\"m\",\"choices\":[]}\n\ndata: [DONE]\n\n";
    let (items, _) = run_stream(&c, &[stream.as_bytes()]);
    assert_eq!(items.len(), 2, "{items:?}");
    let Got::Chunk {
        json,
        model,
        flags,
        usage: None,
    } = &items[0]
    else {
        panic!("{items:?}")
    };
    let json: serde_json::Value = serde_json::from_str(json).expect("json");
    assert_eq!(json, serde_json::json!({"model":"m","choices":[]}));
    assert_eq!((model.as_str(), *flags), ("m", chunk_flag::EMPTY_CHOICES));
    assert_eq!(items[1], Got::Done);
}

// ---------------------------------------------------------------- embeddings

fn embeddings_call(api_key: &str) -> CallInfo<'_> {
    CallInfo {
        model: "text-embedding-3-small",
        operation: "embeddings",
        ..call(false, api_key)
    }
}

/// Odd spacing and a field the codec does not know: the upstream gets the bytes unchanged.
const EMBEDDINGS_REQUEST: &[u8] =
    br#"{"model":"text-embedding-3-small", "input":["The food was delicious","caf\u00e9"],"dimensions":3,"user":"u-7"}"#;

/// OpenAI's answer, as its API reference shows it (vectors shortened).
const EMBEDDINGS_RESPONSE: &str = r#"{
  "object": "list",
  "data": [
    {"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292, -0.0028842222]},
    {"object": "embedding", "index": 1, "embedding": [-0.011, 0.0, 1e-3]}
  ],
  "model": "text-embedding-3-small",
  "usage": {"prompt_tokens": 8, "total_tokens": 8}
}"#;

#[test]
fn declaration_serves_chat_and_embeddings() {
    use switchyard_plugin_api::abi::operation;
    assert_eq!(library().operations, operation::CHAT | operation::EMBEDDINGS);
}

#[test]
fn embeddings_go_to_the_embeddings_url_with_the_body_untouched() {
    let req = codec()
        .encode_request(&embeddings_call(KEY), EMBEDDINGS_REQUEST)
        .expect("encoded");
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://api.openai.com/v1/embeddings");
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(header(&req, "accept"), Some("application/json"));
    assert_eq!(header(&req, "authorization"), Some("Bearer sk-proj-test-secret"));
    assert_eq!(req.body, EMBEDDINGS_REQUEST);
    assert_eq!(req.headers.len(), 3);
    // Keyless local servers and custom paths.
    let c = codec_with(Some("http://127.0.0.1:11434/v1"), r#"{"embeddings_path":"/embed"}"#).expect("custom");
    let req = c
        .encode_request(&embeddings_call(""), EMBEDDINGS_REQUEST)
        .expect("encoded");
    assert_eq!(req.url, "http://127.0.0.1:11434/v1/embed");
    assert_eq!(header(&req, "authorization"), None);
}

#[test]
fn azure_embeddings_use_the_deployment_url_query_and_api_key() {
    let codec = codec_with(
        Some("https://contoso.openai.azure.com/openai/deployments/embed-small"),
        r#"{"auth_header":"api-key","query":"api-version=2024-10-21"}"#,
    )
    .expect("azure instance");
    let req = codec
        .encode_request(&embeddings_call(KEY), EMBEDDINGS_REQUEST)
        .expect("encoded");
    assert_eq!(
        req.url,
        "https://contoso.openai.azure.com/openai/deployments/embed-small/embeddings?api-version=2024-10-21"
    );
    assert_eq!(header(&req, "api-key"), Some(KEY));
    assert_eq!(header(&req, "authorization"), None);
}

#[test]
fn embeddings_lists_pass_through_with_prompt_usage() {
    let c = codec();
    let resp = c
        .decode_response(&embeddings_call(KEY), 200, EMBEDDINGS_RESPONSE.as_bytes())
        .expect("decoded");
    assert_eq!(resp.json, EMBEDDINGS_RESPONSE.as_bytes());
    assert_eq!(&*resp.model, "text-embedding-3-small");
    assert_eq!(
        resp.usage,
        Some(Usage {
            prompt_tokens: 8,
            total_tokens: 8,
            ..Usage::default()
        })
    );
    // base64 vectors (what OpenAI's SDKs ask for by default) pass through too.
    let body = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPwAAAMA="}],"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
    let resp = c.decode_response(&embeddings_call(KEY), 200, body).expect("base64");
    assert_eq!(resp.json, body);
    // No usage and no model: zeros, and the model this attempt asked for.
    let body = br#"{"object":"list","data":[{"embedding":[1]}]}"#;
    let resp = c.decode_response(&embeddings_call(KEY), 200, body).expect("bare");
    assert_eq!(resp.usage, Some(Usage::default()));
    assert_eq!(&*resp.model, "text-embedding-3-small");
    // A lax server's completion tokens are not output; its missing total is the prompt.
    let body = br#"{"data":[{"embedding":[1]}],"usage":{"prompt_tokens":5.0,"completion_tokens":3}}"#;
    let resp = c.decode_response(&embeddings_call(KEY), 200, body).expect("lax usage");
    assert_eq!(
        resp.usage
            .map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens)),
        Some((5, 0, 5))
    );
    // The upstream's own extra_fields are removed.
    let body = br#"{"data":[{"embedding":[1]}],"extra_fields":{"provider":"spoofed"}}"#;
    let resp = c.decode_response(&embeddings_call(KEY), 200, body).expect("stripped");
    let json: serde_json::Value = serde_json::from_slice(&resp.json).expect("json");
    assert_eq!(json, serde_json::json!({"data": [{"embedding": [1]}]}));
}

#[test]
fn malformed_embeddings_bodies_are_502s() {
    let c = codec();
    for garbage in [
        &b"<html>502 Bad Gateway</html>"[..],
        b"",
        b"[1,2]",
        br#"{"object":"list","data":[{"embedding":[0.1,"#,
        br#"{"object":"list"}"#,
        br#"{"object":"list","data":[]}"#,
        br#"{"object":"list","data":{}}"#,
        br#"{"object":"list","data":[{"index":0}]}"#,
        br#"{"object":"list","data":[{"embedding":[]}]}"#,
        br#"{"object":"list","data":[{"embedding":["0.1"]}]}"#,
        br#"{"object":"list","data":[{"embedding":[0.1,0.2]},{"embedding":[0.1]}]}"#,
        br#"{"object":"list","data":[{"embedding":"AACA"}]}"#,
        br#"{"object":"list","data":[{"embedding":[1e999]}]}"#,
        // A chat completion is not an embeddings list.
        RESPONSE.as_bytes(),
    ] {
        let e = plugin_error(c.decode_response(&embeddings_call(KEY), 200, garbage));
        assert_eq!(
            (e.status, e.kind),
            (502, error_kind::MALFORMED),
            "{}: {}",
            String::from_utf8_lossy(garbage),
            e.message
        );
    }
    // An error object in a 200 is the upstream's error, classified.
    let body = br#"{"error":{"message":"The server had an error processing your request.","type":"server_error"}}"#;
    let e = plugin_error(c.decode_response(&embeddings_call(KEY), 200, body));
    assert_eq!((e.status, e.kind, e.retryable), (500, error_kind::SERVER, true));
}

#[test]
fn the_operation_picks_the_code_path() {
    let c = codec();
    // An embeddings list under the chat operation never reaches the embeddings decoder.
    let e = plugin_error(c.decode_response(&call(false, KEY), 200, EMBEDDINGS_RESPONSE.as_bytes()));
    assert_eq!((e.status, e.kind), (502, error_kind::MALFORMED));
    assert!(e.message.contains("choices"), "{}", e.message);
    // Embeddings never stream, whatever the stream flag says.
    let streaming = CallInfo {
        stream: true,
        ..embeddings_call(KEY)
    };
    let req = c.encode_request(&streaming, EMBEDDINGS_REQUEST).expect("encoded");
    assert_eq!(header(&req, "accept"), Some("application/json"));
    assert!(Arc::new(codec()).open_stream(&embeddings_call(KEY)).is_err());
    // An operation the plugin does not serve is refused, not guessed at.
    let images = CallInfo {
        operation: "images",
        ..call(false, KEY)
    };
    for e in [
        match c.encode_request(&images, REQUEST) {
            Err(CallError::Plugin(e)) => e,
            other => panic!("{other:?}"),
        },
        plugin_error(c.decode_response(&images, 200, RESPONSE.as_bytes())),
    ] {
        assert_eq!((e.status, e.code.as_deref()), (400, Some("unsupported_operation")));
    }
}

#[test]
fn embeddings_errors_are_openai_errors() {
    let body = br#"{"error":{"message":"'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.","type":"invalid_request_error","param":null,"code":null}}"#;
    let e = codec().decode_error(&embeddings_call(KEY), 400, body).expect("error");
    assert_eq!(
        (e.status, e.kind, e.retryable),
        (400, error_kind::INVALID_REQUEST, false)
    );
    assert!(e.message.starts_with("'$.input' is invalid"), "{}", e.message);
    assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));
}
