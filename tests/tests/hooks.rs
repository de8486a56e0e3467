//! Hooks through the real daemon: every action of the test fixture hook
//! (`tests/fixture-plugins/hook-fixture`, chosen per request with the `x-fixture-action` header),
//! `on_error` policies, the `models:` filter, hooks across a fallback, the `on_done` summary, the
//! out-of-tree hook template (`tests/external-hook`) and the official `openai` Python SDK.
//!
//! Chunk actions run against three streams that batch differently: the mock provider at once
//! (`echo`, typically one batch), the mock provider with a delay before each chunk (`drip/echo`,
//! one chunk per batch) and the mock OpenAI upstream (`gpt`, events cut into awkward fragments).
//! Their expectations are derived from the same stream without a hook action.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_e2e::client::{assert_completion_schema, chat_body, stream_body};
use switchyard_e2e::config::path_value;
use switchyard_e2e::external::build_out_of_tree;
use switchyard_e2e::paths;
use switchyard_e2e::python::{python, run_pytest};
use switchyard_e2e::upstream::{MODEL_SUFFIX, last_user_text};
use switchyard_e2e::{Gateway, MockUpstream, Reply, Sse, standard_config, to_yaml};

/// The header the fixture reads its action from.
const ACTION: &str = "x-fixture-action";
/// The fixture's configured `name`.
const HOOK: &str = "fx";
/// Streams with different batching (see the module docs).
const STREAM_MODELS: [&str; 3] = ["echo", "drip/echo", "gpt"];
const PROMPT: &str = "one two three four";

/// A `hooks:` entry for the fixture named [`HOOK`], plus `extra` members (`on_error`, `models`,
/// `config`).
fn fixture_hook(extra: Value) -> Value {
    let _ = paths::plugin_path("hook_fixture");
    let mut hook = json!({"plugin": "hook_fixture", "name": HOOK});
    if let (Some(hook), Value::Object(extra)) = (hook.as_object_mut(), extra) {
        hook.extend(extra);
    }
    hook
}

/// [`standard_config`] with `hooks`, and provider `drip`: the mock with a delay before each
/// stream chunk, so each chunk reaches the hooks in a batch of its own.
fn hooked_config(up: &MockUpstream, hooks: Value) -> Value {
    let mut cfg = standard_config(up);
    cfg["providers"]["drip"] = json!({"plugin": "mock", "options": {"chunk_delay_ms": 15}});
    cfg["hooks"] = hooks;
    cfg
}

/// A gateway with the fixture as its only hook.
fn gateway_with_fixture(up: &MockUpstream, extra: Value) -> Gateway {
    Gateway::start_cfg(&hooked_config(up, json!([fixture_hook(extra)])))
}

async fn chat_as(gw: &Gateway, body: &Value, action: &str) -> Reply {
    gw.post_with("/v1/chat/completions", body, &[(ACTION, action)]).await
}

async fn stream_as(gw: &Gateway, body: &Value, action: &str) -> Sse {
    gw.stream_with("/v1/chat/completions", body, &[(ACTION, action)]).await
}

/// An OpenAI error body exactly as `Rejection::new` writes it.
fn rejection_body(error_type: &str, code: &str, message: &str) -> Value {
    json!({"error": {"message": message, "type": error_type, "code": code, "param": null}})
}

/// A hook's rejection as the client gets it: the hook's body, plus the `extra_fields` every
/// error carries (naming the hook as what answered). Returns the body without them.
fn hook_body(mut body: Value, hook: &str) -> Value {
    let extra = body
        .as_object_mut()
        .and_then(|o| o.remove("extra_fields"))
        .unwrap_or_else(|| panic!("a hook's rejection carries extra_fields: {body:#}"));
    assert_eq!(extra["provider"], hook, "{extra:#}");
    assert!(extra["latency"].is_u64(), "{extra:#}");
    body
}

/// The non-empty `delta.content` of choice 0, chunk by chunk.
fn text_pieces(sse: &Sse) -> Vec<String> {
    sse.chunks()
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The stream of `model` for [`PROMPT`] with no hook action: what the chunk actions change.
async fn baseline(gw: &Gateway, model: &str) -> Sse {
    let sse = gw.stream(&stream_body(model, PROMPT)).await;
    sse.assert_complete();
    assert!(
        text_pieces(&sse).len() >= 3,
        "{model}: too few text chunks: {}",
        sse.dump()
    );
    sse
}

/// Asserts a 500 `hook_failed` naming the hook, for a plain answer.
#[track_caller]
fn assert_hook_failed(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 500, "{what}: {}", reply.text());
    let v = reply.json();
    assert_eq!(v["error"]["code"], "hook_failed", "{what}: {v:#}");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| m.contains(HOOK)),
        "{what}: the error names the hook: {v:#}"
    );
}

/// Asserts a stream failed by a hook under `fail_closed`: once the stream has started (200), an
/// error event `hook_failed` ends it without `[DONE]`; a gateway that runs the first batch
/// before sending the status may answer a plain 500 `hook_failed` instead.
#[track_caller]
fn assert_stream_hook_failed(sse: &Sse, what: &str) {
    assert!(!sse.has_done(), "{what}: no [DONE]: {}", sse.dump());
    if sse.status != 200 {
        assert_eq!(sse.status, 500, "{what}: {}", sse.dump());
        let body: Value = serde_json::from_str(&sse.raw).unwrap_or_else(|e| panic!("{what}: {e}: {}", sse.dump()));
        assert_eq!(body["error"]["code"], "hook_failed", "{what}: {}", sse.dump());
        return;
    }
    let errors = sse.errors();
    assert_eq!(errors.len(), 1, "{what}: one error event: {}", sse.dump());
    assert_eq!(errors[0]["error"]["code"], "hook_failed", "{what}: {}", sse.dump());
    assert_eq!(
        sse.json_events().last().copied(),
        Some(errors[0]),
        "{what}: the error ends the stream: {}",
        sse.dump()
    );
    sse.assert_chunk_indexes();
}

/// The lines of a file the fixture appends to (none when it does not exist yet).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `path` holds `n` lines (on_done runs once the answer has gone out, so it may lag
/// the client a little), then a little longer to catch an extra line; returns them parsed.
async fn wait_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines(path).len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let got = lines(path);
    assert_eq!(got.len(), n, "{}: expected {n} lines, got {got:#?}", path.display());
    got.iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The `/admin/status` entry of hook [`HOOK`].
async fn hook_status(gw: &Gateway) -> Value {
    let v = gw.get("/admin/status").await.json();
    v["hooks"]
        .as_array()
        .and_then(|hooks| hooks.iter().find(|h| h["name"] == HOOK))
        .cloned()
        .unwrap_or_else(|| panic!("no hooks[] entry named {HOOK} in /admin/status: {v:#}"))
}

// ------------------------------------------------------------------------------- loading

/// Runs on today's config schema too: the fixture loads as a hook plugin, and a request that
/// names no action passes untouched, plain and streamed.
#[tokio::test]
async fn the_fixture_loads_and_requests_without_an_action_pass_untouched() {
    let up = MockUpstream::start();
    let _ = paths::plugin_path("hook_fixture");
    let cfg = hooked_config(&up, json!([{"plugin": "hook_fixture"}]));
    let check = Gateway::check(&to_yaml(&cfg));
    assert_eq!(check.code, Some(0), "check loads the fixture as a hook: {check:?}");

    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("echo", "no action here")).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "no action here");
    let reply = gw.chat(&chat_body("gpt", "to the upstream")).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "upstream saw: to the upstream");
    assert_eq!(last_user_text(&up.last_request().json()), "to the upstream");
    for model in STREAM_MODELS {
        let sse = baseline(&gw, model).await;
        assert!(sse.content().ends_with(PROMPT), "{model}: {}", sse.dump());
    }
}

#[test]
fn the_fixture_is_a_hook_not_a_provider() {
    let up = MockUpstream::start();
    let _ = paths::plugin_path("hook_fixture");
    let mut cfg = standard_config(&up);
    cfg["providers"]["fx"] = json!({"plugin": "hook_fixture"});
    let (code, stderr) = Gateway::start_expect_failure(&to_yaml(&cfg));
    assert!(code.is_some_and(|c| c != 0), "{code:?}\n{stderr}");
    assert!(stderr.contains("hook_fixture"), "the error names the plugin:\n{stderr}");
}

// --------------------------------------------------------------------------- pre_request

#[tokio::test]
async fn short_circuit_answers_plainly_without_an_upstream_call() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    let reply = chat_as(&gw, &chat_body("gpt", "never sent"), "short-circuit").await;
    reply.assert_status(200);
    let v = reply.json();
    assert_completion_schema(&v);
    assert_eq!(
        v["choices"][0]["message"]["content"], "short-circuited by fixture",
        "{v:#}"
    );
    assert_eq!(v["model"], "fixture", "{v:#}");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}),
        "{v:#}"
    );
    assert_eq!(v["extra_fields"]["provider"], HOOK, "{v:#}");
    assert!(up.requests().is_empty(), "no upstream call: {:?}", up.requests());
}

#[tokio::test]
async fn short_circuit_streams_the_hooks_chunks_without_an_upstream_call() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    let sse = stream_as(&gw, &stream_body("gpt", "never sent"), "short-circuit").await;
    sse.assert_complete();
    assert_eq!(sse.content(), "short-circuited by fixture", "{}", sse.dump());
    assert_eq!(
        text_pieces(&sse),
        ["short-circuited", " by", " fixture"],
        "{}",
        sse.dump()
    );
    let chunks = sse.chunks();
    assert_eq!(chunks.len(), 5, "role, three pieces, finish: {}", sse.dump());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant", "{}", sse.dump());
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop", "{}", sse.dump());
    assert!(chunks.iter().all(|c| c["model"] == "fixture"), "{}", sse.dump());
    assert!(up.requests().is_empty(), "no upstream call: {:?}", up.requests());
}

#[tokio::test]
async fn reject_sends_exactly_the_hooks_status_body_and_retry_after() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    let expected = rejection_body("rate_limit_error", "fixture_reject", "rejected by fixture");

    let reply = chat_as(&gw, &chat_body("gpt", "never sent"), "reject").await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(hook_body(reply.json(), "fx"), expected, "exactly the hook's body");
    assert_eq!(reply.header("retry-after").as_deref(), Some("7"));
    assert!(
        reply
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{:?}",
        reply.headers
    );
    assert!(reply.header("x-request-id").is_some(), "{:?}", reply.headers);

    // A streaming client is refused the same way, before any stream starts.
    let sse = stream_as(&gw, &stream_body("gpt", "never sent"), "reject").await;
    assert_eq!(sse.status, 429, "{}", sse.dump());
    assert_eq!(sse.header("retry-after").as_deref(), Some("7"));
    let body: Value = serde_json::from_str(&sse.raw).unwrap_or_else(|e| panic!("{e}: {}", sse.dump()));
    assert_eq!(hook_body(body, "fx"), expected);
    assert!(up.requests().is_empty(), "no upstream call: {:?}", up.requests());
}

#[tokio::test]
async fn replace_request_is_what_the_provider_sees() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    let reply = chat_as(&gw, &chat_body("echo", "the original"), "replace-request").await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "replaced by fixture");

    let reply = chat_as(&gw, &chat_body("gpt", "the original"), "replace-request").await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "upstream saw: replaced by fixture");
    let sent = up.last_request().json();
    assert_eq!(last_user_text(&sent), "replaced by fixture", "{sent:#}");
    assert_eq!(
        sent["model"], "gpt-4o",
        "the replaced request is routed as before: {sent:#}"
    );

    let sse = stream_as(&gw, &stream_body("echo", "the original"), "replace-request").await;
    sse.assert_complete();
    assert_eq!(sse.content(), "replaced by fixture", "{}", sse.dump());
}

/// A replacement the gateway cannot use is the hook's fault, handled by its `on_error`: one
/// that is not a chat request, or one that changes `stream` (how the client reads the answer
/// is the client's choice).
#[tokio::test]
async fn an_unusable_replacement_is_a_hook_fault() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    for action in ["replace-invalid", "replace-stream"] {
        let reply = chat_as(&gw, &chat_body("echo", "the original"), action).await;
        let v = reply.assert_error(500, "hook_failed");
        assert!(
            v["message"].as_str().unwrap_or("").contains("hook `fx`"),
            "{action}: names the hook: {v:#}"
        );
        let sse = stream_as(&gw, &stream_body("echo", "the original"), action).await;
        assert_eq!(sse.status, 500, "{action}: {}", sse.dump());
    }
    assert!(up.requests().is_empty(), "nothing went upstream");
    gw.assert_serving().await;
}

// ------------------------------------------------------------------------- post_response

#[tokio::test]
async fn post_replace_replaces_the_answer() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    for (model, provider) in [("echo", "local"), ("gpt", "up")] {
        let reply = chat_as(&gw, &chat_body(model, "the original answer"), "post-replace").await;
        reply.assert_status(200);
        let v = reply.json();
        assert_completion_schema(&v);
        assert_eq!(
            v["choices"][0]["message"]["content"], "replaced answer by fixture",
            "{v:#}"
        );
        assert_eq!(v["extra_fields"]["provider"], provider, "{v:#}");
    }
    assert_eq!(up.requests().len(), 1, "the answer came from the upstream first");
}

#[tokio::test]
async fn post_reject_sends_exactly_the_hooks_403() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    let reply = chat_as(&gw, &chat_body("gpt", "answered, then refused"), "post-reject").await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(
        hook_body(reply.json(), "fx"),
        rejection_body("permission_error", "fixture_post_reject", "answer rejected by fixture")
    );
    assert_eq!(up.requests().len(), 1, "the upstream answered before the hook refused");
}

// ------------------------------------------------------------------------------ on_chunks

#[tokio::test]
async fn replace_chunk_replaces_the_first_text_chunk() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    for model in STREAM_MODELS {
        let before = text_pieces(&baseline(&gw, model).await);
        let sse = stream_as(&gw, &stream_body(model, PROMPT), "replace-chunk").await;
        sse.assert_complete();
        let mut expected = vec!["[fixture]".to_owned()];
        expected.extend_from_slice(&before[1..]);
        assert_eq!(text_pieces(&sse), expected, "{model}: {}", sse.dump());
    }
}

#[tokio::test]
async fn drop_chunk_drops_the_second_text_chunk_and_chunk_index_stays_contiguous() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    for model in STREAM_MODELS {
        let base = baseline(&gw, model).await;
        let before = text_pieces(&base);
        let sse = stream_as(&gw, &stream_body(model, PROMPT), "drop-chunk").await;
        // Checks chunk_index 0, 1, 2, … after the drop.
        sse.assert_complete();
        let mut expected = before.clone();
        expected.remove(1);
        assert_eq!(text_pieces(&sse), expected, "{model}: {}", sse.dump());
        assert_eq!(
            sse.chunks().len(),
            base.chunks().len() - 1,
            "{model}: one chunk fewer: {}",
            sse.dump()
        );
    }
}

#[tokio::test]
async fn end_stream_ends_with_the_hooks_error_event_and_no_done() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    for model in STREAM_MODELS {
        let before = text_pieces(&baseline(&gw, model).await);
        let sse = stream_as(&gw, &stream_body(model, PROMPT), "end-stream").await;
        assert_eq!(sse.status, 200, "{model}: {}", sse.dump());
        assert!(!sse.has_done(), "{model}: no [DONE] after the error: {}", sse.dump());
        assert_eq!(text_pieces(&sse), before[..2], "{model}: {}", sse.dump());
        sse.assert_chunk_indexes();
        assert_eq!(sse.errors().len(), 1, "{model}: {}", sse.dump());
        let last = sse.json_events().last().copied().cloned().unwrap_or_default();
        assert_eq!(
            last,
            rejection_body("server_error", "fixture_end", "stream ended by fixture"),
            "{model}: the stream's last event is the hook's error: {}",
            sse.dump()
        );
    }
}

#[tokio::test]
async fn hold_releases_the_text_at_the_end_before_done() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    for model in STREAM_MODELS {
        let base = baseline(&gw, model).await;
        let sse = stream_as(&gw, &stream_body(model, PROMPT), "hold").await;
        sse.assert_complete();
        assert_eq!(
            text_pieces(&sse),
            [base.content()],
            "{model}: all the text in one chunk: {}",
            sse.dump()
        );
        let chunks = sse.chunks();
        let last = chunks.last().copied().cloned().unwrap_or_default();
        assert_eq!(
            last.pointer("/choices/0/delta/content").and_then(Value::as_str),
            Some(base.content().as_str()),
            "{model}: the held text is the last chunk before [DONE]: {}",
            sse.dump()
        );
        assert!(
            chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"),
            "{model}: chunks without text are kept: {}",
            sse.dump()
        );
    }
}

// ------------------------------------------------------------------------------- on_error

#[tokio::test]
async fn a_failing_hook_under_fail_closed_is_500_hook_failed() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({"on_error": "fail_closed"}));
    for action in ["panic-pre", "error-pre", "panic-post"] {
        let reply = chat_as(&gw, &chat_body("echo", "fail me"), action).await;
        assert_hook_failed(&reply, action);
        // Between panics a good call, so none of this counts as panics in a row.
        gw.assert_serving().await;
    }

    let sse = stream_as(&gw, &stream_body("echo", "fail me"), "panic-pre").await;
    assert_eq!(sse.status, 500, "{}", sse.dump());
    let body: Value = serde_json::from_str(&sse.raw).unwrap_or_else(|e| panic!("{e}: {}", sse.dump()));
    assert_eq!(body["error"]["code"], "hook_failed", "{}", sse.dump());
    gw.assert_serving().await;

    for model in STREAM_MODELS {
        let sse = stream_as(&gw, &stream_body(model, PROMPT), "panic-chunk").await;
        assert_stream_hook_failed(&sse, model);
        gw.assert_serving().await;
    }
}

#[tokio::test]
async fn a_failing_hook_under_fail_open_is_skipped_and_counted() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({"on_error": "fail_open"}));
    for action in ["panic-pre", "error-pre", "panic-post"] {
        let reply = chat_as(&gw, &chat_body("echo", "answer anyway"), action).await;
        reply.assert_status(200);
        assert_eq!(reply.content(), "answer anyway", "{action}");
    }
    let status = hook_status(&gw).await;
    assert_eq!(status["plugin"], "hook_fixture", "{status:#}");
    assert!(status["faults"].as_u64().is_some_and(|n| n >= 3), "{status:#}");
    assert!(status["panics"].as_u64().is_some_and(|n| n >= 2), "{status:#}");
    assert_eq!(
        status["disabled"], false,
        "a call that returns resets the panics in a row: {status:#}"
    );

    for model in STREAM_MODELS {
        let base = baseline(&gw, model).await;
        let sse = stream_as(&gw, &stream_body(model, PROMPT), "panic-chunk").await;
        sse.assert_complete();
        assert_eq!(sse.content(), base.content(), "{model}: {}", sse.dump());
    }
    let status = hook_status(&gw).await;
    assert!(status["faults"].as_u64().is_some_and(|n| n >= 6), "{status:#}");
    assert!(status["panics"].as_u64().is_some_and(|n| n >= 5), "{status:#}");
}

/// Five panics in a row switch the hook off (shown in `/admin/status`); under `fail_open` the
/// requests keep being answered meanwhile.
#[tokio::test]
async fn five_panics_in_a_row_switch_the_hook_off() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({"on_error": "fail_open"}));
    for i in 0..5 {
        assert_eq!(hook_status(&gw).await["disabled"], false, "after {i} panics");
        let reply = chat_as(&gw, &chat_body("echo", "panic"), "panic-pre").await;
        reply.assert_status(200);
        assert_eq!(reply.content(), "panic");
    }
    let status = hook_status(&gw).await;
    assert_eq!(status["disabled"], true, "{status:#}");
    assert_eq!(status["panics"], 5, "{status:#}");
    // Switched off, the hook is skipped: no short-circuit.
    let reply = chat_as(&gw, &chat_body("echo", "still answered"), "short-circuit").await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "still answered");
}

// ------------------------------------------------------------------------ where hooks run

#[tokio::test]
async fn a_hook_limited_by_models_runs_only_for_those_model_strings() {
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({"models": ["echo"]}));
    let reply = chat_as(&gw, &chat_body("echo", "hooked"), "short-circuit").await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "short-circuited by fixture");

    // The same provider and model under another name: the hook does not run.
    let reply = chat_as(&gw, &chat_body("local/echo", "not hooked"), "short-circuit").await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "not hooked");
    let reply = chat_as(&gw, &chat_body("gpt", "not hooked"), "short-circuit").await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "upstream saw: not hooked");
    assert_eq!(up.requests().len(), 1);
    let sse = stream_as(&gw, &stream_body("gpt", "not hooked"), "short-circuit").await;
    sse.assert_complete();
    assert_eq!(sse.content(), "upstream saw: not hooked", "{}", sse.dump());
}

#[tokio::test]
async fn pre_hooks_run_once_per_request_across_fallbacks() {
    let up = MockUpstream::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (pre, done) = (dir.path().join("pre.log"), dir.path().join("done.jsonl"));
    let mut cfg = hooked_config(
        &up,
        json!([fixture_hook(
            json!({"config": {"pre_file": path_value(&pre), "done_file": path_value(&done)}})
        )]),
    );
    cfg["models"]["flaky"] = json!({
        "targets": [{"provider": "up", "model": "fail-500", "weight": 1}],
        "fallbacks": ["up/fail-503", "gpt"],
    });
    let gw = Gateway::start_cfg(&cfg);

    let reply = chat_as(&gw, &chat_body("flaky", "the original"), "replace-request").await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "upstream saw: replaced by fixture");
    let sent = up.requests();
    let models: Vec<String> = sent.iter().map(|r| r.model()).collect();
    assert_eq!(models, ["fail-500", "fail-503", "gpt-4o"], "three attempts");
    for r in &sent {
        assert_eq!(
            last_user_text(&r.json()),
            "replaced by fixture",
            "every attempt sends the replaced request"
        );
    }
    assert_eq!(lines(&pre).len(), 1, "pre_request ran once: {:?}", lines(&pre));
    let summaries = wait_lines(&done, 1).await;
    assert_eq!(summaries[0]["alias"], "flaky", "{:#}", summaries[0]);
    assert_eq!(summaries[0]["provider"], "up", "{:#}", summaries[0]);
    assert_eq!(summaries[0]["status"], 200, "{:#}", summaries[0]);

    let sse = stream_as(&gw, &stream_body("flaky", "the original"), "replace-request").await;
    sse.assert_complete();
    assert_eq!(sse.content(), "upstream saw: replaced by fixture", "{}", sse.dump());
    assert_eq!(lines(&pre).len(), 2, "{:?}", lines(&pre));
    wait_lines(&done, 2).await;

    // A request-level fallback to a local provider.
    let mut body = chat_body("up/fail-500", "the original");
    body["fallbacks"] = json!(["local/echo"]);
    let reply = chat_as(&gw, &body, "replace-request").await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "replaced by fixture");
    assert_eq!(lines(&pre).len(), 3, "{:?}", lines(&pre));
    let summaries = wait_lines(&done, 3).await;
    assert_eq!(summaries[2]["provider"], "local", "{:#}", summaries[2]);
}

#[tokio::test]
async fn on_done_gets_the_summary_of_each_request() {
    let up = MockUpstream::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let done = dir.path().join("done.jsonl");
    let gw = gateway_with_fixture(&up, json!({"config": {"done_file": path_value(&done)}}));

    // A plain answer from the upstream.
    let reply = gw.chat(&chat_body("gpt", "summarise me")).await;
    reply.assert_status(200);
    let answer = reply.json();
    let s = wait_lines(&done, 1).await.remove(0);
    let fields: Vec<&str> = s
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for field in [
        "request_id",
        "alias",
        "provider",
        "model",
        "status",
        "stream",
        "usage",
        "cost",
        "cache_hit",
        "latency_ms",
    ] {
        assert!(fields.contains(&field), "summary has `{field}`: {s:#}");
    }
    assert_eq!(
        s["request_id"].as_str(),
        reply.header("x-request-id").as_deref(),
        "{s:#}"
    );
    assert_eq!(s["alias"], "gpt", "{s:#}");
    assert_eq!(s["provider"], "up", "{s:#}");
    assert!(
        s["model"].as_str().is_some_and(|m| m.starts_with("gpt-4o")),
        "the model that answered: {s:#}"
    );
    assert_eq!(s["status"], 200, "{s:#}");
    assert_eq!(s["stream"], false, "{s:#}");
    for k in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(s["usage"][k], answer["usage"][k], "usage.{k}: {s:#}");
    }
    // The cost the client was told (gpt-4o has a price).
    assert!(
        answer["usage"]["cost"]["total_cost"].as_f64().is_some_and(|c| c > 0.0),
        "{answer}"
    );
    assert_eq!(s["cost"], answer["usage"]["cost"], "{s:#}");
    assert_eq!(s["cache_hit"], false, "{s:#}");
    assert!(s["latency_ms"].is_u64(), "{s:#}");

    // A stream from the local provider.
    let sse = gw.stream(&stream_body("echo", "stream me")).await;
    sse.assert_complete();
    let s = wait_lines(&done, 2).await.remove(1);
    assert_eq!(s["request_id"].as_str(), sse.header("x-request-id").as_deref(), "{s:#}");
    assert_eq!(s["alias"], "echo", "{s:#}");
    assert_eq!(s["provider"], "local", "{s:#}");
    assert_eq!(s["model"], "echo", "{s:#}");
    assert_eq!(s["stream"], true, "{s:#}");
    assert_eq!(s["status"], 200, "{s:#}");
    assert_eq!(s["cost"], Value::Null, "the mock provider has no price: {s:#}");

    // A short-circuit: served by the hook.
    chat_as(&gw, &chat_body("gpt", "short"), "short-circuit")
        .await
        .assert_status(200);
    let s = wait_lines(&done, 3).await.remove(2);
    assert_eq!(s["provider"], HOOK, "{s:#}");
    assert!(s["model"] == "fixture" || s["model"].is_null(), "{s:#}");
    assert_eq!(
        s["usage"],
        json!({"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}),
        "{s:#}"
    );
    assert_eq!(s["cost"], Value::Null, "no provider was paid: {s:#}");

    // A rejection is an answer too.
    chat_as(&gw, &chat_body("gpt", "no"), "reject").await;
    let s = wait_lines(&done, 4).await.remove(3);
    assert_eq!(s["status"], 429, "{s:#}");
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn on_done_says_when_the_cache_answered_and_that_it_cost_nothing() {
    let up = MockUpstream::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let done = dir.path().join("done.jsonl");
    let mut cfg = hooked_config(
        &up,
        json!([fixture_hook(json!({"config": {"done_file": path_value(&done)}}))]),
    );
    cfg["cache"] = json!({"enabled": true});
    let gw = Gateway::start_cfg(&cfg);
    let ns = [("x-bf-cache-key", "summaries")];
    let body = chat_body("gpt", "cache me");
    let first = gw.post_with("/v1/chat/completions", &body, &ns).await.json();
    let second = gw.post_with("/v1/chat/completions", &body, &ns).await.json();
    assert_eq!(second["extra_fields"]["cache_debug"]["cache_hit"], true, "{second}");
    let s = wait_lines(&done, 2).await;
    assert_eq!(s[0]["cache_hit"], false, "{:#}", s[0]);
    assert_eq!(s[0]["cost"], first["usage"]["cost"], "{:#}", s[0]);
    assert_eq!(s[1]["cache_hit"], true, "{:#}", s[1]);
    assert_eq!(s[1]["cost"]["total_cost"], 0.0, "{:#}", s[1]);
    assert_eq!(s[1]["provider"], "up", "what produced the cached answer: {:#}", s[1]);
}

// ------------------------------------------------------------------ an out-of-tree hook

/// Builds `tests/external-hook` once per test binary; returns the library's path.
fn block_users_hook() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_out_of_tree("tests/external-hook", "block_users"))
}

#[tokio::test]
async fn the_hook_template_built_out_of_tree_loads_by_path() {
    let lib = block_users_hook();
    let up = MockUpstream::start();
    let cfg = hooked_config(
        &up,
        json!([{"plugin": path_value(lib), "config": {"blocked_users": ["mallory"]}}]),
    );
    let check = Gateway::check(&to_yaml(&cfg));
    assert_eq!(check.code, Some(0), "check loads the hook: {check:?}");

    let gw = Gateway::start_cfg(&cfg);
    let mut body = chat_body("gpt", "let me in");
    body["user"] = json!("mallory");
    let reply = gw.chat(&body).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(
        hook_body(reply.json(), "block_users"),
        rejection_body("permission_error", "user_blocked", "this user may not use the gateway"),
        "named after its library when configured by path"
    );
    body["stream"] = json!(true);
    let sse = gw.stream(&body).await;
    assert_eq!(sse.status, 403, "{}", sse.dump());
    assert!(up.requests().is_empty(), "a blocked user reaches no upstream");

    body["user"] = json!("alice");
    body["stream"] = json!(false);
    let reply = gw.chat(&body).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "upstream saw: let me in");
    gw.chat(&chat_body("gpt", "no user")).await.assert_status(200);
    assert_eq!(up.requests().len(), 2);
}

// ------------------------------------------------------------------- the openai Python SDK

#[test]
fn openai_python_sdk_through_hook_actions() {
    let python = python();
    let up = MockUpstream::start();
    let gw = gateway_with_fixture(&up, json!({}));
    let env = [
        ("E2E_GATEWAY_URL", gw.base_url()),
        ("E2E_MODEL", "echo".to_owned()),
        ("E2E_UPSTREAM_MODEL", "gpt".to_owned()),
        ("E2E_UPSTREAM_ANSWER_MODEL", format!("gpt-4o{MODEL_SUFFIX}")),
    ];
    let (ok, output) = run_pytest(&python, "tests/python/test_hooks_openai_sdk.py", &env);
    assert!(
        ok,
        "the openai Python SDK hook tests failed:\n{output}\n--- daemon output ---\n{}",
        gw.logs()
    );
    // Only the replace-chunk stream through `gpt` reached the upstream.
    assert_eq!(up.requests().len(), 1, "{:?}", up.requests());
}
