//! What a hostile client or a hostile upstream must not be able to do (disabling the shared
//! default mock is covered in startup.rs): panic a request, break or inject SSE events, hold a provider slot forever, or
//! keep a revoked key failing one request in N.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard_e2e::client::{chat_body, parse_sse, stream_body};
use switchyard_e2e::{Gateway, MockUpstream, UPSTREAM_KEY, standard_config};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `retry-after-ms: 1e300` used to panic the request task: the client got no response at all.
/// Now the value is capped, the wait is longer than any backoff, and the request falls back.
#[tokio::test]
async fn a_hostile_retry_after_header_falls_back_and_succeeds() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["retries"] = json!({"max": 2, "backoff": "10ms", "max_backoff": "1s"});
    let gw = Gateway::start_cfg(&cfg);
    let mut body = chat_body("up/fail-429-hostile", "hostile");
    body["fallbacks"] = json!(["local/echo"]);
    let reply = gw.chat(&body).await;
    reply.assert_status(200);
    assert_eq!(reply.json()["extra_fields"]["provider"], "local", "{}", reply.text());
    assert_eq!(
        up.requests_for("fail-429-hostile").len(),
        1,
        "a wait longer than max_backoff is not retried on the same target"
    );
    // Streams take the same path before their first byte.
    let mut body = stream_body("up/fail-429-hostile", "hostile");
    body["fallbacks"] = json!(["local/echo"]);
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    gw.assert_serving().await;
}

/// An upstream event split over several `data:` lines (SSE joins them with newlines) reaches
/// the client as exactly one `data: <one line of JSON>` event, so an upstream can neither break
/// the client's framing nor inject events of its own.
#[tokio::test]
async fn multi_line_upstream_events_reach_the_client_as_one_line_each() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let sse = gw.stream(&stream_body("up/stream-multiline", "one two three")).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "upstream saw: one two three", "{}", sse.dump());
    let mut events = 0;
    for line in sse.raw.lines().filter(|l| !l.is_empty()) {
        let data = line
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("every line is a data line: {line:?}\n{}", sse.dump()));
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data:?}"));
        assert!(v["extra_fields"]["chunk_index"].is_u64(), "{v}");
        events += 1;
    }
    assert!(events >= 3, "{}", sse.dump());
    assert_eq!(parse_sse(&sse.raw).len(), events + 1);
}

/// A client that opens a stream and never reads it fills its socket buffers, and then the
/// gateway's writes stall. After `server.stream_write_timeout` the stream is cut: its provider
/// slot and upstream connection are freed, so with `concurrency: 2` a third request gets served.
#[tokio::test]
async fn streaming_clients_that_stop_reading_release_their_provider_slots() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let timeout = Duration::from_secs(1);
    cfg["server"]["stream_write_timeout"] = json!("1s");
    cfg["providers"]["up"]["concurrency"] = json!(2);
    let gw = Gateway::start_cfg(&cfg);

    let mut stalled = Vec::new();
    for i in 0..2 {
        let body = serde_json::to_vec(&stream_body("up/stream-firehose", &format!("never read {i}"))).expect("json");
        let mut sock = TcpStream::connect(("127.0.0.1", gw.port())).await.expect("connect");
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).await.expect("write");
        sock.write_all(&body).await.expect("write");
        // Kept open and never read.
        stalled.push(sock);
    }
    up.wait_for_requests(2, Duration::from_secs(10)).await;

    let started = Instant::now();
    let reply = gw.chat(&chat_body("gpt", "my turn")).await;
    let waited = started.elapsed();
    reply.assert_status(200);
    assert!(
        waited < timeout + Duration::from_millis(1500),
        "the third request waited {waited:?}; the stalled streams should have been cut after {timeout:?}"
    );
    // Cutting a stream cancels its upstream request.
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.aborted_streams() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(up.aborted_streams(), 2, "both upstream streams were cancelled");
    assert!(
        gw.logs().contains("client stopped reading"),
        "the cut is logged:\n{}",
        gw.logs()
    );
    drop(stalled);
    gw.assert_serving().await;
}

/// A key the upstream refuses (401) is the operator's problem, not the client's: that key is
/// taken out of service for `auth_failure_cooldown` and the next key serves, so a revoked key
/// does not fail one request in N forever. With no other key or target, the client gets 502
/// `upstream_auth_failed`, and the masked key tail the upstream printed is not passed on.
#[tokio::test]
async fn a_revoked_key_is_taken_out_of_service_and_the_next_key_serves() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let revoked = "sk-REVOKED-e2e-0000000000000000wxyz";
    cfg["providers"]["up"]["keys"] = json!([
        {"value": revoked, "weight": 1.0},
        {"value": UPSTREAM_KEY, "weight": 1.0},
    ]);
    cfg["providers"]["up"]["circuit_breaker"]["auth_failure_cooldown"] = json!("5m");
    cfg["providers"]["solo"] = cfg["providers"]["up"].clone();
    cfg["providers"]["solo"]["keys"] = json!([{"value": revoked}]);
    let gw = Gateway::start_cfg(&cfg);

    for i in 0..12 {
        gw.chat(&chat_body("gpt", &format!("request {i}")))
            .await
            .assert_status(200);
    }
    let with_revoked = up
        .requests()
        .iter()
        .filter(|r| r.header("authorization") == Some(&*format!("Bearer {revoked}")))
        .count();
    assert!(
        with_revoked <= 1,
        "the revoked key is used at most once, then skipped ({with_revoked} uses)"
    );

    let reply = gw.chat(&chat_body("solo/gpt-4o", "only a revoked key")).await;
    let err = reply.assert_error(502, "upstream_auth_failed");
    assert_eq!(err["type"], "server_error");
    let text = reply.text();
    assert!(
        !text.contains("wxyz") && !text.contains("***"),
        "masked key tail redacted: {text}"
    );
    assert!(!text.contains(revoked), "{text}");
    // The refused key is out of service: the next request fails fast without reaching upstream.
    let before = up.requests().len();
    let reply = gw.chat(&chat_body("solo/gpt-4o", "again")).await;
    reply.assert_error(503, "circuit_open");
    assert_eq!(up.requests().len(), before);
    gw.assert_serving().await;
}

/// Client-chosen text never reaches the logs raw: a model name with a newline cannot forge a
/// log line.
#[tokio::test]
async fn model_names_are_logged_escaped() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg_debug_logs(&standard_config(&up));
    let forged = "nope\n2026-01-01T00:00:00Z  INFO forged: admin logged in";
    gw.chat(&chat_body(forged, "x")).await.assert_status(404);
    gw.chat(&chat_body(&format!("up/fail-404{forged}"), "x")).await;
    let logs = gw.logs();
    assert!(
        !logs.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "a client's newline must not start a log line:\n{logs}"
    );
    gw.assert_serving().await;
}

/// An upstream that ends its body cleanly in the middle of an answer (no `finish_reason`, no
/// `[DONE]`) has cut it: the client gets an error event and no `[DONE]`, never a truncated
/// answer presented as complete.
#[tokio::test]
async fn a_stream_ended_before_its_answer_finished_is_not_presented_as_complete() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let sse = gw
        .stream(&stream_body("up/stream-ends-early", "a long answer please"))
        .await;
    assert!(!sse.has_done(), "{}", sse.dump());
    assert!(
        !sse.chunks().is_empty(),
        "the chunks before the cut are delivered: {}",
        sse.dump()
    );
    let errors = sse.errors();
    assert_eq!(errors.len(), 1, "{}", sse.dump());
    assert!(
        errors[0]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("before the answer finished")),
        "{}",
        sse.dump()
    );
    gw.assert_serving().await;
}
