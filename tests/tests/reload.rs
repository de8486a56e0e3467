//! Config reload without a restart: editing the file (in place, by rename, by a Kubernetes-style
//! symlink swap), `SIGHUP` and `POST /admin/reload`. New requests see a valid edit within 2 s;
//! open streams finish on the config they started with; a bad edit leaves the running config in
//! place; an unchanged provider keeps its circuit state.

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use switchyard_e2e::client::{chat_body, stream_body};
use switchyard_e2e::{Gateway, MockUpstream, standard_config, to_yaml};

/// `/admin/status`'s reload counters: (applied, refused).
async fn reloads(gw: &Gateway) -> (u64, u64) {
    let v = gw.get("/admin/status").await.json();
    let n = |k: &str| v["reloads"][k].as_u64().unwrap_or_else(|| panic!("reloads.{k}: {v:#}"));
    (n("ok"), n("failed"))
}

/// Waits until the reload counters satisfy `done` (at most 5 s), then returns them.
async fn reloads_when(gw: &Gateway, done: impl Fn((u64, u64)) -> bool) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = reloads(gw).await;
        if done(r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "reload counters stuck at {r:?}\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write(path: &Path, cfg: &Value) {
    std::fs::write(path, to_yaml(cfg)).expect("write the config");
}

#[tokio::test]
async fn an_edit_adds_an_alias_within_two_seconds_while_an_open_stream_finishes() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let gw = Gateway::start_cfg(&cfg);
    gw.chat(&chat_body("added", "not yet")).await.assert_status(404);

    // A stream that takes over a second, opened before the edit.
    let stream = {
        let url = gw.url("/v1/chat/completions");
        tokio::spawn(async move {
            let resp = switchyard_e2e::client::http()
                .post(url)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&stream_body("up/drip-stream", "old config")).expect("json"))
                .send()
                .await
                .expect("stream starts");
            switchyard_e2e::Sse::read(resp).await
        })
    };
    up.wait_for_requests(1, Duration::from_secs(5)).await;

    cfg["models"]["added"] = json!({"targets": [{"provider": "up", "model": "gpt-4o"}], "fallbacks": ["local/echo"]});
    let edited = Instant::now();
    write(gw.config_path(), &cfg);
    loop {
        let reply = gw.chat(&chat_body("added", "new alias")).await;
        if reply.status == 200 {
            break;
        }
        assert!(
            edited.elapsed() < Duration::from_secs(2),
            "the new alias did not answer within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sse = stream.await.expect("stream task");
    sse.assert_complete();
    assert_eq!(reloads(&gw).await, (1, 0));
}

#[tokio::test]
async fn a_broken_edit_is_refused_with_the_check_message_and_the_running_config_stays() {
    let up = MockUpstream::start();
    let cfg = standard_config(&up);
    let gw = Gateway::start_cfg(&cfg);
    let mut broken = cfg.clone();
    broken["providers"]["up"]["timeout"] = json!("soon");
    write(gw.config_path(), &broken);
    reloads_when(&gw, |(_, failed)| failed == 1).await;
    gw.chat(&chat_body("gpt", "still here")).await.assert_status(200);
    // The log carries what `switchyard check` says of the same file.
    let check = Gateway::check(&to_yaml(&broken));
    assert_ne!(check.code, Some(0));
    let logs = gw.logs();
    assert!(
        logs.contains("providers.up.timeout") && check.stderr.contains("providers.up.timeout"),
        "check:\n{}\nlogs:\n{logs}",
        check.stderr
    );
    let status = gw.get("/admin/status").await.json();
    assert!(
        status["reloads"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("soon")),
        "{status:#}"
    );
    // Fixed again: applied.
    write(gw.config_path(), &cfg);
    reloads_when(&gw, |(ok, _)| ok == 1).await;
}

#[tokio::test]
async fn an_unchanged_provider_keeps_its_circuit_state_and_a_changed_one_starts_afresh() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["circuit_breaker"] = json!({"failures": 1, "window": "30s", "cooldown": "60s"});
    let gw = Gateway::start_cfg(&cfg);
    gw.chat(&chat_body("up/fail-500", "open the circuit"))
        .await
        .assert_status(502);
    let circuits = |v: &Value| v["providers"]["up"]["circuits"].clone();
    let before = circuits(&gw.get("/admin/status").await.json());
    assert_eq!(before, json!(["open"]));

    // An edit elsewhere: `up` is the same provider, circuit and all.
    cfg["models"]["other"] = json!({"targets": [{"provider": "local", "model": "echo"}]});
    write(gw.config_path(), &cfg);
    reloads_when(&gw, |(ok, _)| ok == 1).await;
    assert_eq!(circuits(&gw.get("/admin/status").await.json()), json!(["open"]));
    gw.chat(&chat_body("gpt", "circuit still open"))
        .await
        .assert_error(503, "circuit_open");

    // An edit of `up` itself: a fresh provider, closed circuit.
    cfg["providers"]["up"]["timeout"] = json!("25s");
    write(gw.config_path(), &cfg);
    reloads_when(&gw, |(ok, _)| ok == 2).await;
    assert_eq!(circuits(&gw.get("/admin/status").await.json()), json!(["closed"]));
    gw.chat(&chat_body("gpt", "fresh")).await.assert_status(200);
}

/// Writing in place, writing a temporary file and renaming it over the config (as editors
/// do), and a Kubernetes ConfigMap's symlink swap each reload exactly once.
#[tokio::test]
async fn every_usual_way_of_editing_the_file_reloads_once() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let gw = Gateway::start_cfg(&cfg);
    let path = gw.config_path().to_path_buf();
    let dir = path.parent().expect("folder").to_path_buf();
    let mut expected = 0;
    let mut edit = |n: u32, how: &dyn Fn(&Value)| {
        cfg["models"][format!("alias-{n}")] = json!({"targets": [{"provider": "local", "model": "echo"}]});
        how(&cfg);
    };
    let settle = || tokio::time::sleep(Duration::from_millis(600));

    edit(1, &|cfg| write(&path, cfg));
    expected += 1;
    reloads_when(&gw, |(ok, _)| ok >= expected).await;
    settle().await;
    assert_eq!(reloads(&gw).await, (expected, 0), "in place");

    edit(2, &|cfg| {
        let tmp = dir.join(".gateway.yaml.swp");
        write(&tmp, cfg);
        std::fs::rename(&tmp, &path).expect("rename");
    });
    expected += 1;
    reloads_when(&gw, |(ok, _)| ok >= expected).await;
    settle().await;
    assert_eq!(reloads(&gw).await, (expected, 0), "write then rename");

    // Kubernetes: gateway.yaml -> ..data/gateway.yaml, ..data -> ..<timestamp>/, swapped by
    // renaming a new ..data link over the old one.
    let link = |target: &str, at: &Path| {
        let tmp = dir.join(".link.tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).expect("symlink");
        std::fs::rename(&tmp, at).expect("rename link");
    };
    edit(3, &|cfg| {
        std::fs::create_dir_all(dir.join("..2026_a")).expect("mkdir");
        write(&dir.join("..2026_a").join("gateway.yaml"), cfg);
        link("..2026_a", &dir.join("..data"));
        link("..data/gateway.yaml", &path);
    });
    expected += 1;
    reloads_when(&gw, |(ok, _)| ok >= expected).await;
    settle().await;
    assert_eq!(reloads(&gw).await, (expected, 0), "config made a symlink");

    edit(4, &|cfg| {
        std::fs::create_dir_all(dir.join("..2026_b")).expect("mkdir");
        write(&dir.join("..2026_b").join("gateway.yaml"), cfg);
        link("..2026_b", &dir.join("..data"));
    });
    expected += 1;
    reloads_when(&gw, |(ok, _)| ok >= expected).await;
    settle().await;
    assert_eq!(reloads(&gw).await, (expected, 0), "ConfigMap symlink swap");
    gw.chat(&chat_body("alias-4", "after the swap"))
        .await
        .assert_status(200);
}

/// The watch wakes the daemon for edits only: files read, opened and appended to in the same
/// folder (a served file, a log) make no events; an edit still reloads.
#[tokio::test]
async fn a_busy_config_folder_does_not_wake_the_watcher() {
    use std::io::{Read, Write};
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let gw = Gateway::start_cfg(&cfg);
    let path = gw.config_path().to_path_buf();
    let dir = path.parent().expect("folder").to_path_buf();
    let file_events = || async { gw.get("/admin/status").await.json()["reloads"]["file_events"].as_u64() };
    // The sibling files exist before the gateway's watch matters: creating them is an event.
    let served = dir.join("served.sse");
    std::fs::write(&served, "data: {}\n\n".repeat(100)).expect("write the served file");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("requests.log"))
        .expect("open the log");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = file_events().await.expect("reloads.file_events");

    for i in 0..300 {
        let mut text = String::new();
        std::fs::File::open(&served)
            .and_then(|mut f| f.read_to_string(&mut text))
            .expect("read the served file");
        writeln!(log, "line {i}").expect("append to the log");
        let _ = std::fs::read_to_string(&path).expect("read the config");
    }
    log.flush().expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(file_events().await, Some(before), "reads and appends woke the watcher");

    cfg["models"]["after-the-noise"] = json!({"targets": [{"provider": "local", "model": "echo"}]});
    write(&path, &cfg);
    reloads_when(&gw, |(ok, _)| ok >= 1).await;
    assert!(file_events().await > Some(before));
    gw.chat(&chat_body("after-the-noise", "hi")).await.assert_status(200);
}

#[tokio::test]
async fn sighup_and_post_admin_reload_reload_and_a_bad_file_is_a_422() {
    let up = MockUpstream::start();
    let cfg = standard_config(&up);
    let gw = Gateway::start_cfg(&cfg);
    gw.signal("HUP");
    reloads_when(&gw, |(ok, _)| ok == 1).await;

    let reply = gw.post_json("/admin/reload", &json!({})).await;
    reply.assert_status(200);
    assert_eq!(reply.json()["status"], "reloaded", "{}", reply.text());
    assert_eq!(reloads(&gw).await.0, 2);

    // A broken file: the watcher may see it first; either way it is refused.
    std::fs::write(gw.config_path(), "models: [").expect("write");
    let reply = gw.post_json("/admin/reload", &json!({})).await;
    reply.assert_error(422, "invalid_config");
    gw.chat(&chat_body("gpt", "still serving")).await.assert_status(200);
    gw.assert_serving().await;
}

/// Hooks reload too: adding a hook by editing the file loads its plugin and runs it for new
/// requests; an edit that leaves a hook's entry as it was keeps that hook (its fault counter
/// survives); removing it stops it.
#[tokio::test]
async fn an_edit_adds_and_removes_a_hook() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    let gw = Gateway::start_cfg(&cfg);
    let secret = "the launch code 7741";
    gw.chat(&chat_body("echo", secret)).await.assert_status(200);

    cfg["hooks"] = json!([{
        "plugin": "guardrail",
        "name": "deny-codes",
        "config": {"deny": ["launch code \\d+"]},
    }]);
    write(gw.config_path(), &cfg);
    reloads_when(&gw, |(ok, _)| ok >= 1).await;
    let blocked = gw.chat(&chat_body("echo", secret)).await;
    blocked.assert_error(400, "guardrail_blocked");
    assert!(!blocked.text().contains("7741"), "{}", blocked.text());
    let status = gw.get("/admin/status").await.json();
    assert_eq!(status["hooks"][0]["name"], "deny-codes", "{status:#}");

    // Another edit elsewhere: the hook is the same instance (same plugin, name and config).
    cfg["models"]["other"] = json!({"targets": [{"provider": "local", "model": "echo"}]});
    write(gw.config_path(), &cfg);
    reloads_when(&gw, |(ok, _)| ok >= 2).await;
    gw.chat(&chat_body("other", secret))
        .await
        .assert_error(400, "guardrail_blocked");

    cfg["hooks"] = json!([]);
    write(gw.config_path(), &cfg);
    reloads_when(&gw, |(ok, _)| ok >= 3).await;
    let served = gw.chat(&chat_body("echo", secret)).await;
    served.assert_status(200);
    assert_eq!(served.content(), secret);
}
