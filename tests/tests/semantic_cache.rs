//! The semantic cache tier end to end (memory backend): the real daemon, the `mock` plugin's
//! deterministic local embeddings (and the `openai` plugin's against the mock upstream), the
//! `openai` plugin answering chat from the mock OpenAI upstream, which counts what reaches it.

use serde_json::{Value, json};
use switchyard_e2e::client::{chat_body, stream_body};
use switchyard_e2e::{Gateway, MockUpstream, standard_config};

const QUESTION: &str = "What is the capital of France?";
/// Close to [`QUESTION`] (the mock's embeddings put it well above 0.9).
const NEAR: &str = "What is the capital of France??";
/// Nowhere near it.
const FAR: &str = "How do I bake sourdough bread at home?";

fn semantic_config(up: &MockUpstream) -> Value {
    let mut cfg = standard_config(up);
    cfg["cache"] = json!({
        "enabled": true,
        "ttl": "5m",
        "semantic": {"enabled": true, "embedding": "local/mock-embed", "threshold": 0.8},
    });
    cfg
}

fn debug(v: &Value) -> &Value {
    &v["extra_fields"]["cache_debug"]
}

fn calls(up: &MockUpstream) -> usize {
    up.requests_for("gpt-4o").len()
}

async fn ask(gw: &Gateway, user: &str, headers: &[(&str, &str)]) -> Value {
    let reply = gw
        .post_with("/v1/chat/completions", &chat_body("gpt", user), headers)
        .await;
    reply.assert_status(200).json()
}

#[tokio::test]
async fn a_close_conversation_is_answered_semantically_and_a_far_one_is_not() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&semantic_config(&up));
    let ns = [("x-bf-cache-key", "team-a")];

    let first = ask(&gw, QUESTION, &ns).await;
    let miss = debug(&first);
    assert_eq!(miss["cache_hit"], false, "{first}");
    assert_eq!(miss["provider_used"], "local", "{miss}");
    assert_eq!(miss["model_used"], "mock-embed", "{miss}");
    assert!(miss["input_tokens"].as_u64().is_some_and(|n| n > 0), "{miss}");
    assert_eq!(miss["threshold"], 0.8, "{miss}");
    assert_eq!(calls(&up), 1);

    let near = ask(&gw, NEAR, &ns).await;
    let hit = debug(&near);
    assert_eq!(hit["cache_hit"], true, "{near}");
    assert_eq!(hit["hit_type"], "semantic", "{hit}");
    assert_eq!(hit["cache_id"], miss["cache_id"], "it points at the stored answer");
    let similarity = hit["similarity"].as_f64().expect("similarity");
    assert!((0.8..1.0).contains(&similarity), "{hit}");
    assert_eq!(hit["threshold"], 0.8);
    assert_eq!(near["choices"], first["choices"], "the stored answer, as it was");
    assert_eq!(near["usage"]["cost"]["total_cost"], 0.0, "a hit costs nothing");
    assert_eq!(calls(&up), 1, "the upstream was not asked");

    let far = ask(&gw, FAR, &ns).await;
    assert_eq!(debug(&far)["cache_hit"], false, "{far}");
    assert_eq!(calls(&up), 2);

    let status = gw.get("/admin/status").await.json();
    let cache = &status["cache"];
    assert_eq!(cache["semantic_hits"], 1, "{status}");
    assert_eq!(cache["semantic"]["indexed"], 2, "{status}");
    assert_eq!(cache["semantic"]["embedding"], "local/mock-embed");
}

#[tokio::test]
async fn the_threshold_header_can_raise_the_bar_but_never_lower_it() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&semantic_config(&up));
    let ns = ("x-bf-cache-key", "thresholds");
    ask(&gw, QUESTION, &[ns]).await;

    // Raised above what NEAR reaches: a miss (and its own answer is stored).
    let strict = ask(&gw, NEAR, &[ns, ("x-bf-cache-threshold", "0.9999")]).await;
    assert_eq!(debug(&strict)["cache_hit"], false, "{strict}");
    assert_eq!(debug(&strict)["threshold"], 0.9999);
    assert_eq!(calls(&up), 2);

    // "Lowered" to 0.01: the configured 0.8 still holds, so FAR misses.
    let loose = ask(&gw, FAR, &[ns, ("x-bf-cache-threshold", "0.01")]).await;
    assert_eq!(debug(&loose)["cache_hit"], false, "{loose}");
    assert_eq!(debug(&loose)["threshold"], 0.8, "{loose}");
    assert_eq!(calls(&up), 3);

    let bad = gw
        .post_with(
            "/v1/chat/completions",
            &chat_body("gpt", QUESTION),
            &[ns, ("x-bf-cache-threshold", "2")],
        )
        .await;
    bad.assert_error(400, "invalid_cache_header");
}

#[tokio::test]
async fn candidates_come_only_from_the_same_tenant_model_and_parameters() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&semantic_config(&up));
    ask(&gw, QUESTION, &[("x-bf-cache-key", "team-a")]).await;
    assert_eq!(calls(&up), 1);

    // Another tenant: its own partition, so the same words miss.
    let other = ask(&gw, NEAR, &[("x-bf-cache-key", "team-b")]).await;
    assert_eq!(debug(&other)["cache_hit"], false, "{other}");
    assert_eq!(calls(&up), 2);

    // Other parameters: another partition.
    let mut warm = chat_body("gpt", NEAR);
    warm["temperature"] = json!(1.5);
    let reply = gw
        .post_with("/v1/chat/completions", &warm, &[("x-bf-cache-key", "team-a")])
        .await;
    assert_eq!(debug(&reply.assert_status(200).json())["cache_hit"], false);
    assert_eq!(calls(&up), 3);

    // The same tenant and parameters: a hit.
    let same = ask(&gw, NEAR, &[("x-bf-cache-key", "team-a")]).await;
    assert_eq!(debug(&same)["hit_type"], "semantic", "{same}");
    assert_eq!(calls(&up), 3);
}

#[tokio::test]
async fn the_cache_type_header_picks_the_tier_and_the_whole_conversation_counts() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&semantic_config(&up));
    let ns = ("x-bf-cache-key", "tiers");
    ask(&gw, QUESTION, &[ns]).await;

    // direct only: a close conversation is not enough.
    let direct = ask(&gw, NEAR, &[ns, ("x-bf-cache-type", "direct")]).await;
    let d = debug(&direct);
    assert_eq!(d["cache_hit"], false, "{direct}");
    assert!(d.get("provider_used").is_none(), "no embedding was made: {d}");
    assert_eq!(calls(&up), 2);

    // semantic only: the exact same request is found through its embedding.
    let semantic = ask(&gw, QUESTION, &[ns, ("x-bf-cache-type", "semantic")]).await;
    assert_eq!(debug(&semantic)["hit_type"], "semantic", "{semantic}");
    let similarity = debug(&semantic)["similarity"].as_f64().expect("similarity");
    assert!(similarity > 0.999, "{semantic}");

    // A longer conversation whose last turn matches is another conversation: a miss.
    let body = json!({"model": "gpt", "messages": [
        {"role": "system", "content": "You answer in French, with a long history lesson first."},
        {"role": "user", "content": "Tell me about the kings of France, all of them."},
        {"role": "assistant", "content": "There were many kings."},
        {"role": "user", "content": QUESTION},
    ]});
    let reply = gw.post_with("/v1/chat/completions", &body, &[ns]).await;
    assert_eq!(debug(&reply.assert_status(200).json())["cache_hit"], false);
}

#[tokio::test]
async fn a_stream_is_found_semantically_and_replayed_as_a_stream() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&semantic_config(&up));
    let ns = [("x-bf-cache-key", "streams")];
    let first = gw
        .stream_with("/v1/chat/completions", &stream_body("gpt", QUESTION), &ns)
        .await;
    assert!(first.has_done());
    let second = gw
        .stream_with("/v1/chat/completions", &stream_body("gpt", NEAR), &ns)
        .await;
    assert!(second.has_done());
    assert_eq!(calls(&up), 1, "replayed, not asked again");
    assert_eq!(second.content_of(0), first.content_of(0));
    for chunk in second.chunks() {
        assert_eq!(chunk["extra_fields"]["cache_debug"]["hit_type"], "semantic", "{chunk}");
    }
}

#[tokio::test]
async fn embeddings_from_an_openai_compatible_upstream_drive_the_tier() {
    let up = MockUpstream::start();
    let mut cfg = semantic_config(&up);
    cfg["cache"]["semantic"]["embedding"] = json!("up/text-embedding-3-small");
    let gw = Gateway::start_cfg(&cfg);
    let ns = [("x-bf-cache-key", "openai-embeddings")];
    let first = ask(&gw, QUESTION, &ns).await;
    assert_eq!(debug(&first)["provider_used"], "up", "{first}");
    let near = ask(&gw, NEAR, &ns).await;
    assert_eq!(debug(&near)["hit_type"], "semantic", "{near}");
    assert_eq!(calls(&up), 1);
    // Both conversations were embedded by the upstream, with the provider's key.
    let embeddings: Vec<_> = up
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/embeddings"))
        .collect();
    assert_eq!(embeddings.len(), 2, "{embeddings:?}");
    let sent: Value = serde_json::from_slice(&embeddings[0].body).expect("json");
    assert_eq!(sent["model"], "text-embedding-3-small");
    assert!(sent["input"].as_str().is_some_and(|t| t.contains(QUESTION)), "{sent}");
    assert_eq!(
        embeddings[0].header("authorization"),
        Some(format!("Bearer {}", switchyard_e2e::UPSTREAM_KEY).as_str())
    );

    // The embeddings were paid for: the ledger has them, priced at text-embedding-3-small's
    // $0.02 per million tokens.
    let line = |usage: &Value| usage["providers"]["up"]["models"]["text-embedding-3-small"].clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let usage = loop {
        let usage = gw.get("/v1/usage").await.json();
        if line(&usage)["requests"] == 2 || std::time::Instant::now() > deadline {
            break usage;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let embedded = line(&usage);
    assert_eq!(embedded["requests"], 2, "{usage}");
    let tokens = embedded["prompt_tokens"].as_f64().expect("tokens");
    assert!(tokens > 0.0, "{usage}");
    let cost = embedded["cost_usd"].as_f64().expect("cost");
    assert!(
        (cost - tokens * 2e-8).abs() < 1e-12,
        "{cost} for {tokens} tokens: {usage}"
    );
}

#[tokio::test]
async fn a_failing_embedding_is_a_miss_and_the_answer_still_comes() {
    let up = MockUpstream::start();
    let mut cfg = semantic_config(&up);
    // The mock's fault models fail embeddings like chat.
    cfg["cache"]["semantic"]["embedding"] = json!("local/fault-500");
    let gw = Gateway::start_cfg(&cfg);
    let reply = ask(&gw, QUESTION, &[("x-bf-cache-key", "faulty")]).await;
    assert_eq!(debug(&reply)["cache_hit"], false, "{reply}");
    assert!(reply["choices"][0]["message"]["content"].is_string());
    // The exact tier still works.
    let again = ask(&gw, QUESTION, &[("x-bf-cache-key", "faulty")]).await;
    assert_eq!(debug(&again)["hit_type"], "direct", "{again}");
    let status = gw.get("/admin/status").await.json();
    assert_eq!(status["cache"]["semantic"]["embedding_failures"], 1, "{status}");
}

#[test]
fn an_embedding_provider_that_cannot_embed_is_refused_at_startup() {
    let up = MockUpstream::start();
    let mut cfg = semantic_config(&up);
    cfg["providers"]["claude"] = json!({"plugin": "anthropic", "base_url": up.base_url(), "keys": [{"value": "k"}]});
    cfg["cache"]["semantic"]["embedding"] = json!("claude/some-model");
    let (_, out) = Gateway::start_expect_failure(&switchyard_e2e::to_yaml(&cfg));
    assert!(out.contains("cache.semantic.embedding"), "{out}");
    assert!(out.contains("does not serve embeddings"), "{out}");

    cfg["cache"]["semantic"]["embedding"] = json!("nobody/model");
    let (_, out) = Gateway::start_expect_failure(&switchyard_e2e::to_yaml(&cfg));
    assert!(out.contains("unknown provider `nobody`"), "{out}");

    cfg["cache"]["semantic"]["embedding"] = json!("local/mock-embed");
    cfg["cache"]["semantic"]["threshold"] = json!(1.5);
    let (_, out) = Gateway::start_expect_failure(&switchyard_e2e::to_yaml(&cfg));
    assert!(out.contains("cache.semantic.threshold"), "{out}");
}

#[tokio::test]
async fn embeddings_from_gemini_drive_the_tier() {
    use switchyard_e2e::gemini_upstream::{GEMINI_KEY, GeminiUpstream};
    let up = MockUpstream::start();
    let gem = GeminiUpstream::start();
    let mut cfg = semantic_config(&up);
    cfg["providers"]["gem"] = json!({
        "plugin": "gemini",
        "base_url": gem.base_url(),
        "keys": [{"value": GEMINI_KEY}],
    });
    cfg["cache"]["semantic"]["embedding"] = json!("gem/gemini-embedding-001");
    let gw = Gateway::start_cfg(&cfg);
    let ns = [("x-bf-cache-key", "gemini-embeddings")];
    let first = ask(&gw, QUESTION, &ns).await;
    assert_eq!(debug(&first)["provider_used"], "gem", "{first}");
    assert_eq!(debug(&first)["model_used"], "gemini-embedding-001");
    let near = ask(&gw, NEAR, &ns).await;
    assert_eq!(debug(&near)["hit_type"], "semantic", "{near}");
    assert_eq!(calls(&up), 1);
    let embeds: Vec<_> = gem
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(":batchEmbedContents"))
        .collect();
    assert_eq!(embeds.len(), 2, "{embeds:?}");
    assert!(
        embeds[0]
            .path
            .contains("models/gemini-embedding-001:batchEmbedContents"),
        "{}",
        embeds[0].path
    );
    assert_eq!(embeds[0].header("x-goog-api-key"), Some(GEMINI_KEY));
}

#[test]
fn openai_python_sdk_through_the_cache() {
    use switchyard_e2e::python::{python, run_pytest};
    let python = python();
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&semantic_config(&up));
    let env = [("E2E_GATEWAY_URL", gw.base_url()), ("E2E_MODEL", "gpt".to_owned())];
    let (ok, output) = run_pytest(&python, "tests/python/test_cache_openai_sdk.py", &env);
    assert!(
        ok,
        "the openai Python SDK cache tests failed:\n{output}\n--- daemon output ---\n{}",
        gw.logs()
    );
    // Each of the three distinct questions reached the upstream once.
    assert_eq!(up.requests_for("gpt-4o").len(), 3, "{:?}", up.requests());
}
