//! A mock Anthropic Messages API on `127.0.0.1:0`, on raw tokio sockets so it controls framing and
//! fragmentation exactly.
//!
//! It speaks the wire protocol of `POST /v1/messages` as Anthropic's API reference describes it:
//! the `x-api-key` and `anthropic-version` headers, the request body (checked strictly, so a bad
//! translation fails loudly: required `model` / `max_tokens`, alternating `user` / `assistant` turns
//! starting with `user`, non-empty content, `tool_result`s that answer the previous turn's `tool_use`
//! ids and come first in their turn, no unknown top-level fields, thinking rules), the `message`
//! object, the named SSE events of a stream, and the error body
//! `{"type":"error","error":{"type","message"},"request_id"}`. Every request is recorded.
//!
//! Answers, by the requested `model`:
//!
//! | model | answer |
//! |---|---|
//! | anything else | a message reflecting the request (see below) |
//! | `overloaded` | 529 `overloaded_error` |
//! | `rate-limited` | 429 `rate_limit_error` with `retry-after` |
//! | `prompt-too-long` | 400 `invalid_request_error` "prompt is too long: …" |
//! | `server-error` | 500 `api_error` |
//! | `not-found` | 404 `not_found_error` |
//! | `stream-error` | a stream whose `error` event (`overloaded_error`) follows `message_start` before any content (non-streaming: 529) |
//! | `stream-error-late` | a stream that sends part of its text, then an `error` event (`api_error`) (non-streaming: 500) |
//! | `stream-truncated` | a stream that stops after part of its text, without `message_delta` / `message_stop` |
//! | `refuse` | `stop_reason: refusal` |
//!
//! Normal answers: `upstream saw: <text of the last user turn>` (with ` [N image(s)]` when that turn
//! has images), or `tool said: <result text>` when the last user turn carries `tool_result`s; a
//! `tool_use` of the named (or first) tool when `tools` are given and the last turn is not a tool
//! result (its input fills the schema's properties: strings with the user's text); a `thinking`
//! block (with a signature) first when `thinking` is enabled; `model` = requested model +
//! [`MODEL_SUFFIX`]; usage with [`CACHE_READ`] and [`CACHE_WRITE`] tokens. Streams are real Anthropic
//! SSE (`event:` + `data:` lines), cut into awkward fragments (mid-line, mid-UTF-8), every other
//! event with CRLF line ends, with `ping` events between.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::upstream::RecordedRequest;
use crate::wire::{read_request, status_text, write_fragments};

/// The only key the mock accepts (configure it as the provider's key).
pub const ANTHROPIC_KEY: &str = "sk-ant-api03-e2e-MOCK-secret-5b1f0c9e7d";
/// The only `anthropic-version` the mock accepts.
pub const API_VERSION: &str = "2023-06-01";
/// Appended to the requested model in answers (`claude-sonnet-4-5` → `claude-sonnet-4-5-20250929`).
pub const MODEL_SUFFIX: &str = "-20250929";
/// `cache_read_input_tokens` on every answer.
pub const CACHE_READ: u64 = 8;
/// `cache_creation_input_tokens` on every answer.
pub const CACHE_WRITE: u64 = 2;
/// Of the cache writes, those to a 1-hour cache (`usage.cache_creation.ephemeral_1h_input_tokens`).
pub const CACHE_WRITE_1H: u64 = 1;
/// The signature on mock thinking blocks.
pub const THINKING_SIGNATURE: &str = "EqQBCkgIBRABGAIqQMockSignature==";

struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    count: watch::Sender<usize>,
    ids: AtomicU64,
}

/// The mock Anthropic API. Runs on its own tokio runtime, so tests can use any runtime.
pub struct AnthropicUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl AnthropicUpstream {
    /// Binds `127.0.0.1:0` and starts serving.
    pub fn start() -> AnthropicUpstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mock-anthropic")
            .enable_all()
            .build()
            .expect("build the mock Anthropic runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the mock Anthropic API");
        listener.set_nonblocking(true).expect("set the listener non-blocking");
        let addr = listener.local_addr().expect("mock Anthropic address");
        let (count, _) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            count,
            ids: AtomicU64::new(1),
        });
        let accept_shared = shared.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("register the listener");
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let shared = accept_shared.clone();
                tokio::spawn(async move { serve(sock, shared).await });
            }
        });
        AnthropicUpstream {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT` — what Anthropic's SDKs call the base URL (no `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The requests whose body asked for `model`.
    pub fn requests_for(&self, model: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.model() == model).collect()
    }

    /// The most recent request; panics if none arrived.
    pub fn last_request(&self) -> RecordedRequest {
        self.requests()
            .pop()
            .expect("the mock Anthropic API received no request")
    }

    /// Waits until at least `n` requests have arrived (panics after `timeout`).
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let mut rx = self.shared.count.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the mock Anthropic API expected {n} request(s) within {timeout:?}, got {}",
            self.requests().len()
        );
        self.requests()
    }
}

impl Drop for AnthropicUpstream {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1
// ---------------------------------------------------------------------------------------------

async fn serve(mut sock: TcpStream, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    while let Some(request) = read_request(&mut sock, &mut buf).await {
        if let Ok(mut all) = shared.requests.lock() {
            all.push(request.clone());
            shared.count.send_replace(all.len());
        }
        if !respond(&mut sock, &request, &shared).await {
            return;
        }
    }
}

fn request_id(shared: &Shared) -> String {
    format!("req_mock{:016}", shared.ids.load(Ordering::Relaxed))
}

async fn write_json(sock: &mut TcpStream, status: u16, extra: &[(&str, String)], body: &Value) -> bool {
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut head = format!("HTTP/1.1 {status} {}\r\n", status_text(status));
    head.push_str("content-type: application/json\r\n");
    let _ = write!(head, "content-length: {}\r\n", body.len());
    for (k, v) in extra {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    sock.write_all(&out).await.is_ok() && sock.flush().await.is_ok()
}

/// Anthropic's error body.
pub fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock_error"})
}

async fn write_error(sock: &mut TcpStream, status: u16, kind: &str, message: &str) -> bool {
    write_json(sock, status, &[], &error_body(kind, message)).await
}

/// Writes the answer; returns whether the connection stays open.
async fn respond(sock: &mut TcpStream, req: &RecordedRequest, shared: &Shared) -> bool {
    if req.path.split('?').next() != Some("/v1/messages") {
        return write_error(sock, 404, "not_found_error", "Not found").await;
    }
    if req.method != "POST" {
        return write_error(sock, 405, "invalid_request_error", "Method not allowed").await;
    }
    match req.header("x-api-key") {
        None => return write_error(sock, 401, "authentication_error", "x-api-key header is required").await,
        Some(key) if key != ANTHROPIC_KEY => {
            return write_error(sock, 401, "authentication_error", "invalid x-api-key").await;
        }
        Some(_) => {}
    }
    match req.header("anthropic-version") {
        None => {
            return write_error(
                sock,
                400,
                "invalid_request_error",
                "anthropic-version: header is required",
            )
            .await;
        }
        Some(v) if v != API_VERSION => {
            let message = format!("anthropic-version: \"{v}\" is not a valid version");
            return write_error(sock, 400, "invalid_request_error", &message).await;
        }
        Some(_) => {}
    }
    let Ok(request) = serde_json::from_slice::<Value>(&req.body) else {
        return write_error(
            sock,
            400,
            "invalid_request_error",
            "There was an issue with your request body: invalid JSON",
        )
        .await;
    };
    if let Err(message) = validate(&request) {
        return write_error(sock, 400, "invalid_request_error", &message).await;
    }
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    let stream = request["stream"] == true;
    let id = shared.ids.fetch_add(1, Ordering::Relaxed);
    let mode = match model.as_str() {
        "overloaded" => return write_error(sock, 529, "overloaded_error", "Overloaded").await,
        "rate-limited" => {
            let headers = [
                ("retry-after", "3".to_owned()),
                ("anthropic-ratelimit-requests-limit", "50".to_owned()),
                ("anthropic-ratelimit-requests-remaining", "0".to_owned()),
                ("request-id", request_id(shared)),
            ];
            let body = error_body(
                "rate_limit_error",
                "This request would exceed the rate limit for your organization of 50 requests per minute.",
            );
            return write_json(sock, 429, &headers, &body).await;
        }
        "prompt-too-long" => {
            return write_error(
                sock,
                400,
                "invalid_request_error",
                "prompt is too long: 210345 tokens > 200000 maximum",
            )
            .await;
        }
        "server-error" => return write_error(sock, 500, "api_error", "Internal server error").await,
        "not-found" => return write_error(sock, 404, "not_found_error", "model: not-found").await,
        "stream-error" if !stream => return write_error(sock, 529, "overloaded_error", "Overloaded").await,
        "stream-error-late" if !stream => return write_error(sock, 500, "api_error", "Internal server error").await,
        "stream-error" => StreamMode::ErrorFirst,
        "stream-error-late" => StreamMode::ErrorLate,
        "stream-truncated" => StreamMode::Truncated,
        _ => StreamMode::Normal,
    };
    let answer = Answer::for_request(&request, &model, id);
    let headers = [
        ("request-id", request_id(shared)),
        ("anthropic-ratelimit-requests-remaining", "49".to_owned()),
    ];
    if stream {
        write_stream(sock, &answer, mode, &headers).await
    } else {
        write_json(sock, 200, &headers, &answer.message()).await
    }
}

// ---------------------------------------------------------------------------------------------
// Request checks (what the real API refuses with 400 invalid_request_error)
// ---------------------------------------------------------------------------------------------

const TOP_LEVEL_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
];

fn validate(request: &Value) -> Result<(), String> {
    let Some(obj) = request.as_object() else {
        return Err("body: Input should be an object".into());
    };
    if let Some(extra) = obj.keys().find(|k| !TOP_LEVEL_FIELDS.contains(&k.as_str())) {
        return Err(format!("{extra}: Extra inputs are not permitted"));
    }
    if !obj.get("model").is_some_and(Value::is_string) {
        return Err("model: Field required".into());
    }
    let max_tokens = obj
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or("max_tokens: Field required")?;
    if let Some(system) = obj.get("system") {
        match system {
            Value::String(s) if !s.is_empty() => {}
            Value::Array(blocks) if blocks.iter().all(|b| b["type"] == "text" && b["text"].is_string()) => {}
            _ => return Err("system: Input should be a valid string or a list of text blocks".into()),
        }
    }
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("messages: at least one message is required")?;
    let mut previous_tool_uses: Vec<String> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or_default();
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if role != "user" && role != "assistant" {
            return Err(format!("messages.{i}.role: Input should be 'user' or 'assistant'"));
        }
        if role != expected {
            return Err(format!(
                "messages: roles must alternate between \"user\" and \"assistant\", and the first message must use the \"user\" role (messages.{i})"
            ));
        }
        let blocks = match &message["content"] {
            Value::String(s) if !s.is_empty() => Vec::new(),
            Value::Array(blocks) if !blocks.is_empty() => blocks.clone(),
            _ => return Err(format!("messages.{i}: all messages must have non-empty content")),
        };
        let mut seen_other = false;
        let mut tool_uses = Vec::new();
        for (j, block) in blocks.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            match block["type"].as_str().unwrap_or_default() {
                "text" => {
                    if block["text"].as_str().is_none_or(str::is_empty) {
                        return Err(format!("{at}: text content blocks must be non-empty"));
                    }
                    seen_other = true;
                }
                "image" | "document" => {
                    let source = &block["source"];
                    let ok = match source["type"].as_str() {
                        Some("base64") => source["media_type"].is_string() && source["data"].is_string(),
                        Some("url") => source["url"].as_str().is_some_and(|u| u.starts_with("http")),
                        _ => false,
                    };
                    if !ok || role != "user" {
                        return Err(format!("{at}.source: invalid image or document source"));
                    }
                    seen_other = true;
                }
                "tool_use" if role == "assistant" => {
                    let id = block["id"].as_str().unwrap_or_default();
                    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                        return Err(format!("{at}.id: String should match pattern '^[a-zA-Z0-9_-]+$'"));
                    }
                    if !block["input"].is_object() || !block["name"].is_string() {
                        return Err(format!("{at}: tool_use needs a name and an object input"));
                    }
                    tool_uses.push(id.to_owned());
                }
                "tool_result" if role == "user" => {
                    if seen_other {
                        return Err(format!(
                            "{at}: tool_result blocks must come before any other content in a user turn"
                        ));
                    }
                    let id = block["tool_use_id"].as_str().unwrap_or_default();
                    if !previous_tool_uses.iter().any(|u| u == id) {
                        return Err(format!(
                            "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        ));
                    }
                }
                "thinking" | "redacted_thinking" if role == "assistant" => {}
                other => return Err(format!("{at}.type: unexpected block type `{other}` here")),
            }
        }
        previous_tool_uses = tool_uses;
    }
    if let Some(thinking) = obj.get("thinking").filter(|t| t["type"] == "enabled") {
        let budget = thinking["budget_tokens"].as_u64().unwrap_or(0);
        if budget < 1024 || budget >= max_tokens {
            return Err("thinking.budget_tokens: must be ≥ 1024 and less than max_tokens".into());
        }
        if obj.get("temperature").is_some_and(|t| t.as_f64() != Some(1.0)) {
            return Err("temperature: may only be set to 1 when thinking is enabled".into());
        }
        if matches!(
            obj.get("tool_choice").and_then(|c| c["type"].as_str()),
            Some("any" | "tool")
        ) {
            return Err("Thinking may not be enabled when tool_choice forces tool use.".into());
        }
    }
    if obj.get("tool_choice").is_some() && !obj.get("tools").is_some_and(Value::is_array) {
        return Err("tool_choice: tool_choice may only be specified while providing tools".into());
    }
    for (i, tool) in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !tool["name"].is_string() || tool["input_schema"]["type"] != "object" {
            return Err(format!("tools.{i}: a name and an object input_schema are required"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/// What the mock answers a request with, before it is written as a message or a stream.
struct Answer {
    id: String,
    model: String,
    thinking: Option<String>,
    text: Option<String>,
    tool: Option<(String, String, Value)>,
    stop_reason: &'static str,
    input_tokens: u64,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Fills an input schema's properties: strings get `text`, numbers 42, booleans true.
fn fill_schema(schema: &Value, text: &str) -> Value {
    let mut input = Map::new();
    let properties = schema["properties"].as_object().cloned().unwrap_or_default();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_else(|| properties.keys().map(String::as_str).collect());
    for name in required {
        let value = match properties.get(name).and_then(|p| p["type"].as_str()) {
            Some("integer" | "number") => json!(42),
            Some("boolean") => json!(true),
            Some("array") => json!([text]),
            _ => json!(text),
        };
        input.insert(name.to_owned(), value);
    }
    Value::Object(input)
}

impl Answer {
    fn for_request(request: &Value, model: &str, id: u64) -> Answer {
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        let last = messages.last().cloned().unwrap_or(Value::Null);
        let blocks = last["content"].as_array().cloned().unwrap_or_default();
        let results: Vec<String> = blocks
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .map(|b| text_of(&b["content"]))
            .collect();
        let images = blocks.iter().filter(|b| b["type"] == "image").count();
        let user_text = text_of(&last["content"]);
        let words: usize = messages
            .iter()
            .map(|m| text_of(&m["content"]).split_whitespace().count())
            .sum();
        let system_words = text_of(&request["system"]).split_whitespace().count();

        let tool_choice = request["tool_choice"]["type"].as_str().unwrap_or("auto");
        let tools = request["tools"].as_array().cloned().unwrap_or_default();
        let tool = if results.is_empty() && tool_choice != "none" {
            let wanted = request["tool_choice"]["name"].as_str();
            tools.iter().find(|t| wanted.is_none_or(|w| t["name"] == w)).map(|t| {
                let name = t["name"].as_str().unwrap_or_default().to_owned();
                let input = fill_schema(&t["input_schema"], &user_text);
                (format!("toolu_mock{id:04}"), name, input)
            })
        } else {
            None
        };
        let text = if tool.is_some() {
            None
        } else if model == "refuse" {
            Some("I can't help with that.".to_owned())
        } else if !results.is_empty() {
            Some(format!("tool said: {}", results.join("; ")))
        } else if images > 0 {
            let s = if images == 1 { "" } else { "s" };
            Some(format!("upstream saw: {user_text} [{images} image{s}]"))
        } else {
            Some(format!("upstream saw: {user_text}"))
        };
        let thinking = (request["thinking"]["type"] == "enabled").then(|| format!("thinking about: {user_text}"));
        let stop_reason = if model == "refuse" {
            "refusal"
        } else if tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        };
        Answer {
            id: format!("msg_mock{id:04}"),
            model: format!("{model}{MODEL_SUFFIX}"),
            thinking,
            text,
            tool,
            stop_reason,
            input_tokens: 10 + (words + system_words) as u64,
        }
    }

    /// Output pieces: thinking, text and tool-input fragments, as a stream sends them.
    fn pieces(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        for c in text.chars() {
            current.push(c);
            if c == ' ' {
                out.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    fn input_pieces(input: &Value) -> Vec<String> {
        let json = input.to_string();
        let chars: Vec<char> = json.chars().collect();
        chars.chunks(6).map(|c| c.iter().collect()).collect()
    }

    fn output_tokens(&self) -> u64 {
        let mut n = 1;
        n += self.thinking.as_deref().map_or(0, |t| Self::pieces(t).len());
        n += self.text.as_deref().map_or(0, |t| Self::pieces(t).len());
        n += self
            .tool
            .as_ref()
            .map_or(0, |(_, _, input)| Self::input_pieces(input).len());
        n as u64
    }

    fn usage(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": CACHE_WRITE,
            "cache_read_input_tokens": CACHE_READ,
            "cache_creation": {
                "ephemeral_5m_input_tokens": CACHE_WRITE - CACHE_WRITE_1H,
                "ephemeral_1h_input_tokens": CACHE_WRITE_1H,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        })
    }

    fn blocks(&self) -> Vec<Value> {
        let mut blocks = Vec::new();
        if let Some(thinking) = &self.thinking {
            blocks.push(json!({"type": "thinking", "thinking": thinking, "signature": THINKING_SIGNATURE}));
        }
        if let Some(text) = &self.text {
            blocks.push(json!({"type": "text", "text": text}));
        }
        if let Some((id, name, input)) = &self.tool {
            blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
        blocks
    }

    /// The non-streamed `message`.
    fn message(&self) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.blocks(),
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage(self.output_tokens()),
        })
    }

    /// The stream events (data objects, in order), as the API sends them.
    fn events(&self) -> Vec<Value> {
        let mut events = vec![json!({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": self.usage(1)}})];
        let mut index = 0;
        let mut block = |events: &mut Vec<Value>, start: Value, deltas: Vec<Value>| {
            events.push(json!({"type": "content_block_start", "index": index, "content_block": start}));
            if index == 0 {
                events.push(json!({"type": "ping"}));
            }
            for delta in deltas {
                events.push(json!({"type": "content_block_delta", "index": index, "delta": delta}));
            }
            events.push(json!({"type": "content_block_stop", "index": index}));
            index += 1;
        };
        if let Some(thinking) = &self.thinking {
            let mut deltas: Vec<Value> = Self::pieces(thinking)
                .into_iter()
                .map(|p| json!({"type": "thinking_delta", "thinking": p}))
                .collect();
            deltas.push(json!({"type": "signature_delta", "signature": THINKING_SIGNATURE}));
            block(
                &mut events,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                deltas,
            );
        }
        if let Some(text) = &self.text {
            let deltas = Self::pieces(text)
                .into_iter()
                .map(|p| json!({"type": "text_delta", "text": p}))
                .collect();
            block(&mut events, json!({"type": "text", "text": ""}), deltas);
        }
        if let Some((id, name, input)) = &self.tool {
            let mut deltas = vec![json!({"type": "input_json_delta", "partial_json": ""})];
            deltas.extend(
                Self::input_pieces(input)
                    .into_iter()
                    .map(|p| json!({"type": "input_json_delta", "partial_json": p})),
            );
            block(
                &mut events,
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                deltas,
            );
        }
        events.push(json!({"type": "ping"}));
        events.push(json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": self.output_tokens()}}));
        events.push(json!({"type": "message_stop"}));
        events
    }
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum StreamMode {
    Normal,
    /// `message_start`, `ping`, an empty text block start, then an `overloaded_error` event.
    ErrorFirst,
    /// Part of the text, then an `api_error` event.
    ErrorLate,
    /// Part of the text, then the connection ends cleanly.
    Truncated,
}

/// Named SSE events; every other one with CRLF line ends.
pub fn sse_bytes(events: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for (i, event) in events.iter().enumerate() {
        let name = event["type"].as_str().unwrap_or("message");
        let eol = if i % 2 == 1 { "\r\n" } else { "\n" };
        let _ = write!(out, "event: {name}{eol}data: {event}{eol}{eol}");
    }
    out.into_bytes()
}

async fn write_stream(sock: &mut TcpStream, answer: &Answer, mode: StreamMode, extra: &[(&str, String)]) -> bool {
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    head.push_str("content-type: text/event-stream; charset=utf-8\r\n");
    head.push_str("transfer-encoding: chunked\r\n");
    head.push_str("cache-control: no-cache\r\n");
    for (k, v) in extra {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    if sock.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let mut events = answer.events();
    match mode {
        StreamMode::Normal => {}
        StreamMode::ErrorFirst => {
            events.truncate(1);
            events.push(json!({"type": "ping"}));
            events.push(
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            );
            events.push(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
        }
        StreamMode::ErrorLate | StreamMode::Truncated => {
            // Through the first two content deltas.
            let cut = events
                .iter()
                .enumerate()
                .filter(|(_, e)| e["type"] == "content_block_delta")
                .nth(1)
                .map_or(events.len(), |(i, _)| i + 1);
            events.truncate(cut);
            if mode == StreamMode::ErrorLate {
                events
                    .push(json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}));
            }
        }
    }
    write_fragments(sock, &sse_bytes(&events)).await
        && sock.write_all(b"0\r\n\r\n").await.is_ok()
        && sock.flush().await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: Value) -> Value {
        let mut r = json!({"model": "claude-x", "max_tokens": 100,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}]});
        if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(extra.clone());
        }
        r
    }

    #[test]
    fn validation_refuses_what_the_api_refuses() {
        assert!(validate(&request(json!({}))).is_ok());
        assert!(validate(&request(json!({"stream_options": {}}))).is_err_and(|e| e.contains("Extra inputs")));
        assert!(
            validate(&request(
                json!({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})
            ))
            .is_err_and(|e| e.contains("alternate"))
        );
        assert!(validate(&request(json!({"messages": [{"role": "system", "content": "a"}]}))).is_err());
        assert!(validate(&request(json!({"messages": [{"role": "user", "content": ""}]}))).is_err());
        assert!(
            validate(&request(
                json!({"thinking": {"type": "enabled", "budget_tokens": 2048}})
            ))
            .is_err()
        );
        assert!(validate(&request(json!({"tool_choice": {"type": "auto"}}))).is_err());
        let tool_turns = json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}]});
        assert!(validate(&request(tool_turns)).is_err_and(|e| e.contains("before any other content")));
        let wrong_id = json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "sunny"}]}]});
        assert!(validate(&request(wrong_id)).is_err_and(|e| e.contains("toolu_2")));
    }

    #[test]
    fn answers_reflect_the_request() {
        let a = Answer::for_request(&request(json!({})), "claude-x", 1);
        assert_eq!(a.text.as_deref(), Some("upstream saw: hi there"));
        let m = a.message();
        assert_eq!(m["model"], "claude-x-20250929");
        assert_eq!(m["usage"]["cache_read_input_tokens"], CACHE_READ);
        let tools = json!({"tools": [{"name": "get_weather", "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048});
        let a = Answer::for_request(&request(tools), "claude-x", 2);
        assert_eq!(a.stop_reason, "tool_use");
        let (_, name, input) = a.tool.clone().expect("tool call");
        assert_eq!(
            (name.as_str(), input),
            ("get_weather", json!({"city": "hi there", "days": 42}))
        );
        let events = a.events();
        assert_eq!(events[0]["type"], "message_start");
        assert_eq!(events.last().map(|e| e["type"].clone()), Some(json!("message_stop")));
        // Tool input fragments reassemble to the input.
        let args: String = events
            .iter()
            .filter_map(|e| e["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).ok(),
            Some(json!({"city": "hi there", "days": 42}))
        );
        assert!(events.iter().any(|e| e["delta"]["type"] == "signature_delta"));
    }
}
