//! Golden translation tests, one per direction and feature, through the real C ABI. The
//! expected outputs are insta snapshots in `src/snapshots/` (keys sorted, so they do not
//! depend on serde_json's `preserve_order`, which workspace builds enable).
//!
//! After a deliberate change: `INSTA_UPDATE=always cargo test -p switchyard-plugin-anthropic`,
//! then review the diff of the `.snap` files.

use crate::tests::{KEY, NOW_MS, call, codec, encode, run_stream, stream_text};
use serde_json::{Value, json};
use std::sync::Arc;
use switchyard_plugin_api::abi::chunk_flag;

fn snapshot(name: &str, value: &Value) {
    let mut settings = insta::Settings::clone_current();
    settings.set_sort_maps(true);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_suffix("");
    settings.bind(|| insta::assert_json_snapshot!(name, value));
}

/// The request as the Anthropic API receives it.
fn request_snapshot(name: &str, request: Value) {
    snapshot(&format!("request_{name}"), &encode(&request, false));
}

/// The unified response translated from an Anthropic `message`, with the usage the host got.
fn response_snapshot(name: &str, message: Value) {
    let body = serde_json::to_vec(&message).expect("json");
    let resp = codec().decode_response(&call(false, KEY), 200, &body).expect("decoded");
    let json: Value = serde_json::from_slice(&resp.json).expect("response json");
    let usage = resp.usage.map(|u| {
        json!({"prompt": u.prompt_tokens, "completion": u.completion_tokens, "total": u.total_tokens,
               "cached": u.cached_tokens, "cache_write": u.cache_write_tokens, "reasoning": u.reasoning_tokens})
    });
    snapshot(
        &format!("response_{name}"),
        &json!({"response": json, "model": &*resp.model, "usage_to_host": usage}),
    );
}

/// Every item a stream produced, chunks parsed, with their flags and host-side usage.
fn stream_items(events: &[&str]) -> Value {
    let c = Arc::new(codec());
    let (items, warnings) = run_stream(&c, &[stream_text(events, "\n").as_bytes()]);
    assert!(warnings.is_empty(), "{warnings:?}");
    Value::Array(
        items
            .iter()
            .map(|item| match item {
                crate::tests::Got::Chunk {
                    json,
                    model,
                    flags,
                    usage,
                } => {
                    let mut names = Vec::new();
                    for (bit, name) in [
                        (chunk_flag::FINISH_REASON, "finish_reason"),
                        (chunk_flag::EMPTY_CHOICES, "empty_choices"),
                        (chunk_flag::HAS_USAGE, "has_usage"),
                    ] {
                        if flags & bit != 0 {
                            names.push(name);
                        }
                    }
                    json!({
                        "chunk": serde_json::from_str::<Value>(json).expect("chunk json"),
                        "model": model,
                        "flags": names,
                        "usage_to_host": usage.map(|u| json!([u.prompt_tokens, u.completion_tokens, u.total_tokens, u.cached_tokens, u.cache_write_tokens])),
                    })
                }
                other => json!(format!("{other:?}")),
            })
            .collect(),
    )
}

const WEATHER: &str = r#"{"type":"function","function":{"name":"get_weather","description":"Current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"enum":["c","f"]}},"required":["city"]},"strict":true}}"#;

fn weather() -> Value {
    serde_json::from_str(WEATHER).expect("tool json")
}

// ================================================================ requests

#[test]
fn request_basic() {
    request_snapshot(
        "basic",
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello, Claude"}],
               "temperature": 0.7, "top_p": 0.9, "seed": 7, "frequency_penalty": 0.1, "logprobs": true,
               "x_unknown_field": {"a": 1}}),
    );
}

#[test]
fn request_multi_turn_with_merging() {
    request_snapshot(
        "multi_turn",
        json!({"model": "claude-sonnet-4-5", "max_completion_tokens": 300, "messages": [
            {"role": "user", "content": "My name is Ada."},
            {"role": "user", "content": [{"type": "text", "text": "What is mine?"}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": "Your name is Ada."},
            {"role": "assistant", "content": [{"type": "text", "text": "Anything else?"}]},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "Spell it."}
        ]}),
    );
}

#[test]
fn request_system() {
    request_snapshot(
        "system_string",
        json!({"model": "claude-sonnet-4-5", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"}
        ]}),
    );
    request_snapshot(
        "system_many_and_cached",
        json!({"model": "claude-sonnet-4-5", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "A long, stable preamble.", "cache_control": {"type": "ephemeral"}}]},
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Late instruction.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ]}),
    );
}

#[test]
fn request_images_and_documents() {
    request_snapshot(
        "images",
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Compare these."},
            {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/a.jpg", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAE="}, "cache_control": {"type": "ephemeral"}},
            {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}
        ]}]}),
    );
}

#[test]
fn request_tools_and_tool_choice() {
    let with_choice = |choice: Value| {
        encode(
            &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Weather in Paris?"}],
                    "tools": [weather(), {"type": "function", "function": {"name": "now"}, "cache_control": {"type": "ephemeral"}}],
                    "tool_choice": choice, "parallel_tool_calls": false}),
            false,
        )
    };
    let mut all = serde_json::Map::new();
    for (name, choice) in [
        ("auto", json!("auto")),
        ("none", json!("none")),
        ("required", json!("required")),
        (
            "named",
            json!({"type": "function", "function": {"name": "get_weather"}}),
        ),
        ("absent", Value::Null),
    ] {
        all.insert(name.into(), with_choice(choice));
    }
    snapshot("request_tools", &Value::Object(all));
}

#[test]
fn request_parallel_tool_calls_and_results() {
    request_snapshot(
        "tool_results",
        json!({"model": "claude-sonnet-4-5", "tools": [weather()], "messages": [
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {"role": "assistant", "content": "Checking both.", "tool_calls": [
                {"id": "toolu_01Paris", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call:oslo/2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_01Paris", "content": "18°C, sunny"},
            {"role": "tool", "tool_call_id": "call:oslo/2", "content": [
                {"type": "text", "text": "4°C, snow"},
                {"type": "image_url", "image_url": {"url": "https://example.com/radar.png"}}
            ], "cache_control": {"type": "ephemeral"}},
            {"role": "user", "content": "Which is warmer?"}
        ]}),
    );
}

#[test]
fn request_reasoning() {
    let mut all = serde_json::Map::new();
    all.insert(
        "effort_high_no_limit".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "reasoning_effort": "high", "temperature": 0.2,
                    "messages": [{"role": "user", "content": "Prove it."}]}),
            false,
        ),
    );
    all.insert(
        "effort_medium_with_limit".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "reasoning_effort": "medium", "max_completion_tokens": 6000,
                    "messages": [{"role": "user", "content": "Prove it."}]}),
            false,
        ),
    );
    all.insert(
        "anthropic_thinking_object".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "thinking": {"type": "enabled", "budget_tokens": 3000},
                    "reasoning_effort": "low", "messages": [{"role": "user", "content": "Prove it."}]}),
            false,
        ),
    );
    all.insert(
        "effort_none".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "reasoning_effort": "none", "temperature": 0.2,
                    "messages": [{"role": "user", "content": "Prove it."}]}),
            false,
        ),
    );
    all.insert(
        "signed_thinking_handed_back".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "reasoning_effort": "low", "tools": [weather()], "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "reasoning": "I should call the tool.",
                 "reasoning_details": [
                    {"type": "reasoning.text", "text": "I should call the tool.", "signature": "EqQBCkgIBRAB"},
                    {"type": "reasoning.encrypted", "data": "EmwKAhgBEgy3va3pzix"},
                    {"type": "reasoning.summary", "summary": "from another provider"},
                    {"type": "reasoning.text", "text": "unsigned, from another provider"}],
                 "tool_calls": [{"id": "toolu_01P", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_01P", "content": "18°C"}
            ]}),
            false,
        ),
    );
    snapshot("request_reasoning", &Value::Object(all));
}

#[test]
fn request_structured_output() {
    let schema = json!({"type": "json_schema", "json_schema": {"name": "city_facts", "description": "Facts about one city.", "strict": true,
        "schema": {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
                   "required": ["city", "population"], "additionalProperties": false}}});
    let user = json!([{"role": "user", "content": "Tell me about Lisbon."}]);
    let mut all = serde_json::Map::new();
    all.insert(
        "json_schema".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "messages": user, "response_format": schema}),
            false,
        ),
    );
    all.insert(
        "json_object".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "messages": user, "response_format": {"type": "json_object"}}),
            false,
        ),
    );
    all.insert(
        "json_schema_with_client_tools".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "messages": user, "response_format": schema, "tools": [weather()], "tool_choice": "auto"}),
            false,
        ),
    );
    all.insert(
        "json_schema_tool_choice_none".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "messages": user, "response_format": schema, "tools": [weather()], "tool_choice": "none"}),
            false,
        ),
    );
    all.insert(
        "json_schema_with_thinking".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "messages": user, "response_format": schema, "reasoning_effort": "minimal"}),
            false,
        ),
    );
    all.insert(
        "text".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "messages": user, "response_format": {"type": "text"}}),
            false,
        ),
    );
    snapshot("request_structured_output", &Value::Object(all));
}

#[test]
fn request_stop_user_and_stream() {
    let mut all = serde_json::Map::new();
    all.insert(
        "stop_string".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Count"}], "stop": "5", "top_k": 40}),
            false,
        ),
    );
    all.insert(
        "stop_list_user_stream".into(),
        encode(
            &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Count"}],
                    "stop": ["\n\nHuman:", "", "END"], "user": "user-7f3a", "max_tokens": 64,
                    "stream": true, "stream_options": {"include_usage": true}}),
            true,
        ),
    );
    snapshot("request_stop", &Value::Object(all));
}

// ================================================================ responses

fn message(content: Value, stop_reason: &str, usage: Value) -> Value {
    json!({"id": "msg_01GoldenResp", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
           "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage})
}

fn small_usage() -> Value {
    json!({"input_tokens": 25, "output_tokens": 11})
}

#[test]
fn response_basic_and_multi_block_text() {
    response_snapshot(
        "basic",
        message(
            json!([{"type": "text", "text": "Hello! How can I help?"}]),
            "end_turn",
            small_usage(),
        ),
    );
    response_snapshot(
        "multi_block_text",
        message(
            json!([{"type": "text", "text": "Per the report, "},
                   {"type": "text", "text": "revenue grew 12%", "citations": [{"type": "char_location", "cited_text": "12%"}]},
                   {"type": "text", "text": "."}]),
            "end_turn",
            small_usage(),
        ),
    );
}

#[test]
fn response_tools() {
    response_snapshot(
        "tool_use",
        message(
            json!([{"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"city": "San Francisco", "unit": "c"}}]),
            "tool_use",
            small_usage(),
        ),
    );
    response_snapshot(
        "parallel_tool_use",
        message(
            json!([{"type": "text", "text": "I'll check both cities."},
                   {"type": "tool_use", "id": "toolu_01Paris", "name": "get_weather", "input": {"city": "Paris"}},
                   {"type": "tool_use", "id": "toolu_01Oslo", "name": "get_weather", "input": {}}]),
            "tool_use",
            small_usage(),
        ),
    );
}

#[test]
fn response_reasoning() {
    response_snapshot(
        "thinking",
        message(
            json!([{"type": "thinking", "thinking": "Let me add the numbers.", "signature": "EqQBCkgIBRABGAIqQA=="},
                   {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"},
                   {"type": "thinking", "thinking": "The sum is 4.", "signature": "EqQBCkgIBRACGAIqQA=="},
                   {"type": "text", "text": "2 + 2 = 4"}]),
            "end_turn",
            json!({"input_tokens": 40, "output_tokens": 310}),
        ),
    );
}

#[test]
fn response_structured_output() {
    response_snapshot(
        "structured_output",
        message(
            json!([{"type": "tool_use", "id": "toolu_01J", "name": "switchyard_json_response",
                    "input": {"city": "Lisbon", "population": 545923}}]),
            "tool_use",
            small_usage(),
        ),
    );
}

#[test]
fn response_stop_reasons() {
    let mut all = serde_json::Map::new();
    for stop in [
        "end_turn",
        "stop_sequence",
        "max_tokens",
        "tool_use",
        "refusal",
        "pause_turn",
        "model_context_window_exceeded",
    ] {
        let body =
            serde_json::to_vec(&message(json!([{"type": "text", "text": "…"}]), stop, small_usage())).expect("json");
        let resp = codec().decode_response(&call(false, KEY), 200, &body).expect("decoded");
        let v: Value = serde_json::from_slice(&resp.json).expect("json");
        all.insert(stop.into(), v["choices"][0]["finish_reason"].clone());
    }
    snapshot("response_stop_reasons", &Value::Object(all));
}

#[test]
fn response_usage_with_caching() {
    response_snapshot(
        "usage_with_caching",
        message(
            json!([{"type": "text", "text": "Cached."}]),
            "end_turn",
            json!({"input_tokens": 21, "cache_creation_input_tokens": 188086, "cache_read_input_tokens": 0,
                   "output_tokens": 393, "server_tool_use": {"web_search_requests": 0}, "service_tier": "standard"}),
        ),
    );
    response_snapshot(
        "usage_cache_read",
        message(
            json!([{"type": "text", "text": "Cached."}]),
            "end_turn",
            json!({"input_tokens": 21, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 188086, "output_tokens": 393}),
        ),
    );
}

// ================================================================ streams

#[test]
fn stream_realistic() {
    // Thinking, text, two parallel tool calls (see tests.rs for the every-split check).
    snapshot("stream_realistic", &stream_items(crate::tests::STREAM_EVENTS));
}

#[test]
fn stream_text_with_caching_and_stop_sequence() {
    snapshot(
        "stream_text",
        &stream_items(&[
            r#"{"type":"message_start","message":{"id":"msg_01Text","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"cache_creation_input_tokens":1200,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"1, 2, 3,"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" 4,"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":" 5"},"usage":{"input_tokens":5,"cache_creation_input_tokens":1200,"cache_read_input_tokens":0,"output_tokens":12}}"#,
            r#"{"type":"message_stop"}"#,
        ]),
    );
}

#[test]
fn stream_structured_output() {
    snapshot(
        "stream_structured_output",
        &stream_items(&[
            r#"{"type":"message_start","message":{"id":"msg_01Json","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":90,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01J","name":"switchyard_json_response","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Lis"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"bon\", \"population\": 545923}"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":30}}"#,
            r#"{"type":"message_stop"}"#,
        ]),
    );
}

#[test]
fn stream_refusal_and_redacted_thinking() {
    snapshot(
        "stream_refusal",
        &stream_items(&[
            r#"{"type":"message_start","message":{"id":"msg_01Refuse","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":30,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":"I can"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"'t help with that."}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"refusal","stop_sequence":null},"usage":{"output_tokens":8}}"#,
            r#"{"type":"message_stop"}"#,
        ]),
    );
}

/// The response snapshot and the stream snapshot describe the same answer: a client that
/// reassembles the stream gets the non-streamed message.
#[test]
fn a_reassembled_stream_matches_the_response() {
    let c = Arc::new(codec());
    let (items, _) = run_stream(&c, &[stream_text(crate::tests::STREAM_EVENTS, "\n").as_bytes()]);
    let (mut content, mut reasoning, mut finish) = (String::new(), String::new(), String::new());
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for item in &items {
        let crate::tests::Got::Chunk { json, .. } = item else {
            continue;
        };
        let v: Value = serde_json::from_str(json).expect("json");
        assert_eq!(v["created"], NOW_MS / 1000);
        let Some(choice) = v["choices"].get(0) else {
            continue;
        };
        let delta = &choice["delta"];
        content += delta["content"].as_str().unwrap_or_default();
        reasoning += delta["reasoning"].as_str().unwrap_or_default();
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = call["index"].as_u64().expect("index") as usize;
            if i == calls.len() {
                calls.push(Default::default());
            }
            let slot = &mut calls[i];
            slot.0 += call["id"].as_str().unwrap_or_default();
            slot.1 += call["function"]["name"].as_str().unwrap_or_default();
            slot.2 += call["function"]["arguments"].as_str().unwrap_or_default();
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = f.into();
        }
    }
    assert_eq!(content, "Checking \"Zürich\" and São Paulo…\n");
    assert_eq!(reasoning, "Two cities, so two calls; they can run in parallel.");
    assert_eq!(finish, "tool_calls");
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].0.as_str(), calls[0].1.as_str()),
        ("toolu_01A9q", "get_weather")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].2).expect("args"),
        json!({"city": "Zürich"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].2).expect("args"),
        json!({"city": "São Paulo"})
    );
    assert!(matches!(items.last(), Some(crate::tests::Got::Done)));
}
