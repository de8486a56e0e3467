//! Serving a cached answer in the other form (DESIGN §4 cache, "plain ↔ stream where that is
//! exact"): a stored stream answers a plain request with the completion its chunks add up
//! to, and a stored plain answer answers a stream as the chunks a provider would have sent.
//!
//! Only when nothing is lost either way: every member must be one whose meaning in the other
//! form is known (text, refusals, tool calls, finish reasons, usage). Anything else — log
//! probabilities, audio, annotations, a member a provider added — and the entry answers only
//! its own form (a miss for the other).

use serde_json::{Map, Value, json};
use std::sync::Arc;
use switchyard_plugin_api::abi::chunk_flag;
use switchyard_plugin_api::host::Payload;

/// Top-level members both forms carry with the same meaning.
const SHARED: [&str; 6] = ["id", "created", "model", "system_fingerprint", "service_tier", "usage"];

/// The completion a stream's chunks add up to; `None` when that would not be exact.
pub fn stream_to_plain(chunks: &[Payload]) -> Option<Payload> {
    let first = chunks.first()?;
    let mut top = Map::new();
    // Per choice index: role, content, refusal, tool calls (by their index), finish reason.
    let mut choices: Vec<(u64, Assembled)> = Vec::new();
    let mut usage = None;
    for chunk in chunks {
        let Value::Object(c) = serde_json::from_slice::<Value>(&chunk.json).ok()? else {
            return None;
        };
        for (key, value) in c {
            match key.as_str() {
                // `obfuscation`: OpenAI's random padding against length side channels.
                "object" | "obfuscation" => {}
                "choices" => {
                    for choice in value.as_array()? {
                        let index = choice.get("index")?.as_u64()?;
                        let at = match choices.iter().position(|(i, _)| *i == index) {
                            Some(at) => at,
                            None => {
                                choices.push((index, Assembled::default()));
                                choices.len() - 1
                            }
                        };
                        choices[at].1.add(choice.as_object()?)?;
                    }
                }
                k if SHARED.contains(&k) => {
                    if !value.is_null() {
                        top.insert(key, value);
                    }
                }
                _ => return None,
            }
        }
        if chunk.usage.is_some() {
            usage = chunk.usage;
        }
    }
    choices.sort_by_key(|(i, _)| *i);
    let mut out = Map::new();
    for key in ["id", "created", "model", "system_fingerprint", "service_tier"] {
        if let Some(v) = top.remove(key) {
            out.insert(key.into(), v);
        }
    }
    out.insert("object".into(), "chat.completion".into());
    out.insert(
        "choices".into(),
        Value::Array(choices.into_iter().map(|(i, a)| a.into_choice(i)).collect()),
    );
    if let Some(u) = top.remove("usage") {
        out.insert("usage".into(), u);
    }
    Some(Payload {
        json: serde_json::to_vec(&Value::Object(out)).ok()?,
        model: Arc::clone(&first.model),
        usage,
        flags: 0,
    })
}

/// One tool call of a stream's choice: (index, id, type, name, arguments).
type ToolCall = (u64, Option<Value>, Option<Value>, String, String);

/// One choice of a stream, as its deltas add up.
#[derive(Default)]
struct Assembled {
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<Value>,
}

impl Assembled {
    fn add(&mut self, choice: &Map<String, Value>) -> Option<()> {
        for (key, value) in choice {
            match key.as_str() {
                "index" => {}
                "logprobs" if value.is_null() => {}
                "finish_reason" => {
                    if !value.is_null() {
                        self.finish_reason = Some(value.clone());
                    }
                }
                "delta" => self.delta(value.as_object()?)?,
                _ => return None,
            }
        }
        Some(())
    }

    fn delta(&mut self, delta: &Map<String, Value>) -> Option<()> {
        for (key, value) in delta {
            match (key.as_str(), value) {
                (_, Value::Null) => {}
                ("role", v) => self.role = Some(v.clone()),
                ("content", Value::String(s)) => self.content.get_or_insert_with(String::new).push_str(s),
                ("refusal", Value::String(s)) => self.refusal.get_or_insert_with(String::new).push_str(s),
                ("tool_calls", Value::Array(calls)) => {
                    for call in calls {
                        self.tool_call(call.as_object()?)?;
                    }
                }
                _ => return None,
            }
        }
        Some(())
    }

    fn tool_call(&mut self, call: &Map<String, Value>) -> Option<()> {
        let index = call.get("index")?.as_u64()?;
        let at = match self.tool_calls.iter().position(|t| t.0 == index) {
            Some(at) => at,
            None => {
                self.tool_calls.push((index, None, None, String::new(), String::new()));
                self.tool_calls.len() - 1
            }
        };
        let slot = &mut self.tool_calls[at];
        for (key, value) in call {
            match (key.as_str(), value) {
                ("index", _) | (_, Value::Null) => {}
                ("id", v) => slot.1 = Some(v.clone()),
                ("type", v) => slot.2 = Some(v.clone()),
                ("function", Value::Object(f)) => {
                    for (k, v) in f {
                        match (k.as_str(), v) {
                            ("name", Value::String(s)) => slot.3.push_str(s),
                            ("arguments", Value::String(s)) => slot.4.push_str(s),
                            (_, Value::Null) => {}
                            _ => return None,
                        }
                    }
                }
                _ => return None,
            }
        }
        Some(())
    }

    fn into_choice(self, index: u64) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), self.role.unwrap_or_else(|| "assistant".into()));
        message.insert("content".into(), self.content.map_or(Value::Null, Value::String));
        message.insert("refusal".into(), self.refusal.map_or(Value::Null, Value::String));
        if !self.tool_calls.is_empty() {
            let mut calls = self.tool_calls;
            calls.sort_by_key(|t| t.0);
            let calls = calls
                .into_iter()
                .map(|(_, id, kind, name, arguments)| {
                    json!({
                        "id": id.unwrap_or(Value::Null),
                        "type": kind.unwrap_or_else(|| "function".into()),
                        "function": {"name": name, "arguments": arguments},
                    })
                })
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        json!({
            "index": index,
            "message": Value::Object(message),
            "logprobs": null,
            "finish_reason": self.finish_reason.unwrap_or(Value::Null),
        })
    }
}

/// The chunks a provider would have streamed for `answer`: per choice, one chunk with its
/// whole message and one with its finish reason, then a usage chunk with empty `choices`
/// (the gateway moves usage onto the finish chunk for clients that did not ask for it).
/// `None` when that would not be exact.
pub fn plain_to_stream(answer: &Payload) -> Option<Vec<Payload>> {
    let Value::Object(top) = serde_json::from_slice::<Value>(&answer.json).ok()? else {
        return None;
    };
    let mut head = Map::new();
    let mut choices = None;
    let mut usage = None;
    for (key, value) in top {
        match key.as_str() {
            "object" => {}
            "choices" => choices = Some(value),
            "usage" => usage = Some(value),
            k if SHARED.contains(&k) => {
                head.insert(key, value);
            }
            _ => return None,
        }
    }
    let chunk = |choices: Value, extra: Option<(&str, Value)>| {
        let mut c = Map::new();
        for key in ["id", "created", "model", "system_fingerprint", "service_tier"] {
            if let Some(v) = head.get(key) {
                c.insert(key.into(), v.clone());
            }
        }
        c.insert("object".into(), "chat.completion.chunk".into());
        c.insert("choices".into(), choices);
        if let Some((k, v)) = extra {
            c.insert(k.into(), v);
        }
        serde_json::to_vec(&Value::Object(c)).ok()
    };
    let payload = |json: Vec<u8>, flags: u64, usage| Payload {
        json,
        model: Arc::clone(&answer.model),
        usage,
        flags,
    };
    let mut out = Vec::new();
    let mut finishes = Vec::new();
    for choice in choices?.as_array()? {
        let choice = choice.as_object()?;
        let index = choice.get("index")?.as_u64()?;
        let mut delta = Map::new();
        for (key, value) in choice {
            match key.as_str() {
                "index" => {}
                "logprobs" if value.is_null() => {}
                "finish_reason" => {}
                "message" => delta = message_delta(value.as_object()?)?,
                _ => return None,
            }
        }
        let delta_choice = json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": null}]);
        out.push(payload(chunk(delta_choice, None)?, 0, None));
        let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        let finish_choice = json!([{"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}]);
        finishes.push(payload(chunk(finish_choice, None)?, chunk_flag::FINISH_REASON, None));
    }
    out.extend(finishes);
    if let Some(u) = usage.filter(|u| !u.is_null()) {
        out.push(payload(
            chunk(Value::Array(Vec::new()), Some(("usage", u)))?,
            chunk_flag::EMPTY_CHOICES | chunk_flag::HAS_USAGE,
            answer.usage,
        ));
    }
    Some(out)
}

/// A message as one delta; `None` when a member has no delta form.
fn message_delta(message: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut delta = Map::new();
    for (key, value) in message {
        match (key.as_str(), value) {
            ("annotations", Value::Array(a)) if a.is_empty() => {}
            ("role", v) | ("content", v) | ("refusal", v) if !v.is_null() => {
                delta.insert(key.clone(), v.clone());
            }
            ("role" | "content" | "refusal" | "tool_calls", Value::Null) => {}
            ("tool_calls", Value::Array(calls)) => {
                let indexed = calls
                    .iter()
                    .enumerate()
                    .map(|(i, call)| {
                        let mut call = call.as_object()?.clone();
                        call.insert("index".into(), i.into());
                        Some(Value::Object(call))
                    })
                    .collect::<Option<Vec<_>>>()?;
                delta.insert(key.clone(), Value::Array(indexed));
            }
            _ => return None,
        }
    }
    Some(delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_plugin_api::host::Usage;

    fn payload(json: Value, flags: u64, usage: Option<Usage>) -> Payload {
        Payload {
            json: serde_json::to_vec(&json).expect("json"),
            model: Arc::from("gpt-4o"),
            usage,
            flags,
        }
    }

    fn usage() -> Usage {
        Usage {
            prompt_tokens: 5,
            completion_tokens: 3,
            total_tokens: 8,
            ..Usage::default()
        }
    }

    fn plain() -> Payload {
        payload(
            json!({"id": "c1", "object": "chat.completion", "created": 7, "model": "gpt-4o",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "Paris is the capital.", "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"},
                    {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}, "logprobs": null, "finish_reason": "tool_calls"}
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}),
            0,
            Some(usage()),
        )
    }

    fn json_of(p: &Payload) -> Value {
        serde_json::from_slice(&p.json).expect("json")
    }

    #[test]
    fn a_plain_answer_streams_and_its_chunks_add_up_to_it() {
        let chunks = plain_to_stream(&plain()).expect("exact");
        assert_eq!(chunks.len(), 5, "two deltas, two finishes, one usage chunk");
        assert_eq!(
            json_of(&chunks[0])["choices"][0]["delta"]["content"],
            "Paris is the capital."
        );
        assert_eq!(json_of(&chunks[1])["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        assert!(chunks[2].has_finish_reason() && chunks[3].has_finish_reason());
        assert!(chunks[4].has_empty_choices());
        assert_eq!(chunks[4].usage, Some(usage()));
        assert_eq!(json_of(&chunks[0])["object"], "chat.completion.chunk");

        let back = stream_to_plain(&chunks).expect("exact");
        let (a, b) = (json_of(&back), json_of(&plain()));
        assert_eq!(
            a["choices"][0]["message"]["content"],
            b["choices"][0]["message"]["content"]
        );
        assert_eq!(
            a["choices"][1]["message"]["tool_calls"],
            b["choices"][1]["message"]["tool_calls"]
        );
        assert_eq!(a["choices"][1]["finish_reason"], "tool_calls");
        assert_eq!(a["usage"], b["usage"]);
        assert_eq!(
            (a["id"].clone(), a["object"].clone()),
            (json!("c1"), json!("chat.completion"))
        );
        assert_eq!(back.usage, Some(usage()));
    }

    #[test]
    fn a_stream_assembles_by_choice_and_tool_call_index() {
        let chunk = |choices: Value| {
            payload(
                json!({"id": "s", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices, "usage": null}),
                0,
                None,
            )
        };
        let chunks = vec![
            chunk(
                json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
            ),
            chunk(json!([{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}])),
            chunk(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "t", "type": "function", "function": {"name": "get", "arguments": "{\"c"}}]}, "finish_reason": null}]),
            ),
            chunk(
                json!([{"index": 0, "delta": {"content": "lo", "tool_calls": [{"index": 0, "function": {"arguments": "\":1}"}}]}, "finish_reason": null}]),
            ),
            chunk(json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])),
        ];
        let plain = json_of(&stream_to_plain(&chunks).expect("exact"));
        let message = &plain["choices"][0]["message"];
        assert_eq!(message["content"], "Hello");
        assert_eq!(message["tool_calls"][0]["function"]["arguments"], "{\"c\":1}");
        assert_eq!(message["tool_calls"][0]["id"], "t");
        assert_eq!(plain["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn what_has_no_exact_counterpart_is_not_converted() {
        let with_logprobs = payload(
            json!({"id": "s", "choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": {"content": []}, "finish_reason": null}]}),
            0,
            None,
        );
        assert!(stream_to_plain(&[with_logprobs]).is_none());
        let with_audio = payload(
            json!({"id": "s", "choices": [{"index": 0, "delta": {"audio": {}}}]}),
            0,
            None,
        );
        assert!(stream_to_plain(&[with_audio]).is_none());
        let odd_top = payload(json!({"id": "s", "choices": [], "x_vendor": 1}), 0, None);
        assert!(stream_to_plain(std::slice::from_ref(&odd_top)).is_none());
        assert!(plain_to_stream(&odd_top).is_none());
        let annotated = payload(
            json!({"id": "c", "choices": [{"index": 0, "message": {"role": "assistant", "content": "x", "annotations": [{"type": "url_citation"}]}, "finish_reason": "stop"}]}),
            0,
            None,
        );
        assert!(plain_to_stream(&annotated).is_none());
        assert!(stream_to_plain(&[]).is_none());
    }
}
