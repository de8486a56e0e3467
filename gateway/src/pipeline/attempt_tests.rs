//! Attempts and what follows a failure, through the real path: config → routing table →
//! the openai plugin's .so → a scripted upstream on loopback. Each test scripts the upstream's
//! answers in order and checks which requests were made, with which key, and the outcome.

use super::{Answer, RequestContext, chat};
use crate::actors::usage_ledger::UsageLedgerHandle;
use crate::config::{ConfigSource, Overrides, load};
use crate::routing::RouteTable;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const OK_BODY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-2024","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

/// One scripted answer: status, extra header lines, body.
struct Scripted(u16, &'static str, String);

fn ok() -> Scripted {
    Scripted(200, "", OK_BODY.into())
}

fn error(status: u16, headers: &'static str, code: &str) -> Scripted {
    let body = serde_json::json!({"error": {"message": format!("scripted {status} sk-abc****wxyz"),
        "type": "invalid_request_error", "param": null, "code": code}});
    Scripted(status, headers, body.to_string())
}

/// The upstream: answers in script order (connections in parallel), records each request's
/// `authorization` header and path.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Upstream {
    fn start(script: Vec<Scripted>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (script, seen) = (Arc::clone(&script), Arc::clone(&recorded));
                std::thread::spawn(move || serve(conn, &script, &seen));
            }
        });
        Upstream { port, seen }
    }

    fn auth_headers(&self) -> Vec<String> {
        self.seen.lock().expect("lock").iter().map(|(a, _)| a.clone()).collect()
    }

    fn paths(&self) -> Vec<String> {
        self.seen.lock().expect("lock").iter().map(|(_, p)| p.clone()).collect()
    }
}

fn serve(conn: std::net::TcpStream, script: &Mutex<VecDeque<Scripted>>, seen: &Mutex<Vec<(String, String)>>) {
    let mut writer = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
        let (mut auth, mut len) = (String::new(), 0usize);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            match name.to_ascii_lowercase().as_str() {
                "authorization" => auth = value.trim().to_string(),
                "content-length" => len = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().expect("lock").push((auth, path));
        let Some(Scripted(status, headers, body)) = script.lock().expect("lock").pop_front() else {
            return;
        };
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}\r\n{body}",
            body.len()
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// The plugins built next to this test binary (target/debug), as the daemon finds them.
fn plugin_dir() -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let debug = exe.parent().and_then(|deps| deps.parent()).expect("target/debug");
    debug.display().to_string()
}

/// A routing table: provider `up` (openai plugin, keys `sk-key-a` then `sk-key-b`, or those
/// given) at the scripted upstream, and `fb` (another openai provider at `/fb`) as the
/// fallback of alias `gpt`.
fn table(port: u16, keys: &[&str], retries: u32) -> Arc<RouteTable> {
    let keys: Vec<String> = keys.iter().map(|k| format!("{{value: {k}}}")).collect();
    let yaml = format!(
        "plugins: {{dir: {dir}}}
providers:
  up:
    plugin: openai
    base_url: http://127.0.0.1:{port}/v1
    keys: [{keys}]
    retries: {{max: {retries}, backoff: 1ms, max_backoff: 50ms}}
  fb:
    plugin: openai
    base_url: http://127.0.0.1:{port}/fb/v1
    keys: [{{value: sk-fallback}}]
    retries: {{max: 0}}
models:
  gpt:
    targets: [{{provider: up, model: gpt-4o}}]
    fallbacks: [fb/gpt-4o]
",
        dir = plugin_dir(),
        keys = keys.join(", "),
    );
    let source = ConfigSource { path: None, text: yaml };
    let cfg = load(&source, &Overrides::default()).expect("valid config");
    let built = crate::app::build(&cfg, &source, &actix::Arbiter::current()).expect("table");
    Arc::new(built.table)
}

async fn ask(table: Arc<RouteTable>, model: &str) -> Result<Answer, super::Failure> {
    let arbiter = actix::Arbiter::current();
    let router = crate::actors::router::RouterHandle::start(
        &arbiter,
        RouteTable {
            providers: table.providers.clone(),
            aliases: Default::default(),
            redactor: Arc::clone(&table.redactor),
            hooks: Default::default(),
            prices: Default::default(),
            cache: None,
        },
    );
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let request = super::ChatRequest::parse_slice(body.as_bytes()).expect("request");
    let ctx = RequestContext {
        request_id: Arc::from("test"),
        started: Instant::now(),
        forwarded_headers: Vec::new(),
        send_back_raw: false,
        cache: Default::default(),
    };
    let ledger = UsageLedgerHandle::start(&arbiter, router);
    let exchange = super::Exchange {
        alias: Arc::from(model),
        request,
        ctx,
        hooks: None,
        _body_lease: None,
        cache: None,
    };
    chat(table, &ledger, exchange).await
}

fn status_of(result: &Result<Answer, super::Failure>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(f) => f.error.status().as_u16(),
    }
}

#[actix_rt::test]
async fn a_transient_failure_is_retried_on_the_same_target() {
    let up = Upstream::start(vec![error(500, "", "server_error"), ok()]);
    let result = ask(table(up.port, &["sk-key-a"], 2), "gpt").await;
    assert_eq!(status_of(&result), 200);
    assert_eq!(up.paths(), ["/v1/chat/completions", "/v1/chat/completions"]);
}

#[actix_rt::test]
async fn a_refused_key_is_replaced_by_the_next_key_without_a_retry_being_spent() {
    // No retries configured: the second key is still tried, since it is not a retry.
    let up = Upstream::start(vec![error(401, "", "invalid_api_key"), ok(), ok()]);
    let table = table(up.port, &["sk-key-a", "sk-key-b"], 0);
    // Whichever key the weighted pick takes first, a refusal moves to the other.
    let result = ask(Arc::clone(&table), "gpt").await;
    assert_eq!(status_of(&result), 200);
    let auth = up.auth_headers();
    assert_eq!(auth.len(), 2, "{auth:?}");
    assert_ne!(auth[0], auth[1], "the refused key is not tried twice: {auth:?}");
    // The refused key stays out of service: the next request goes straight to the good one.
    assert_eq!(status_of(&ask(table, "gpt").await), 200);
    assert_eq!(up.auth_headers()[2], auth[1]);
}

#[actix_rt::test]
async fn every_key_refused_falls_back_and_then_reports_upstream_auth_failed() {
    let up = Upstream::start(vec![
        error(401, "", "invalid_api_key"),
        error(403, "", "forbidden"),
        error(401, "", "invalid_api_key"),
    ]);
    let result = ask(table(up.port, &["sk-key-a", "sk-key-b"], 0), "gpt").await;
    let Err(failure) = result else {
        panic!("every key refused")
    };
    assert_eq!(failure.error.code(), Some("upstream_auth_failed"));
    assert_eq!(failure.error.status().as_u16(), 502);
    assert!(
        !failure.error.client_message().contains("wxyz"),
        "{}",
        failure.error.client_message()
    );
    assert_eq!(failure.attempts.len(), 3, "two keys, then the fallback");
    assert_eq!(up.paths().last().map(String::as_str), Some("/fb/v1/chat/completions"));
}

#[actix_rt::test]
async fn a_content_filter_refusal_is_neither_retried_nor_routed_around() {
    let up = Upstream::start(vec![error(400, "", "content_filter"), ok()]);
    let result = ask(table(up.port, &["sk-key-a"], 2), "gpt").await;
    assert_eq!(status_of(&result), 400);
    assert_eq!(up.paths().len(), 1);
}

#[actix_rt::test]
async fn an_absurd_retry_after_moves_on_to_the_fallback_at_once() {
    let up = Upstream::start(vec![
        error(429, "retry-after-ms: 1e300\r\n", "rate_limit_exceeded"),
        ok(),
    ]);
    let result = ask(table(up.port, &["sk-key-a"], 3), "gpt").await;
    assert_eq!(status_of(&result), 200);
    assert_eq!(up.paths(), ["/v1/chat/completions", "/fb/v1/chat/completions"]);
}

#[actix_rt::test]
async fn a_client_error_stops_at_the_first_target() {
    let up = Upstream::start(vec![error(404, "", "model_not_found"), ok()]);
    let result = ask(table(up.port, &["sk-key-a"], 2), "gpt").await;
    assert_eq!(status_of(&result), 404);
    assert_eq!(up.paths().len(), 1);
}
