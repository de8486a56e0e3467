//! The response cache end to end (exact tier, memory backend): the real daemon, the real
//! `openai` plugin, the mock OpenAI upstream counting what reaches it.

use serde_json::{Value, json};
use std::time::Duration;
use switchyard_e2e::client::{chat_body, stream_body};
use switchyard_e2e::{Gateway, MockUpstream, standard_config};

fn cached_config(up: &MockUpstream) -> Value {
    let mut cfg = standard_config(up);
    cfg["cache"] = json!({"enabled": true, "ttl": "5m", "max_entries": 1000});
    // Cached without the client asking.
    cfg["models"]["faq"] = json!({"targets": [{"provider": "up", "model": "gpt-4o"}], "cache": true});
    cfg
}

fn debug(v: &Value) -> &Value {
    &v["extra_fields"]["cache_debug"]
}

/// Upstream requests so far for the model the `gpt` alias calls.
fn upstream_calls(up: &MockUpstream) -> usize {
    up.requests_for("gpt-4o").len()
}

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache_at_no_cost() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&cached_config(&up));
    let ns = [("x-bf-cache-key", "team-a")];
    let body = chat_body("gpt", "What is the capital of France?");

    let first = gw.post_with("/v1/chat/completions", &body, &ns).await;
    let first = first.assert_status(200).json();
    assert_eq!(debug(&first)["cache_hit"], false, "{first}");
    let id = debug(&first)["cache_id"].as_str().expect("cache_id").to_string();
    assert_eq!(id.len(), 32);
    assert!(first["usage"]["cost"]["total_cost"].as_f64().is_some_and(|c| c > 0.0));
    assert_eq!(upstream_calls(&up), 1);

    let second = gw.post_with("/v1/chat/completions", &body, &ns).await;
    let second = second.assert_status(200).json();
    assert_eq!(upstream_calls(&up), 1, "the upstream was not asked again");
    assert_eq!(debug(&second)["cache_hit"], true, "{second}");
    assert_eq!(debug(&second)["hit_type"], "direct");
    assert_eq!(debug(&second)["cache_id"], id.as_str());
    assert_eq!(second["choices"], first["choices"]);
    assert_eq!(second["id"], first["id"]);
    assert_eq!(
        second["usage"]["cost"]["total_cost"], 0.0,
        "a hit costs nothing: {second}"
    );
    assert_eq!(second["extra_fields"]["provider"], "up");
    assert_eq!(second["extra_fields"]["model_deployment"], "gpt-4o");

    let status = gw.get("/admin/status").await.json();
    assert_eq!(status["cache"]["hits"], 1, "{status}");
    assert_eq!(status["cache"]["stores"], 1, "{status}");
    // The ledger paid for one answer, not two (it hears of answers in batches: wait for it).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while gw.get("/v1/usage").await.json()["total"]["requests"].as_u64() == Some(0)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let usage = gw.get("/v1/usage").await.json();
    assert_eq!(usage["providers"]["up"]["models"]["gpt-4o"]["requests"], 1, "{usage}");
}

#[tokio::test]
async fn the_key_ignores_key_order_and_spacing_but_not_case_parameters_or_tenant() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&cached_config(&up));
    let post_raw = |body: &'static str, ns: &'static str| {
        let gw = &gw;
        async move {
            let resp = switchyard_e2e::client::http()
                .post(gw.url("/v1/chat/completions"))
                .header("content-type", "application/json")
                .header("x-bf-cache-key", ns)
                .body(body)
                .send()
                .await
                .expect("sent");
            let v: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json");
            debug(&v)["cache_hit"]
                .as_bool()
                .unwrap_or_else(|| panic!("cache_debug in {v}"))
        }
    };
    let original = r#"{"model":"gpt","messages":[{"role":"user","content":"Hello There"}],"temperature":0.2}"#;
    assert!(!post_raw(original, "t1").await);
    // Same request, keys reordered and spaced out, delivery options added: a hit.
    let reordered = r#"{ "temperature" : 0.2,
        "messages": [ { "content": "Hello There", "role": "user" } ],
        "model": "gpt", "stream_options": null, "fallbacks": [] }"#;
    assert!(
        post_raw(reordered, "t1").await,
        "key order and whitespace do not matter"
    );
    // Case, spacing inside the text, parameters, and the tenant all do.
    for (other, ns) in [
        (
            r#"{"model":"gpt","messages":[{"role":"user","content":"hello there"}],"temperature":0.2}"#,
            "t1",
        ),
        (
            r#"{"model":"gpt","messages":[{"role":"user","content":"Hello  There"}],"temperature":0.2}"#,
            "t1",
        ),
        (
            r#"{"model":"gpt","messages":[{"role":"user","content":"Hello There"}],"temperature":0.3}"#,
            "t1",
        ),
        (original, "t2"),
    ] {
        assert!(!post_raw(other, ns).await, "{other} in {ns} must miss");
    }
    // Long conversations are cached like short ones.
    let long: Value = json!({"model": "gpt", "messages": (0..12).map(|i| json!({
        "role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("turn {i}")})).collect::<Vec<_>>()});
    let ns = [("x-bf-cache-key", "t1")];
    gw.post_with("/v1/chat/completions", &long, &ns)
        .await
        .assert_status(200);
    let again = gw.post_with("/v1/chat/completions", &long, &ns).await.json();
    assert_eq!(debug(&again)["cache_hit"], true, "{again}");
}

#[tokio::test]
async fn a_stream_is_replayed_as_a_stream_and_answers_the_plain_form_exactly() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&cached_config(&up));
    let ns = [("x-bf-cache-key", "streams")];
    let body = stream_body("gpt", "stream me once");
    let first = gw.stream_with("/v1/chat/completions", &body, &ns).await;
    first.assert_complete();
    assert_eq!(upstream_calls(&up), 1);
    let second = gw.stream_with("/v1/chat/completions", &body, &ns).await;
    second.assert_complete();
    assert_eq!(upstream_calls(&up), 1, "replayed, not asked again");
    assert_eq!(second.content(), first.content());
    let chunks = second.chunks();
    assert!(chunks.len() > 1);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["extra_fields"]["cache_debug"]["cache_hit"], true, "{c}");
        assert_eq!(c["extra_fields"]["chunk_index"], i as u64);
    }
    let last = chunks.last().expect("chunks");
    assert_eq!(last["usage"]["cost"]["total_cost"], 0.0, "{last}");
    assert_eq!(
        chunks[0]["extra_fields"]["cache_debug"]["cache_id"],
        first.chunks()[0]["extra_fields"]["cache_debug"]["cache_id"]
    );
    // The plain form of the same request is the completion the stored chunks add up to.
    let plain = gw
        .post_with("/v1/chat/completions", &chat_body("gpt", "stream me once"), &ns)
        .await
        .json();
    assert_eq!(debug(&plain)["cache_hit"], true, "{plain}");
    assert_eq!(upstream_calls(&up), 1, "served from the stored stream");
    assert_eq!(plain["object"], "chat.completion");
    assert_eq!(plain["choices"][0]["message"]["content"], first.content().as_str());
    assert_eq!(plain["choices"][0]["finish_reason"], "stop");
    assert_eq!(plain["usage"]["cost"]["total_cost"], 0.0, "{plain}");
    assert!(
        plain["usage"]["prompt_tokens"].as_u64().is_some_and(|n| n > 0),
        "{plain}"
    );
}

#[tokio::test]
async fn a_plain_answer_is_replayed_as_a_stream_when_a_stream_asks() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&cached_config(&up));
    let ns = [("x-bf-cache-key", "plain-to-stream")];
    let plain = gw
        .post_with("/v1/chat/completions", &chat_body("gpt", "answer me once"), &ns)
        .await
        .json();
    assert_eq!(upstream_calls(&up), 1);
    for include_usage in [false, true] {
        let mut body = stream_body("gpt", "answer me once");
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let sse = gw.stream_with("/v1/chat/completions", &body, &ns).await;
        sse.assert_complete();
        assert_eq!(upstream_calls(&up), 1, "served from the stored answer");
        assert_eq!(
            sse.content(),
            plain["choices"][0]["message"]["content"].as_str().expect("text")
        );
        let chunks = sse.chunks();
        for c in &chunks {
            assert_eq!(c["object"], "chat.completion.chunk", "{c}");
            assert_eq!(c["extra_fields"]["cache_debug"]["cache_hit"], true, "{c}");
        }
        let last = chunks.last().expect("chunks");
        assert_eq!(
            last["usage"]["prompt_tokens"], plain["usage"]["prompt_tokens"],
            "{last}"
        );
        assert_eq!(last["usage"]["cost"]["total_cost"], 0.0, "{last}");
        let empty_choices = last["choices"].as_array().is_some_and(Vec::is_empty);
        assert_eq!(
            empty_choices, include_usage,
            "usage rides where the client asked: {last}"
        );
    }
}

#[tokio::test]
async fn a_stream_that_failed_is_never_stored() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&cached_config(&up));
    let ns = [("x-bf-cache-key", "cuts")];
    let body = stream_body("up/stream-cut", "cut me");
    for _ in 0..2 {
        let sse = gw.stream_with("/v1/chat/completions", &body, &ns).await;
        assert!(
            !sse.errors().is_empty() || !sse.has_done(),
            "the stream was cut: {}",
            sse.raw
        );
    }
    assert_eq!(
        up.requests_for("stream-cut").len(),
        2,
        "the second request went upstream again"
    );
}

#[tokio::test]
async fn ttl_no_store_and_the_alias_switch() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&cached_config(&up));
    // A one-second entry expires.
    let short = [("x-bf-cache-key", "ttl"), ("x-bf-cache-ttl", "1")];
    let body = chat_body("gpt", "short-lived");
    gw.post_with("/v1/chat/completions", &body, &short)
        .await
        .assert_status(200);
    let v = gw.post_with("/v1/chat/completions", &body, &short).await.json();
    assert_eq!(debug(&v)["cache_hit"], true);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let v = gw.post_with("/v1/chat/completions", &body, &short).await.json();
    assert_eq!(debug(&v)["cache_hit"], false, "expired: {v}");

    // no-store: looked up, never stored.
    let no_store = [("x-bf-cache-key", "ns"), ("x-bf-cache-no-store", "true")];
    let body = chat_body("gpt", "do not keep");
    for _ in 0..2 {
        let v = gw.post_with("/v1/chat/completions", &body, &no_store).await.json();
        assert_eq!(debug(&v)["cache_hit"], false, "{v}");
    }

    // `cache: true` on the alias: cached without a header.
    let body = chat_body("faq", "always the same question");
    gw.chat(&body).await.assert_status(200);
    let v = gw.chat(&body).await.json();
    assert_eq!(debug(&v)["cache_hit"], true, "{v}");
    // And without either, the cache is not asked at all.
    let body = chat_body("gpt", "not cached");
    for _ in 0..2 {
        let v = gw.chat(&body).await.json();
        assert!(v["extra_fields"].get("cache_debug").is_none(), "{v}");
    }
}

#[tokio::test]
async fn entries_are_deleted_by_id_or_by_namespace() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&cached_config(&up));
    let a = [("x-bf-cache-key", "tenant-a")];
    let b = [("x-bf-cache-key", "tenant-b")];
    let body = chat_body("gpt", "delete me");
    let v = gw.post_with("/v1/chat/completions", &body, &a).await.json();
    let id = debug(&v)["cache_id"].as_str().expect("id").to_string();
    gw.post_with("/v1/chat/completions", &body, &b).await.assert_status(200);

    let client = switchyard_e2e::client::http();
    let delete = |path: String| client.delete(gw.url(&path)).send();
    let resp = delete(format!("/admin/cache/{id}")).await.expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let v = gw.post_with("/v1/chat/completions", &body, &a).await.json();
    assert_eq!(debug(&v)["cache_hit"], false, "deleted: {v}");
    let resp = delete("/admin/cache/00000000000000000000000000000000".into())
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 404);
    let resp = delete("/admin/cache/not-an-id".into()).await.expect("sent");
    assert_eq!(resp.status().as_u16(), 400);

    // Tenant b's entry is still there; clearing its namespace removes it.
    let v = gw.post_with("/v1/chat/completions", &body, &b).await.json();
    assert_eq!(debug(&v)["cache_hit"], true, "{v}");
    let resp = delete("/admin/cache?cache_key=tenant-b".into()).await.expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let v = gw.post_with("/v1/chat/completions", &body, &b).await.json();
    assert_eq!(debug(&v)["cache_hit"], false, "cleared: {v}");
}

#[tokio::test]
async fn bad_cache_headers_are_refused_and_a_disabled_cache_ignores_them() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&cached_config(&up));
    let body = chat_body("gpt", "hi");
    for (name, value) in [
        ("x-bf-cache-ttl", "soon"),
        ("x-bf-cache-no-store", "maybe"),
        ("x-bf-cache-type", "fuzzy"),
    ] {
        let r = gw
            .post_with("/v1/chat/completions", &body, &[("x-bf-cache-key", "k"), (name, value)])
            .await;
        let err = r.assert_error(400, "invalid_cache_header");
        assert!(err["message"].as_str().is_some_and(|m| m.contains(name)), "{err}");
    }
    gw.assert_serving().await;

    // With the cache off the headers mean nothing; the admin endpoint says why it cannot help.
    let gw = Gateway::start_cfg(&standard_config(&up));
    let v = gw
        .post_with(
            "/v1/chat/completions",
            &body,
            &[("x-bf-cache-key", "k"), ("x-bf-cache-ttl", "soon")],
        )
        .await
        .assert_status(200)
        .json();
    assert!(v["extra_fields"].get("cache_debug").is_none(), "{v}");
    let resp = switchyard_e2e::client::http()
        .delete(gw.url("/admin/cache?cache_key=k"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 404);
}

#[tokio::test]
async fn a_reload_that_leaves_the_cache_settings_alone_keeps_the_entries() {
    let up = MockUpstream::start();
    let mut cfg = cached_config(&up);
    let gw = Gateway::start_cfg(&cfg);
    let ns = [("x-bf-cache-key", "reload")];
    let body = chat_body("gpt", "survive a reload");
    gw.post_with("/v1/chat/completions", &body, &ns)
        .await
        .assert_status(200);

    cfg["models"]["another"] = json!({"targets": [{"provider": "local", "model": "echo"}]});
    std::fs::write(gw.config_path(), switchyard_e2e::to_yaml(&cfg)).expect("write");
    let r = gw.post_json("/admin/reload", &json!({})).await;
    r.assert_status(200);
    let v = gw.post_with("/v1/chat/completions", &body, &ns).await.json();
    assert_eq!(debug(&v)["cache_hit"], true, "kept across the reload: {v}");

    // Changing the cache's own settings starts it afresh.
    cfg["cache"]["ttl"] = json!("10m");
    std::fs::write(gw.config_path(), switchyard_e2e::to_yaml(&cfg)).expect("write");
    gw.post_json("/admin/reload", &json!({})).await.assert_status(200);
    let v = gw.post_with("/v1/chat/completions", &body, &ns).await.json();
    assert_eq!(debug(&v)["cache_hit"], false, "a new cache: {v}");
}
