//! The hook driven through the real C ABI, as the gateway loads and calls it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use switchyard_plugin_api::abi::{PluginDecl, chunk_flag, hook_phase};
use switchyard_plugin_api::host::{
    self, ChunkVerdict, HookCall, HookInstance, PanicPolicy, Payload, PostAction, PreAction,
};

// The export macro's entry symbol, reached by its C name as the host's loader does.
unsafe extern "C" {
    fn switchyard_plugin_entry_v1() -> *const PluginDecl;
}

fn hook(config: Value) -> Arc<HookInstance> {
    // SAFETY: the static declaration exported by this crate.
    let lib = unsafe { host::from_declaration(switchyard_plugin_entry_v1(), Path::new("in-process")) }.unwrap();
    Arc::new(
        lib.hook("guard", config.to_string().as_bytes(), PanicPolicy::default())
            .unwrap(),
    )
}

fn call(stream: bool) -> HookCall<'static> {
    HookCall {
        stream,
        request_id: "r1",
        operation: "chat",
        alias: "fast",
        model: "m",
        ..HookCall::default()
    }
}

fn request(text: &str) -> Vec<u8> {
    json!({"model": "fast", "messages": [{"role": "user", "content": text}], "temperature": 0.5})
        .to_string()
        .into_bytes()
}

fn chunk(content: &str, finish: Option<&str>) -> Payload {
    let json = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "up-model",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]});
    Payload {
        json: json.to_string().into_bytes(),
        model: Arc::from("up-model"),
        // As the codec flags it.
        flags: if finish.is_some() { chunk_flag::FINISH_REASON } else { 0 },
        ..Payload::default()
    }
}

/// The text the client would read from a stream's chunks.
fn stream_text(chunks: &[Payload]) -> String {
    chunks
        .iter()
        .map(|c| {
            let v: Value = serde_json::from_slice(&c.json).unwrap();
            v["choices"][0]["delta"]["content"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

#[test]
fn declares_its_phases_and_refuses_a_bad_config_naming_the_entry() {
    let h = hook(json!({"redact": ["email"]}));
    assert_eq!(
        h.phases(),
        hook_phase::PRE_REQUEST | hook_phase::POST_RESPONSE | hook_phase::ON_CHUNK
    );
    // SAFETY: as in `hook`.
    let lib = unsafe { host::from_declaration(switchyard_plugin_entry_v1(), Path::new("in-process")) }.unwrap();
    let err = lib
        .hook("guard", br#"{"redact":["phone"]}"#, PanicPolicy::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("redact[0]") && err.contains("phone"), "{err}");
    let err = lib
        .hook("guard", br#"{"deni":[]}"#, PanicPolicy::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("deni"), "{err}");
    // No config at all: a guardrail that lets everything through.
    let idle = Arc::new(lib.hook("guard", b"", PanicPolicy::default()).unwrap());
    let action = idle.start().pre_request(&call(false), &request("a@b.example")).unwrap();
    assert!(matches!(action, PreAction::Continue), "{action:?}");
}

#[test]
fn a_denied_request_is_rejected_naming_the_rule_never_the_text() {
    let h = hook(json!({"deny": ["never-matches", "(?i)launch code \\d+"]}));
    let action = h
        .start()
        .pre_request(&call(false), &request("what is the LAUNCH CODE 7741?"))
        .unwrap();
    let PreAction::Reject(r) = action else {
        panic!("{action:?}")
    };
    assert_eq!(r.status, 400);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], "guardrail_blocked");
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], Value::Null);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("guardrail rule 1 ((?i)launch code \\d+)"), "{message}");
    assert!(!message.contains("7741") && !message.contains("LAUNCH"), "{message}");
    // A request no rule matches goes on untouched.
    let action = h.start().pre_request(&call(false), &request("hello")).unwrap();
    assert!(matches!(action, PreAction::Continue), "{action:?}");
}

#[test]
fn a_request_is_redacted_and_its_other_members_kept() {
    let h = hook(json!({"redact": ["email"]}));
    let mut req = h.start();
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"mail me at bob@example.com please"}],"temperature":0.50}"#;
    let action = req.pre_request(&call(false), body.as_bytes()).unwrap();
    let PreAction::Replace(new) = action else {
        panic!("{action:?}")
    };
    assert_eq!(
        String::from_utf8(new).unwrap(),
        r#"{"model":"fast","messages":[{"role":"user","content":"mail me at [REDACTED:email] please"}],"temperature":0.50}"#
    );
    // A plain request keeps no state.
    assert!(!req.has_state());
}

#[test]
fn an_unreadable_request_fails_the_hook() {
    let h = hook(json!({"redact": ["email"]}));
    assert!(h.start().pre_request(&call(false), b"{\"messages\": 7}").is_err());
}

#[test]
fn an_answer_is_redacted_leaving_its_model_and_usage_to_the_gateway() {
    let h = hook(json!({"redact": ["email"]}));
    let mut req = h.start();
    req.pre_request(&call(false), &request("hi")).unwrap();
    let answer = json!({"id": "x", "object": "chat.completion", "model": "up-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "write to eve@corp.example"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}});
    let action = req.post_response(&call(false), answer.to_string().as_bytes()).unwrap();
    let PostAction::Replace(p) = action else {
        panic!("{action:?}")
    };
    let v: Value = serde_json::from_slice(&p.json).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "write to [REDACTED:email]");
    // Only the text changed: an empty model and no usage tell the gateway to keep the answer's.
    assert_eq!(&*p.model, "");
    assert_eq!(p.usage, None);
    // Nothing to redact: the answer is kept as it is.
    let clean = json!({"choices": [{"index": 0, "message": {"content": "fine"}}]});
    let action = req.post_response(&call(false), clean.to_string().as_bytes()).unwrap();
    assert!(matches!(action, PostAction::Keep), "{action:?}");
}

#[test]
fn a_secret_split_across_two_batches_is_redacted() {
    let h = hook(json!({"redact": ["email"]}));
    let mut req = h.start();
    req.pre_request(&call(true), &request("hi")).unwrap();
    assert!(req.has_state(), "a streaming request with redaction keeps a redactor");

    let mut first = vec![chunk("Hello, ", None), chunk("write to alice@exa", None)];
    assert_eq!(req.on_chunks(&call(true), &mut first).unwrap(), ChunkVerdict::Continue);
    assert_eq!(first.len(), 2);
    // The first chunk was kept as the host held it; the second lost its unfinished tail.
    assert_eq!(first[0].json, chunk("Hello, ", None).json);
    assert_eq!(stream_text(&first), "Hello, write to ");
    assert_eq!(&*first[1].model, "up-model");

    let mut second = vec![chunk("mple.com today", None), chunk("", Some("stop"))];
    req.on_chunks(&call(true), &mut second).unwrap();
    assert!(second[1].has_finish_reason(), "the finish chunk keeps its flag");
    let mut tail = Vec::new();
    req.end_of_stream(&call(true), &mut tail).unwrap();
    assert!(tail.is_empty(), "the finish chunk released everything");

    let all: String = [first, second].iter().map(|b| stream_text(b)).collect();
    assert_eq!(all, "Hello, write to [REDACTED:email] today");
}

#[test]
fn text_held_at_the_end_of_a_stream_is_released_by_end_of_stream() {
    let h = hook(json!({"redact": ["api_key"]}));
    let mut req = h.start();
    req.pre_request(&call(true), &request("hi")).unwrap();
    let key = format!("sk-proj-{}", "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z");
    let mut batch = vec![chunk(&format!("key: {}", &key[..10]), None)];
    req.on_chunks(&call(true), &mut batch).unwrap();
    let mut rest = vec![chunk(&key[10..], None)];
    req.on_chunks(&call(true), &mut rest).unwrap();
    // The stream ends with no finish_reason: the held key comes out of end_of_stream, redacted.
    let mut tail = Vec::new();
    req.end_of_stream(&call(true), &mut tail).unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(&*tail[0].model, "up-model");
    let all: String = [batch, rest, tail].iter().map(|b| stream_text(b)).collect();
    assert_eq!(all, "key: [REDACTED:api_key]");
}

#[test]
fn a_stream_without_redaction_keeps_no_state_and_every_chunk() {
    let h = hook(json!({"deny": ["forbidden"]}));
    let mut req = h.start();
    req.pre_request(&call(true), &request("hi")).unwrap();
    assert!(!req.has_state());
    let mut batch = vec![chunk("bob@example.com", None)];
    req.on_chunks(&call(true), &mut batch).unwrap();
    assert_eq!(batch[0].json, chunk("bob@example.com", None).json);
}
