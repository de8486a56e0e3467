//! Non-streaming chat completions: routing, the response shape, forwarding of fields and headers,
//! request ids, key choice, the models and health endpoints.

use serde_json::{Value, json};
use switchyard_e2e::client::{Reply, Sse, assert_completion_schema, chat_body, http, stream_body};
use switchyard_e2e::gateway::StartOptions;
use switchyard_e2e::upstream::{MODEL_SUFFIX, RATELIMIT_REMAINING, UPSTREAM_REQUEST_ID};
use switchyard_e2e::{Gateway, MockUpstream, UPSTREAM_KEY, standard_config, to_yaml};

fn start(up: &MockUpstream) -> Gateway {
    Gateway::start_cfg(&standard_config(up))
}

#[tokio::test]
async fn chat_roundtrip_through_the_openai_plugin() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.chat(&chat_body("gpt", "hello gateway")).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_completion_schema(&v);
    assert_eq!(v["object"], "chat.completion", "{v:#}");
    assert_eq!(
        v["choices"][0]["message"]["content"], "upstream saw: hello gateway",
        "{v:#}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v:#}");
    assert_eq!(
        v["model"],
        format!("gpt-4o{MODEL_SUFFIX}"),
        "top-level model must be what the upstream answered: {v:#}"
    );
    assert_eq!(v["id"].as_str().map(|s| s.starts_with("chatcmpl-")), Some(true));
    assert_eq!(v["system_fingerprint"], "fp_e2e_mock", "upstream fields kept: {v:#}");

    let extra = &v["extra_fields"];
    assert_eq!(extra["request_type"], "chat_completion", "{v:#}");
    assert_eq!(extra["provider"], "up", "{v:#}");
    assert_eq!(extra["model_requested"], "gpt", "{v:#}");
    assert_eq!(extra["model_deployment"], "gpt-4o", "{v:#}");
    assert_eq!(extra["chunk_index"], 0, "{v:#}");
    assert!(
        extra["latency"].as_u64().is_some(),
        "extra_fields.latency must be whole milliseconds: {v:#}"
    );

    let usage = &v["usage"];
    assert!(usage["prompt_tokens"].as_u64().is_some_and(|n| n > 0), "{v:#}");
    assert!(usage["completion_tokens"].as_u64().is_some(), "{v:#}");
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 4, "{v:#}");
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 2, "{v:#}");

    let rid = reply.header("x-request-id").expect("x-request-id on every response");
    assert!(!rid.is_empty());
    assert_ne!(
        rid, UPSTREAM_REQUEST_ID,
        "x-request-id is the gateway's (or the client's), not the upstream's"
    );
    assert_eq!(
        reply.header("x-ratelimit-remaining-requests").as_deref(),
        Some(RATELIMIT_REMAINING),
        "upstream x-ratelimit-* headers are passed back"
    );
    assert!(reply.header("x-ratelimit-limit-tokens").is_some());

    let rec = up.last_request();
    assert_eq!(rec.method, "POST");
    assert_eq!(rec.path, "/v1/chat/completions");
    assert_eq!(rec.model(), "gpt-4o");
    assert_eq!(rec.header("authorization"), Some(&*format!("Bearer {UPSTREAM_KEY}")));
    assert!(
        rec.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "upstream content-type: {:?}",
        rec.header("content-type")
    );
}

#[tokio::test]
async fn every_chat_path_answers() {
    let up = MockUpstream::start();
    let gw = start(&up);
    for path in [
        "/v1/chat/completions",
        "/openai/v1/chat/completions",
        "/openai/chat/completions",
    ] {
        let reply = gw.post_json(path, &chat_body("gpt", &format!("via {path}"))).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(reply.content(), format!("upstream saw: via {path}"), "{path}");
        assert_eq!(reply.json()["extra_fields"]["provider"], "up", "{path}");
    }
    assert_eq!(up.requests().len(), 3);
}

#[tokio::test]
async fn provider_slash_model_routes_directly() {
    let up = MockUpstream::start();
    let gw = start(&up);

    let reply = gw.chat(&chat_body("up/gpt-4o-mini", "direct")).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["model"], format!("gpt-4o-mini{MODEL_SUFFIX}"), "{v:#}");
    assert_eq!(v["extra_fields"]["provider"], "up", "{v:#}");
    assert_eq!(v["extra_fields"]["model_requested"], "up/gpt-4o-mini", "{v:#}");
    assert_eq!(v["extra_fields"]["model_deployment"], "gpt-4o-mini", "{v:#}");
    assert_eq!(up.last_request().model(), "gpt-4o-mini");

    // Upstream model names may contain slashes themselves (OpenRouter, Together, vLLM…): only the
    // first segment names the provider.
    let reply = gw
        .chat(&chat_body("up/meta-llama/Llama-3.1-8B-Instruct", "nested"))
        .await;
    reply.assert_status(200);
    assert_eq!(up.last_request().model(), "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(
        reply.json()["extra_fields"]["model_deployment"],
        "meta-llama/Llama-3.1-8B-Instruct"
    );
}

#[tokio::test]
async fn request_fields_reach_the_upstream_unchanged() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let request = json!({
        "model": "gpt",
        "messages": [
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "first"}], "name": "alice"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            {"role": "user", "content": "unicode ✓ 日本語 \"quoted\" \\ backslash"}
        ],
        "temperature": 0.25,
        "top_p": 0.5,
        "n": 2,
        "seed": 424242,
        "stop": ["END", "STOP"],
        "max_completion_tokens": 77,
        "max_tokens": 80,
        "presence_penalty": 0.125,
        "frequency_penalty": -0.5,
        "logit_bias": {"50256": -100},
        "logprobs": true,
        "top_logprobs": 3,
        "user": "user-1234",
        "metadata": {"team": "e2e"},
        "store": false,
        "service_tier": "auto",
        "reasoning_effort": "low",
        "parallel_tool_calls": false,
        "modalities": ["text"],
        "prediction": {"type": "content", "content": "predicted"},
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "strict": true,
            "schema": {"type": "object", "properties": {"upstream_saw": {"type": "string"}},
                       "required": ["upstream_saw"], "additionalProperties": false}}},
        "x_vendor_extension": {"nested": [1, 2.5, {"deep": true}], "s": "kept"},
        "fallbacks": ["local/echo"]
    });
    let reply = gw.chat(&request).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(2), "n=2 choices: {v:#}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        json!({"upstream_saw": "unicode ✓ 日本語 \"quoted\" \\ backslash"}).to_string()
    );

    let mut expected = request.clone();
    expected["model"] = json!("gpt-4o");
    expected.as_object_mut().expect("object").remove("fallbacks");
    let got = up.last_request().json();
    assert_eq!(
        got,
        expected,
        "the upstream must receive every field unchanged except `model` (resolved) and `fallbacks` \
         (removed).\n--- upstream got ---\n{}\n--- expected ---\n{}",
        serde_json::to_string_pretty(&got).unwrap_or_default(),
        serde_json::to_string_pretty(&expected).unwrap_or_default()
    );
}

#[tokio::test]
async fn client_credentials_never_reach_the_upstream() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    // The operator opts in to two client headers; credentials stay out whatever is listed.
    cfg["providers"]["up"]["forward_headers"] = json!(["x-trace-tag", "openai-organization"]);
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw
        .post_with(
            "/v1/chat/completions",
            &chat_body("gpt", "headers"),
            &[
                ("authorization", "Bearer sk-client-should-not-leak"),
                ("x-api-key", "client-x-api-key"),
                ("cookie", "session=client-cookie"),
                ("x-bf-eh-x-trace-tag", "trace-123"),
                ("x-bf-eh-openai-organization", "org-e2e"),
                ("x-bf-eh-authorization", "Bearer sk-smuggled"),
                ("x-bf-eh-x-api-key", "smuggled-api-key"),
                ("x-bf-eh-host", "evil.example"),
                ("x-bf-eh-connection", "close"),
            ],
        )
        .await;
    reply.assert_status(200);
    let rec = up.last_request();
    let all = format!("{:?}", rec.headers);
    assert_eq!(
        rec.header_all("authorization"),
        vec![format!("Bearer {UPSTREAM_KEY}").as_str()],
        "upstream auth comes only from the configured key; headers: {all}"
    );
    for leaked in [
        "sk-client-should-not-leak",
        "client-x-api-key",
        "client-cookie",
        "sk-smuggled",
        "smuggled-api-key",
        "evil.example",
    ] {
        assert!(
            !all.contains(leaked),
            "{leaked:?} must not reach the upstream; headers: {all}"
        );
    }
    assert!(rec.header("x-api-key").is_none(), "headers: {all}");
    assert!(rec.header("cookie").is_none(), "headers: {all}");
    assert_eq!(
        rec.header("host"),
        Some(up.addr().to_string().as_str()),
        "host header must be the upstream's; headers: {all}"
    );
    assert_ne!(
        rec.header("connection").map(str::to_ascii_lowercase).as_deref(),
        Some("close"),
        "hop-by-hop headers are not forwarded via x-bf-eh-; headers: {all}"
    );
    assert_eq!(
        rec.header("x-trace-tag"),
        Some("trace-123"),
        "x-bf-eh-NAME is forwarded as NAME; headers: {all}"
    );
    assert_eq!(rec.header("openai-organization"), Some("org-e2e"), "headers: {all}");
    assert_eq!(
        rec.header("x-provider-header"),
        Some("from-config"),
        "the provider's configured headers are sent; headers: {all}"
    );
}

/// Without `forward_headers`, only tracing headers pass: a client cannot pick the operator's
/// billing organisation or project, opt into beta behaviour, or ask for an encoding the codec
/// cannot read (which would count against the provider's shared circuit).
#[tokio::test]
async fn by_default_only_tracing_headers_are_forwarded() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw
        .post_with(
            "/v1/chat/completions",
            &chat_body("gpt", "headers"),
            &[
                (
                    "x-bf-eh-traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("x-bf-eh-accept-encoding", "gzip"),
                ("x-bf-eh-openai-organization", "org-someone-else"),
                ("x-bf-eh-openai-project", "proj-someone-else"),
                ("x-bf-eh-anthropic-beta", "some-beta"),
                ("x-bf-eh-x-trace-tag", "trace-123"),
            ],
        )
        .await;
    reply.assert_status(200);
    let rec = up.last_request();
    let all = format!("{:?}", rec.headers);
    assert_eq!(
        rec.header("traceparent"),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        "headers: {all}"
    );
    for name in ["openai-organization", "openai-project", "anthropic-beta", "x-trace-tag"] {
        assert!(
            rec.header(name).is_none(),
            "{name} must not be forwarded by default; headers: {all}"
        );
    }
    assert!(
        !all.contains("gzip"),
        "a client-chosen accept-encoding must never reach the upstream; headers: {all}"
    );
}

#[tokio::test]
async fn forward_headers_refuses_credentials_and_encodings_at_startup() {
    let up = MockUpstream::start();
    for bad in ["authorization", "Accept-Encoding", "x-api-key"] {
        let mut cfg = standard_config(&up);
        cfg["providers"]["up"]["forward_headers"] = json!(["traceparent", bad]);
        let out = Gateway::check(&to_yaml(&cfg));
        assert_ne!(out.code, Some(0), "{bad}: {out:?}");
        assert!(
            out.stderr.contains("providers.up.forward_headers") && out.stderr.contains("never forwarded"),
            "{bad}: the message names the field and the reason: {}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw
        .post_with(
            "/v1/chat/completions",
            &chat_body("gpt", "id"),
            &[("x-request-id", "e2e-request-0042")],
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.header("x-request-id").as_deref(), Some("e2e-request-0042"));

    let a = gw.chat(&chat_body("gpt", "a")).await;
    let b = gw.chat(&chat_body("echo", "b")).await;
    let ida = a.header("x-request-id").expect("generated x-request-id");
    let idb = b.header("x-request-id").expect("generated x-request-id");
    assert!(!ida.is_empty() && !idb.is_empty());
    assert_ne!(ida, idb, "generated request ids are unique");

    // Errors and other endpoints carry one too.
    let missing = gw.chat(&chat_body("no-such-model", "x")).await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert!(missing.header("x-request-id").is_some(), "x-request-id on errors");
    let err = gw
        .post_with(
            "/v1/chat/completions",
            &chat_body("no-such-model", "x"),
            &[("x-request-id", "e2e-err-7")],
        )
        .await;
    assert_eq!(err.header("x-request-id").as_deref(), Some("e2e-err-7"));
    gw.assert_serving().await;
}

#[tokio::test]
async fn request_id_on_every_response() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let mut missing = Vec::new();
    for path in [
        "/health",
        "/v1/models",
        "/v1/models/gpt",
        "/v1/models/nope",
        "/no/such/route",
        "/v1/chat/completions",
    ] {
        let reply = gw.get(path).await;
        if reply.header("x-request-id").is_none_or(|id| id.is_empty()) {
            missing.push(format!("GET {path} -> {}", reply.status));
        }
    }
    let bad = gw.post_raw("/v1/chat/completions", b"{oops".to_vec(), None).await;
    if bad.header("x-request-id").is_none() {
        missing.push(format!("POST malformed JSON -> {}", bad.status));
    }
    assert!(
        missing.is_empty(),
        "every response must carry x-request-id; missing on: {missing:?}"
    );
    gw.assert_serving().await;
}

#[tokio::test]
async fn body_is_json_whatever_the_content_type() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let body = serde_json::to_vec(&chat_body("gpt", "no content type")).expect("serialise");
    let reply = gw.post_raw("/v1/chat/completions", body.clone(), None).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "upstream saw: no content type");

    let reply = gw
        .post_raw(
            "/v1/chat/completions",
            body.clone(),
            Some("application/x-www-form-urlencoded"),
        )
        .await;
    reply.assert_status(200);
    let reply = gw.post_raw("/v1/chat/completions", body, Some("text/plain")).await;
    reply.assert_status(200);
}

#[tokio::test]
async fn tool_calls_pass_through() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let tools = json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                           "required": ["query"]},
            "strict": true
        }
    }]);
    let reply = gw
        .chat(&json!({
            "model": "gpt",
            "messages": [{"role": "user", "content": "Paris"}],
            "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }))
        .await;
    reply.assert_status(200);
    let v = reply.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v:#}");
    assert!(choice["message"]["content"].is_null(), "{v:#}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function", "{v:#}");
    assert_eq!(call["function"]["name"], "get_weather", "{v:#}");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or(""))
        .expect("tool arguments are a JSON string");
    assert_eq!(args, json!({"query": "Paris"}));
    assert_eq!(up.last_request().json()["tools"], tools);
}

#[tokio::test]
async fn n_choices_and_logprobs_pass_through() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw
        .chat(&json!({
            "model": "gpt",
            "messages": [{"role": "user", "content": "two words"}],
            "n": 3, "logprobs": true, "top_logprobs": 2
        }))
        .await;
    reply.assert_status(200);
    let v = reply.json();
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3, "{v:#}");
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i, "{v:#}");
        let lp = c["logprobs"]["content"].as_array().expect("logprobs.content");
        assert!(!lp.is_empty(), "{v:#}");
        assert_eq!(lp[0]["top_logprobs"].as_array().map(Vec::len), Some(2), "{v:#}");
        assert!(lp[0]["bytes"].is_array(), "{v:#}");
    }
}

#[tokio::test]
async fn mock_provider_echoes() {
    let up = MockUpstream::start();
    let gw = start(&up);
    for model in ["echo", "local/echo"] {
        let reply = gw.chat(&chat_body(model, "echo me back")).await;
        reply.assert_status(200);
        let v = reply.json();
        assert_eq!(v["choices"][0]["message"]["content"], "echo me back", "{model}: {v:#}");
        assert_eq!(v["extra_fields"]["provider"], "local", "{v:#}");
        assert_eq!(v["extra_fields"]["model_requested"], model, "{v:#}");
        assert_eq!(v["extra_fields"]["model_deployment"], "echo", "{v:#}");
        assert_eq!(v["extra_fields"]["request_type"], "chat_completion", "{v:#}");
    }
    assert!(up.requests().is_empty(), "the mock provider does no network I/O");
}

#[tokio::test]
async fn models_list_has_aliases_and_targets() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.get("/v1/models").await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["object"], "list", "{v:#}");
    let data = v["data"].as_array().expect("data array");
    let ids: Vec<&str> = data.iter().filter_map(|m| m["id"].as_str()).collect();
    for id in ["gpt", "echo", "up/gpt-4o", "local/echo"] {
        assert!(ids.contains(&id), "{id} missing from /v1/models: {v:#}");
    }
    for m in data {
        assert_eq!(m["object"], "model", "{m}");
        assert!(m["created"].is_u64() || m["created"].is_i64(), "created: {m}");
        assert!(m["owned_by"].is_string(), "owned_by: {m}");
    }
}

#[tokio::test]
async fn model_lookup_by_id() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.get("/v1/models/gpt").await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["id"], "gpt", "{v:#}");
    assert_eq!(v["object"], "model", "{v:#}");

    let missing = gw.get("/v1/models/no-such-model").await;
    missing.assert_error(404, "model_not_found");
}

#[tokio::test]
async fn model_lookup_by_provider_slash_model_id() {
    let up = MockUpstream::start();
    let gw = start(&up);
    // Ids listed by /v1/models contain a slash; looking them up must work too.
    let reply = gw.get("/v1/models/up/gpt-4o").await;
    reply.assert_status(200);
    assert_eq!(reply.json()["id"], "up/gpt-4o");
}

#[tokio::test]
async fn health_is_liveness_only() {
    let up = MockUpstream::start();
    let gw = start(&up);
    gw.chat(&chat_body("gpt", "traffic first")).await.assert_status(200);
    let reply = gw.get("/health").await;
    reply.assert_status(200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{:?}",
        reply.header("content-type")
    );
    assert_eq!(
        reply.json(),
        json!({"status": "ok"}),
        "liveness only: no topology, counters or usage"
    );
    assert!(!reply.text().contains(UPSTREAM_KEY));
}

/// Weights 3:1 between two keys over many requests land near 3:1; a heavier key whose
/// allow-list excludes the model is never used for it.
#[tokio::test]
async fn key_allow_list_picks_an_eligible_key() {
    const HEAVY: &str = "sk-e2e-weight-three-5d1c0a";
    const LIGHT: &str = "sk-e2e-weight-one-8b2e4f";
    const SPECIAL: &str = "sk-only-for-special";
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["keys"] = json!([
        {"value": SPECIAL, "weight": 100.0, "models": ["special-model"]},
        {"value": HEAVY, "weight": 3.0, "models": ["*"]},
        {"value": LIGHT, "weight": 1.0, "models": ["*"]},
    ]);
    let gw = Gateway::start_cfg(&cfg);
    let requests = 600;
    let mut pending = Vec::new();
    for i in 0..requests {
        let url = gw.url("/v1/chat/completions");
        pending.push(tokio::spawn(async move {
            http()
                .post(url)
                .body(serde_json::to_vec(&chat_body("up/ordinary-model", &format!("{i}"))).expect("serialise"))
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }));
        if pending.len() == 16 {
            for p in pending.drain(..) {
                assert_eq!(p.await.expect("request task"), 200);
            }
        }
    }
    for p in pending {
        assert_eq!(p.await.expect("request task"), 200);
    }
    let count = |key: &str| {
        let auth = format!("Bearer {key}");
        up.requests_for("ordinary-model")
            .iter()
            .filter(|r| r.header("authorization") == Some(auth.as_str()))
            .count()
    };
    let (special, heavy, light) = (count(SPECIAL), count(HEAVY), count(LIGHT));
    assert_eq!(
        special, 0,
        "a key whose models list excludes the model must not be used"
    );
    assert_eq!(heavy + light, requests);
    // Expected 0.75; one standard deviation over 600 requests is under 0.018.
    let share = heavy as f64 / requests as f64;
    assert!(
        (share - 0.75).abs() < 0.08,
        "weights 3:1 must show: the weight-3 key took {heavy} and the weight-1 key {light} of {requests}"
    );

    // Where the heavy special key is allowed, it takes about 100 in 104.
    for i in 0..50 {
        gw.chat(&chat_body("up/special-model", &format!("s{i}")))
            .await
            .assert_status(200);
    }
    let special_auth = format!("Bearer {SPECIAL}");
    let by_special = up
        .requests_for("special-model")
        .iter()
        .filter(|r| r.header("authorization") == Some(special_auth.as_str()))
        .count();
    assert!(by_special >= 40, "the special key served {by_special} of 50");
}

#[tokio::test]
async fn key_value_from_the_environment() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["keys"] = json!([{"value": "env.SWITCHYARD_E2E_UPSTREAM_KEY"}]);
    let gw = Gateway::start_with(
        &to_yaml(&cfg),
        StartOptions {
            env: vec![("SWITCHYARD_E2E_UPSTREAM_KEY".into(), "sk-from-the-environment".into())],
            ..StartOptions::default()
        },
    );
    gw.chat(&chat_body("gpt", "env")).await.assert_status(200);
    assert_eq!(
        up.last_request().header("authorization"),
        Some("Bearer sk-from-the-environment")
    );
}

#[tokio::test]
async fn concurrent_requests_do_not_mix() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let url = gw.url("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            let message = format!("request number {i}");
            let (model, stream) = match i % 4 {
                0 => ("gpt", false),
                1 => ("gpt", true),
                2 => ("local/echo", false),
                _ => ("local/echo", true),
            };
            let body = if stream {
                stream_body(model, &message)
            } else {
                chat_body(model, &message)
            };
            let resp = http()
                .post(url)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).expect("serialise"))
                .send()
                .await
                .expect("request");
            let content = if stream {
                let sse = Sse::read(resp).await;
                sse.assert_complete();
                sse.content()
            } else {
                let reply = Reply::read(resp).await;
                reply.assert_status(200);
                reply.content()
            };
            let expected = if model == "gpt" {
                format!("upstream saw: {message}")
            } else {
                message
            };
            assert_eq!(content, expected, "request {i} ({model}, stream {stream})");
        }));
    }
    for t in tasks {
        t.await.expect("request task");
    }
    assert_eq!(up.requests().len(), 16);
}

#[tokio::test]
async fn mock_provider_answers_match_the_openai_schema() {
    let up = MockUpstream::start();
    let gw = start(&up);
    let reply = gw.chat(&chat_body("local/echo", "schema check")).await;
    reply.assert_status(200);
    assert_completion_schema(&reply.json());

    let tools = json!([{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let body = json!({
        "model": "local/echo",
        "messages": [{"role": "user", "content": "call get_weather {\"city\": \"Oslo\"}"}],
        "tools": tools,
    });
    let reply = gw.chat(&body).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_completion_schema(&v);
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v:#}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{v:#}");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or_default())
        .expect("arguments are a JSON string");
    assert_eq!(args, json!({"city": "Oslo"}));

    let mut body = body;
    body["stream"] = json!(true);
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    let mut name = String::new();
    let mut arguments = String::new();
    for c in sse.chunks() {
        for call in c["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
            name.push_str(call["function"]["name"].as_str().unwrap_or_default());
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
    }
    assert_eq!(name, "get_weather", "{}", sse.dump());
    let args: Value = serde_json::from_str(&arguments).expect("streamed arguments reassemble to JSON");
    assert_eq!(args, json!({"city": "Oslo"}));
}

#[tokio::test]
async fn base_url_with_a_trailing_slash() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let mut slash = cfg["providers"]["up"].clone();
    slash["base_url"] = json!(format!("{}/", up.base_url()));
    cfg["providers"]["slash"] = slash;
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("slash/gpt-4o", "slash")).await;
    reply.assert_status(200);
    assert_eq!(up.last_request().path, "/v1/chat/completions");
}

/// `raw_request` / `raw_response` in `extra_fields`: on request (header) or for every answer of
/// a provider (`send_back_raw_response`), never otherwise, and never carrying the key.
#[tokio::test]
async fn raw_request_and_response_when_asked_for() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["rawp"] = cfg["providers"]["up"].clone();
    cfg["providers"]["rawp"]["send_back_raw_response"] = json!(true);
    let gw = Gateway::start_cfg(&cfg);

    let plain = gw.chat(&chat_body("gpt", "no raw")).await;
    plain.assert_status(200);
    let extra = &plain.json()["extra_fields"];
    assert!(
        extra.get("raw_request").is_none() && extra.get("raw_response").is_none(),
        "{extra}"
    );

    let asked = gw
        .post_with(
            "/v1/chat/completions",
            &chat_body("gpt", "raw please"),
            &[("x-bf-send-back-raw-response", "true")],
        )
        .await;
    asked.assert_status(200);
    let v = asked.json();
    let raw_request = &v["extra_fields"]["raw_request"];
    assert_eq!(raw_request["model"], "gpt-4o", "what was sent upstream: {v:#}");
    assert_eq!(raw_request["messages"][0]["content"], "raw please", "{v:#}");
    let raw_response = &v["extra_fields"]["raw_response"];
    assert_eq!(
        raw_response["model"],
        format!("gpt-4o{MODEL_SUFFIX}"),
        "what the upstream answered: {v:#}"
    );
    assert!(raw_response.get("extra_fields").is_none(), "{v:#}");
    assert!(
        !asked.text().contains(UPSTREAM_KEY),
        "no key in raw fields: {}",
        asked.text()
    );

    let configured = gw.chat(&chat_body("rawp/gpt-4o", "configured")).await;
    configured.assert_status(200);
    assert!(configured.json()["extra_fields"]["raw_response"]["choices"].is_array());

    // A local provider: the request it was given, and its own answer.
    let local = gw
        .post_with(
            "/v1/chat/completions",
            &chat_body("echo", "local raw"),
            &[("x-bf-send-back-raw-response", "true")],
        )
        .await;
    local.assert_status(200);
    let v = local.json();
    assert_eq!(v["extra_fields"]["raw_request"]["model"], "echo", "{v:#}");
    assert!(v["extra_fields"]["raw_response"]["choices"].is_array(), "{v:#}");
}

/// Streams send back raw bytes too: the first chunk carries `raw_request` (what was sent
/// upstream, without the key), and the chunks' `raw_response` strings, concatenated, are the
/// upstream's SSE body as it arrived — ending with its own `[DONE]`.
#[tokio::test]
async fn raw_request_and_response_on_streams() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let plain = gw.stream(&stream_body("gpt", "no raw")).await;
    plain.assert_complete();
    assert!(
        plain
            .chunks()
            .iter()
            .all(|c| c["extra_fields"].get("raw_response").is_none() && c["extra_fields"].get("raw_request").is_none()),
        "{}",
        plain.dump()
    );

    let sse = gw
        .stream_with(
            "/v1/chat/completions",
            &stream_body("gpt", "raw stream please"),
            &[("x-bf-send-back-raw-response", "true")],
        )
        .await;
    sse.assert_complete();
    sse.assert_chunk_indexes();
    let chunks = sse.chunks();
    let first = &chunks[0]["extra_fields"];
    assert_eq!(first["raw_request"]["model"], "gpt-4o", "{}", sse.dump());
    assert_eq!(first["raw_request"]["stream"], true, "{}", sse.dump());
    assert!(
        chunks[1..]
            .iter()
            .all(|c| c["extra_fields"].get("raw_request").is_none())
    );
    let raw: String = chunks
        .iter()
        .filter_map(|c| c["extra_fields"]["raw_response"].as_str())
        .collect();
    assert!(raw.starts_with("data: {"), "{raw:?}");
    assert!(
        raw.contains("raw stream please") || raw.contains("\"content\""),
        "{raw:?}"
    );
    assert!(
        raw.trim_end().ends_with("data: [DONE]"),
        "the upstream's whole body: {raw:?}"
    );
    assert!(!sse.dump().contains(UPSTREAM_KEY), "no key in raw fields");
}
