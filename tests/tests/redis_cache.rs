//! The cache on Redis (`cache.backend: redis`) end to end: a real `redis-server`, two real
//! daemons sharing it, and Redis killed under them.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard_e2e::client::{chat_body, stream_body};
use switchyard_e2e::{Gateway, MockUpstream, RedisServer, standard_config};

fn redis_config(up: &MockUpstream, redis: &RedisServer) -> Value {
    let mut cfg = standard_config(up);
    cfg["cache"] = json!({
        "enabled": true,
        "backend": "redis",
        "ttl": "5m",
        "semantic": {"enabled": true, "embedding": "local/mock-embed", "threshold": 0.8},
    });
    cfg["redis"] = json!({"url": redis.url(), "timeout": "200ms"});
    cfg
}

fn debug(v: &Value) -> &Value {
    &v["extra_fields"]["cache_debug"]
}

fn calls(up: &MockUpstream) -> usize {
    up.requests_for("gpt-4o").len()
}

/// Asks until the cache answers with `hit_type` (the first daemon's write and the feed reach
/// Redis and the second daemon just after the first answer left), within 5 s.
async fn ask_until_hit(gw: &Gateway, body: &Value, ns: &str, hit_type: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = gw
            .post_with(
                "/v1/chat/completions",
                body,
                &[("x-bf-cache-key", ns), ("x-bf-cache-no-store", "true")],
            )
            .await;
        let v = reply.assert_status(200).json();
        if debug(&v)["hit_type"] == hit_type {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no {hit_type} hit within 5 s: {v}\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A worker's first lookup misses while it connects to Redis (a request never waits for a
/// connect): lookups on every worker (the mock provider, so no upstream call), then a pause.
async fn warm_up(gw: &Gateway) {
    for i in 0..8 {
        gw.post_with(
            "/v1/chat/completions",
            &chat_body("echo", &format!("warm {i}")),
            &[("x-bf-cache-key", "warm-up")],
        )
        .await
        .assert_status(200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn two_daemons_share_entries_through_one_redis_direct_and_semantic() {
    let redis = RedisServer::start();
    let up = MockUpstream::start();
    let cfg = redis_config(&up, &redis);
    let first = Gateway::start_cfg(&cfg);
    let second = Gateway::start_cfg(&cfg);
    warm_up(&first).await;
    warm_up(&second).await;
    let question = chat_body("gpt", "What is the capital of France?");

    let answered = first
        .post_with("/v1/chat/completions", &question, &[("x-bf-cache-key", "shared")])
        .await;
    let answered = answered.assert_status(200).json();
    assert_eq!(debug(&answered)["cache_hit"], false, "{answered}");
    assert_eq!(calls(&up), 1);

    // The second daemon finds the first one's answer: by its exact key…
    let direct = ask_until_hit(&second, &question, "shared", "direct").await;
    assert_eq!(direct["choices"], answered["choices"]);
    assert_eq!(debug(&direct)["cache_id"], debug(&answered)["cache_id"]);
    // …and through the semantic index it fed from the Redis stream.
    let near = chat_body("gpt", "What is the capital of France??");
    let semantic = ask_until_hit(&second, &near, "shared", "semantic").await;
    assert_eq!(semantic["choices"], answered["choices"]);
    assert_eq!(calls(&up), 1, "only the first daemon asked the upstream");

    // Streams are shared too.
    let stream = stream_body("gpt", "Stream the answer, please.");
    let ns = [("x-bf-cache-key", "shared")];
    let streamed = first.stream_with("/v1/chat/completions", &stream, &ns).await;
    assert!(streamed.has_done());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let replay = second.stream_with("/v1/chat/completions", &stream, &ns).await;
        assert!(replay.has_done());
        if replay.chunks()[0]["extra_fields"]["cache_debug"]["cache_hit"] == true {
            assert_eq!(replay.content_of(0), streamed.content_of(0));
            break;
        }
        assert!(Instant::now() < deadline, "the stream was not shared within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // What is in Redis: namespaced keys with Redis's own TTL, and the semantic stream.
    let keys = redis.cli(&["--scan", "--pattern", "sy:cache:*"]);
    assert!(keys.lines().any(|k| k.ends_with(":p")), "{keys}");
    assert!(keys.lines().any(|k| k.ends_with(":s")), "{keys}");
    let key = keys.lines().find(|k| k.ends_with(":p")).expect("a plain entry");
    let ttl: i64 = redis.cli(&["PTTL", key]).trim().parse().expect("a ttl");
    assert!(ttl > 0 && ttl <= 300_000, "{ttl}");
    assert!(!keys.contains("shared"), "namespaces are hashed into keys: {keys}");

    // A delete on one daemon is seen by the other.
    let id = debug(&answered)["cache_id"].as_str().expect("id").to_string();
    let deleted = second.delete(&format!("/admin/cache/{id}")).await;
    deleted.assert_status(200);
    let after = first
        .post_with(
            "/v1/chat/completions",
            &question,
            &[("x-bf-cache-key", "shared"), ("x-bf-cache-type", "direct")],
        )
        .await;
    assert_eq!(debug(&after.assert_status(200).json())["cache_hit"], false);
}

#[tokio::test]
async fn answers_keep_flowing_when_redis_dies_and_the_cache_comes_back_with_it() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&redis_config(&up, &redis));
    let ns = [("x-bf-cache-key", "outage")];
    let body = chat_body("gpt", "Is Redis up?");
    gw.post_with("/v1/chat/completions", &body, &ns)
        .await
        .assert_status(200);
    ask_until_hit(&gw, &body, "outage", "direct").await;
    let before = calls(&up);

    redis.kill();
    for i in 0..20 {
        let started = Instant::now();
        let reply = gw
            .post_with("/v1/chat/completions", &chat_body("gpt", &format!("question {i}")), &ns)
            .await;
        let v = reply.assert_status(200).json();
        assert_eq!(debug(&v)["cache_hit"], false, "{v}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "an outage must not make answers slow: {:?}",
            started.elapsed()
        );
        let stream = gw
            .stream_with("/v1/chat/completions", &stream_body("gpt", &format!("stream {i}")), &ns)
            .await;
        assert!(stream.has_done(), "streams keep flowing too");
    }
    assert_eq!(calls(&up), before + 40, "every request was answered by the upstream");
    let status = gw.get("/admin/status").await.json();
    assert!(
        status["cache"]["backend_errors"].as_u64().is_some_and(|n| n > 0),
        "{status}"
    );
    assert_eq!(status["cache"]["backend"], "redis");
    // Admin operations say the backend is down rather than claiming success.
    gw.delete("/admin/cache?cache_key=outage").await.assert_status(503);

    // Redis comes back (empty): the cache works again without a restart of the daemon.
    let _redis = RedisServer::start_on(port);
    let again = chat_body("gpt", "Is Redis back?");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        gw.post_with("/v1/chat/completions", &again, &ns)
            .await
            .assert_status(200);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let v = gw
            .post_with(
                "/v1/chat/completions",
                &again,
                &[("x-bf-cache-key", "outage"), ("x-bf-cache-no-store", "true")],
            )
            .await
            .assert_status(200)
            .json();
        if debug(&v)["cache_hit"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "the cache did not recover within 10 s: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
