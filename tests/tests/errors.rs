//! Bad input and upstream faults: every one gets a defined, OpenAI-shaped error, and the daemon keeps
//! serving afterwards.

use serde_json::{Value, json};
use switchyard_e2e::client::{chat_body, http};
use switchyard_e2e::gateway::StartOptions;
use switchyard_e2e::{Gateway, MockUpstream, Reply, UPSTREAM_KEY, standard_config, to_yaml};

fn start(up: &MockUpstream) -> Gateway {
    Gateway::start_cfg(&standard_config(up))
}

#[tokio::test]
async fn malformed_json_is_400() {
    let up = MockUpstream::start();
    let gw = start(&up);
    for body in [
        &b"{\"model\": \"gpt\", \"messages\": ["[..],
        b"not json at all",
        b"",
        b"[1, 2, 3]",
    ] {
        let reply = gw
            .post_raw("/v1/chat/completions", body.to_vec(), Some("application/json"))
            .await;
        assert_eq!(
            reply.status,
            400,
            "body {:?}: {}",
            String::from_utf8_lossy(body),
            reply.text()
        );
        reply.assert_error_shape();
        if body.starts_with(b"{") || body.starts_with(b"not") {
            reply.assert_error(400, "invalid_json");
        }
    }
    gw.assert_serving().await;
    assert!(up.requests().is_empty(), "nothing reaches the upstream");
}

#[tokio::test]
async fn invalid_utf8_is_400() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let mut body = br#"{"model": "gpt", "messages": [{"role": "user", "content": "bad "#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    body.extend_from_slice(br#""}]}"#);
    let reply = gw
        .post_raw("/v1/chat/completions", body, Some("application/json"))
        .await;
    reply.assert_status(400);
    reply.assert_error_shape();
    gw.assert_serving().await;
}

#[tokio::test]
async fn wrong_types_are_400_naming_the_field() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let cases = [
        ("temperature", json!("hot")),
        ("messages", json!("not a list")),
        ("stream", json!("yes")),
        ("model", json!(42)),
    ];
    for (field, value) in cases {
        let mut body = chat_body("gpt", "typed");
        body[field] = value.clone();
        let reply = gw.chat(&body).await;
        let err = reply.assert_error(400, "invalid_type");
        assert_eq!(
            err["param"],
            field,
            "{field} = {value}: error.param must name the field; {}",
            reply.text()
        );
    }
    gw.assert_serving().await;
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn missing_fields_are_400() {
    let up = MockUpstream::start();
    let gw = start(&up);
    for field in ["model", "messages"] {
        let mut body = chat_body("gpt", "missing");
        body.as_object_mut().expect("object").remove(field);
        let reply = gw.chat(&body).await;
        let err = reply.assert_error(400, "missing_field");
        assert_eq!(err["param"], field, "{}", reply.text());
        assert_eq!(err["type"], "invalid_request_error", "{}", reply.text());
    }
    gw.assert_serving().await;
}

#[tokio::test]
async fn unknown_model_or_provider_is_404() {
    let up = MockUpstream::start();
    let gw = start(&up);
    for model in ["no-such-alias", "nosuch/gpt-4o"] {
        let reply = gw.chat(&chat_body(model, "where?")).await;
        let err = reply.assert_error(404, "model_not_found");
        assert!(
            err["message"].as_str().is_some_and(|m| m.contains(model)),
            "the message names the model {model:?}: {}",
            reply.text()
        );
    }
    assert!(up.requests().is_empty());
    gw.assert_serving().await;
}

#[tokio::test]
async fn oversize_body_is_413() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["server"]["max_body_size"] = json!("16KiB");
    let gw = Gateway::start_cfg(&cfg);

    let small = chat_body("gpt", &"a".repeat(4 * 1024));
    gw.chat(&small).await.assert_status(200);

    let big = chat_body("gpt", &"a".repeat(64 * 1024));
    let reply = gw.chat(&big).await;
    reply.assert_error(413, "body_too_large");

    // Without a content-length (chunked upload) the limit holds too.
    let big_bytes = serde_json::to_vec(&big).expect("serialise");
    let stream = chunked_body(big_bytes);
    let resp = http()
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(stream)
        .send()
        .await;
    // The daemon may answer and close before the client finished sending; a send error is
    // acceptable then, but an answer must be the 413.
    if let Ok(resp) = resp {
        let reply = Reply::read(resp).await;
        reply.assert_error(413, "body_too_large");
    }
    assert_eq!(up.requests().len(), 1, "only the small request reaches the upstream");
    gw.assert_serving().await;
}

/// A request body of unknown length (sent chunked).
fn chunked_body(bytes: Vec<u8>) -> reqwest::Body {
    reqwest::Body::wrap(ChunkedBody {
        chunks: bytes.chunks(8192).map(<[u8]>::to_vec).collect(),
    })
}

struct ChunkedBody {
    chunks: std::collections::VecDeque<Vec<u8>>,
}

impl http_body::Body for ChunkedBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let next = self.chunks.pop_front();
        std::task::Poll::Ready(next.map(|c| Ok(http_body::Frame::data(bytes::Bytes::from(c)))))
    }
}

#[tokio::test]
async fn wrong_method_is_405() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.get("/v1/chat/completions").await;
    reply.assert_status(405);
    reply.assert_error_shape();
    let resp = http()
        .delete(gw.url("/v1/models"))
        .send()
        .await
        .expect("DELETE /v1/models");
    let reply = Reply::read(resp).await;
    reply.assert_status(405);
    reply.assert_error_shape();
    gw.assert_serving().await;
}

#[tokio::test]
async fn unknown_path_is_404() {
    let up = MockUpstream::start();
    let gw = start(&up);
    for path in ["/v2/chat/completions", "/v1/nothing-here", "/"] {
        let reply = gw.get(path).await;
        assert_eq!(reply.status, 404, "GET {path}: {}", reply.text());
        reply.assert_error_shape();
    }
    let reply = gw.post_json("/v1/unknown", &chat_body("gpt", "x")).await;
    reply.assert_status(404);
    reply.assert_error_shape();
    gw.assert_serving().await;
}

#[tokio::test]
async fn upstream_4xx_keeps_status_and_message() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let cases = [
        ("up/fail-404", 404, "does not exist or you do not have access"),
        ("up/context-400", 400, "maximum context length"),
        ("up/fail-429", 429, "Rate limit reached"),
    ];
    for (model, status, message) in cases {
        let reply = gw.chat(&chat_body(model, "4xx")).await;
        assert_eq!(reply.status, status, "{model}: {}", reply.text());
        let err = reply.assert_error_shape();
        assert!(
            err["message"].as_str().is_some_and(|m| m.contains(message)),
            "{model}: the upstream's message is passed through: {}",
            reply.text()
        );
        assert!(reply.header("x-request-id").is_some(), "{model}");
        gw.assert_serving().await;
    }
}

#[tokio::test]
async fn upstream_error_messages_have_the_key_redacted() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.chat(&chat_body("up/leaky-401", "leak?")).await;
    let err = reply.assert_error(502, "upstream_auth_failed");
    assert!(
        !reply.text().contains(UPSTREAM_KEY),
        "the configured key must be redacted from the client's answer: {}",
        reply.text()
    );
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("Incorrect API key provided")),
        "the rest of the upstream message is kept: {}",
        reply.text()
    );
    // The key did reach the upstream (so the redaction is not vacuous).
    assert_eq!(
        up.last_request().header("authorization"),
        Some(&*format!("Bearer {UPSTREAM_KEY}"))
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn upstream_key_never_appears_in_logs() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg_debug_logs(&standard_config(&up));
    gw.chat(&chat_body("gpt", "ok")).await.assert_status(200);
    gw.chat(&chat_body("up/leaky-401", "leak?")).await.assert_status(502);
    gw.chat(&chat_body("up/fail-500", "boom")).await;
    let _ = gw
        .stream(&json!({"model": "gpt", "stream": true,
        "messages": [{"role": "user", "content": "s"}]}))
        .await;
    gw.assert_serving().await;
    let logs = gw.logs();
    assert!(
        !logs.contains(UPSTREAM_KEY),
        "a provider key appeared in the daemon's logs:\n{logs}"
    );
}

#[tokio::test]
async fn upstream_5xx_is_502() {
    let up = MockUpstream::start();
    let gw = start(&up);
    for model in ["up/fail-500", "up/fail-503"] {
        let reply = gw.chat(&chat_body(model, "5xx")).await;
        assert_eq!(reply.status, 502, "{model}: {}", reply.text());
        reply.assert_error_shape();
        gw.assert_serving().await;
    }
}

#[tokio::test]
async fn upstream_reset_is_502() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.chat(&chat_body("up/reset", "reset")).await;
    reply.assert_status(502);
    reply.assert_error_shape();
    gw.assert_serving().await;
    // The provider still works after its connection was reset.
    gw.chat(&chat_body("gpt", "after reset")).await.assert_status(200);
}

#[tokio::test]
async fn upstream_garbage_is_502() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.chat(&chat_body("up/garbage", "garbage")).await;
    reply.assert_status(502);
    reply.assert_error_shape();
    gw.assert_serving().await;
}

#[tokio::test]
async fn upstream_truncated_body_is_502() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.chat(&chat_body("up/stream-cut", "truncated")).await;
    reply.assert_status(502);
    reply.assert_error_shape();
    gw.assert_serving().await;
}

#[tokio::test]
async fn upstream_connection_refused_is_502() {
    let up = MockUpstream::start();
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut cfg = standard_config(&up);
    let mut dead = cfg["providers"]["up"].clone();
    dead["base_url"] = json!(format!("http://127.0.0.1:{closed_port}/v1"));
    cfg["providers"]["dead"] = dead;
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("dead/gpt-4o", "anyone?")).await;
    reply.assert_status(502);
    reply.assert_error_shape();
    gw.assert_serving().await;
}

#[tokio::test]
async fn slow_upstream_hits_first_byte_timeout_504() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let mut slow = cfg["providers"]["up"].clone();
    slow["first_byte_timeout"] = json!("1s");
    cfg["providers"]["slowp"] = slow;
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("slowp/slow", "hurry")).await;
    reply.assert_error(504, "upstream_timeout");
    gw.assert_serving().await;
    // The same provider still answers fast requests.
    gw.chat(&chat_body("slowp/gpt-4o", "fast")).await.assert_status(200);
}

#[tokio::test]
async fn slow_upstream_hits_request_timeout_504() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let mut slow = cfg["providers"]["up"].clone();
    slow["timeout"] = json!("1s");
    cfg["providers"]["slowp"] = slow;
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("slowp/slow", "hurry")).await;
    reply.assert_error(504, "upstream_timeout");
    gw.assert_serving().await;
}

#[tokio::test]
async fn mock_provider_faults_map_to_defined_errors() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let cases = [
        ("local/fault-400", 400),
        ("local/fault-429", 429),
        ("local/fault-context-length", 400),
        ("local/fault-content-filter", 400),
        ("local/fault-500", 502),
        ("local/fault-503", 502),
    ];
    for (model, status) in cases {
        let reply = gw.chat(&chat_body(model, "fault")).await;
        assert_eq!(reply.status, status, "{model}: {}", reply.text());
        let err = reply.assert_error_shape();
        assert!(err["message"].is_string(), "{model}");
        gw.assert_serving().await;
    }
}

#[tokio::test]
async fn error_bodies_are_parseable_by_openai_clients() {
    // OpenAI's SDKs read error.message / error.type / error.code / error.param; a 404 for an
    // unknown model uses OpenAI's words.
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.chat(&chat_body("no-such-alias", "x")).await;
    let err = reply.assert_error(404, "model_not_found");
    let kind = err["type"].as_str().unwrap_or_default();
    assert!(
        ["not_found_error", "invalid_request_error"].contains(&kind),
        "error.type uses OpenAI's words, got {kind:?}"
    );
    assert!(
        reply
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "errors are JSON: {:?}",
        reply.header("content-type")
    );
    let _: Value = reply.json();
    gw.assert_serving().await;
}

#[tokio::test]
async fn keys_from_the_environment_are_redacted_too() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["keys"] = json!([{"value": "env.SWITCHYARD_E2E_LEAKY_KEY"}]);
    let secret = "sk-env-secret-5d1c0a9e7b3f4a2c";
    let gw = Gateway::start_with(
        &to_yaml(&cfg),
        StartOptions {
            env: vec![("SWITCHYARD_E2E_LEAKY_KEY".into(), secret.into())],
            ..StartOptions::default()
        },
    );
    let reply = gw.chat(&chat_body("up/leaky-401", "leak?")).await;
    reply.assert_error(502, "upstream_auth_failed");
    assert!(
        !reply.text().contains(secret),
        "a key read from the environment must be redacted too: {}",
        reply.text()
    );
    let sse = gw
        .stream(&json!({"model": "up/leaky-401", "stream": true,
            "messages": [{"role": "user", "content": "leak?"}]}))
        .await;
    assert_eq!(sse.status, 502, "{}", sse.dump());
    assert!(!sse.raw.contains(secret), "streamed request error: {}", sse.raw);
    assert!(!gw.logs().contains(secret), "logs:\n{}", gw.logs());
    gw.assert_serving().await;
}

#[tokio::test]
async fn one_client_connection_survives_errors_and_streams() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let client = http();
    let send = |body: Vec<u8>| {
        client
            .post(gw.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
    };
    let ok = serde_json::to_vec(&chat_body("gpt", "again")).expect("serialise");
    for round in 0..3 {
        let r = Reply::read(send(ok.clone()).send().await.expect("ok request")).await;
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        let r = Reply::read(send(b"{broken".to_vec()).send().await.expect("bad request")).await;
        assert_eq!(r.status, 400, "round {round}: {}", r.text());
        let r = Reply::read(
            send(serde_json::to_vec(&chat_body("no-such", "x")).expect("serialise"))
                .send()
                .await
                .expect("404 request"),
        )
        .await;
        assert_eq!(r.status, 404, "round {round}: {}", r.text());
        let s = switchyard_e2e::Sse::read(
            send(
                serde_json::to_vec(&json!({"model": "gpt", "stream": true,
                    "messages": [{"role": "user", "content": "s"}]}))
                .expect("serialise"),
            )
            .send()
            .await
            .expect("stream request"),
        )
        .await;
        s.assert_complete();
    }
}

#[tokio::test]
async fn curl_style_request_with_expect_continue() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = MockUpstream::start();
    let gw = start(&up);
    // What `curl -d @file` sends for a body over 1 KiB: no JSON content type, Expect: 100-continue.
    let body = serde_json::to_vec(&chat_body("gpt", &"x".repeat(2048))).expect("serialise");
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", gw.port()))
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: curl/8.5.0\r\n\
         Accept: */*\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        gw.port(),
        body.len()
    );
    sock.write_all(head.as_bytes()).await.expect("write head");
    // curl waits up to a second for `100 Continue`, then sends the body anyway.
    let mut first = vec![0u8; 64];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sock.read(&mut first)).await;
    sock.write_all(&body).await.expect("write body");
    let mut response = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), sock.read_to_end(&mut response))
        .await
        .expect("response within 20 s")
        .expect("read response");
    let text = String::from_utf8_lossy(&response);
    let final_status = text
        .split("\r\n")
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(final_status.starts_with("HTTP/1.1 200"), "response:\n{text}");
    assert!(text.contains("upstream saw: xxxx"), "response:\n{text}");
}

#[tokio::test]
async fn upstream_redirects_are_not_followed() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.chat(&chat_body("up/redirect", "redirect")).await;
    reply.assert_status(502);
    reply.assert_error_shape();
    assert_eq!(
        up.requests().len(),
        1,
        "a redirect would carry the provider key elsewhere; it must not be followed"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn client_headers_never_replace_configured_ones() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw
        .post_with(
            "/v1/chat/completions",
            &chat_body("gpt", "headers"),
            &[("x-bf-eh-x-provider-header", "from-client")],
        )
        .await;
    reply.assert_status(200);
    let rec = up.last_request();
    assert_eq!(
        rec.header_all("x-provider-header"),
        vec!["from-config"],
        "configured headers win over x-bf-eh-* ones; headers: {:?}",
        rec.headers
    );
}
