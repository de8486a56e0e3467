//! The mock's behaviour through the SDK types (with a recording sink), and end to end
//! through the real C ABI (the host wrapper calling the exported declaration).

use crate::{Mock, Sink};
use serde_json::{Value, json};
use switchyard_plugin_api::sdk::{ChunkInfo, Context, ErrorKind, Provider, ProviderError, ProviderSetup, Usage};

/// One output of a call, as the host would see it.
#[derive(Debug)]
enum Rec {
    Response { json: Value, model: String, usage: Usage },
    Chunk { json: Value, info: ChunkInfo },
    Delay(u64),
    Done,
}

impl Sink for Vec<Rec> {
    fn response(&mut self, json: &[u8], model: &str, usage: &Usage) {
        let json = serde_json::from_slice(json).expect("response is JSON");
        self.push(Rec::Response {
            json,
            model: model.into(),
            usage: *usage,
        });
    }
    fn chunk(&mut self, json: &[u8], _model: &str, info: &ChunkInfo) {
        let json = serde_json::from_slice(json).expect("chunk is JSON");
        self.push(Rec::Chunk { json, info: *info });
    }
    fn delay_ms(&mut self, ms: u64) {
        self.push(Rec::Delay(ms));
    }
    fn done(&mut self) {
        self.push(Rec::Done);
    }
}

fn mock(options: Value) -> Mock {
    Mock::create(ProviderSetup {
        name: "local".into(),
        base_url: None,
        options,
    })
    .expect("valid options")
}

fn ctx(model: &str, stream: bool) -> Context<'_> {
    Context {
        stream,
        unix_time_ms: 1_700_000_000_999,
        model,
        api_key: "",
        request_id: "req-1",
        operation: "chat",
    }
}

fn embeddings_ctx(model: &str) -> Context<'_> {
    Context {
        operation: "embeddings",
        ..ctx(model, false)
    }
}

fn user(text: &str) -> Value {
    json!({"model": "echo", "messages": [{"role": "user", "content": text}]})
}

/// Runs one request; returns what was written and the call's result.
fn call(m: &Mock, model: &str, stream: bool, body: &Value) -> (Vec<Rec>, Result<(), ProviderError>) {
    let mut recs = Vec::new();
    let body = serde_json::to_vec(body).expect("serialisable");
    let result = m.respond(&ctx(model, stream), &body, &mut recs);
    (recs, result)
}

/// The single response of a non-streaming call.
fn respond(m: &Mock, model: &str, body: &Value) -> (Value, Usage) {
    match call(m, model, false, body) {
        (mut recs, Ok(())) if recs.len() == 1 => match recs.remove(0) {
            Rec::Response {
                json,
                model: answered,
                usage,
            } => {
                assert_eq!(answered, model);
                (json, usage)
            }
            other => panic!("expected a response, got {other:?}"),
        },
        other => panic!("expected one response, got {other:?}"),
    }
}

fn content(response: &Value) -> &str {
    response["choices"][0]["message"]["content"]
        .as_str()
        .expect("text content")
}

fn streamed(m: &Mock, model: &str, body: &Value) -> Vec<Rec> {
    let (recs, result) = call(m, model, true, body);
    result.expect("stream answered");
    recs
}

/// The concatenated `delta.content` of choice `index`.
fn deltas(recs: &[Rec], index: u64) -> String {
    recs.iter()
        .filter_map(|r| match r {
            Rec::Chunk { json, .. } => json["choices"].as_array()?.first().cloned(),
            _ => None,
        })
        .filter(|c| c["index"] == index)
        .filter_map(|c| c["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn echo_answers_a_full_chat_completion() {
    let m = mock(Value::Null);
    let (r, usage) = respond(&m, "echo", &user("Hello there, gateway"));
    assert_eq!(
        r,
        json!({
            "id": "chatcmpl-mock-req-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "echo",
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there, gateway", "refusal": null},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": 3,
                "total_tokens": 6,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}
            }
        })
    );
    assert_eq!(
        usage,
        Usage {
            prompt_tokens: 3,
            completion_tokens: 3,
            total_tokens: 6,
            ..Usage::default()
        }
    );
}

#[test]
fn echo_reads_the_last_user_message_and_text_parts() {
    let m = mock(Value::Null);
    let body = json!({"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "old question"},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": [
            {"type": "text", "text": "What is "},
            {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
            {"type": "text", "text": "this?"}
        ]},
    ]});
    let (r, usage) = respond(&m, "echo", &body);
    assert_eq!(content(&r), "What is this?");
    // 3 + 2 + 2 + (2 + 1): every message's text, parts counted as they are.
    assert_eq!(usage.prompt_tokens, 10);
    assert_eq!(usage.completion_tokens, 3);
}

#[test]
fn fixed_text_answers_other_models_but_echo_still_echoes() {
    let m = mock(json!({"text": "The fixed answer."}));
    assert_eq!(
        content(&respond(&m, "gpt-4o-mini", &user("anything")).0),
        "The fixed answer."
    );
    assert_eq!(content(&respond(&m, "echo", &user("anything")).0), "anything");
    // Without `text`, every plain model echoes.
    assert_eq!(
        content(&respond(&mock(Value::Null), "claude-x", &user("same back")).0),
        "same back"
    );
}

#[test]
fn n_gives_identical_choices_and_multiplies_completion_tokens() {
    let m = mock(Value::Null);
    let mut body = user("two words");
    body["n"] = json!(3);
    let (r, usage) = respond(&m, "echo", &body);
    let choices = r["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["message"]["content"], "two words");
    }
    assert_eq!(
        (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
        (2, 6, 8)
    );
    assert_eq!(r["usage"]["completion_tokens"], 6);
}

#[test]
fn max_tokens_truncates_to_words_with_length() {
    let m = mock(Value::Null);
    for field in ["max_tokens", "max_completion_tokens"] {
        let mut body = user("one two three four five");
        body[field] = json!(2);
        let (r, usage) = respond(&m, "echo", &body);
        assert_eq!(content(&r), "one two", "{field}");
        assert_eq!(r["choices"][0]["finish_reason"], "length");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 2));
    }
    let mut body = user("one two");
    body["max_tokens"] = json!(2);
    assert_eq!(respond(&m, "echo", &body).0["choices"][0]["finish_reason"], "stop");
}

fn tool_request(text: &str) -> Value {
    json!({
        "messages": [{"role": "user", "content": text}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    })
}

#[test]
fn call_prompt_with_tools_answers_a_tool_call() {
    let m = mock(Value::Null);
    let (r, usage) = respond(&m, "echo", &tool_request(r#"call get_weather {"city":"Paris"}"#));
    assert_eq!(
        r["choices"][0],
        json!({
            "index": 0,
            "message": {
                "role": "assistant",
                "content": null,
                "refusal": null,
                "tool_calls": [{
                    "id": "call_mock_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
                }]
            },
            "logprobs": null,
            "finish_reason": "tool_calls"
        })
    );
    assert_eq!(usage.completion_tokens, 2);
    // Without tools the same prompt is just text.
    assert_eq!(
        content(&respond(&m, "echo", &user("call get_weather {}")).0),
        "call get_weather {}"
    );
}

/// Chunk JSON and flags, delays and DONE, in order.
fn shape(recs: &[Rec]) -> Vec<String> {
    recs.iter()
        .map(|r| match r {
            Rec::Chunk { json, info } => {
                let choices = json["choices"].as_array().map_or(0, Vec::len);
                let mut s = format!("chunk[{choices}]");
                if info.finish_reason {
                    s += " finish";
                }
                if info.empty_choices {
                    s += " empty";
                }
                if info.usage.is_some() {
                    s += " usage";
                }
                s
            }
            Rec::Delay(ms) => format!("delay {ms}"),
            Rec::Done => "done".into(),
            Rec::Response { .. } => "response".into(),
        })
        .collect()
}

#[test]
fn stream_without_include_usage_has_no_usage_anywhere() {
    let m = mock(Value::Null);
    let recs = streamed(&m, "echo", &user("Hi  there "));
    assert_eq!(
        shape(&recs),
        ["chunk[1]", "chunk[1]", "chunk[1]", "chunk[1] finish", "done"]
    );
    assert_eq!(deltas(&recs, 0), "Hi  there ");
    for r in &recs {
        if let Rec::Chunk { json, .. } = r {
            assert!(json.get("usage").is_none(), "{json}");
            assert_eq!(json["object"], "chat.completion.chunk");
            assert_eq!(json["id"], "chatcmpl-mock-req-1");
            assert_eq!(json["model"], "echo");
        }
    }
    let Rec::Chunk { json: first, .. } = &recs[0] else {
        panic!("first item is a chunk")
    };
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let Rec::Chunk { json: last, .. } = &recs[3] else {
        panic!("finish item is a chunk")
    };
    assert_eq!(
        last["choices"][0],
        json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"})
    );
}

#[test]
fn stream_with_include_usage_ends_with_a_usage_chunk() {
    let m = mock(json!({"words_per_chunk": 2}));
    let mut body = user("one two three four five");
    body["stream_options"] = json!({"include_usage": true});
    let recs = streamed(&m, "echo", &body);
    assert_eq!(
        shape(&recs),
        [
            "chunk[1]",
            "chunk[1]",
            "chunk[1]",
            "chunk[1]",
            "chunk[1] finish",
            "chunk[0] empty usage",
            "done"
        ]
    );
    // The same text as the non-streaming answer.
    assert_eq!(deltas(&recs, 0), content(&respond(&m, "echo", &body).0));
    for r in &recs[..5] {
        let Rec::Chunk { json, .. } = r else { panic!("chunk") };
        assert_eq!(json["usage"], Value::Null, "{json}");
        assert!(json.get("usage").is_some());
    }
    let Rec::Chunk { json, info } = &recs[5] else {
        panic!("usage chunk")
    };
    assert_eq!(json["choices"], json!([]));
    assert_eq!(json["usage"]["total_tokens"], 10);
    assert_eq!(
        info.usage
            .map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens)),
        Some((5, 5, 10))
    );
}

#[test]
fn stream_of_n_choices_and_truncation() {
    let m = mock(Value::Null);
    let mut body = user("a b c");
    body["n"] = json!(2);
    body["max_tokens"] = json!(2);
    let recs = streamed(&m, "echo", &body);
    // Two openings, two steps of two choices, two finishes.
    assert_eq!(recs.len(), 2 + 4 + 2 + 1);
    assert_eq!(
        (deltas(&recs, 0), deltas(&recs, 1)),
        ("a b".to_string(), "a b".to_string())
    );
    let finishes: Vec<&Value> = recs
        .iter()
        .filter_map(|r| match r {
            Rec::Chunk { json, info } if info.finish_reason => Some(&json["choices"][0]["finish_reason"]),
            _ => None,
        })
        .collect();
    assert_eq!(finishes, [&json!("length"), &json!("length")]);
}

#[test]
fn delays_are_asked_of_the_host_not_slept() {
    let m = mock(json!({"latency_ms": 100, "chunk_delay_ms": 7, "words_per_chunk": 2}));
    let recs = streamed(&m, "echo", &user("one two three"));
    assert_eq!(
        shape(&recs),
        [
            "delay 100",
            "chunk[1]",
            "delay 7",
            "chunk[1]",
            "delay 7",
            "chunk[1]",
            "chunk[1] finish",
            "done"
        ]
    );
    let (recs, result) = call(&m, "echo", false, &user("x"));
    assert!(result.is_ok());
    assert_eq!(shape(&recs), ["delay 100", "response"]);
    // Zero delays are left out.
    let (recs, _) = call(&mock(Value::Null), "echo", false, &user("x"));
    assert_eq!(shape(&recs), ["response"]);
}

#[test]
fn tool_calls_stream_as_openai_does() {
    let m = mock(Value::Null);
    let mut body = tool_request(r#"call get_weather {"city": "Paris"}"#);
    body["stream_options"] = json!({"include_usage": true});
    let recs = streamed(&m, "echo", &body);
    assert_eq!(
        shape(&recs),
        [
            "chunk[1]",
            "chunk[1]",
            "chunk[1]",
            "chunk[1] finish",
            "chunk[0] empty usage",
            "done"
        ]
    );
    let delta = |i: usize| match &recs[i] {
        Rec::Chunk { json, .. } => json["choices"][0]["delta"].clone(),
        other => panic!("chunk expected, got {other:?}"),
    };
    assert_eq!(
        delta(0),
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "index": 0, "id": "call_mock_0", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}
        }]})
    );
    assert_eq!(
        delta(1),
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]})
    );
    assert_eq!(
        delta(2),
        json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"Paris\"}"}}]})
    );
    let Rec::Chunk { json, .. } = &recs[3] else {
        panic!("finish chunk")
    };
    assert_eq!(json["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn error_faults_fail_before_any_output() {
    let m = mock(json!({"latency_ms": 50, "fault_models": true}));
    let table = [
        ("fault-429", 429, ErrorKind::RateLimit, true),
        ("fault-500", 500, ErrorKind::Server, true),
        ("fault-503", 503, ErrorKind::Overloaded, true),
        ("fault-400", 400, ErrorKind::InvalidRequest, false),
        ("fault-context-length", 400, ErrorKind::ContextLength, false),
        ("fault-content-filter", 400, ErrorKind::ContentFilter, false),
        ("fault-typo", 404, ErrorKind::NotFound, false),
    ];
    for (model, status, kind, retryable) in table {
        for stream in [false, true] {
            let (recs, result) = call(&m, model, stream, &user("hi"));
            let e = result.expect_err(model);
            assert!(recs.is_empty(), "{model}: {recs:?}");
            assert_eq!((e.status, e.kind, e.retryable), (status, kind, retryable), "{model}");
            assert!(e.error_type.is_some() && e.code.is_some(), "{model}");
        }
    }
}

#[test]
fn mid_stream_fault_starts_the_stream_then_fails() {
    let m = mock(json!({"fault_models": true}));
    let (recs, result) = call(&m, "fault-mid-stream", true, &user("one two three"));
    assert_eq!(shape(&recs), ["chunk[1]", "chunk[1]"]);
    assert_eq!(result.expect_err("cut").status, 500);
    let (recs, result) = call(&m, "fault-mid-stream", true, &user(""));
    assert_eq!(
        (shape(&recs), result.map_err(|e| e.status)),
        (vec!["chunk[1]".to_string()], Err(500))
    );
    let (recs, result) = call(&m, "fault-mid-stream", false, &user("one two"));
    assert!(recs.is_empty());
    assert_eq!(result.map_err(|e| e.status), Err(500));
}

#[test]
fn panic_fault_panics() {
    let m = mock(json!({"fault_models": true}));
    let panicked = std::panic::catch_unwind(|| call(&m, "fault-panic", false, &user("hi")));
    assert!(panicked.is_err());
}

/// Off by default, so a client cannot make a shared mock fail: a fault model's name is then
/// answered like any other, with `text` or an echo, streams included.
#[test]
fn fault_models_are_ordinary_names_unless_turned_on() {
    for model in ["fault-429", "fault-panic", "fault-mid-stream", "fault-typo"] {
        let (r, usage) = respond(&mock(Value::Null), model, &user("still here"));
        assert_eq!((content(&r), r["model"].as_str()), ("still here", Some(model)));
        assert_eq!(usage.completion_tokens, 2);
        let (r, _) = respond(
            &mock(json!({"text": "fixed", "fault_models": false})),
            model,
            &user("x"),
        );
        assert_eq!(content(&r), "fixed");
        let recs = streamed(&mock(Value::Null), model, &user("still here"));
        assert_eq!(deltas(&recs, 0), "still here");
        assert!(matches!(recs.last(), Some(Rec::Done)), "{recs:?}");
    }
    let on = mock(json!({"fault_models": true}));
    assert_eq!(
        call(&on, "fault-429", false, &user("x")).1.map_err(|e| e.status),
        Err(429)
    );
    let panicked = std::panic::catch_unwind(|| call(&on, "fault-panic", false, &user("x")));
    assert!(panicked.is_err());
}

#[test]
fn bad_requests_are_400s_without_output() {
    let m = mock(Value::Null);
    for body in [
        json!({}),
        json!({"messages": "hi"}),
        json!({"messages": []}),
        json!({"messages": [{"role": "user"}], "n": 0}),
    ] {
        for stream in [false, true] {
            let (recs, result) = call(&m, "echo", stream, &body);
            let e = result.expect_err("invalid");
            assert!(recs.is_empty());
            assert_eq!((e.status, e.kind), (400, ErrorKind::InvalidRequest), "{body}");
        }
    }
    let mut recs = Vec::new();
    let e = m
        .respond(&ctx("echo", false), b"{\"messages\": [", &mut recs)
        .expect_err("truncated JSON");
    assert_eq!(e.status, 400);
    assert!(e.message.contains("invalid chat request"), "{}", e.message);
}

#[test]
fn no_user_message_echoes_nothing() {
    let m = mock(Value::Null);
    let (r, usage) = respond(
        &m,
        "echo",
        &json!({"messages": [{"role": "system", "content": "just rules"}]}),
    );
    assert_eq!(content(&r), "");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (2, 0));
    let recs = streamed(&m, "echo", &json!({"messages": [{"role": "system", "content": "x"}]}));
    assert_eq!(shape(&recs), ["chunk[1]", "chunk[1] finish", "done"]);
}

#[test]
fn create_rejects_bad_options_naming_them() {
    let err = Mock::create(ProviderSetup {
        name: "local".into(),
        base_url: None,
        options: json!({"words_per_chunk": 0}),
    })
    .expect_err("invalid");
    assert!(err.contains("words_per_chunk"), "{err}");
}

// ---------------------------------------------------------------- embeddings

/// Runs one embeddings request through the mock's dispatcher.
fn embed_call(m: &Mock, model: &str, body: &Value) -> (Vec<Rec>, Result<(), ProviderError>) {
    let mut recs = Vec::new();
    let body = serde_json::to_vec(body).expect("serialisable");
    let result = m.respond(&embeddings_ctx(model), &body, &mut recs);
    (recs, result)
}

/// The list and usage of a successful embeddings call.
fn embed_ok(m: &Mock, body: &Value) -> (Value, Usage) {
    match embed_call(m, "mock-embed", body) {
        (mut recs, Ok(())) if recs.len() == 1 => match recs.remove(0) {
            Rec::Response { json, model, usage } => {
                assert_eq!(model, "mock-embed");
                (json, usage)
            }
            other => panic!("expected a response, got {other:?}"),
        },
        other => panic!("expected one response, got {other:?}"),
    }
}

fn vector(list: &Value, index: usize) -> Vec<f64> {
    list["data"][index]["embedding"]
        .as_array()
        .expect("a float vector")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn embeddings_answer_an_openai_list_with_word_usage() {
    let m = mock(Value::Null);
    let body = json!({"model": "mock-embed", "input": ["What is the capital of France?", "What is the capital of France??",
        "How do I bake sourdough bread at home?"]});
    let (list, usage) = embed_ok(&m, &body);
    assert_eq!(list["object"], "list");
    assert_eq!(list["model"], "mock-embed");
    assert_eq!(list["usage"], json!({"prompt_tokens": 20, "total_tokens": 20}));
    assert_eq!(
        usage,
        Usage {
            prompt_tokens: 20,
            total_tokens: 20,
            ..Usage::default()
        }
    );
    let data = list["data"].as_array().expect("data");
    assert_eq!(data.len(), 3);
    for (i, entry) in data.iter().enumerate() {
        assert_eq!(
            (entry["object"].as_str(), entry["index"].as_u64()),
            (Some("embedding"), Some(i as u64))
        );
    }
    let (a, near, far) = (vector(&list, 0), vector(&list, 1), vector(&list, 2));
    assert_eq!(a.len(), 256, "the default length");
    assert!(cosine(&a, &near) > 0.9, "{}", cosine(&a, &near));
    assert!(cosine(&a, &far) < 0.5, "{}", cosine(&a, &far));
    // The same text, asked again (alone, as a plain string), is the same vector.
    let (again, _) = embed_ok(&m, &json!({"input": "What is the capital of France?"}));
    assert_eq!(vector(&again, 0), a);
}

#[test]
fn embeddings_honour_dimensions_base64_and_the_empty_text() {
    let m = mock(Value::Null);
    let (list, usage) = embed_ok(&m, &json!({"input": ["", "a b"], "dimensions": 8}));
    assert_eq!(vector(&list, 0), [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(vector(&list, 1).len(), 8);
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (2, 0));
    let (list, _) = embed_ok(&m, &json!({"input": "", "dimensions": 2, "encoding_format": "base64"}));
    // [1.0, 0.0] as little-endian f32s.
    assert_eq!(list["data"][0]["embedding"], "AACAPwAAAAA=");
}

#[test]
fn bad_embeddings_requests_are_400s_without_output() {
    let m = mock(Value::Null);
    for (body, param) in [
        (json!({"input": "x", "dimensions": 4097}), Some("dimensions")),
        (json!({"input": "x", "dimensions": 0}), Some("dimensions")),
        (json!({"input": []}), Some("input")),
        (json!({"model": "m"}), Some("input")),
        (json!({"input": [1, 2]}), None),
        (
            json!({"input": "x", "encoding_format": "int8"}),
            Some("encoding_format"),
        ),
        // A chat request is not an embeddings request.
        (user("hello"), Some("input")),
    ] {
        let (recs, result) = embed_call(&m, "mock-embed", &body);
        let e = result.expect_err("refused");
        assert!(recs.is_empty(), "{body}: {recs:?}");
        assert_eq!(
            (e.status, e.kind, e.param.as_deref()),
            (400, ErrorKind::InvalidRequest, param),
            "{body}"
        );
    }
}

#[test]
fn chat_code_never_sees_embeddings_and_unknown_operations_are_refused() {
    let m = mock(Value::Null);
    // An embeddings body under the chat operation is a bad chat request, not an embedding.
    let (_, result) = call(&m, "echo", false, &json!({"input": "hi"}));
    let e = result.expect_err("not a chat request");
    assert!(e.message.contains("invalid chat request"), "{}", e.message);
    let mut recs = Vec::new();
    let images = Context {
        operation: "images",
        ..ctx("echo", false)
    };
    let e = m
        .respond(&images, &serde_json::to_vec(&user("hi")).expect("json"), &mut recs)
        .expect_err("unsupported");
    assert_eq!((e.status, e.code.as_deref()), (400, Some("unsupported_operation")));
    assert!(recs.is_empty());
    // A 1.0 host names no operation: chat.
    let legacy = Context {
        operation: "",
        ..ctx("echo", false)
    };
    m.respond(&legacy, &serde_json::to_vec(&user("hi")).expect("json"), &mut recs)
        .expect("chat");
    assert!(matches!(recs.as_slice(), [Rec::Response { .. }]));
}

#[test]
fn embedding_faults_fail_as_chat_faults_do() {
    let m = mock(json!({"fault_models": true, "latency_ms": 4}));
    for (model, status) in [
        ("fault-429", 429),
        ("fault-503", 503),
        ("fault-mid-stream", 500),
        ("fault-nope", 404),
    ] {
        let (recs, result) = embed_call(&m, model, &json!({"input": "x"}));
        assert_eq!(result.expect_err(model).status, status, "{model}");
        assert!(recs.is_empty(), "{model}: {recs:?}");
    }
    let (recs, result) = embed_call(&m, "other", &json!({"input": "x"}));
    result.expect("answered");
    assert!(
        matches!(recs.as_slice(), [Rec::Delay(4), Rec::Response { .. }]),
        "{recs:?}"
    );
    // Off by default: a fault name is a model name like any other.
    let (_, result) = embed_call(&mock(Value::Null), "fault-429", &json!({"input": "x"}));
    result.expect("answered");
}

#[test]
#[should_panic(expected = "panics on purpose")]
fn embedding_panic_fault_panics() {
    let m = mock(json!({"fault_models": true}));
    let _ = embed_call(&m, "fault-panic", &json!({"input": "x"}));
}

/// Through the exported symbol and the host's wrapper: the path the gateway takes.
mod abi {
    use std::path::Path;
    use switchyard_plugin_api::abi::{PluginDecl, error_kind, operation};
    use switchyard_plugin_api::host::{self, CallError, CallInfo, Item, LoadError, ProviderCodec};

    // The macro's entry symbol is unnameable in Rust; reach it by its C name, as the host does.
    unsafe extern "C" {
        fn switchyard_plugin_entry_v1() -> *const PluginDecl;
    }

    fn library() -> host::PluginLibrary {
        // SAFETY: the declaration is the static one `export_provider!` put in this crate.
        unsafe { host::from_declaration(switchyard_plugin_entry_v1(), Path::new("in-process")) }
            .expect("valid declaration")
    }

    fn codec(options: &str) -> Result<ProviderCodec, LoadError> {
        let setup = format!(r#"{{"name":"local","options":{options}}}"#);
        library().provider("local", setup.as_bytes())
    }

    fn info(model: &str, stream: bool) -> CallInfo<'_> {
        CallInfo {
            stream,
            unix_time_ms: 5_000,
            model,
            api_key: "",
            request_id: "abi",
            ..CallInfo::default()
        }
    }

    /// Options that turn the fault models on.
    const FAULTS: &str = r#"{"fault_models": true}"#;

    const HELLO: &[u8] = br#"{"model":"echo","messages":[{"role":"user","content":"hello abi world"}],"stream_options":{"include_usage":true}}"#;

    #[test]
    fn declaration_says_local_mock() {
        let lib = library();
        assert_eq!(
            (lib.name.as_str(), lib.version.as_str()),
            ("mock", env!("CARGO_PKG_VERSION"))
        );
        assert!(lib.is_provider() && lib.is_local());
        assert_eq!(lib.operations, operation::CHAT | operation::EMBEDDINGS);
    }

    #[test]
    fn embeddings_cross_the_boundary_by_operation() {
        let c = codec("{}").expect("instance");
        let call = CallInfo {
            operation: "embeddings",
            ..info("mock-embed", false)
        };
        let items = c
            .respond_local(
                &call,
                br#"{"model":"mock-embed","input":["one two","three"],"dimensions":16}"#,
            )
            .expect("answered");
        let [Item::Response(p)] = items.as_slice() else {
            panic!("{items:?}")
        };
        assert_eq!(&*p.model, "mock-embed");
        assert_eq!(
            p.usage.map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens)),
            Some((3, 0, 3))
        );
        let json: serde_json::Value = serde_json::from_slice(&p.json).expect("JSON");
        assert_eq!(json["data"][1]["embedding"].as_array().map(Vec::len), Some(16));
        // The same body under the chat operation is a (bad) chat request.
        let items = c
            .respond_local(&info("mock-embed", false), br#"{"input":"x"}"#)
            .expect("error item");
        assert!(
            matches!(items.as_slice(), [Item::Error(e)] if e.status == 400),
            "{items:?}"
        );
    }

    #[test]
    fn response_and_usage_cross_the_boundary() {
        let c = codec(r#"{"latency_ms": 3}"#).expect("instance");
        let items = c.respond_local(&info("echo", false), HELLO).expect("answered");
        let [Item::Delay(3), Item::Response(p)] = items.as_slice() else {
            panic!("{items:?}")
        };
        assert_eq!(&*p.model, "echo");
        assert_eq!(
            p.usage.map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens)),
            Some((3, 3, 6))
        );
        let json: serde_json::Value = serde_json::from_slice(&p.json).expect("JSON");
        assert_eq!(json["choices"][0]["message"]["content"], "hello abi world");
        assert_eq!(json["created"], 5);
    }

    #[test]
    fn stream_flags_cross_the_boundary() {
        let c = codec("{}").expect("instance");
        let items = c.respond_local(&info("echo", true), HELLO).expect("answered");
        let flags: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Chunk(p) => {
                    format!(
                        "{}{}{}",
                        p.has_finish_reason() as u8,
                        p.has_empty_choices() as u8,
                        p.usage.is_some() as u8
                    )
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(flags, ["000", "000", "000", "000", "100", "011", "Done"]);
    }

    #[test]
    fn fault_is_an_error_item_with_kind_and_retry_flag() {
        let c = codec(FAULTS).expect("instance");
        let items = c
            .respond_local(&info("fault-429", false), HELLO)
            .expect("error item is the answer");
        let [Item::Error(e)] = items.as_slice() else {
            panic!("{items:?}")
        };
        assert_eq!((e.status, e.kind, e.retryable), (429, error_kind::RATE_LIMIT, true));
        assert_eq!(
            (e.error_type.as_deref(), e.code.as_deref()),
            (Some("rate_limit_error"), Some("rate_limit_exceeded"))
        );
        let items = c
            .respond_local(&info("fault-context-length", false), HELLO)
            .expect("error item");
        let [Item::Error(e)] = items.as_slice() else {
            panic!("{items:?}")
        };
        assert_eq!(
            (e.status, e.kind, e.retryable),
            (400, error_kind::CONTEXT_LENGTH, false)
        );
    }

    #[test]
    fn mid_stream_fault_ends_the_items_with_an_error() {
        let c = codec(FAULTS).expect("instance");
        let items = c.respond_local(&info("fault-mid-stream", true), HELLO).expect("items");
        assert!(matches!(items.as_slice(), [Item::Chunk(_), Item::Chunk(_), Item::Error(e)] if e.status == 500));
    }

    #[test]
    fn bad_request_is_a_400_item() {
        let c = codec("{}").expect("instance");
        let items = c
            .respond_local(&info("echo", false), b"{\"messages\":42}")
            .expect("error item");
        let [Item::Error(e)] = items.as_slice() else {
            panic!("{items:?}")
        };
        assert_eq!((e.status, e.kind), (400, error_kind::INVALID_REQUEST));
    }

    #[test]
    fn panic_is_caught_by_the_guard() {
        let c = codec(FAULTS).expect("instance");
        assert!(matches!(
            c.respond_local(&info("fault-panic", false), HELLO),
            Err(CallError::Panicked { .. })
        ));
        // The instance keeps answering other models after a panic.
        assert!(c.respond_local(&info("echo", false), HELLO).is_ok());
    }

    #[test]
    fn fault_models_are_off_by_default() {
        let c = codec("{}").expect("instance");
        for model in ["fault-429", "fault-panic"] {
            let items = c.respond_local(&info(model, false), HELLO).expect("answered");
            assert!(matches!(items.as_slice(), [Item::Response(_)]), "{model}: {items:?}");
        }
        assert_eq!(c.panic_count(), 0);
    }

    #[test]
    fn bad_options_refuse_creation_naming_the_option() {
        let err = codec(r#"{"latency_ms": "soon"}"#).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("mock") && text.contains("`latency_ms`"), "{text}");
    }
}
