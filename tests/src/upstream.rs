//! A mock OpenAI upstream on `127.0.0.1:0`, written on raw tokio sockets so it controls framing,
//! fragmentation and connection faults exactly.
//!
//! It speaks OpenAI's wire protocol for `POST /v1/chat/completions` (the shapes of
//! `CreateChatCompletionResponse`, `CreateChatCompletionStreamResponse` and the error object) and
//! `POST /v1/embeddings` (below), records every request, and answers by the requested `model`:
//!
//! | model | answer |
//! |---|---|
//! | anything else | a `chat.completion` reflecting the request (see below) |
//! | `fail-500`, `fail-502`, `fail-503`, `fail-504` | OpenAI-style `server_error` with that status |
//! | `fail-429` | 429 `rate_limit_exceeded` with `retry-after: 1` |
//! | `fail-429-bare` | the same without `retry-after` |
//! | `fail-429-date` | the same with `retry-after` as an HTTP date one to two seconds ahead |
//! | `fail-429-long` | the same with `retry-after: 120` |
//! | `fail-429-hostile` | the same with `retry-after-ms: 1e300` and `retry-after: 1e300` (numbers no upstream should send) |
//! | `content-filter-400` | 400 `content_filter` (Azure OpenAI's content-management refusal) |
//! | `silent` | reads the request and never answers (holds the connection until the peer closes) |
//! | `flaky-N-FAULT` | the first N requests for this exact model get FAULT (any fault above), later ones a normal answer |
//! | (any, with a key containing `RATELIMITED`) | 429 `insufficient_quota` |
//! | (any, with a key containing `REVOKED`) | 401 `invalid_api_key`, key masked as OpenAI does |
//! | `flappy` | 503 while [`MockUpstream::set_down`] says the upstream is down, else a normal answer |
//! | `fail-401` | 401 `invalid_api_key` (key masked) |
//! | `leaky-401` | 401 whose message contains the received API key verbatim |
//! | `fail-404` | 404 `model_not_found` |
//! | `context-400` | 400 `context_length_exceeded` |
//! | `garbage` | 200 with a body that is not JSON |
//! | `slow` | sleeps [`SLOW_DELAY`] before the response headers |
//! | `delay-MS` | sleeps MS milliseconds, then answers normally |
//! | `reset` | resets the connection without a response |
//! | `stream-cut` | streams 3 chunks, pauses [`CUT_PAUSE`], drops the connection mid-event (non-stream: truncated JSON) |
//! | `stream-no-done` | a stream that ends cleanly without `data: [DONE]` |
//! | `late-first-token` | a stream whose headers come at once, then only keep-alive comments for [`SLOW_DELAY`] before the first chunk |
//! | `idle-stream` | a stream that goes silent for [`SLOW_DELAY`] after its first chunks (a close during the silence is an abort) |
//! | `drip-stream` | a stream of [`DRIP_CHUNKS`] chunks, [`DRIP_INTERVAL`] apart |
//! | `drip-stream-long` | the same with [`DRIP_CHUNKS_LONG`] chunks |
//! | `stream-malformed` | a stream with one malformed (non-JSON) event among good ones |
//! | `stream-error-first` | a 200 stream whose first and only event is an error (no `[DONE]`) |
//! | `stream-multiline` | a normal stream whose events are pretty-printed JSON split over several `data:` lines (SSE joins them with newlines) |
//! | `stream-ends-early` | three content chunks, then a clean end of the body: no `finish_reason`, no `[DONE]` |
//! | `stream-firehose` | [`FIREHOSE_CHUNKS`] chunks of about 1 KiB each, as fast as the socket takes them |
//! | `scripted` | the text pieces set by [`MockUpstream::set_script`]: joined as the content of a plain answer (every choice of `n`); in a stream one content chunk per piece (and choice), each piece in its own write, [`SCRIPT_GAP`] apart (so the gateway reads them separately), then a finish chunk |
//! | `scripted-no-finish` | the same stream without a `finish_reason` chunk (the pieces, the usage chunk when asked, `[DONE]`) |
//!
//! A stream the mock cannot finish writing because the other side closed counts as aborted
//! ([`MockUpstream::aborted_streams`]).
//!
//! Normal answers: content `upstream saw: <last user message>` (JSON when `response_format` asks for
//! it), `model` = requested model + [`MODEL_SUFFIX`], `n` choices, logprobs when asked, a tool call when
//! `tools` are given (unless `tool_choice: "none"`), usage with cached and reasoning token details, and
//! `x-ratelimit-*` headers. Streams are real OpenAI SSE, cut into awkward fragments (mid-line, mid-UTF-8),
//! some events with CRLF line ends, `: keep-alive` comments in between, a usage chunk with empty
//! `choices` when `stream_options.include_usage` is set, then `data: [DONE]`.
//!
//! Embeddings (`POST /v1/embeddings`, OpenAI's `CreateEmbeddingRequest` → `CreateEmbeddingResponse`):
//! `input` is a string, an array of strings, an array of token ids or an array of token-id arrays
//! (at most [`MAX_EMBEDDING_INPUTS`], none empty); `dimensions` (1 to
//! [`MAX_EMBEDDING_DIMENSIONS`], default [`EMBEDDING_DIMENSIONS`]; refused for `*ada-002*` models, as
//! OpenAI does); `encoding_format` `float` (default) or `base64` (little-endian `f32`s). The answer is
//! `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage":
//! {"prompt_tokens", "total_tokens"}}` with the requested model as is, one [`text_embedding`] per input
//! (token ids embedded as their decimal text) and a word count (token count for ids) as usage. A bad
//! request is OpenAI's 400 (`'$.input' is invalid. …`). The fault models above that fail whatever
//! the route (`fail-*`, `content-filter-400`, `context-400`, `silent`, `garbage`, `reset`, the key
//! faults, `flaky-N-…`, `flappy`) fail embeddings the same way; `slow` and `delay-MS` delay them; the
//! stream models answer normally.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::wire::{read_request, status_text, write_chunk, write_fragments, write_truncated};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Appended to the requested model in answers, so tests can tell what the upstream answered
/// (`gpt-4o` → `gpt-4o-2024-08-06`).
pub const MODEL_SUFFIX: &str = "-2024-08-06";
/// How long `slow` waits before answering and `idle-stream` stays silent.
pub const SLOW_DELAY: Duration = Duration::from_secs(5);
/// Gap between the chunks of `drip-stream`.
pub const DRIP_INTERVAL: Duration = Duration::from_millis(150);
/// How long `stream-cut` waits after its first events before it drops the connection.
pub const CUT_PAUSE: Duration = Duration::from_millis(300);
/// Number of content chunks `drip-stream` sends.
pub const DRIP_CHUNKS: usize = 8;
/// Number of content chunks `stream-firehose` sends (tens of MiB: more than loopback socket
/// buffers hold, so a client that does not read stalls the stream).
pub const FIREHOSE_CHUNKS: usize = 40_000;
/// Number of content chunks `drip-stream-long` sends (long enough that a cancelled stream is
/// noticed before it could finish).
pub const DRIP_CHUNKS_LONG: usize = 60;
/// Pause between the separately written pieces of a `scripted` stream: long enough that each piece
/// reaches the gateway in its own read.
pub const SCRIPT_GAP: Duration = Duration::from_millis(100);
/// The `x-request-id` the upstream sends on its responses (the gateway must not hand it to clients
/// as theirs).
pub const UPSTREAM_REQUEST_ID: &str = "req_mock_upstream_0001";
/// `x-ratelimit-remaining-requests` on normal answers.
pub const RATELIMIT_REMAINING: &str = "9876";
/// Vector length of embeddings when the request names none (OpenAI's `text-embedding-3-small`).
pub const EMBEDDING_DIMENSIONS: usize = 1536;
/// Longest vector the mock writes (OpenAI's `text-embedding-3-large`).
pub const MAX_EMBEDDING_DIMENSIONS: u64 = 3072;
/// Most inputs one embeddings request may carry (OpenAI's limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

const CHAT_ROUTE: &str = "/v1/chat/completions";
const EMBEDDINGS_ROUTE: &str = "/v1/embeddings";

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    /// Header names lower-cased, in arrival order (repeats kept).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body parsed as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `model` field of the body.
    pub fn model(&self) -> String {
        self.json()
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    count: watch::Sender<usize>,
    /// Streams the mock could not finish writing because the other side went away.
    aborts: watch::Sender<usize>,
    ids: AtomicU64,
    down: AtomicBool,
    /// The pieces `scripted` answers with.
    script: Mutex<Vec<String>>,
}

/// The mock upstream. Runs on its own tokio runtime, so tests can block or use any runtime.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl MockUpstream {
    /// Binds `127.0.0.1:0` and starts serving.
    pub fn start() -> MockUpstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mock-upstream")
            .enable_all()
            .build()
            .expect("build the mock upstream runtime");
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the mock upstream");
        std_listener
            .set_nonblocking(true)
            .expect("set the listener non-blocking");
        let addr = std_listener.local_addr().expect("mock upstream address");
        let (count, _) = watch::channel(0usize);
        let (aborts, _) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            count,
            aborts,
            ids: AtomicU64::new(1),
            down: AtomicBool::new(false),
            script: Mutex::new(Vec::new()),
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
        MockUpstream {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT/v1` — what OpenAI's SDKs call the base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The requests whose body asked for `model`.
    pub fn requests_for(&self, model: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.model() == model).collect()
    }

    /// Takes the `flappy` model down (503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Sets what the `scripted` models answer: `pieces` joined (plain) or one chunk per piece (stream).
    pub fn set_script(&self, pieces: &[&str]) {
        if let Ok(mut script) = self.shared.script.lock() {
            *script = pieces.iter().map(|p| (*p).to_owned()).collect();
        }
    }

    /// The most recent request; panics if none arrived.
    pub fn last_request(&self) -> RecordedRequest {
        self.requests().pop().expect("the mock upstream received no request")
    }

    /// How many streams the mock could not finish writing because the gateway closed the connection.
    pub fn aborted_streams(&self) -> usize {
        *self.shared.aborts.borrow()
    }

    /// Waits until at least `n` streams were aborted by the other side; returns whether they were.
    pub async fn wait_for_aborts(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.shared.aborts.subscribe();
        matches!(tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await, Ok(Ok(_)))
    }

    /// Waits until at least `n` requests have arrived (panics after `timeout`).
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let mut rx = self.shared.count.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the mock upstream expected {n} request(s) within {timeout:?}, got {}",
            self.requests().len()
        );
        self.requests()
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
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

fn ratelimit_headers() -> Vec<(&'static str, String)> {
    vec![
        ("x-ratelimit-limit-requests", "10000".to_owned()),
        ("x-ratelimit-remaining-requests", RATELIMIT_REMAINING.to_owned()),
        ("x-ratelimit-reset-requests", "6ms".to_owned()),
        ("x-ratelimit-limit-tokens", "30000000".to_owned()),
        ("x-ratelimit-remaining-tokens", "29999000".to_owned()),
        ("x-ratelimit-reset-tokens", "0s".to_owned()),
    ]
}

fn common_headers() -> Vec<(&'static str, String)> {
    vec![
        ("x-request-id", UPSTREAM_REQUEST_ID.to_owned()),
        ("openai-processing-ms", "7".to_owned()),
        ("openai-version", "2020-10-01".to_owned()),
    ]
}

async fn write_json(sock: &mut TcpStream, status: u16, extra: &[(&str, String)], body: &[u8]) -> bool {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", status_text(status));
    head.push_str("content-type: application/json\r\n");
    let _ = write!(head, "content-length: {}\r\n", body.len());
    for (k, v) in common_headers().iter().chain(extra.iter()) {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    sock.write_all(&out).await.is_ok() && sock.flush().await.is_ok()
}

fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "error": {"message": message, "type": kind, "param": param, "code": code}
    }))
    .unwrap_or_default()
}

/// OpenAI's 401 for a key it does not accept, naming the key as `shown` (masked, or not).
fn invalid_key_body(shown: &str) -> Vec<u8> {
    error_body(
        &format!(
            "Incorrect API key provided: {shown}. You can find your API key at \
             https://platform.openai.com/account/api-keys."
        ),
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    )
}

fn bearer_key(req: &RecordedRequest) -> Option<String> {
    let auth = req.header("authorization")?;
    let key = auth.strip_prefix("Bearer ")?;
    Some(key.trim().to_owned())
}

fn mask_key(key: &str) -> String {
    let head: String = key.chars().take(3).collect();
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}*************{tail}")
}

/// Writes the answer; returns whether the connection stays open for another request.
async fn respond(sock: &mut TcpStream, req: &RecordedRequest, shared: &Shared) -> bool {
    let route = req.path.split('?').next().unwrap_or_default();
    if route != CHAT_ROUTE && route != EMBEDDINGS_ROUTE {
        let body = error_body(
            &format!("Invalid URL ({} {})", req.method, req.path),
            "invalid_request_error",
            None,
            None,
        );
        return write_json(sock, 404, &[], &body).await;
    }
    if req.method != "POST" {
        let body = error_body(
            &format!("Invalid method for URL ({} {})", req.method, req.path),
            "invalid_request_error",
            None,
            None,
        );
        return write_json(sock, 405, &[], &body).await;
    }
    let Some(key) = bearer_key(req) else {
        let body = error_body(
            "You didn't provide an API key. You need to provide your API key in an Authorization \
             header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
            None,
        );
        return write_json(sock, 401, &[], &body).await;
    };
    if key.contains("REVOKED") {
        // A key the provider no longer accepts, whatever the model.
        return write_json(sock, 401, &[], &invalid_key_body(&mask_key(&key))).await;
    }
    if key.contains("RATELIMITED") {
        // A key whose quota is spent, whatever the model.
        let body = error_body(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            None,
            Some("insufficient_quota"),
        );
        return write_json(sock, 429, &[], &body).await;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&req.body) else {
        let body = error_body(
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
            None,
        );
        return write_json(sock, 400, &[], &body).await;
    };
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    let id = shared.ids.fetch_add(1, Ordering::Relaxed);

    // The fault to play: the model's own, or a scripted one for `flaky-N-…` and `flappy`.
    let fault = if let Some((n, fault)) = flaky(&model) {
        let seen = shared
            .requests
            .lock()
            .map(|all| all.iter().filter(|r| r.model() == model).count())
            .unwrap_or(0);
        if seen <= n { fault.to_owned() } else { "ok".to_owned() }
    } else if model == "flappy" {
        if shared.down.load(Ordering::SeqCst) {
            "fail-503"
        } else {
            "ok"
        }
        .to_owned()
    } else {
        model.clone()
    };

    if let Some(open) = play_fault(sock, &fault, &model, &key).await {
        return open;
    }
    if route == EMBEDDINGS_ROUTE {
        return answer_embeddings(sock, &request, &model, &fault).await;
    }
    match fault.as_str() {
        // A 200 stream that ends before any chunk: nothing was answered.
        "empty-stream" => write_json(sock, 200, &[], b"data: [DONE]\n\n").await,
        // A redirect to this same server: a gateway that followed it would send a second request.
        "redirect" => {
            let headers = [("location", "/v1/chat/completions?moved=1".to_owned())];
            write_json(sock, 302, &headers, b"{}").await
        }
        "slow" => {
            tokio::time::sleep(SLOW_DELAY).await;
            answer(sock, shared, &request, &model, id, stream, StreamMode::Normal).await
        }
        "stream-cut" => {
            if stream {
                answer(sock, shared, &request, &model, id, true, StreamMode::Cut).await
            } else {
                let full = serde_json::to_vec(&completion(&request, &model, id)).unwrap_or_default();
                write_truncated(sock, "application/json", &full).await
            }
        }
        "stream-no-done" => answer(sock, shared, &request, &model, id, stream, StreamMode::NoDone).await,
        "idle-stream" => answer(sock, shared, &request, &model, id, stream, StreamMode::Idle).await,
        "late-first-token" => answer(sock, shared, &request, &model, id, stream, StreamMode::LateFirstToken).await,
        "drip-stream" => {
            answer(
                sock,
                shared,
                &request,
                &model,
                id,
                stream,
                StreamMode::Drip(DRIP_CHUNKS),
            )
            .await
        }
        "drip-stream-long" => {
            answer(
                sock,
                shared,
                &request,
                &model,
                id,
                stream,
                StreamMode::Drip(DRIP_CHUNKS_LONG),
            )
            .await
        }
        "stream-malformed" => answer(sock, shared, &request, &model, id, stream, StreamMode::Malformed).await,
        "stream-error-first" => answer(sock, shared, &request, &model, id, stream, StreamMode::ErrorFirst).await,
        "stream-multiline" => answer(sock, shared, &request, &model, id, stream, StreamMode::Multiline).await,
        "stream-firehose" => answer(sock, shared, &request, &model, id, stream, StreamMode::Firehose).await,
        "stream-ends-early" => answer(sock, shared, &request, &model, id, stream, StreamMode::EndsEarly).await,
        "scripted" | "scripted-no-finish" => {
            let pieces = shared.script.lock().map(|s| s.clone()).unwrap_or_default();
            let finish = model == "scripted";
            answer_script(sock, shared, &request, &model, id, stream, &pieces, finish).await
        }
        m => {
            if let Some(ms) = m.strip_prefix("delay-").and_then(|ms| ms.parse::<u64>().ok()) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            answer(sock, shared, &request, &model, id, stream, StreamMode::Normal).await
        }
    }
}

/// Plays `fault` when it is one that fails whatever the route (an error status, a connection
/// fault, garbage); returns whether the connection stays open, or `None` when `fault` is not
/// one of those (a normal answer, a stream fault, a delay).
async fn play_fault(sock: &mut TcpStream, fault: &str, model: &str, key: &str) -> Option<bool> {
    let open = match fault {
        "fail-500" => {
            let body = error_body(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
                None,
            );
            write_json(sock, 500, &[], &body).await
        }
        "fail-503" => {
            let body = error_body(
                "The engine is currently overloaded, please try again later.",
                "server_error",
                None,
                None,
            );
            write_json(sock, 503, &[], &body).await
        }
        "fail-502" | "fail-504" => {
            let status = if fault == "fail-502" { 502 } else { 504 };
            let body = error_body("Bad gateway.", "server_error", None, None);
            write_json(sock, status, &[], &body).await
        }
        "fail-429" | "fail-429-bare" | "fail-429-date" | "fail-429-long" | "fail-429-hostile" => {
            let body = error_body(
                "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1.",
                "requests",
                None,
                Some("rate_limit_exceeded"),
            );
            let mut headers = match fault {
                "fail-429" => vec![("retry-after", "1".to_owned())],
                "fail-429-long" => vec![("retry-after", "120".to_owned())],
                "fail-429-hostile" => vec![
                    ("retry-after-ms", "1e300".to_owned()),
                    ("retry-after", "1e300".to_owned()),
                ],
                "fail-429-date" => {
                    // HTTP dates have whole seconds: two seconds ahead is at least one second away.
                    let at = std::time::SystemTime::now() + Duration::from_secs(2);
                    vec![("retry-after", httpdate::fmt_http_date(at))]
                }
                _ => Vec::new(),
            };
            headers.push(("x-ratelimit-limit-requests", "3".to_owned()));
            headers.push(("x-ratelimit-remaining-requests", "0".to_owned()));
            write_json(sock, 429, &headers, &body).await
        }
        "content-filter-400" => {
            let body = error_body(
                "The response was filtered due to the prompt triggering Azure OpenAI's content management \
                 policy. Please modify your prompt and retry.",
                "invalid_request_error",
                Some("prompt"),
                Some("content_filter"),
            );
            write_json(sock, 400, &[], &body).await
        }
        "silent" => {
            // Never answer; hold the connection until the gateway gives up and closes it.
            let mut sink = [0u8; 1024];
            while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
            false
        }
        "fail-401" => write_json(sock, 401, &[], &invalid_key_body(&mask_key(key))).await,
        "leaky-401" => write_json(sock, 401, &[], &invalid_key_body(key)).await,
        "fail-404" => {
            let body = error_body(
                &format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error",
                None,
                Some("model_not_found"),
            );
            write_json(sock, 404, &[], &body).await
        }
        "context-400" => {
            let body = error_body(
                "This model's maximum context length is 128000 tokens. However, your messages \
                 resulted in 210345 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                Some("messages"),
                Some("context_length_exceeded"),
            );
            write_json(sock, 400, &[], &body).await
        }
        "garbage" => {
            let body = b"<html><head><title>oops</title></head><body>upstream garbage, not JSON";
            write_json(sock, 200, &ratelimit_headers(), body).await
        }
        "reset" => {
            let _ = sock.set_zero_linger();
            false
        }
        _ => return None,
    };
    Some(open)
}

/// `flaky-N-FAULT` → (N, FAULT).
fn flaky(model: &str) -> Option<(usize, &str)> {
    let (n, fault) = model.strip_prefix("flaky-")?.split_once('-')?;
    Some((n.parse().ok()?, fault))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StreamMode {
    Normal,
    Cut,
    NoDone,
    Idle,
    LateFirstToken,
    Drip(usize),
    Malformed,
    ErrorFirst,
    Multiline,
    Firehose,
    EndsEarly,
}

async fn answer(
    sock: &mut TcpStream,
    shared: &Shared,
    request: &Value,
    model: &str,
    id: u64,
    stream: bool,
    mode: StreamMode,
) -> bool {
    if stream {
        let finished = write_stream(sock, request, model, id, mode).await;
        if !finished && mode != StreamMode::Cut {
            shared.aborts.send_modify(|n| *n += 1);
        }
        finished
    } else {
        let body = serde_json::to_vec(&completion(request, model, id)).unwrap_or_default();
        write_json(sock, 200, &ratelimit_headers(), &body).await
    }
}

/// The `scripted` answer: `pieces` as the content, each piece its own stream chunk and write.
#[allow(clippy::too_many_arguments)]
async fn answer_script(
    sock: &mut TcpStream,
    shared: &Shared,
    request: &Value,
    model: &str,
    id: u64,
    stream: bool,
    pieces: &[String],
    finish: bool,
) -> bool {
    let mut normal = completion(request, model, id);
    let usage_value = usage(request, pieces.len() as u64);
    if !stream {
        let choices: Vec<Value> = (0..n_choices(request))
            .map(|i| {
                json!({
                    "index": i,
                    "message": {"role": "assistant", "content": pieces.concat(), "refusal": null, "annotations": []},
                    "logprobs": null,
                    "finish_reason": "stop",
                })
            })
            .collect();
        normal["choices"] = json!(choices);
        normal["usage"] = usage_value;
        let body = serde_json::to_vec(&normal).unwrap_or_default();
        return write_json(sock, 200, &ratelimit_headers(), &body).await;
    }
    if !write_stream_head(sock).await {
        return false;
    }
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let chunk = |choices: Value| {
        let mut c = json!({
            "id": format!("chatcmpl-mock{id}"),
            "object": "chat.completion.chunk",
            "created": created(),
            "model": format!("{model}{MODEL_SUFFIX}"),
            "system_fingerprint": "fp_e2e_mock",
            "choices": choices,
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let event = |c: &Value| format!("data: {c}\n\n");
    let n = n_choices(request);
    // One event per choice, all in the same write.
    let per_choice = |delta: Value, finish_reason: Value| -> String {
        (0..n)
            .map(|i| {
                event(&chunk(json!([{
                    "index": i, "delta": delta, "logprobs": null, "finish_reason": finish_reason,
                }])))
            })
            .collect()
    };
    let mut writes = vec![per_choice(json!({"role": "assistant", "content": ""}), Value::Null)];
    for piece in pieces {
        writes.push(per_choice(json!({"content": piece}), Value::Null));
    }
    // The end goes out in one write: finish chunks (unless left out), usage chunk, [DONE].
    let mut end = String::new();
    if finish {
        end.push_str(&per_choice(json!({}), json!("stop")));
    }
    if include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = usage_value;
        end.push_str(&event(&last));
    }
    end.push_str("data: [DONE]\n\n");
    writes.push(end);
    for (i, w) in writes.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(SCRIPT_GAP).await;
        }
        if !write_chunk(sock, w.as_bytes()).await {
            shared.aborts.send_modify(|n| *n += 1);
            return false;
        }
    }
    write_chunk_end(sock).await
}

// ---------------------------------------------------------------------------------------------
// What a normal answer says
// ---------------------------------------------------------------------------------------------

/// The text of the last user message (string content or text parts).
pub fn last_user_text(request: &Value) -> String {
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    let Some(last) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    match last.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// What the mock answers for `request` (before any JSON formatting): `upstream saw: <text>`.
pub fn reply_text(request: &Value) -> String {
    format!("upstream saw: {}", last_user_text(request))
}

fn wants_json(request: &Value) -> bool {
    matches!(
        request.pointer("/response_format/type").and_then(Value::as_str),
        Some("json_object" | "json_schema")
    )
}

/// The assistant's content for `request`.
pub fn content_for(request: &Value) -> String {
    if wants_json(request) {
        json!({"upstream_saw": last_user_text(request)}).to_string()
    } else {
        reply_text(request)
    }
}

/// The tool the mock calls, if any: the one `tool_choice` names, else the first of `tools`.
fn tool_to_call(request: &Value) -> Option<String> {
    let tools = request.get("tools").and_then(Value::as_array)?;
    if tools.is_empty() {
        return None;
    }
    match request.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => None,
        Some(Value::Object(choice)) => choice
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => tools[0]
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

fn tool_arguments(request: &Value) -> String {
    json!({"query": last_user_text(request)}).to_string()
}

/// Splits text into pieces the way a tokenizer might: words with their leading space.
pub fn pieces(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        if i == 0 {
            out.push(word.to_owned());
        } else {
            out.push(format!(" {word}"));
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

fn n_choices(request: &Value) -> u64 {
    request.get("n").and_then(Value::as_u64).unwrap_or(1).clamp(1, 8)
}

fn logprob_entry(token: &str, top: u64) -> Value {
    let top_list: Vec<Value> = (0..top)
        .map(|i| {
            let alt = if i == 0 {
                token.to_owned()
            } else {
                format!("{token}~{i}")
            };
            json!({
                "token": alt,
                "logprob": -0.25 * (i as f64 + 1.0),
                "bytes": alt.as_bytes(),
            })
        })
        .collect();
    json!({
        "token": token,
        "logprob": -0.25,
        "bytes": token.as_bytes(),
        "top_logprobs": top_list,
    })
}

fn logprobs_for(request: &Value, toks: &[String]) -> Value {
    if request.get("logprobs").and_then(Value::as_bool) != Some(true) {
        return Value::Null;
    }
    let top = request.get("top_logprobs").and_then(Value::as_u64).unwrap_or(0);
    json!({
        "content": toks.iter().map(|t| logprob_entry(t, top)).collect::<Vec<_>>(),
        "refusal": null,
    })
}

fn prompt_tokens(request: &Value) -> u64 {
    let words: usize = request
        .get("messages")
        .and_then(Value::as_array)
        .map(|msgs| msgs.iter().map(|m| m.to_string().split_whitespace().count()).sum())
        .unwrap_or(0);
    10 + words as u64
}

/// Usage for an answer with `completion` tokens: fixed cached (4) and reasoning (2) details.
fn usage(request: &Value, completion: u64) -> Value {
    let prompt = prompt_tokens(request);
    let completion = completion + 2;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 2,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

fn created() -> u64 {
    1_767_225_600
}

/// The `chat.completion` the mock answers with.
pub fn completion(request: &Value, model: &str, id: u64) -> Value {
    let n = n_choices(request);
    let tool = tool_to_call(request);
    let content = content_for(request);
    let toks = pieces(&content);
    let mut completion_tokens = 0;
    let choices: Vec<Value> = (0..n)
        .map(|i| {
            if let Some(name) = &tool {
                let args = tool_arguments(request);
                completion_tokens += pieces(&args).len() as u64;
                json!({
                    "index": i,
                    "message": {
                        "role": "assistant",
                        "content": null,
                        "refusal": null,
                        "annotations": [],
                        "tool_calls": [{
                            "id": format!("call_mock_{id}_{i}"),
                            "type": "function",
                            "function": {"name": name, "arguments": args},
                        }],
                    },
                    "logprobs": null,
                    "finish_reason": "tool_calls",
                })
            } else {
                completion_tokens += toks.len() as u64;
                json!({
                    "index": i,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": null,
                        "annotations": [],
                    },
                    "logprobs": logprobs_for(request, &toks),
                    "finish_reason": "stop",
                })
            }
        })
        .collect();
    json!({
        "id": format!("chatcmpl-mock{id}"),
        "object": "chat.completion",
        "created": created(),
        "model": format!("{model}{MODEL_SUFFIX}"),
        "choices": choices,
        "usage": usage(request, completion_tokens),
        "service_tier": "default",
        "system_fingerprint": "fp_e2e_mock",
    })
}

/// The stream chunks (as JSON values) the mock sends for `request`, usage chunk included when the
/// request asked for it.
pub fn stream_chunks(request: &Value, model: &str, id: u64) -> Vec<Value> {
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let n = n_choices(request);
    let tool = tool_to_call(request);
    let content = content_for(request);
    let toks = pieces(&content);
    let model_answered = format!("{model}{MODEL_SUFFIX}");
    let chunk = |choices: Value| {
        let mut c = json!({
            "id": format!("chatcmpl-mock{id}"),
            "object": "chat.completion.chunk",
            "created": created(),
            "model": model_answered,
            "service_tier": "default",
            "system_fingerprint": "fp_e2e_mock",
            "choices": choices,
            "obfuscation": "q7Zx",
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let mut out = Vec::new();
    let mut completion_tokens = 0;
    for i in 0..n {
        if let Some(name) = &tool {
            out.push(chunk(json!([{
                "index": i,
                "delta": {
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "index": 0,
                        "id": format!("call_mock_{id}_{i}"),
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }],
                    "refusal": null,
                },
                "logprobs": null,
                "finish_reason": null,
            }])));
            let args = tool_arguments(request);
            // Arguments in small fragments, as OpenAI sends them.
            let chars: Vec<char> = args.chars().collect();
            for part in chars.chunks(5) {
                completion_tokens += 1;
                out.push(chunk(json!([{
                    "index": i,
                    "delta": {"tool_calls": [{
                        "index": 0,
                        "function": {"arguments": part.iter().collect::<String>()},
                    }]},
                    "logprobs": null,
                    "finish_reason": null,
                }])));
            }
            out.push(chunk(json!([{
                "index": i, "delta": {}, "logprobs": null, "finish_reason": "tool_calls",
            }])));
        } else {
            out.push(chunk(json!([{
                "index": i,
                "delta": {"role": "assistant", "content": "", "refusal": null},
                "logprobs": null,
                "finish_reason": null,
            }])));
            for tok in &toks {
                completion_tokens += 1;
                let logprobs = logprobs_for(request, std::slice::from_ref(tok));
                out.push(chunk(json!([{
                    "index": i,
                    "delta": {"content": tok},
                    "logprobs": logprobs,
                    "finish_reason": null,
                }])));
            }
            out.push(chunk(json!([{
                "index": i, "delta": {}, "logprobs": null, "finish_reason": "stop",
            }])));
        }
    }
    if include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = usage(request, completion_tokens);
        out.push(last);
    }
    out
}

/// The SSE bytes for `chunks`: LF events, every other one CRLF, `: keep-alive` comments between
/// some, `data: [DONE]` at the end when `done`.
pub fn sse_bytes(chunks: &[Value], done: bool) -> Vec<u8> {
    let mut out = String::new();
    for (i, c) in chunks.iter().enumerate() {
        if i % 3 == 1 {
            out.push_str(": keep-alive\n\n");
        }
        if i % 2 == 1 {
            let _ = write!(out, "data: {c}\r\n\r\n");
        } else {
            let _ = write!(out, "data: {c}\n\n");
        }
    }
    if done {
        out.push_str("data: [DONE]\n\n");
    }
    out.into_bytes()
}

/// The status line and headers of a 200 SSE answer (chunked body).
async fn write_stream_head(sock: &mut TcpStream) -> bool {
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    head.push_str("content-type: text/event-stream; charset=utf-8\r\n");
    head.push_str("transfer-encoding: chunked\r\n");
    head.push_str("cache-control: no-cache\r\n");
    for (k, v) in common_headers().iter().chain(ratelimit_headers().iter()) {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).await.is_ok()
}

async fn write_stream(sock: &mut TcpStream, request: &Value, model: &str, id: u64, mode: StreamMode) -> bool {
    if !write_stream_head(sock).await {
        return false;
    }
    let chunks = stream_chunks(request, model, id);
    match mode {
        StreamMode::Normal => {
            let bytes = sse_bytes(&chunks, true);
            write_fragments(sock, &bytes).await && write_chunk_end(sock).await
        }
        StreamMode::NoDone => {
            let bytes = sse_bytes(&chunks, false);
            write_fragments(sock, &bytes).await && write_chunk_end(sock).await
        }
        StreamMode::Cut => {
            // Three whole events, then half of the fourth, then the connection goes away.
            let first = sse_bytes(&chunks[..3.min(chunks.len())], false);
            let _ = write_fragments(sock, &first).await;
            // Give the gateway time to pass those on, so the failure is really mid-stream.
            tokio::time::sleep(CUT_PAUSE).await;
            if let Some(next) = chunks.get(3) {
                let partial = format!("data: {next}");
                let _ = write_chunk(sock, &partial.as_bytes()[..partial.len() / 2]).await;
            }
            let _ = sock.set_zero_linger();
            false
        }
        StreamMode::Malformed => {
            // A broken event between good ones: a gateway skips it and goes on.
            let split = 2.min(chunks.len());
            let mut bytes = sse_bytes(&chunks[..split], false);
            bytes.extend_from_slice(b"data: {\"id\": \"broken\", \"choices\": [\n\n");
            bytes.extend_from_slice(&sse_bytes(&chunks[split..], true));
            write_fragments(sock, &bytes).await && write_chunk_end(sock).await
        }
        StreamMode::EndsEarly => {
            let bytes = sse_bytes(&chunks[..3.min(chunks.len())], false);
            write_fragments(sock, &bytes).await && write_chunk_end(sock).await
        }
        StreamMode::Multiline => {
            // Each event's JSON pretty-printed, one `data:` line per line of it.
            let mut out = String::new();
            for c in &chunks {
                let pretty = serde_json::to_string_pretty(c).unwrap_or_default();
                for line in pretty.lines() {
                    let _ = writeln!(out, "data: {line}");
                }
                out.push('\n');
            }
            out.push_str("data: [DONE]\n\n");
            write_fragments(sock, out.as_bytes()).await && write_chunk_end(sock).await
        }
        StreamMode::Firehose => {
            let base = chunks.first().cloned().unwrap_or(Value::Null);
            let filler = "x".repeat(1000);
            for i in 0..FIREHOSE_CHUNKS {
                let mut c = base.clone();
                c["choices"] = json!([{
                    "index": 0,
                    "delta": {"content": format!("{i} {filler} ")},
                    "logprobs": null,
                    "finish_reason": null,
                }]);
                if !write_chunk(sock, format!("data: {c}\n\n").as_bytes()).await {
                    return false;
                }
            }
            let mut fin = base;
            fin["choices"] = json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]);
            write_chunk(sock, format!("data: {fin}\n\ndata: [DONE]\n\n").as_bytes()).await
                && write_chunk_end(sock).await
        }
        StreamMode::ErrorFirst => {
            // A 200 stream whose first event is an error, as OpenAI sends for failures that
            // happen after the headers went out.
            let event = json!({"error": {
                "message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error", "param": null, "code": null}});
            let bytes = format!("data: {event}\n\n");
            write_fragments(sock, bytes.as_bytes()).await && write_chunk_end(sock).await
        }
        StreamMode::LateFirstToken => {
            // Headers at once, then only SSE keep-alive comments for SLOW_DELAY: alive, but
            // no token. Comments must not count as progress.
            let deadline = tokio::time::Instant::now() + SLOW_DELAY;
            while tokio::time::Instant::now() < deadline {
                if !write_chunk(sock, b": keep-alive\n\n").await {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let bytes = sse_bytes(&chunks, true);
            write_fragments(sock, &bytes).await && write_chunk_end(sock).await
        }
        StreamMode::Idle => {
            let split = 2.min(chunks.len());
            let first = sse_bytes(&chunks[..split], false);
            if !write_fragments(sock, &first).await {
                return false;
            }
            // Silent, but watching the connection: a gateway that closes it (its client went
            // away) is counted as an abort at once, not only at the next write.
            let mut probe = [0u8; 1];
            tokio::select! {
                _ = tokio::time::sleep(SLOW_DELAY) => {}
                read = sock.read(&mut probe) => if matches!(read, Ok(0) | Err(_)) {
                    return false;
                },
            }
            let rest = sse_bytes(&chunks[split..], true);
            write_fragments(sock, &rest).await && write_chunk_end(sock).await
        }
        StreamMode::Drip(count) => {
            // The content is replaced by `count` numbered pieces, one per interval.
            let mut events = Vec::new();
            let base = chunks.first().cloned().unwrap_or(Value::Null);
            for i in 0..count {
                let mut c = base.clone();
                c["choices"] = json!([{
                    "index": 0,
                    "delta": {"content": format!("drip{i} ")},
                    "logprobs": null,
                    "finish_reason": null,
                }]);
                events.push(c);
            }
            let mut fin = base.clone();
            fin["choices"] = json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]);
            events.push(fin);
            if let Some(usage_chunk) = chunks
                .last()
                .filter(|c| c.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty))
            {
                events.push(usage_chunk.clone());
            }
            for ev in &events {
                let bytes = format!("data: {ev}\n\n");
                if !write_chunk(sock, bytes.as_bytes()).await {
                    return false;
                }
                tokio::time::sleep(DRIP_INTERVAL).await;
            }
            write_chunk(sock, b"data: [DONE]\n\n").await && write_chunk_end(sock).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------------

/// Answers `POST /v1/embeddings` once the route-independent faults are played.
async fn answer_embeddings(sock: &mut TcpStream, request: &Value, model: &str, fault: &str) -> bool {
    if fault == "slow" {
        tokio::time::sleep(SLOW_DELAY).await;
    } else if let Some(ms) = fault.strip_prefix("delay-").and_then(|ms| ms.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match embeddings_response(request, model) {
        Ok(body) => {
            let body = serde_json::to_vec(&body).unwrap_or_default();
            write_json(sock, 200, &ratelimit_headers(), &body).await
        }
        Err(message) => {
            let body = error_body(&message, "invalid_request_error", None, None);
            write_json(sock, 400, &[], &body).await
        }
    }
}

/// OpenAI's message for a request member its schema refuses.
fn invalid_member(member: &str) -> String {
    format!("'$.{member}' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
}

/// The `CreateEmbeddingResponse` for `request`, or the message of OpenAI's 400.
pub fn embeddings_response(request: &Value, model: &str) -> Result<Value, String> {
    if model.is_empty() {
        return Err("you must provide a model parameter".into());
    }
    let inputs = embedding_inputs(request.get("input")).ok_or_else(|| invalid_member("input"))?;
    let dimensions = match request.get("dimensions") {
        None | Some(Value::Null) => EMBEDDING_DIMENSIONS,
        Some(_) if model.contains("ada-002") => return Err("This model does not support specifying dimensions.".into()),
        Some(d) => d
            .as_u64()
            .filter(|d| (1..=MAX_EMBEDDING_DIMENSIONS).contains(d))
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| invalid_member("dimensions"))?,
    };
    let base64 = match request.get("encoding_format").map(Value::as_str) {
        None | Some(Some("float")) => false,
        Some(Some("base64")) => true,
        Some(_) => return Err(invalid_member("encoding_format")),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, (text, _))| {
            let vector = text_embedding(text, dimensions);
            let embedding = if base64 {
                json!(base64_f32(&vector))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|(_, tokens)| tokens).sum();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

/// `input` as (text, tokens) pairs: strings (tokens = words, at least 1), token-id arrays
/// (text = the ids in decimal, tokens = their count). `None` for anything OpenAI refuses: empty
/// strings or arrays, mixed arrays, more than [`MAX_EMBEDDING_INPUTS`] items.
fn embedding_inputs(input: Option<&Value>) -> Option<Vec<(String, u64)>> {
    let text = |s: &str| (!s.is_empty()).then(|| (s.to_owned(), s.split_whitespace().count().max(1) as u64));
    let ids = |items: &[Value]| {
        let ids: Option<Vec<u64>> = items.iter().map(Value::as_u64).collect();
        let ids = ids.filter(|ids| !ids.is_empty())?;
        let text: Vec<String> = ids.iter().map(u64::to_string).collect();
        Some((text.join(" "), ids.len() as u64))
    };
    let items = match input? {
        Value::String(s) => return Some(vec![text(s)?]),
        Value::Array(items) if !items.is_empty() && items.len() <= MAX_EMBEDDING_INPUTS => items,
        _ => return None,
    };
    match &items[0] {
        Value::Number(_) => Some(vec![ids(items)?]),
        Value::String(_) => items.iter().map(|i| text(i.as_str()?)).collect(),
        Value::Array(_) => items.iter().map(|i| ids(i.as_array()?)).collect(),
        _ => None,
    }
}

/// A deterministic unit vector for `text`: its character trigrams (lower-cased, padded with a
/// space at each end) hashed with 64-bit FNV-1a into `dimensions` buckets, signed by the hash's
/// top bit. Near spellings give near vectors; the same text always the same one. A text with no
/// trigram (or whose trigrams cancel out) is the unit vector of bucket 0.
pub fn text_embedding(text: &str, dimensions: usize) -> Vec<f32> {
    let dimensions = dimensions.max(1);
    let padded: Vec<char> = std::iter::once(' ')
        .chain(text.to_lowercase().chars())
        .chain(std::iter::once(' '))
        .collect();
    let mut sums = vec![0f64; dimensions];
    for trigram in padded.windows(3) {
        let hash = trigram
            .iter()
            .collect::<String>()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let bucket = usize::try_from(hash % dimensions as u64).unwrap_or(0);
        sums[bucket] += if hash >> 63 == 1 { -1.0 } else { 1.0 };
    }
    let norm = sums.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        sums[0] = 1.0;
        return sums.iter().map(|x| *x as f32).collect();
    }
    sums.iter().map(|x| (x / norm) as f32).collect()
}

/// `vector`'s little-endian `f32` bytes in standard, padded base64 (OpenAI's `encoding_format:
/// "base64"`).
pub fn base64_f32(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn write_chunk_end(sock: &mut TcpStream) -> bool {
    sock.write_all(b"0\r\n\r\n").await.is_ok() && sock.flush().await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
    }

    #[test]
    fn embeddings_follow_openai_shapes() {
        let req = json!({"model": "text-embedding-3-small", "input": ["What is the capital of France?",
            "What is the capital of France??", "How do I bake sourdough bread at home?"], "dimensions": 256});
        let list = embeddings_response(&req, "text-embedding-3-small").expect("answered");
        assert_eq!(
            (list["object"].as_str(), list["model"].as_str()),
            (Some("list"), Some("text-embedding-3-small"))
        );
        assert_eq!(list["usage"], json!({"prompt_tokens": 20, "total_tokens": 20}));
        let vector =
            |i: usize| -> Vec<f32> { serde_json::from_value(list["data"][i]["embedding"].clone()).expect("floats") };
        assert_eq!(list["data"][2]["index"], 2);
        assert_eq!(vector(0).len(), 256);
        assert!(cosine(&vector(0), &vector(1)) > 0.9);
        assert!(cosine(&vector(0), &vector(2)) < 0.5);
        assert_eq!(vector(0), text_embedding("What is the capital of France?", 256));
        // Default length, base64, token ids.
        let list = embeddings_response(&json!({"input": "hi"}), "m").expect("answered");
        assert_eq!(
            list["data"][0]["embedding"].as_array().map(Vec::len),
            Some(EMBEDDING_DIMENSIONS)
        );
        let list = embeddings_response(
            &json!({"input": [[1, 2, 3]], "encoding_format": "base64", "dimensions": 2}),
            "m",
        )
        .expect("answered");
        assert_eq!(
            list["data"][0]["embedding"],
            json!(base64_f32(&text_embedding("1 2 3", 2)))
        );
        assert_eq!(list["usage"]["prompt_tokens"], 3);
        assert_eq!(base64_f32(&[1.0, -2.0]), "AACAPwAAAMA=");
    }

    #[test]
    fn bad_embeddings_requests_get_openais_messages() {
        for (req, model) in [
            (json!({"input": ""}), "m"),
            (json!({"input": []}), "m"),
            (json!({"input": ["a", ""]}), "m"),
            (json!({"input": ["a", 1]}), "m"),
            (json!({"input": 5}), "m"),
            (json!({}), "m"),
            (json!({"input": "x", "dimensions": 0}), "m"),
            (json!({"input": "x", "dimensions": 4000}), "m"),
            (json!({"input": "x", "encoding_format": "int8"}), "m"),
        ] {
            let message = embeddings_response(&req, model).expect_err("refused");
            assert!(message.contains("is invalid"), "{req}: {message}");
        }
        let message =
            embeddings_response(&json!({"input": "x", "dimensions": 8}), "text-embedding-ada-002").expect_err("ada");
        assert_eq!(message, "This model does not support specifying dimensions.");
        assert!(embeddings_response(&json!({"input": "x"}), "").is_err());
    }

    #[test]
    fn stream_usage_chunk_only_when_asked() {
        let req = json!({"model": "m", "messages": [{"role": "user", "content": "a b"}]});
        let chunks = stream_chunks(&req, "m", 1);
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        let req = json!({"model": "m", "messages": [{"role": "user", "content": "a b"}],
            "stream_options": {"include_usage": true}});
        let chunks = stream_chunks(&req, "m", 1);
        let last = chunks.last().expect("chunks");
        assert_eq!(last["choices"], json!([]));
        assert!(last["usage"]["total_tokens"].as_u64().is_some());
    }
}
