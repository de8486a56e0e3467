//! The admin surface and what clients cannot grow: `/admin/status` and `/v1/usage` behind the
//! admin key (or loopback only without one), a usage ledger keyed by configuration rather than
//! by the names clients send, and the process-wide budget of body bytes.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard_e2e::client::{Reply, chat_body, http};
use switchyard_e2e::gateway::StartOptions;
use switchyard_e2e::{Gateway, MockUpstream, UPSTREAM_KEY, standard_config, to_yaml};
use tokio::io::AsyncWriteExt;

const ADMIN_KEY: &str = "adm-e2e-0123456789abcdef";

async fn get_with(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = http().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Reply::read(req.send().await.expect("GET")).await
}

/// Polls `/v1/usage` until `done` holds (reports reach the ledger in batches).
async fn usage_when(gw: &Gateway, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = gw.get("/v1/usage").await;
        reply.assert_status(200);
        let v = reply.json();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "the ledger never got there: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn admin_status_shows_topology_by_key_index_never_key_values() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["keys"] = json!([
        {"value": "env.SWITCHYARD_E2E_UNSET_KEY_VAR"},
        {"value": UPSTREAM_KEY, "weight": 2.0, "models": ["gpt-4o"]},
    ]);
    let gw = Gateway::start_cfg(&cfg);
    gw.chat(&chat_body("gpt", "hi")).await.assert_status(200);
    let reply = gw.get("/admin/status").await;
    reply.assert_status(200);
    assert!(!reply.text().contains(UPSTREAM_KEY), "{}", reply.text());
    let v = reply.json();
    let up = &v["providers"]["up"];
    assert_eq!(
        up["keys"],
        json!([{"index": 1, "weight": 2.0, "models": ["gpt-4o"]}]),
        "usable keys by their place in the config: {v:#}"
    );
    assert_eq!(up["circuits"], json!(["closed"]), "{v:#}");
    assert_eq!(up["plugin"], "openai", "{v:#}");
    assert_eq!(up["in_flight"], 0, "{v:#}");
    assert_eq!(v["providers"]["local"]["local"], true, "{v:#}");
    assert!(v["body_budget"]["limit_bytes"].as_u64().is_some_and(|n| n > 0), "{v:#}");
    assert_eq!(v["dropped_report_batches"], 0, "{v:#}");
}

#[tokio::test]
async fn with_an_admin_key_admin_endpoints_need_it_and_health_does_not() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["admin"] = json!({"key": ADMIN_KEY});
    let gw = Gateway::start_cfg(&cfg);
    let good = format!("Bearer {ADMIN_KEY}");
    let wrong = format!("Bearer {ADMIN_KEY}x");
    for path in ["/admin/status", "/v1/usage"] {
        for headers in [
            vec![],
            vec![("authorization", wrong.as_str())],
            vec![("x-api-key", ADMIN_KEY)],
        ] {
            let reply = get_with(&gw, path, &headers).await;
            let err = reply.assert_error(401, "invalid_admin_key");
            assert_eq!(err["type"], "authentication_error", "{path}");
            assert!(!reply.text().contains(ADMIN_KEY), "{path}: {}", reply.text());
        }
        get_with(&gw, path, &[("authorization", &good)])
            .await
            .assert_status(200);
    }
    let health = gw.get("/health").await;
    health.assert_status(200);
    assert!(!gw.logs().contains(ADMIN_KEY), "the admin key is never logged");
}

#[tokio::test]
async fn an_admin_key_whose_variable_is_unset_warns_and_leaves_admin_to_loopback() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["admin"] = json!({"key": "env.SWITCHYARD_E2E_ADMIN_KEY_UNSET"});
    let check = Gateway::check(&to_yaml(&cfg));
    assert_eq!(check.code, Some(0), "{check:?}");
    assert!(
        check.stdout.contains("admin.key") && check.stdout.contains("SWITCHYARD_E2E_ADMIN_KEY_UNSET"),
        "check names the field and the variable: {check:?}"
    );
    let gw = Gateway::start_cfg(&cfg);
    // The tests reach the daemon over loopback, which is what loopback-only admin serves.
    gw.get("/admin/status").await.assert_status(200);
    let logs = gw.logs();
    assert!(
        logs.contains("admin.key") && logs.contains("loopback"),
        "the warning names the field: {logs}"
    );

    // Set, the same config needs the key.
    let gw = Gateway::start_with(
        &to_yaml(&cfg),
        StartOptions {
            env: vec![("SWITCHYARD_E2E_ADMIN_KEY_UNSET".into(), ADMIN_KEY.into())],
            ..StartOptions::default()
        },
    );
    gw.get("/admin/status").await.assert_error(401, "invalid_admin_key");
    let good = format!("Bearer {ADMIN_KEY}");
    get_with(&gw, "/admin/status", &[("authorization", &good)])
        .await
        .assert_status(200);
}

#[tokio::test]
async fn an_empty_admin_key_is_a_config_error_naming_the_field() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["admin"] = json!({"key": ""});
    let (code, stderr) = Gateway::start_expect_failure(&to_yaml(&cfg));
    assert_ne!(code, Some(0));
    assert!(stderr.contains("admin.key"), "{stderr}");
}

#[tokio::test]
async fn the_usage_ledger_is_keyed_by_configured_models_whatever_clients_send() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["models"]["gpt"]["fallbacks"] = json!(["up/gpt-4o-mini"]);
    let gw = Gateway::start_cfg(&cfg);
    for _ in 0..3 {
        gw.chat(&chat_body("gpt", "configured alias")).await.assert_status(200);
    }
    // A configured fallback model asked for directly is a configured model too.
    gw.chat(&chat_body("up/gpt-4o-mini", "fallback model"))
        .await
        .assert_status(200);
    // The mock upstream answers with any model name it is sent: none of these may become a line.
    let made_up = 25;
    for i in 0..made_up {
        gw.chat(&chat_body(&format!("up/client-made-model-{i}"), "x"))
            .await
            .assert_status(200);
    }
    gw.chat(&chat_body("echo", "local")).await.assert_status(200);
    gw.chat(&chat_body("local/invented", "local")).await.assert_status(200);

    let total = 3 + 1 + made_up + 2;
    let v = usage_when(&gw, |v| v["total"]["requests"] == total).await;
    assert_eq!(v["object"], "usage", "{v:#}");
    let models = |provider: &str| -> Vec<String> {
        v["providers"][provider]["models"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(models("up"), ["(other)", "gpt-4o", "gpt-4o-mini"], "{v:#}");
    assert_eq!(models("local"), ["(other)", "echo"], "{v:#}");
    let up_models = &v["providers"]["up"]["models"];
    assert_eq!(up_models["gpt-4o"]["requests"], 3, "{v:#}");
    assert_eq!(up_models["(other)"]["requests"], made_up, "{v:#}");
    let line = &up_models["gpt-4o"];
    for part in [
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "estimated_requests",
    ] {
        assert!(line[part].is_u64(), "{part} in every line: {v:#}");
    }
    // The mock upstream reports 4 cached and 2 reasoning tokens per answer.
    assert_eq!(line["cached_tokens"], 12, "{v:#}");
    assert_eq!(line["reasoning_tokens"], 6, "{v:#}");
    assert_eq!(line["estimated_requests"], 0, "{v:#}");
    assert_eq!(v["providers"]["up"]["total"]["requests"], 3 + 1 + made_up, "{v:#}");
    assert!(
        v["from"]
            .as_u64()
            .is_some_and(|f| v["to"].as_u64().is_some_and(|t| f <= t)),
        "{v:#}"
    );
    let text = v.to_string();
    assert!(
        !text.contains("client-made-model") && !text.contains("invented"),
        "{v:#}"
    );
}

/// Starts a request whose body is `declared` bytes but sends only `sent` of them, then holds
/// the connection: a slow client keeping part of the body budget.
async fn slow_upload(gw: &Gateway, declared: usize, sent: usize) -> tokio::net::TcpStream {
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", gw.port()))
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {declared}\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.expect("head");
    sock.write_all(&vec![b' '; sent]).await.expect("part of the body");
    sock
}

async fn body_bytes_in_use(gw: &Gateway) -> u64 {
    gw.get("/admin/status").await.json()["body_budget"]["in_use_bytes"]
        .as_u64()
        .unwrap_or(0)
}

async fn wait_for_bytes_in_use(gw: &Gateway, done: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = body_bytes_in_use(gw).await;
        if done(n) {
            return n;
        }
        assert!(Instant::now() < deadline, "bytes in use stayed at {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `head`, then `parts` one by one while reading the answer, and returns the answer. The
/// daemon may answer and close before it has read everything: writing then stops, and the
/// answer is what arrived.
async fn exchange(gw: &Gateway, head: String, parts: &[Vec<u8>]) -> String {
    use tokio::io::AsyncReadExt;
    let sock = tokio::net::TcpStream::connect(("127.0.0.1", gw.port()))
        .await
        .expect("connect");
    let (mut rx, mut tx) = sock.into_split();
    let reader = tokio::spawn(async move {
        let mut answer = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        // Until the daemon closes, or the whole answer (headers and the JSON body) is in.
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), rx.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if complete(&answer) {
                break;
            }
        }
        answer
    });
    let _ = tx.write_all(head.as_bytes()).await;
    for part in parts {
        if reader.is_finished() || tx.write_all(part).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answer = reader.await.expect("reader");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether `answer` holds a whole HTTP response with a Content-Length body.
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok());
    length.is_some_and(|n| answer.len() >= end + 4 + n)
}

/// A request of about `size` bytes that `local/echo` answers.
fn big_request(size: usize) -> Vec<u8> {
    serde_json::to_vec(&chat_body("local/echo", &"b".repeat(size))).expect("serialise")
}

#[tokio::test]
async fn a_body_that_does_not_fit_the_budget_gets_503_at_once_and_the_daemon_keeps_serving() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["server"]["max_body_size"] = json!("1MiB");
    cfg["server"]["max_in_flight_body"] = json!("1MiB");
    let gw = Gateway::start_cfg(&cfg);

    let slow = slow_upload(&gw, 900_000, 700_000).await;
    let held = wait_for_bytes_in_use(&gw, |n| n >= 700_000).await;
    assert!(held <= 900_000, "{held}");

    // Announced larger than what is left: refused before it is read.
    let body = big_request(600_000);
    let began = Instant::now();
    let declared = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let text = exchange(&gw, declared, &[]).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("server_busy") && text.contains("server_error"), "{text}");
    assert!(text.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "{text}");
    assert!(began.elapsed() < Duration::from_secs(5), "refused at once, not queued");

    // Without a length (chunked): refused when the bytes that do not fit arrive.
    let chunked_head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut parts: Vec<Vec<u8>> = body
        .chunks(64 * 1024)
        .map(|part| {
            let mut c = format!("{:x}\r\n", part.len()).into_bytes();
            c.extend_from_slice(part);
            c.extend_from_slice(b"\r\n");
            c
        })
        .collect();
    parts.push(b"0\r\n\r\n".to_vec());
    let text = exchange(&gw, chunked_head.to_string(), &parts).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("server_busy"), "{text}");

    // What fits is still served, and the refused bodies gave their bytes back.
    gw.assert_serving().await;
    // Only the slow client's bytes are still held.
    wait_for_bytes_in_use(&gw, |n| n == held).await;

    // The slow client goes away: its bytes come back and a large body fits again.
    drop(slow);
    wait_for_bytes_in_use(&gw, |n| n == 0).await;
    let reply = gw.post_raw("/v1/chat/completions", big_request(600_000), None).await;
    reply.assert_status(200);
    assert_eq!(reply.content().len(), 600_000);
    let refused = gw.get("/admin/status").await.json()["body_budget"]["refused"].as_u64();
    assert!(refused.unwrap_or(0) >= 2, "{refused:?}");
}

/// A client that leaves mid-stream does not make the tokens the upstream produced vanish: the
/// stream is recorded with an estimate, marked as such, and billed for it. A stream whose usage
/// did arrive is recorded exactly, not estimated, at the cost its last chunk told the client.
#[tokio::test]
async fn an_abandoned_stream_is_recorded_with_an_estimate() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["models"]["drip"] = json!({"targets": [{"provider": "up", "model": "drip-stream-long"}]});
    cfg["pricing"] =
        json!({"overrides": {"up/drip-stream-long": {"input_cost_per_token": 1e-6, "output_cost_per_token": 4e-6}}});
    let gw = Gateway::start_cfg(&cfg);

    let mut resp = switchyard_e2e::client::http()
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&switchyard_e2e::client::stream_body("drip", "bye")).expect("json"))
        .send()
        .await
        .expect("stream starts");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("drip2") {
        match resp.chunk().await {
            Ok(Some(c)) => seen.extend_from_slice(&c),
            other => panic!("stream ended early: {other:?}"),
        }
    }
    drop(resp);

    let v = usage_when(&gw, |v| v["total"]["requests"] == 1).await;
    let line = &v["providers"]["up"]["models"]["drip-stream-long"];
    assert_eq!(line["estimated_requests"], 1, "{v:#}");
    assert!(
        line["completion_tokens"].as_u64().is_some_and(|n| n >= 3),
        "the chunks that reached the client count: {v:#}"
    );
    assert!(line["prompt_tokens"].as_u64().is_some_and(|n| n > 0), "{v:#}");
    // Billed for what was produced, at the model's price: never $0.
    let tokens = |k: &str| line[k].as_u64().unwrap_or_default() as f64;
    let billed = line["cost_usd"].as_f64().expect("cost_usd");
    let expected = tokens("prompt_tokens") * 1e-6 + tokens("completion_tokens") * 4e-6;
    assert!(
        (billed - expected).abs() < 1e-12 && billed > 0.0,
        "{billed} vs {expected}: {v:#}"
    );

    // A complete stream reports its own usage: recorded exactly, not estimated.
    let sse = gw.stream(&switchyard_e2e::client::stream_body("gpt", "whole")).await;
    sse.assert_complete();
    let told = sse.chunks().last().expect("chunks")["usage"]["cost"]["total_cost"]
        .as_f64()
        .expect("the last chunk's cost");
    let v = usage_when(&gw, |v| v["total"]["requests"] == 2).await;
    let line = &v["providers"]["up"]["models"]["gpt-4o"];
    assert_eq!(line["estimated_requests"], 0, "{v:#}");
    assert_eq!(
        line["cost_usd"].as_f64(),
        Some(told),
        "the ledger bills what the client was told: {v:#}"
    );
    assert_eq!(v["total"]["estimated_requests"], 1, "{v:#}");
    assert_eq!(v["total"]["unpriced_requests"], 0, "{v:#}");
}
