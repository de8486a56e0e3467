//! Talking to the daemon: requests, SSE parsing, and the assertions most tests share.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::gateway::Gateway;

/// Per-request timeout of the test client (a hang fails the test instead of stalling the suite).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A plain HTTP/1.1 client for loopback (no proxy from the environment).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .expect("build the HTTP client")
}

/// A complete (non-streamed) response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("reading the response body (status {status}) failed: {e}"))
            .to_vec();
        Reply { status, headers, body }
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the status and raw body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status,
                self.text()
            )
        })
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self
    }

    /// `choices[0].message.content` as a string (panics with the body if absent).
    #[track_caller]
    pub fn content(&self) -> String {
        let v = self.json();
        v.pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no choices[0].message.content in {v:#}"))
            .to_owned()
    }

    /// Asserts an OpenAI-shaped error body: `error.message` (non-empty string), `error.type`
    /// (string), `error.code` and `error.param` present (string or null), and `extra_fields` an
    /// object. Returns the `error` object.
    #[track_caller]
    pub fn assert_error_shape(&self) -> Value {
        let v = self.json();
        let err = v
            .get("error")
            .unwrap_or_else(|| panic!("error body has no `error` object: {v:#}"));
        assert!(
            err.get("message")
                .and_then(Value::as_str)
                .is_some_and(|m| !m.is_empty()),
            "error.message must be a non-empty string: {v:#}"
        );
        assert!(
            err.get("type").and_then(Value::as_str).is_some(),
            "error.type must be a string: {v:#}"
        );
        for field in ["code", "param"] {
            let f = err
                .get(field)
                .unwrap_or_else(|| panic!("error.{field} must be present (string or null): {v:#}"));
            assert!(
                f.is_string() || f.is_null(),
                "error.{field} must be a string or null: {v:#}"
            );
        }
        assert!(
            v.get("extra_fields").is_some_and(Value::is_object),
            "error body must carry an `extra_fields` object: {v:#}"
        );
        err.clone()
    }

    /// Asserts status, error shape and `error.code`; returns the `error` object.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        self.assert_status(status);
        let err = self.assert_error_shape();
        assert_eq!(
            err.get("code").and_then(Value::as_str),
            Some(code),
            "unexpected error.code; body: {}",
            self.text()
        );
        err
    }
}

/// One SSE event as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum SseEvent {
    /// A `data:` payload that parsed as JSON.
    Json(Value),
    /// `data: [DONE]`.
    Done,
    /// A `data:` payload that is neither JSON nor `[DONE]`.
    Other(String),
}

/// A whole streamed response.
#[derive(Debug, Clone)]
pub struct Sse {
    pub status: u16,
    pub headers: HeaderMap,
    /// Everything received, as text.
    pub raw: String,
    pub events: Vec<SseEvent>,
    /// Set when reading the body failed (the connection broke) rather than ending cleanly.
    pub read_error: Option<String>,
}

/// Parses SSE text into events (LF, CRLF or CR line ends; comments and non-`data` fields ignored;
/// multi-line data joined with `\n`).
pub fn parse_sse(text: &str) -> Vec<SseEvent> {
    let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut events = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    let flush = |data: &mut Vec<&str>, events: &mut Vec<SseEvent>| {
        if data.is_empty() {
            return;
        }
        let payload = data.join("\n");
        data.clear();
        if payload.trim() == "[DONE]" {
            events.push(SseEvent::Done);
        } else {
            match serde_json::from_str(&payload) {
                Ok(v) => events.push(SseEvent::Json(v)),
                Err(_) => events.push(SseEvent::Other(payload)),
            }
        }
    };
    for line in normalised.split('\n') {
        if line.is_empty() {
            flush(&mut data, &mut events);
        } else if let Some(rest) = line.strip_prefix("data:") {
            data.push(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    flush(&mut data, &mut events);
    events
}

impl Sse {
    /// Reads a streamed response to its end (or to a read error).
    pub async fn read(mut resp: reqwest::Response) -> Sse {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut bytes = Vec::new();
        let mut read_error = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(e.to_string());
                    break;
                }
            }
        }
        Sse::from_bytes(status, headers, &bytes, read_error)
    }

    /// Builds the result from bytes read elsewhere (e.g. chunk by chunk).
    pub fn from_bytes(status: u16, headers: HeaderMap, bytes: &[u8], read_error: Option<String>) -> Sse {
        let raw = String::from_utf8_lossy(bytes).into_owned();
        let events = parse_sse(&raw);
        Sse {
            status,
            headers,
            raw,
            events,
            read_error,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// The JSON events (chunks and error events), in order.
    pub fn json_events(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SseEvent::Json(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    /// JSON events that are chunks (no top-level `error`).
    pub fn chunks(&self) -> Vec<&Value> {
        self.json_events()
            .into_iter()
            .filter(|v| v.get("error").is_none())
            .collect()
    }

    /// JSON events with a top-level `error`.
    pub fn errors(&self) -> Vec<&Value> {
        self.json_events()
            .into_iter()
            .filter(|v| v.get("error").is_some())
            .collect()
    }

    /// Whether a `data: [DONE]` arrived.
    pub fn has_done(&self) -> bool {
        self.events.contains(&SseEvent::Done)
    }

    /// The concatenated `delta.content` of choice `index`.
    pub fn content_of(&self, index: u64) -> String {
        let mut out = String::new();
        for c in self.chunks() {
            for choice in c.get("choices").and_then(Value::as_array).into_iter().flatten() {
                if choice.get("index").and_then(Value::as_u64) == Some(index)
                    && let Some(s) = choice.pointer("/delta/content").and_then(Value::as_str)
                {
                    out.push_str(s);
                }
            }
        }
        out
    }

    /// The concatenated content of choice 0.
    pub fn content(&self) -> String {
        self.content_of(0)
    }

    /// A short dump for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "status {}, read_error {:?}, body:\n{}",
            self.status, self.read_error, self.raw
        )
    }

    /// Asserts a well-formed successful stream: 200, `text/event-stream`, only JSON chunks then
    /// exactly one final `[DONE]`, `chunk_index` 0,1,2,… and `request_type: chat_completion_stream`
    /// on every chunk, no error events.
    #[track_caller]
    pub fn assert_complete(&self) {
        assert_eq!(self.status, 200, "stream status; {}", self.dump());
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("text/event-stream"),
            "content-type should be text/event-stream, got {ct:?}; {}",
            self.dump()
        );
        assert!(self.errors().is_empty(), "unexpected error event; {}", self.dump());
        assert!(
            !self.events.iter().any(|e| matches!(e, SseEvent::Other(_))),
            "an event is neither JSON nor [DONE]; {}",
            self.dump()
        );
        assert_eq!(
            self.events.last(),
            Some(&SseEvent::Done),
            "the stream must end with data: [DONE]; {}",
            self.dump()
        );
        assert_eq!(
            self.events.iter().filter(|e| **e == SseEvent::Done).count(),
            1,
            "exactly one [DONE]; {}",
            self.dump()
        );
        let chunks = self.chunks();
        assert!(!chunks.is_empty(), "no chunks; {}", self.dump());
        for c in &chunks {
            assert_chunk_schema(c);
        }
        self.assert_chunk_indexes();
    }

    /// Asserts `extra_fields.chunk_index` is 0,1,2,… and `request_type` is `chat_completion_stream`
    /// on every chunk.
    #[track_caller]
    pub fn assert_chunk_indexes(&self) {
        for (i, c) in self.chunks().iter().enumerate() {
            assert_eq!(
                c.pointer("/extra_fields/chunk_index").and_then(Value::as_u64),
                Some(i as u64),
                "chunk {i} must carry extra_fields.chunk_index = {i}: {c}\n{}",
                self.dump()
            );
            assert_eq!(
                c.pointer("/extra_fields/request_type").and_then(Value::as_str),
                Some("chat_completion_stream"),
                "chunk {i} request_type: {c}"
            );
        }
    }

    /// The chunks whose `choices` is an empty array.
    pub fn empty_choice_chunks(&self) -> Vec<&Value> {
        self.chunks()
            .into_iter()
            .filter(|c| c.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty))
            .collect()
    }
}

const FINISH_REASONS: [&str; 5] = ["stop", "length", "tool_calls", "content_filter", "function_call"];

#[track_caller]
fn assert_usage_schema(usage: &Value, ctx: &Value) {
    if usage.is_null() {
        return;
    }
    let n = |k: &str| {
        usage[k]
            .as_u64()
            .unwrap_or_else(|| panic!("usage.{k} must be a non-negative integer: {ctx}"))
    };
    let (p, c, t) = (n("prompt_tokens"), n("completion_tokens"), n("total_tokens"));
    assert_eq!(t, p + c, "usage.total_tokens = prompt + completion: {ctx}");
}

/// Asserts the required fields of OpenAI's `CreateChatCompletionResponse` (openapi.yaml): `id`,
/// `object: chat.completion`, `created`, `model`, `choices[]` with `index`, `message` (role
/// `assistant`, `content` string or null), `finish_reason` from the enum, and `logprobs` (object or
/// null); `usage` counts add up.
#[track_caller]
pub fn assert_completion_schema(v: &Value) {
    assert!(v["id"].is_string(), "id: {v}");
    assert_eq!(v["object"], "chat.completion", "object: {v}");
    assert!(v["created"].is_u64(), "created: {v}");
    assert!(v["model"].is_string(), "model: {v}");
    let choices = v["choices"].as_array().unwrap_or_else(|| panic!("choices: {v}"));
    assert!(!choices.is_empty(), "choices: {v}");
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i, "choices[{i}].index: {v}");
        assert_eq!(c["message"]["role"], "assistant", "choices[{i}].message.role: {v}");
        let content = &c["message"]["content"];
        assert!(
            content.is_string() || content.is_null(),
            "choices[{i}].message.content: {v}"
        );
        assert!(
            c["finish_reason"].as_str().is_some_and(|f| FINISH_REASONS.contains(&f)),
            "choices[{i}].finish_reason: {v}"
        );
        assert!(
            c.get("logprobs").is_some_and(|l| l.is_null() || l.is_object()),
            "choices[{i}].logprobs is required (object or null): {v}"
        );
    }
    if let Some(usage) = v.get("usage") {
        assert_usage_schema(usage, v);
    }
}

/// Asserts the required fields of OpenAI's `CreateChatCompletionStreamResponse`: `id`,
/// `object: chat.completion.chunk`, `created`, `model`, `choices[]` with `index`, `delta` (object) and
/// `finish_reason` (null or from the enum); `usage` null/absent or counts that add up.
#[track_caller]
pub fn assert_chunk_schema(c: &Value) {
    assert!(c["id"].is_string(), "id: {c}");
    assert_eq!(c["object"], "chat.completion.chunk", "object: {c}");
    assert!(c["created"].is_u64(), "created: {c}");
    assert!(c["model"].is_string(), "model: {c}");
    let choices = c["choices"].as_array().unwrap_or_else(|| panic!("choices: {c}"));
    for ch in choices {
        assert!(ch["index"].is_u64(), "choice index: {c}");
        assert!(ch["delta"].is_object(), "choice delta: {c}");
        let f = ch
            .get("finish_reason")
            .unwrap_or_else(|| panic!("finish_reason required: {c}"));
        assert!(
            f.is_null() || f.as_str().is_some_and(|f| FINISH_REASONS.contains(&f)),
            "finish_reason: {c}"
        );
    }
    if let Some(usage) = c.get("usage") {
        assert_usage_schema(usage, c);
    }
}

/// A minimal chat request.
pub fn chat_body(model: &str, user: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": user}]})
}

/// A minimal streaming chat request.
pub fn stream_body(model: &str, user: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": user}]})
}

impl Gateway {
    /// POSTs JSON to `path` (with `content-type: application/json`).
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post_with(path, body, &[]).await
    }

    /// POSTs JSON with extra headers.
    pub async fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut req = http()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("serialise the request"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} failed: {e}\n--- daemon output ---\n{}", self.logs()));
        Reply::read(resp).await
    }

    /// POSTs raw bytes, with an optional content type.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>, content_type: Option<&str>) -> Reply {
        let mut req = http().post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} failed: {e}\n--- daemon output ---\n{}", self.logs()));
        Reply::read(resp).await
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> Reply {
        let resp = http()
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}\n--- daemon output ---\n{}", self.logs()));
        Reply::read(resp).await
    }

    /// DELETEs `path`.
    pub async fn delete(&self, path: &str) -> Reply {
        let resp = http()
            .delete(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {path} failed: {e}\n--- daemon output ---\n{}", self.logs()));
        Reply::read(resp).await
    }

    /// `POST /v1/chat/completions`.
    pub async fn chat(&self, body: &Value) -> Reply {
        self.post_json("/v1/chat/completions", body).await
    }

    /// `POST /v1/chat/completions` expecting a stream; reads it to the end.
    pub async fn stream(&self, body: &Value) -> Sse {
        self.stream_with("/v1/chat/completions", body, &[]).await
    }

    /// Streaming POST to `path` with extra headers.
    pub async fn stream_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Sse {
        let mut req = http()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("serialise the request"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} failed: {e}\n--- daemon output ---\n{}", self.logs()));
        Sse::read(resp).await
    }

    /// Asserts the daemon still answers a normal request (`local/echo` via the mock plugin).
    pub async fn assert_serving(&self) {
        let reply = self.chat(&chat_body("local/echo", "still alive?")).await;
        assert_eq!(
            reply.status,
            200,
            "the daemon must keep serving after an error; got {} {}\n--- daemon output ---\n{}",
            reply.status,
            reply.text(),
            self.logs()
        );
        let content = reply.content();
        assert!(
            content.contains("still alive?"),
            "local/echo should echo the message, got {content:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parsing_handles_crlf_comments_and_done() {
        let text = ": hello\n\ndata: {\"a\":1}\r\n\r\ndata: not json\n\ndata: [DONE]\n\n";
        let events = parse_sse(text);
        assert_eq!(
            events,
            vec![
                SseEvent::Json(json!({"a": 1})),
                SseEvent::Other("not json".into()),
                SseEvent::Done
            ]
        );
    }
}
