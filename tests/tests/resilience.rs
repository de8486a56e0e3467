//! Resilience: every upstream fault the mock can play, and what the client sees — retries on the
//! same target (backoff, `Retry-After`), fallbacks, the circuit breaker, timeouts and stream faults.
//! Each test checks the client-visible outcome, how many requests the upstream received, and that
//! the daemon keeps serving.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard_e2e::client::{chat_body, stream_body};
use switchyard_e2e::upstream::MODEL_SUFFIX;
use switchyard_e2e::{Gateway, MockUpstream, standard_config};

/// The `backup` provider's model: where fallbacks land.
const BACKUP_MODEL: &str = "gpt-4o-large";
const BACKUP: &str = "backup/gpt-4o-large";

/// `up` retries twice with a short backoff and a 3 s cap, gives a silent upstream 1 s; `backup`
/// is a second provider (its own key, so its own circuit) on the same mock upstream.
fn config(up: &MockUpstream) -> Value {
    let mut cfg = standard_config(up);
    let p = &mut cfg["providers"]["up"];
    p["retries"] = json!({"max": 2, "backoff": "20ms", "max_backoff": "3s"});
    p["first_byte_timeout"] = json!("1s");
    p["stream_idle_timeout"] = json!("1s");
    let mut backup = cfg["providers"]["up"].clone();
    backup["keys"] = json!([{"value": "sk-e2e-BACKUP-key-0f9e8d7c6b5a4", "weight": 1.0, "models": ["*"]}]);
    backup["retries"] = json!({"max": 0});
    cfg["providers"]["backup"] = backup;
    cfg
}

fn with_fallback(mut body: Value) -> Value {
    body["fallbacks"] = json!([BACKUP]);
    body
}

fn attempts(reply: &Value) -> Vec<Value> {
    reply["extra_fields"]["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn assert_answered_by_backup(v: &Value) {
    assert_eq!(v["extra_fields"]["provider"], "backup", "{v:#}");
    assert_eq!(v["model"], format!("{BACKUP_MODEL}{MODEL_SUFFIX}"), "{v:#}");
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_is_retried_after_that_wait() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let began = Instant::now();
    let reply = gw.chat(&chat_body("up/flaky-1-fail-429", "wait for it")).await;
    reply.assert_status(200);
    assert!(
        began.elapsed() >= Duration::from_millis(950),
        "retry-after: 1 must be waited out; answered after {:?}",
        began.elapsed()
    );
    assert_eq!(up.requests_for("flaky-1-fail-429").len(), 2);
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "upstream saw: wait for it"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_429_with_retry_after_as_an_http_date_is_honoured() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let began = Instant::now();
    let reply = gw.chat(&chat_body("up/flaky-1-fail-429-date", "by the clock")).await;
    reply.assert_status(200);
    // The date is two seconds ahead in whole seconds: at least one second away.
    assert!(began.elapsed() >= Duration::from_millis(900), "{:?}", began.elapsed());
    assert_eq!(up.requests_for("flaky-1-fail-429-date").len(), 2);
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_429_without_retry_after_is_retried_with_backoff() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    gw.chat(&chat_body("up/flaky-2-fail-429-bare", "again"))
        .await
        .assert_status(200);
    assert_eq!(up.requests_for("flaky-2-fail-429-bare").len(), 3);
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_retry_after_longer_than_max_backoff_falls_back_at_once() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let began = Instant::now();
    let reply = gw
        .chat(&with_fallback(chat_body("up/fail-429-long", "no waiting")))
        .await;
    reply.assert_status(200);
    assert_answered_by_backup(&reply.json());
    assert!(began.elapsed() < Duration::from_secs(3), "{:?}", began.elapsed());
    assert_eq!(
        up.requests_for("fail-429-long").len(),
        1,
        "retry-after: 120 is past max_backoff (3s)"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_persistent_429_returns_429_with_retry_after_and_every_attempt() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let reply = gw.chat(&chat_body("up/fail-429", "still limited")).await;
    let err = reply.assert_error(429, "rate_limit_exceeded");
    assert_eq!(err["type"], "requests", "{err:#}");
    assert_eq!(reply.header("retry-after").as_deref(), Some("1"));
    assert_eq!(attempts(&reply.json()).len(), 3, "{err:#}");
    assert_eq!(up.requests_for("fail-429").len(), 3, "one attempt and two retries");
    gw.assert_serving().await;
}

#[tokio::test]
async fn server_errors_are_retried_then_fall_back() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    for model in ["fail-500", "fail-502", "fail-503", "fail-504"] {
        let reply = gw
            .chat(&with_fallback(chat_body(&format!("up/{model}"), "rescue")))
            .await;
        reply.assert_status(200);
        assert_answered_by_backup(&reply.json());
        assert_eq!(up.requests_for(model).len(), 3, "{model}: one attempt and two retries");
    }
    assert_eq!(up.requests_for(BACKUP_MODEL).len(), 4);
    gw.assert_serving().await;
}

#[tokio::test]
async fn server_errors_without_a_fallback_list_every_attempt() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let reply = gw.chat(&chat_body("up/fail-503", "alone")).await;
    reply.assert_error(502, "upstream_error");
    let tried = attempts(&reply.json());
    assert_eq!(tried.len(), 3, "{}", reply.text());
    for a in &tried {
        assert_eq!(a["provider"], "up");
        assert_eq!(a["model"], "fail-503");
        assert_eq!(a["status"], 502);
    }
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_server_error_that_clears_is_rescued_by_a_retry() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let reply = gw.chat(&chat_body("up/flaky-2-fail-503", "third time lucky")).await;
    reply.assert_status(200);
    assert_eq!(reply.json()["extra_fields"]["provider"], "up");
    assert_eq!(up.requests_for("flaky-2-fail-503").len(), 3);
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_connection_reset_before_the_response_is_retried() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let reply = gw.chat(&chat_body("up/flaky-1-reset", "reset once")).await;
    reply.assert_status(200);
    assert_eq!(up.requests_for("flaky-1-reset").len(), 2);
    let sse = gw
        .stream(&stream_body("up/flaky-1-reset", "reset once, streamed"))
        .await;
    sse.assert_complete();
    assert_eq!(sse.content(), "upstream saw: reset once, streamed");
    assert_eq!(
        up.requests_for("flaky-1-reset").len(),
        3,
        "the stream's first attempt found the model healed"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_falls_back() {
    let up = MockUpstream::start();
    let mut cfg = config(&up);
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut dead = cfg["providers"]["up"].clone();
    dead["base_url"] = json!(format!("http://127.0.0.1:{port}/v1"));
    cfg["providers"]["dead"] = dead;
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("dead/gpt-4o", "anyone there?")).await;
    let err = reply.assert_error(502, "upstream_unreachable");
    assert_eq!(attempts(&reply.json()).len(), 3, "{err:#}");
    let reply = gw.chat(&with_fallback(chat_body("dead/gpt-4o", "anyone else?"))).await;
    reply.assert_status(200);
    assert_answered_by_backup(&reply.json());
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_silent_upstream_is_not_retried_and_falls_back_at_once() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let began = Instant::now();
    let reply = gw.chat(&with_fallback(chat_body("up/silent", "hello?"))).await;
    reply.assert_status(200);
    assert_answered_by_backup(&reply.json());
    assert!(began.elapsed() < Duration::from_secs(3), "{:?}", began.elapsed());
    assert_eq!(
        up.requests_for("silent").len(),
        1,
        "a silent upstream is not asked again"
    );

    let sse = gw
        .stream(&with_fallback(stream_body("up/silent", "hello, streamed?")))
        .await;
    sse.assert_complete();
    assert_eq!(sse.chunks()[0]["extra_fields"]["provider"], "backup", "{}", sse.dump());
    assert_eq!(up.requests_for("silent").len(), 2);

    let reply = gw.chat(&chat_body("up/silent", "no fallback")).await;
    let err = reply.assert_error(504, "upstream_timeout");
    assert_eq!(attempts(&reply.json()).len(), 1, "{err:#}");
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_slow_first_byte_on_a_stream_falls_back() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let sse = gw.stream(&with_fallback(stream_body("up/slow", "too slow"))).await;
    sse.assert_complete();
    assert_eq!(
        sse.chunks()[0]["model"],
        format!("{BACKUP_MODEL}{MODEL_SUFFIX}"),
        "{}",
        sse.dump()
    );
    assert_eq!(up.requests_for("slow").len(), 1);
    gw.assert_serving().await;
}

#[tokio::test]
async fn no_first_token_within_first_token_timeout_falls_back_at_once() {
    let up = MockUpstream::start();
    let mut cfg = config(&up);
    cfg["providers"]["up"]["first_token_timeout"] = json!("1s");
    let gw = Gateway::start_cfg(&cfg);
    let began = Instant::now();
    let sse = gw
        .stream(&with_fallback(stream_body("up/late-first-token", "say something")))
        .await;
    sse.assert_complete();
    assert_eq!(sse.chunks()[0]["extra_fields"]["provider"], "backup", "{}", sse.dump());
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "keep-alive comments are not tokens: {:?}",
        began.elapsed()
    );
    assert_eq!(
        up.requests_for("late-first-token").len(),
        1,
        "not retried on the same target"
    );
    let reply = gw
        .post_json("/v1/chat/completions", &stream_body("up/late-first-token", "alone"))
        .await;
    reply.assert_error(504, "upstream_timeout");
    assert_eq!(up.requests_for("late-first-token").len(), 2);
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_byte_is_retried() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    for model in ["flaky-1-fail-503", "flaky-1-stream-error-first"] {
        let sse = gw.stream(&stream_body(&format!("up/{model}"), "try again")).await;
        sse.assert_complete();
        assert_eq!(sse.content(), "upstream saw: try again", "{model}: {}", sse.dump());
        assert_eq!(up.requests_for(model).len(), 2, "{model}");
    }
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_stream_cut_after_its_first_byte_ends_with_an_error_event_and_is_not_retried() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    for model in ["stream-cut", "idle-stream"] {
        let sse = gw
            .stream(&with_fallback(stream_body(&format!("up/{model}"), "half a story")))
            .await;
        assert_eq!(sse.status, 200, "{}", sse.dump());
        assert!(!sse.chunks().is_empty(), "{model}: {}", sse.dump());
        assert!(
            !sse.has_done(),
            "{model}: a cut stream must not end with [DONE]; {}",
            sse.dump()
        );
        let errors = sse.errors();
        assert_eq!(errors.len(), 1, "{model}: {}", sse.dump());
        assert!(errors[0]["error"]["message"].is_string(), "{model}: {}", sse.dump());
        assert_eq!(
            up.requests_for(model).len(),
            1,
            "{model}: bytes already reached the client"
        );
    }
    assert_eq!(
        up.requests_for(BACKUP_MODEL).len(),
        0,
        "no fallback after the first byte"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_truncated_json_body_is_retried_and_never_presented_as_success() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let reply = gw.chat(&chat_body("up/stream-cut", "truncated")).await;
    let err = reply.assert_error_shape();
    assert_eq!(reply.status, 502, "{err:#}");
    assert_eq!(up.requests_for("stream-cut").len(), 3);
    let reply = gw.chat(&with_fallback(chat_body("up/stream-cut", "truncated"))).await;
    reply.assert_status(200);
    assert_answered_by_backup(&reply.json());
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_context_length_error_is_never_resent_but_a_larger_model_takes_it() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let reply = gw.chat(&chat_body("up/context-400", "too long")).await;
    let err = reply.assert_error(400, "context_length_exceeded");
    assert_eq!(err["param"], "messages", "{err:#}");
    assert_eq!(up.requests_for("context-400").len(), 1);
    let reply = gw.chat(&with_fallback(chat_body("up/context-400", "too long"))).await;
    reply.assert_status(200);
    assert_answered_by_backup(&reply.json());
    assert_eq!(
        up.requests_for("context-400").len(),
        2,
        "once per client request, never resent"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_content_filter_refusal_is_final() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    for body in [
        chat_body("up/content-filter-400", "bad"),
        stream_body("up/content-filter-400", "bad"),
    ] {
        let reply = gw.post_json("/v1/chat/completions", &with_fallback(body)).await;
        let err = reply.assert_error(400, "content_filter");
        assert!(
            err["message"]
                .as_str()
                .unwrap_or_default()
                .contains("content management"),
            "the provider's reason is passed on: {err:#}"
        );
    }
    assert_eq!(up.requests_for("content-filter-400").len(), 2, "no retry");
    assert_eq!(up.requests_for(BACKUP_MODEL).len(), 0, "no fallback around a refusal");
    gw.assert_serving().await;
}

async fn circuits(gw: &Gateway, provider: &str) -> Value {
    gw.get("/admin/status").await.json()["providers"][provider]["circuits"].clone()
}

/// Polls `/admin/status` until the provider's first circuit is in `state` (the actor applies reports
/// asynchronously).
async fn wait_for_circuit(gw: &Gateway, provider: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = circuits(gw, provider).await;
        if now[0] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "circuit of {provider} never became {state}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_flapping_primary_opens_its_circuit_and_is_used_again_within_one_cooldown() {
    let up = MockUpstream::start();
    let mut cfg = config(&up);
    cfg["providers"]["up"]["retries"] = json!({"max": 0});
    cfg["providers"]["up"]["circuit_breaker"] = json!({"failures": 3, "window": "30s", "cooldown": "1s"});
    cfg["models"]["flappy"] = json!({
        "targets": [{"provider": "up", "model": "flappy", "weight": 1}],
        "fallbacks": [BACKUP],
    });
    let gw = Gateway::start_cfg(&cfg);
    up.set_down(true);
    for _ in 0..3 {
        let reply = gw.chat(&chat_body("flappy", "are you up?")).await;
        reply.assert_status(200);
        assert_answered_by_backup(&reply.json());
    }
    assert_eq!(up.requests_for("flappy").len(), 3);
    wait_for_circuit(&gw, "up", "open").await;

    // Open: the primary is skipped; the fallback answers without the primary being asked.
    for _ in 0..3 {
        let reply = gw.chat(&chat_body("flappy", "skip it")).await;
        reply.assert_status(200);
        assert_answered_by_backup(&reply.json());
    }
    assert_eq!(
        up.requests_for("flappy").len(),
        3,
        "an open circuit sends nothing upstream"
    );

    // After the cooldown one probe goes through; still down, so the circuit opens again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    gw.chat(&chat_body("flappy", "probe")).await.assert_status(200);
    assert_eq!(up.requests_for("flappy").len(), 4, "exactly one probe");
    wait_for_circuit(&gw, "up", "open").await;
    gw.chat(&chat_body("flappy", "still open")).await.assert_status(200);
    assert_eq!(up.requests_for("flappy").len(), 4);

    // Recovered: within one cooldown the probe succeeds and traffic returns.
    up.set_down(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = gw.chat(&chat_body("flappy", "back?")).await;
    reply.assert_status(200);
    assert_eq!(reply.json()["extra_fields"]["provider"], "up", "{}", reply.text());
    wait_for_circuit(&gw, "up", "closed").await;
    let reply = gw.chat(&chat_body("flappy", "back for good")).await;
    assert_eq!(reply.json()["extra_fields"]["provider"], "up");
    assert_eq!(up.requests_for("flappy").len(), 6);
    gw.assert_serving().await;
}

#[tokio::test]
async fn an_open_circuit_without_a_fallback_is_a_quick_503_with_retry_after() {
    let up = MockUpstream::start();
    let mut cfg = config(&up);
    cfg["providers"]["up"]["retries"] = json!({"max": 0});
    cfg["providers"]["up"]["circuit_breaker"] = json!({"failures": 2, "window": "30s", "cooldown": "30s"});
    let gw = Gateway::start_cfg(&cfg);
    for _ in 0..2 {
        gw.chat(&chat_body("up/fail-500", "break it")).await.assert_status(502);
    }
    wait_for_circuit(&gw, "up", "open").await;
    let reply = gw.chat(&chat_body("up/gpt-4o", "anyone?")).await;
    reply.assert_error(503, "circuit_open");
    let retry_after: u64 = reply.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=30).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(up.requests_for("gpt-4o").len(), 0);
    // Other providers are unaffected.
    gw.chat(&chat_body(BACKUP, "fine")).await.assert_status(200);
    gw.assert_serving().await;
}

#[tokio::test]
async fn weighted_targets_skip_a_target_whose_circuit_is_open() {
    let up = MockUpstream::start();
    let mut cfg = config(&up);
    cfg["providers"]["up"]["retries"] = json!({"max": 0});
    cfg["providers"]["up"]["circuit_breaker"] = json!({"failures": 1, "window": "30s", "cooldown": "30s"});
    cfg["models"]["split"] = json!({
        "targets": [
            {"provider": "up", "model": "fail-503", "weight": 3},
            {"provider": "backup", "model": BACKUP_MODEL, "weight": 1},
        ],
    });
    let gw = Gateway::start_cfg(&cfg);
    // Until the first pick of `up` fails, the weights decide; afterwards only `backup` is picked.
    let mut failed = 0;
    for _ in 0..40 {
        let reply = gw.chat(&chat_body("split", "pick one")).await;
        if reply.status != 200 {
            failed += 1;
            wait_for_circuit(&gw, "up", "open").await;
        }
    }
    assert_eq!(
        failed,
        up.requests_for("fail-503").len(),
        "every failure was a pick of `up`"
    );
    assert!(failed <= 1, "once open, `up` is no longer picked: {failed} failures");
    gw.assert_serving().await;
}

#[tokio::test]
async fn keys_are_weighted_and_a_failing_key_is_skipped_once_its_circuit_opens() {
    let up = MockUpstream::start();
    let mut cfg = config(&up);
    let spent = "sk-e2e-RATELIMITED-key-5b4a39281706";
    let heavy = "sk-e2e-HEAVY-key-0a1b2c3d4e5f6071";
    let light = "sk-e2e-LIGHT-key-8192a3b4c5d6e7f8";
    cfg["providers"]["up"]["keys"] = json!([
        {"value": heavy, "weight": 3.0},
        {"value": light, "weight": 1.0},
        {"value": spent, "weight": 4.0},
    ]);
    cfg["providers"]["up"]["circuit_breaker"] = json!({"failures": 1, "window": "30s", "cooldown": "30s"});
    let gw = Gateway::start_cfg(&cfg);
    for _ in 0..200 {
        gw.chat(&chat_body("up/gpt-4o", "which key?")).await.assert_status(200);
    }
    let used = |key: &str| {
        up.requests()
            .iter()
            .filter(|r| r.header("authorization") == Some(format!("Bearer {key}").as_str()))
            .count()
    };
    let (h, l, s) = (used(heavy), used(light), used(spent));
    assert!(s <= 2, "the spent key's circuit opens on its first 429: used {s} times");
    assert_eq!(h + l, 200, "every request was answered by a working key");
    // 3:1 → 150 expected; ±6σ.
    assert!((113..=187).contains(&h), "heavy {h}, light {l}");
    let health = circuits(&gw, "up").await;
    assert_eq!(health, json!(["closed", "closed", "open"]));
    gw.assert_serving().await;
}

#[tokio::test]
async fn weighted_targets_share_traffic_by_weight() {
    let up = MockUpstream::start();
    let mut cfg = config(&up);
    cfg["models"]["split"] = json!({
        "targets": [
            {"provider": "up", "model": "heavy", "weight": 3},
            {"provider": "backup", "model": "light", "weight": 1},
        ],
    });
    let gw = Gateway::start_cfg(&cfg);
    for _ in 0..200 {
        gw.chat(&chat_body("split", "share")).await.assert_status(200);
    }
    let heavy = up.requests_for("heavy").len();
    let light = up.requests_for("light").len();
    assert_eq!(heavy + light, 200);
    // 3:1 → 150 expected; ±6 standard deviations (σ ≈ 6.1) keeps this from flaking.
    assert!((113..=187).contains(&heavy), "heavy {heavy}, light {light}");
}

#[test]
fn the_openai_python_sdk_sees_each_fault_handled() {
    let python = switchyard_e2e::python::python();
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&config(&up));
    let env = [
        ("E2E_GATEWAY_URL", gw.base_url()),
        ("E2E_CLIENT_KEY", "sk-python-client-key-must-not-leak".to_owned()),
        ("E2E_BACKUP", BACKUP.to_owned()),
        ("E2E_BACKUP_MODEL", format!("{BACKUP_MODEL}{MODEL_SUFFIX}")),
    ];
    let (ok, output) = switchyard_e2e::python::run_pytest(&python, "tests/python/test_resilience_openai_sdk.py", &env);
    assert!(
        ok,
        "the openai SDK resilience tests failed:\n{output}\n--- daemon output ---\n{}",
        gw.logs()
    );
    assert_eq!(up.requests_for("flaky-1-fail-503").len(), 2);
    assert_eq!(up.requests_for("fail-429").len(), 3);
    assert_eq!(up.requests_for("content-filter-400").len(), 1);
    assert_eq!(up.requests_for("silent").len(), 1);
    assert_eq!(up.requests_for("stream-cut").len(), 1);
}

#[tokio::test]
async fn the_retry_budget_keeps_a_failing_provider_from_multiplying_its_load() {
    let up = MockUpstream::start();
    let mut cfg = config(&up);
    // Five retries each, a fixed 300 ms apart: unbudgeted, 10 requests would make 60 attempts.
    cfg["providers"]["up"]["retries"] = json!({"max": 5, "backoff": "300ms", "max_backoff": "300ms"});
    let gw = Gateway::start_cfg(&cfg);
    let body = chat_body("up/fail-503", "pile on");
    let replies = futures_util::future::join_all((0..10).map(|_| gw.chat(&body))).await;
    let mut per_request = Vec::new();
    for reply in &replies {
        reply.assert_error(502, "upstream_error");
        per_request.push(attempts(&reply.json()).len());
    }
    let total = up.requests_for("fail-503").len();
    assert_eq!(total, per_request.iter().sum::<usize>(), "{per_request:?}");
    // At most 3 + 20% of 10 retries run at once, and a request denied a retry stops retrying.
    assert!(
        total <= 40,
        "{total} upstream attempts for 10 requests: {per_request:?}"
    );
    assert!(
        per_request.iter().filter(|n| **n < 6).count() >= 5,
        "most requests were denied some retries: {per_request:?}"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn a_provider_at_its_concurrency_limit_queues_briefly_then_refuses_quickly() {
    let up = MockUpstream::start();
    let mut cfg = config(&up);
    // One in flight and a queue of one: the third concurrent request is refused at once.
    cfg["providers"]["up"]["concurrency"] = json!(1);
    let gw = Gateway::start_cfg(&cfg);
    let body = chat_body("up/delay-700", "one at a time");
    let began = Instant::now();
    let sends = (0..3).map(|i| {
        let body = &body;
        let gw = &gw;
        async move {
            // Staggered so the first surely holds the slot and the second surely waits.
            tokio::time::sleep(Duration::from_millis(150 * i)).await;
            let reply = gw.chat(body).await;
            (reply, began.elapsed())
        }
    });
    let replies = futures_util::future::join_all(sends).await;
    let (first, second, third) = (&replies[0], &replies[1], &replies[2]);
    first.0.assert_status(200);
    second.0.assert_status(200);
    assert!(
        second.1 >= Duration::from_millis(1350),
        "the queued one waited its turn: {:?}",
        second.1
    );
    third.0.assert_error(503, "provider_busy");
    assert_eq!(third.0.header("retry-after").as_deref(), Some("1"));
    assert!(
        third.1 < Duration::from_millis(650),
        "refused without waiting: {:?}",
        third.1
    );
    assert_eq!(up.requests_for("delay-700").len(), 2);
    gw.assert_serving().await;
}
