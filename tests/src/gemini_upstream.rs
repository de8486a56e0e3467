//! A mock Google Gemini API upstream on `127.0.0.1:0`, on raw tokio sockets so it controls framing,
//! fragmentation and connection faults exactly.
//!
//! It speaks the Gemini API's wire protocol (from the public API reference): `POST
//! /v1beta/models/{model}:generateContent` answers a `GenerateContentResponse`;
//! `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` answers server-sent events, one
//! `GenerateContentResponse` per `data:` line, and no terminator (the stream ends when the body
//! does); `POST /v1beta/models/{model}:batchEmbedContents` answers a `BatchEmbedContentsResponse`
//! (below). Failures are Google's error body `{"error": {"code", "message", "status", "details"}}`.
//! Every request is recorded.
//!
//! Like the real service it refuses what it does not know: a request without `x-goog-api-key`
//! (403 `PERMISSION_DENIED`), a wrong key (400 `API_KEY_INVALID`), unknown top-level request
//! fields and schema keywords Gemini's `Schema` lacks (`additionalProperties`, `$schema`, …) with
//! 400 `INVALID_ARGUMENT`; and, as a tripwire for a leaking gateway, any `key=` in the URL.
//!
//! Answers by the model in the path:
//!
//! | model | answer |
//! |---|---|
//! | anything else | a response reflecting the request (below) |
//! | `unavailable` | 503 `UNAVAILABLE` (model overloaded) |
//! | `exhausted` | 429 `RESOURCE_EXHAUSTED` with a `RetryInfo` detail |
//! | `internal` | 500 `INTERNAL`, the error object wrapped in a list |
//! | `missing` | 404 `NOT_FOUND` |
//! | `unauthenticated` | 401 `UNAUTHENTICATED` |
//! | `too-long` | 400 `INVALID_ARGUMENT`: the input token count exceeds the maximum |
//! | `blocked` | 200 with `promptFeedback.blockReason: SAFETY` and no candidates (streams: as the only event) |
//! | `stream-cut` | streams two events and half of a third, then drops the connection (non-stream: a truncated body) |
//!
//! Normal answers: a `functionCall` of the first declared (or the only allowed) function with
//! args `{"query": <last user text>}` when tools are given and `toolConfig` is not `NONE`; after a
//! `functionResponse`, the text `gemini got <name>: <response JSON>`; otherwise the text
//! `gemini saw: <last user text>` — as JSON `{"gemini_saw": …}` when `responseMimeType` is
//! `application/json`. A thought part (`thought: true`) comes first when
//! `thinkingConfig.includeThoughts` is set. `candidateCount` candidates; `usageMetadata` with
//! [`CACHED_TOKENS`] cached tokens and [`THOUGHT_TOKENS`] thoughts tokens when thinking;
//! `modelVersion` = model + [`MODEL_VERSION_SUFFIX`]; `responseId` `gemini-mock-N`. Streams cut
//! the text into word pieces, one event each, written in awkward fragments (mid-line, mid-UTF-8,
//! between `\r` and `\n`), CRLF on some events, LF on others, with a comment line once.
//!
//! Embeddings (`:batchEmbedContents`, the API reference's `BatchEmbedContentsRequest` →
//! `BatchEmbedContentsResponse`): `{"requests": [{"model": "models/{model}", "content": {"parts":
//! [{"text"}]}, "outputDimensionality"?, "taskType"?, "title"?}]}` → `{"embeddings": [{"values":
//! [...]}]}`, one [`text_embedding`] of each request's text (its parts joined), of
//! `outputDimensionality` (1 to [`GEMINI_MAX_EMBEDDING_DIMENSIONS`]) or [`GEMINI_EMBEDDING_DIMENSIONS`]
//! values, in request order, with no usage (the real API reports none). Refused with 400
//! `INVALID_ARGUMENT`, as Google words it: unknown fields, no requests or more than
//! [`GEMINI_MAX_EMBED_BATCH`], a request whose `model` is not the URL's, empty `parts` or text, an
//! out-of-range `outputDimensionality`. The error models above (`unavailable`, `exhausted`,
//! `internal`, `missing`, `unauthenticated`, `too-long`) fail embeddings the same way; `stream-cut`
//! sends a truncated body; `blocked` answers normally.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::upstream::{RecordedRequest, pieces, text_embedding};
use crate::wire::{read_request, status_text, write_chunk, write_fragments, write_truncated};

/// The only API key the mock accepts.
pub const GEMINI_KEY: &str = "AIzaSy-e2e-GEMINI-secret-5be1c7a0d93f";
/// Appended to the model in `modelVersion` (`gemini-2.5-flash` → `gemini-2.5-flash-001`).
pub const MODEL_VERSION_SUFFIX: &str = "-001";
/// `cachedContentTokenCount` on every answer.
pub const CACHED_TOKENS: u64 = 4;
/// `thoughtsTokenCount` when thinking was asked for.
pub const THOUGHT_TOKENS: u64 = 7;
/// How long `stream-cut` waits after its first events before it drops the connection.
pub const CUT_PAUSE: Duration = Duration::from_millis(300);
/// Vector length of embeddings without `outputDimensionality` (`gemini-embedding-001`'s).
pub const GEMINI_EMBEDDING_DIMENSIONS: usize = 3072;
/// Longest `outputDimensionality` the mock accepts.
pub const GEMINI_MAX_EMBEDDING_DIMENSIONS: u64 = 3072;
/// Most requests one `batchEmbedContents` call may carry.
pub const GEMINI_MAX_EMBED_BATCH: usize = 100;

struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    count: watch::Sender<usize>,
    ids: AtomicU64,
}

/// The mock upstream. Runs on its own tokio runtime, so tests can block or use any runtime.
pub struct GeminiUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl GeminiUpstream {
    /// Binds `127.0.0.1:0` and starts serving.
    pub fn start() -> GeminiUpstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mock-gemini")
            .enable_all()
            .build()
            .expect("build the mock Gemini runtime");
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the mock Gemini upstream");
        std_listener
            .set_nonblocking(true)
            .expect("set the listener non-blocking");
        let addr = std_listener.local_addr().expect("mock Gemini address");
        let (count, _) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            count,
            ids: AtomicU64::new(1),
        });
        let accept_shared = shared.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(std_listener).expect("register the listener");
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let shared = accept_shared.clone();
                tokio::spawn(async move {
                    serve_connection(sock, shared).await;
                });
            }
        });
        GeminiUpstream {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT` — what Google's SDKs call the base URL (no API version).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The requests for `model` (the model in the path).
    pub fn requests_for(&self, model: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| model_in_path(r).as_deref() == Some(model))
            .collect()
    }

    /// The most recent request; panics if none arrived.
    pub fn last_request(&self) -> RecordedRequest {
        self.requests()
            .pop()
            .expect("the mock Gemini upstream received no request")
    }

    /// Waits until at least `n` requests have arrived (panics after `timeout`).
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let mut rx = self.shared.count.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the mock Gemini upstream expected {n} request(s) within {timeout:?}, got {}",
            self.requests().len()
        );
        self.requests()
    }
}

impl Drop for GeminiUpstream {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The model named in a request's path (`/v1beta/models/{model}:method`), percent-decoded.
pub fn model_in_path(req: &RecordedRequest) -> Option<String> {
    let route = req.path.split('?').next()?;
    let rest = route.strip_prefix("/v1beta/models/")?;
    let (model, _) = rest.rsplit_once(':')?;
    Some(percent_decode(model))
}

/// Whether a request asked for `streamGenerateContent?alt=sse`.
pub fn is_stream(req: &RecordedRequest) -> bool {
    let (route, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    route.ends_with(":streamGenerateContent") && query.split('&').any(|p| p == "alt=sse")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 server
// ---------------------------------------------------------------------------------------------

async fn serve_connection(mut sock: TcpStream, shared: Arc<Shared>) {
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

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

async fn write_json(sock: &mut TcpStream, status: u16, body: &Value) -> bool {
    let body = serde_json::to_vec_pretty(body).unwrap_or_default();
    let mut head = format!("HTTP/1.1 {status} {}\r\n", status_text(status));
    head.push_str("content-type: application/json; charset=UTF-8\r\n");
    head.push_str("vary: Origin, X-Origin, Referer\r\n");
    head.push_str("server: scaffolding on HTTPServer2\r\n");
    let _ = write!(head, "content-length: {}\r\n\r\n", body.len());
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    sock.write_all(&out).await.is_ok() && sock.flush().await.is_ok()
}

/// Google's error body.
pub fn google_error(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

async fn write_error(sock: &mut TcpStream, code: u16, status: &str, message: &str) -> bool {
    write_json(sock, code, &google_error(code, status, message)).await
}

/// Request fields of `GenerateContentRequest` (both JSON spellings, as the API accepts).
const REQUEST_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "system_instruction",
    "tools",
    "toolConfig",
    "tool_config",
    "generationConfig",
    "generation_config",
    "safetySettings",
    "safety_settings",
    "cachedContent",
    "cached_content",
];

/// JSON Schema keywords Gemini's `Schema` does not define (it refuses them).
const FOREIGN_SCHEMA_KEYWORDS: &[&str] = &[
    "additionalProperties",
    "$schema",
    "$ref",
    "$defs",
    "definitions",
    "strict",
    "oneOf",
    "allOf",
    "const",
    "uniqueItems",
    "exclusiveMinimum",
    "exclusiveMaximum",
];

/// The first foreign keyword inside a schema, with where it is.
fn foreign_keyword(schema: &Value, at: &str) -> Option<String> {
    let map = schema.as_object()?;
    for (k, v) in map {
        if FOREIGN_SCHEMA_KEYWORDS.contains(&k.as_str()) {
            return Some(format!("Unknown name \"{k}\" at '{at}': Cannot find field."));
        }
        let nested = match k.as_str() {
            "properties" => v.as_object().and_then(|props| {
                props
                    .iter()
                    .find_map(|(name, s)| foreign_keyword(s, &format!("{at}.properties[{name}].value")))
            }),
            "items" => foreign_keyword(v, &format!("{at}.items")),
            "anyOf" => v
                .as_array()
                .and_then(|all| all.iter().find_map(|s| foreign_keyword(s, &format!("{at}.any_of")))),
            _ => None,
        };
        if nested.is_some() {
            return nested;
        }
    }
    None
}

/// What the real API would refuse in this body, as its message.
fn invalid_request(request: &Value) -> Option<String> {
    let Some(top) = request.as_object() else {
        return Some("Invalid JSON payload received. Expected an object.".into());
    };
    if let Some(unknown) = top.keys().find(|k| !REQUEST_FIELDS.contains(&k.as_str())) {
        return Some(format!(
            "Invalid JSON payload received. Unknown name \"{unknown}\": Cannot find field."
        ));
    }
    let contents = top.get("contents").and_then(Value::as_array);
    let Some(contents) = contents.filter(|c| !c.is_empty()) else {
        return Some("* GenerateContentRequest.contents: contents is not specified".into());
    };
    for (i, content) in contents.iter().enumerate() {
        if !matches!(content.get("role").and_then(Value::as_str), Some("user" | "model")) {
            return Some(format!(
                "* GenerateContentRequest.contents[{i}].role: Please use a valid role: user, model."
            ));
        }
        if content.get("parts").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            return Some(format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            ));
        }
    }
    if let Some(schema) = request.pointer("/generationConfig/responseSchema")
        && let Some(problem) = foreign_keyword(schema, "generation_config.response_schema")
    {
        return Some(format!("Invalid JSON payload received. {problem}"));
    }
    for (t, tool) in top
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (f, decl) in tool
            .get("functionDeclarations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(params) = decl.get("parameters")
                && let Some(problem) =
                    foreign_keyword(params, &format!("tools[{t}].function_declarations[{f}].parameters"))
            {
                return Some(format!("Invalid JSON payload received. {problem}"));
            }
        }
    }
    None
}

/// Writes the answer; returns whether the connection stays open for another request.
async fn respond(sock: &mut TcpStream, req: &RecordedRequest, shared: &Shared) -> bool {
    let (route, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    if query.split('&').any(|p| p.starts_with("key=")) {
        // The real API accepts this; the gateway must never do it (keys in URLs end up in logs).
        return write_error(
            sock,
            400,
            "INVALID_ARGUMENT",
            "mock: the API key was sent in the URL; it belongs in the x-goog-api-key header",
        )
        .await;
    }
    let Some(model) = model_in_path(req) else {
        let message = format!("The requested URL {route} was not found on this server.");
        return write_error(sock, 404, "NOT_FOUND", &message).await;
    };
    let stream = route.ends_with(":streamGenerateContent");
    let embed = route.ends_with(":batchEmbedContents");
    if !stream && !embed && !route.ends_with(":generateContent") {
        let message = format!("Method not found: {route}");
        return write_error(sock, 404, "NOT_FOUND", &message).await;
    }
    if stream && !query.split('&').any(|p| p == "alt=sse") {
        // The real API would answer a JSON array; this mock only speaks SSE.
        return write_error(sock, 400, "INVALID_ARGUMENT", "mock: streams need ?alt=sse").await;
    }
    if req.method != "POST" {
        return write_error(sock, 404, "NOT_FOUND", "mock: use POST").await;
    }
    match req.header("x-goog-api-key") {
        None => {
            return write_error(
                sock,
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). \
                 Please use API Key or other form of API consumer identity to call this API.",
            )
            .await;
        }
        Some(key) if key != GEMINI_KEY => {
            let body = json!({"error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }],
            }});
            return write_json(sock, 400, &body).await;
        }
        Some(_) => {}
    }
    let Ok(request) = serde_json::from_slice::<Value>(&req.body) else {
        return write_error(sock, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.").await;
    };
    if embed {
        return answer_embed(sock, &request, &model).await;
    }
    if let Some(message) = invalid_request(&request) {
        return write_error(sock, 400, "INVALID_ARGUMENT", &message).await;
    }
    let id = shared.ids.fetch_add(1, Ordering::Relaxed);

    if let Some(open) = model_error(sock, &model, "generateContent").await {
        return open;
    }
    match model.as_str() {
        "blocked" => {
            let body = blocked(&request, &model);
            if stream {
                write_stream(sock, &[body], false).await
            } else {
                write_json(sock, 200, &body).await
            }
        }
        "stream-cut" if !stream => {
            let full = serde_json::to_vec(&answer(&request, &model, id)).unwrap_or_default();
            write_truncated(sock, "application/json; charset=UTF-8", &full).await
        }
        "stream-cut" => {
            let events = stream_events(&request, &model, id);
            write_stream(sock, &events, true).await
        }
        _ if stream => {
            let events = stream_events(&request, &model, id);
            write_stream(sock, &events, false).await
        }
        _ => write_json(sock, 200, &answer(&request, &model, id)).await,
    }
}

/// Plays the error model `model` stands for (the same for every method); `None` when it is not
/// one. Returns whether the connection stays open.
async fn model_error(sock: &mut TcpStream, model: &str, method: &str) -> Option<bool> {
    let open = match model {
        "unavailable" => {
            write_error(
                sock,
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
            )
            .await
        }
        "exhausted" => {
            let body = json!({"error": {
                "code": 429,
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}],
            }});
            write_json(sock, 429, &body).await
        }
        "internal" => {
            let body = json!([google_error(
                500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
            )]);
            write_json(sock, 500, &body).await
        }
        "missing" => {
            let message =
                format!("models/{model} is not found for API version v1beta, or is not supported for {method}.");
            write_error(sock, 404, "NOT_FOUND", &message).await
        }
        "unauthenticated" => {
            write_error(
                sock,
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            )
            .await
        }
        "too-long" => {
            write_error(
                sock,
                400,
                "INVALID_ARGUMENT",
                "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576).",
            )
            .await
        }
        _ => return None,
    };
    Some(open)
}

// ---------------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------------

/// Answers `:batchEmbedContents` for `model` (the model in the path).
async fn answer_embed(sock: &mut TcpStream, request: &Value, model: &str) -> bool {
    if let Some(message) = invalid_embed_request(request, model) {
        return write_error(sock, 400, "INVALID_ARGUMENT", &message).await;
    }
    if let Some(open) = model_error(sock, model, "embedContent").await {
        return open;
    }
    let body = embed_response(request);
    if model != "stream-cut" {
        return write_json(sock, 200, &body).await;
    }
    let full = serde_json::to_vec(&body).unwrap_or_default();
    write_truncated(sock, "application/json; charset=UTF-8", &full).await
}

/// Members of `EmbedContentRequest` (both JSON spellings, as the API accepts).
const EMBED_REQUEST_FIELDS: &[&str] = &[
    "model",
    "content",
    "taskType",
    "task_type",
    "title",
    "outputDimensionality",
    "output_dimensionality",
];

/// What the real API would refuse in a `BatchEmbedContentsRequest` for `model`, as its message.
fn invalid_embed_request(request: &Value, model: &str) -> Option<String> {
    let Some(top) = request.as_object() else {
        return Some("Invalid JSON payload received. Expected an object.".into());
    };
    if let Some(unknown) = top.keys().find(|k| k.as_str() != "requests") {
        return Some(format!(
            "Invalid JSON payload received. Unknown name \"{unknown}\": Cannot find field."
        ));
    }
    let requests = top.get("requests").and_then(Value::as_array);
    let Some(requests) = requests.filter(|r| !r.is_empty()) else {
        return Some("* BatchEmbedContentsRequest.requests: requests is not specified".into());
    };
    if requests.len() > GEMINI_MAX_EMBED_BATCH {
        return Some(format!(
            "* BatchEmbedContentsRequest.requests: at most {GEMINI_MAX_EMBED_BATCH} requests can be in one batch"
        ));
    }
    let resource = format!("models/{model}");
    requests
        .iter()
        .enumerate()
        .find_map(|(i, r)| invalid_embed_content(r, i, &resource))
}

/// What is wrong with `requests[i]`, if anything.
fn invalid_embed_content(request: &Value, i: usize, resource: &str) -> Option<String> {
    let Some(fields) = request.as_object() else {
        return Some(format!(
            "Invalid JSON payload received. requests[{i}]: Expected an object."
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !EMBED_REQUEST_FIELDS.contains(&k.as_str())) {
        return Some(format!(
            "Invalid JSON payload received. Unknown name \"{unknown}\" at 'requests[{i}]': Cannot find field."
        ));
    }
    if fields.get("model").and_then(Value::as_str) != Some(resource) {
        return Some(format!(
            "* BatchEmbedContentsRequest.requests[{i}].model: The model in each request must match the model \
             specified in BatchEmbedContentsRequest.model ({resource})."
        ));
    }
    let parts = request.pointer("/content/parts").and_then(Value::as_array);
    let Some(parts) = parts.filter(|p| !p.is_empty()) else {
        return Some(format!(
            "* BatchEmbedContentsRequest.requests[{i}].content.parts: contents.parts must not be empty."
        ));
    };
    if parts
        .iter()
        .all(|p| p.get("text").and_then(Value::as_str).is_none_or(str::is_empty))
    {
        return Some(format!(
            "* BatchEmbedContentsRequest.requests[{i}].content: contents must not be empty."
        ));
    }
    let dimensionality = fields
        .get("outputDimensionality")
        .or_else(|| fields.get("output_dimensionality"));
    if let Some(d) = dimensionality
        && !d
            .as_u64()
            .is_some_and(|d| (1..=GEMINI_MAX_EMBEDDING_DIMENSIONS).contains(&d))
    {
        return Some(format!(
            "* BatchEmbedContentsRequest.requests[{i}].output_dimensionality: Output dimensionality must be \
             between 1 and {GEMINI_MAX_EMBEDDING_DIMENSIONS}."
        ));
    }
    None
}

/// The `BatchEmbedContentsResponse` for a valid request: one embedding per request, in order.
pub fn embed_response(request: &Value) -> Value {
    let requests = request.get("requests").and_then(Value::as_array);
    let embeddings: Vec<Value> = requests
        .into_iter()
        .flatten()
        .map(|r| {
            let text: String = r
                .pointer("/content/parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            let dimensions = r
                .get("outputDimensionality")
                .or_else(|| r.get("output_dimensionality"))
                .and_then(Value::as_u64)
                .and_then(|d| usize::try_from(d).ok())
                .unwrap_or(GEMINI_EMBEDDING_DIMENSIONS);
            json!({"values": text_embedding(&text, dimensions)})
        })
        .collect();
    json!({"embeddings": embeddings})
}

// ---------------------------------------------------------------------------------------------
// What a normal answer says
// ---------------------------------------------------------------------------------------------

/// The text parts of the last `user` content.
pub fn last_user_text(request: &Value) -> String {
    let Some(contents) = request.get("contents").and_then(Value::as_array) else {
        return String::new();
    };
    contents
        .iter()
        .rev()
        .find(|c| c.get("role").and_then(Value::as_str) == Some("user") && has_text(c))
        .and_then(|c| c.get("parts").and_then(Value::as_array))
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

fn has_text(content: &Value) -> bool {
    content
        .get("parts")
        .and_then(Value::as_array)
        .is_some_and(|parts| parts.iter().any(|p| p.get("text").is_some()))
}

/// The function responses in the last content, if it is the user's answer to calls.
fn function_responses(request: &Value) -> Vec<(String, Value)> {
    let last = request.get("contents").and_then(Value::as_array).and_then(|c| c.last());
    last.and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let r = p.get("functionResponse")?;
            let name = r.get("name")?.as_str()?.to_owned();
            Some((name, r.get("response").cloned().unwrap_or(Value::Null)))
        })
        .collect()
}

/// The function the mock calls, if any.
fn function_to_call(request: &Value) -> Option<String> {
    let config = request.pointer("/toolConfig/functionCallingConfig");
    if config.and_then(|c| c.get("mode")).and_then(Value::as_str) == Some("NONE") {
        return None;
    }
    if let Some(name) = config
        .and_then(|c| c.pointer("/allowedFunctionNames/0"))
        .and_then(Value::as_str)
    {
        return Some(name.to_owned());
    }
    request
        .pointer("/tools/0/functionDeclarations/0/name")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn thinking(request: &Value) -> bool {
    request
        .pointer("/generationConfig/thinkingConfig/includeThoughts")
        .and_then(Value::as_bool)
        == Some(true)
}

fn candidate_count(request: &Value) -> u64 {
    request
        .pointer("/generationConfig/candidateCount")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 8)
}

/// The text of a normal answer for `request` (no function call).
pub fn answer_text(request: &Value) -> String {
    let results = function_responses(request);
    if !results.is_empty() {
        return results
            .iter()
            .map(|(name, response)| format!("gemini got {name}: {response}"))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = last_user_text(request);
    if request
        .pointer("/generationConfig/responseMimeType")
        .and_then(Value::as_str)
        == Some("application/json")
    {
        json!({"gemini_saw": text}).to_string()
    } else {
        format!("gemini saw: {text}")
    }
}

/// The thought the mock "has" when thinking is on.
pub fn thought_text(request: &Value) -> String {
    format!("Thinking about: {}", last_user_text(request))
}

fn prompt_tokens(request: &Value) -> u64 {
    let words = request
        .get("contents")
        .map(|c| c.to_string().split_whitespace().count())
        .unwrap_or(0);
    10 + words as u64
}

fn usage(request: &Value, candidates_tokens: u64) -> Value {
    let prompt = prompt_tokens(request);
    let thoughts = if thinking(request) { THOUGHT_TOKENS } else { 0 };
    let mut usage = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates_tokens,
        "cachedContentTokenCount": CACHED_TOKENS,
        "totalTokenCount": prompt + candidates_tokens + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": CACHED_TOKENS}],
    });
    if thoughts > 0 {
        usage["thoughtsTokenCount"] = json!(thoughts);
    }
    usage
}

/// What a call's args are: `{"query": <last user text>}`.
pub fn call_args(request: &Value) -> Value {
    json!({"query": last_user_text(request)})
}

fn safety_ratings() -> Value {
    json!([
        {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"}
    ])
}

/// The candidate parts of a whole answer.
fn parts(request: &Value) -> (Vec<Value>, u64) {
    let mut parts = Vec::new();
    if thinking(request) {
        parts.push(json!({"text": thought_text(request), "thought": true}));
    }
    if function_responses(request).is_empty()
        && let Some(name) = function_to_call(request)
    {
        parts.push(json!({"functionCall": {"name": name, "args": call_args(request)}, "thoughtSignature": "bW9jay1zaWduYXR1cmU="}));
        return (parts, 8);
    }
    let text = answer_text(request);
    let tokens = pieces(&text).len() as u64;
    parts.push(json!({"text": text}));
    (parts, tokens)
}

/// The `GenerateContentResponse` of a normal non-streamed answer.
pub fn answer(request: &Value, model: &str, id: u64) -> Value {
    let n = candidate_count(request);
    let (parts, tokens) = parts(request);
    let candidates: Vec<Value> = (0..n)
        .map(|i| {
            let mut c = json!({
                "content": {"parts": parts, "role": "model"},
                "finishReason": "STOP",
                "safetyRatings": safety_ratings(),
                "avgLogprobs": -0.0421,
            });
            // proto3 JSON leaves a zero index out.
            if i > 0 {
                c["index"] = json!(i);
            }
            c
        })
        .collect();
    json!({
        "candidates": candidates,
        "usageMetadata": usage(request, tokens * n),
        "modelVersion": format!("{model}{MODEL_VERSION_SUFFIX}"),
        "responseId": format!("gemini-mock-{id}"),
    })
}

fn blocked(request: &Value, model: &str) -> Value {
    json!({
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}
            ],
        },
        "usageMetadata": {"promptTokenCount": prompt_tokens(request), "totalTokenCount": prompt_tokens(request)},
        "modelVersion": format!("{model}{MODEL_VERSION_SUFFIX}"),
    })
}

/// The stream events of a normal answer: per candidate a thought event (when thinking), the
/// text in word pieces (or the function call), then a last event with `finishReason` and the
/// full usage. Running usage (prompt only) rides on every event, as Google sends it.
pub fn stream_events(request: &Value, model: &str, id: u64) -> Vec<Value> {
    let n = candidate_count(request);
    let (parts, tokens) = parts(request);
    let version = format!("{model}{MODEL_VERSION_SUFFIX}");
    let response_id = format!("gemini-mock-{id}");
    let prompt = prompt_tokens(request);
    let running = json!({"promptTokenCount": prompt, "totalTokenCount": prompt});
    let event = |index: u64, parts: Value, finish: Option<&str>, usage: Value| {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}});
        if index > 0 {
            candidate["index"] = json!(index);
        }
        if let Some(reason) = finish {
            candidate["finishReason"] = json!(reason);
            candidate["safetyRatings"] = safety_ratings();
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": version,
            "responseId": response_id,
        })
    };
    let mut events = Vec::new();
    for i in 0..n {
        for part in &parts {
            match part.get("text").and_then(Value::as_str) {
                Some(text) if part.get("thought").is_none() => {
                    for piece in pieces(text) {
                        events.push(event(i, json!([{"text": piece}]), None, running.clone()));
                    }
                }
                _ => events.push(event(i, json!([part]), None, running.clone())),
            }
        }
        let last_usage = if i + 1 == n {
            usage(request, tokens * n)
        } else {
            running.clone()
        };
        events.push(event(i, json!([{"text": ""}]), Some("STOP"), last_usage));
    }
    events
}

/// The SSE bytes for `events`: CRLF on even events, LF on odd ones, one comment line.
pub fn sse_bytes(events: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for (i, e) in events.iter().enumerate() {
        if i == 1 {
            out.push_str(": mock keep-alive\r\n\r\n");
        }
        if i % 2 == 0 {
            let _ = write!(out, "data: {e}\r\n\r\n");
        } else {
            let _ = write!(out, "data: {e}\n\n");
        }
    }
    out.into_bytes()
}

/// Writes an SSE answer. `cut`: two events and half of the third, then the connection drops.
async fn write_stream(sock: &mut TcpStream, events: &[Value], cut: bool) -> bool {
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    head.push_str("content-type: text/event-stream\r\n");
    head.push_str("content-disposition: attachment\r\n");
    head.push_str("transfer-encoding: chunked\r\n");
    head.push_str("server: scaffolding on HTTPServer2\r\n\r\n");
    if sock.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    if !cut {
        return write_fragments(sock, &sse_bytes(events)).await
            && sock.write_all(b"0\r\n\r\n").await.is_ok()
            && sock.flush().await.is_ok();
    }
    let first = sse_bytes(&events[..2.min(events.len())]);
    let _ = write_fragments(sock, &first).await;
    // Give the gateway time to pass those on, so the failure is really mid-stream.
    tokio::time::sleep(CUT_PAUSE).await;
    if let Some(next) = events.get(2) {
        let partial = format!("data: {next}");
        let _ = write_chunk(sock, &partial.as_bytes()[..partial.len() / 2]).await;
    }
    let _ = sock.set_zero_linger();
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(path: &str) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn paths_name_the_model_and_the_method() {
        let r = recorded("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
        assert_eq!(model_in_path(&r).as_deref(), Some("gemini-2.5-flash"));
        assert!(is_stream(&r));
        let r = recorded("/v1beta/models/odd%2Fname:generateContent");
        assert_eq!(model_in_path(&r).as_deref(), Some("odd/name"));
        assert!(!is_stream(&r));
        assert_eq!(model_in_path(&recorded("/v1/chat/completions")), None);
    }

    #[test]
    fn the_mock_refuses_what_gemini_refuses() {
        assert!(invalid_request(&json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}]})).is_none());
        assert!(invalid_request(&json!({"model": "m", "contents": []})).is_some());
        assert!(invalid_request(&json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})).is_some());
        let schema = json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "generationConfig": {"responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "OBJECT", "additionalProperties": false}}}}});
        let message = invalid_request(&schema).expect("refused");
        assert!(message.contains("additionalProperties"), "{message}");
    }

    fn embed_request(texts: &[&str], dimensions: Option<u64>) -> Value {
        let requests: Vec<Value> = texts
            .iter()
            .map(|t| {
                let mut r = json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}});
                if let Some(d) = dimensions {
                    r["outputDimensionality"] = json!(d);
                }
                r
            })
            .collect();
        json!({"requests": requests})
    }

    #[test]
    fn embed_answers_follow_the_reference() {
        let r = recorded("/v1beta/models/gemini-embedding-001:batchEmbedContents");
        assert_eq!(model_in_path(&r).as_deref(), Some("gemini-embedding-001"));
        let request = embed_request(&["What is the meaning of life?", "How does gravity work?"], Some(8));
        assert!(invalid_embed_request(&request, "gemini-embedding-001").is_none());
        let answer = embed_response(&request);
        let values = |i: usize| -> Vec<f32> {
            serde_json::from_value(answer["embeddings"][i]["values"].clone()).expect("floats")
        };
        assert_eq!(answer["embeddings"].as_array().map(Vec::len), Some(2));
        assert_eq!(values(0), text_embedding("What is the meaning of life?", 8));
        assert_eq!(values(1).len(), 8);
        assert!(answer.get("usageMetadata").is_none());
        let answer = embed_response(&embed_request(&["x"], None));
        assert_eq!(
            answer["embeddings"][0]["values"].as_array().map(Vec::len),
            Some(GEMINI_EMBEDDING_DIMENSIONS)
        );
    }

    #[test]
    fn the_mock_refuses_embed_requests_gemini_refuses() {
        let model = "gemini-embedding-001";
        let many: Vec<&str> = vec!["t"; GEMINI_MAX_EMBED_BATCH + 1];
        let cases = [
            (json!({"input": "x"}), "Unknown name \"input\""),
            (json!({"requests": []}), "requests is not specified"),
            (embed_request(&many, None), "at most 100 requests"),
            (embed_request(&[""], None), "contents must not be empty"),
            (embed_request(&["x"], Some(0)), "Output dimensionality"),
            (embed_request(&["x"], Some(4000)), "Output dimensionality"),
            (
                json!({"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}),
                "must match",
            ),
            (
                json!({"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": []}}]}),
                "must not be empty",
            ),
            (
                json!({"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}, "dimensions": 8}]}),
                "Unknown name \"dimensions\"",
            ),
        ];
        for (request, needle) in cases {
            let message = invalid_embed_request(&request, model).expect("refused");
            assert!(message.contains(needle), "{request}: {message}");
        }
    }

    #[test]
    fn streams_end_with_a_finish_reason_and_usage() {
        let request = json!({"contents": [{"role": "user", "parts": [{"text": "a b c"}]}],
            "generationConfig": {"candidateCount": 2, "thinkingConfig": {"includeThoughts": true}}});
        let events = stream_events(&request, "m", 1);
        let text: String = events
            .iter()
            .filter_map(|e| e.pointer("/candidates/0/content/parts/0"))
            .filter(|p| p.get("thought").is_none() && p.get("text").is_some())
            .filter_map(|p| p["text"].as_str())
            .collect();
        assert_eq!(text, "gemini saw: a b cgemini saw: a b c");
        let last = events.last().expect("events");
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(last["candidates"][0]["index"], 1);
        assert_eq!(last["usageMetadata"]["thoughtsTokenCount"], THOUGHT_TOKENS);
    }
}
