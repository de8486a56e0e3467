//! Plugins: a third-party plugin built outside the workspace dropped in by name or named by path,
//! plugins the loader must refuse, and a plugin that panics.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;
use switchyard_e2e::client::{chat_body, stream_body};
use switchyard_e2e::config::path_value;
use switchyard_e2e::paths::{self, plugin_file_name, workspace_root};
use switchyard_e2e::upstream::MODEL_SUFFIX;
use switchyard_e2e::{Gateway, MockUpstream, standard_config, to_yaml};

/// Builds `tests/external-plugin` once per test binary; returns the library's path.
fn shout_plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = workspace_root();
        let target = paths::target_dir().join("external-plugin");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .arg("build")
            .arg("--manifest-path")
            .arg(root.join("tests/external-plugin/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .output()
            .expect("run cargo build for tests/external-plugin");
        assert!(
            out.status.success(),
            "building tests/external-plugin failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lib = target.join("debug").join(plugin_file_name("shout"));
        assert!(lib.is_file(), "{} was not produced", lib.display());
        lib
    })
}

#[tokio::test]
async fn external_plugin_drops_in_by_name() {
    let lib = shout_plugin();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(lib, dir.path().join(plugin_file_name("shout"))).expect("copy the plugin");
    let cfg = json!({
        "server": {"host": "127.0.0.1", "port": 0},
        "plugins": {"dir": path_value(dir.path())},
        "providers": {"loud": {"plugin": "shout"}},
        "models": {"yell": {"targets": [{"provider": "loud", "model": "anything"}]}},
    });

    let check = Gateway::check(&to_yaml(&cfg));
    assert_eq!(check.code, Some(0), "check loads the dropped-in plugin: {check:?}");
    assert!(check.stdout.contains("yell"), "{check:?}");

    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("yell", "hello there")).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["choices"][0]["message"]["content"], "HELLO THERE", "{v:#}");
    assert_eq!(v["extra_fields"]["provider"], "loud", "{v:#}");
    assert_eq!(v["extra_fields"]["model_requested"], "yell", "{v:#}");

    let reply = gw.chat(&chat_body("loud/whatever", "direct")).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "DIRECT");

    let sse = gw.stream(&stream_body("yell", "stream it loud")).await;
    sse.assert_complete();
    assert_eq!(sse.content(), "STREAM IT LOUD", "{}", sse.dump());
    assert!(sse.empty_choice_chunks().is_empty(), "{}", sse.dump());
}

#[tokio::test]
async fn external_plugin_named_by_path() {
    let lib = shout_plugin();
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["loud"] = json!({"plugin": path_value(lib)});
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("loud/anything", "by path")).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "BY PATH");
    gw.assert_serving().await;
}

#[test]
fn wrong_abi_major_is_refused() {
    let up = MockUpstream::start();
    let _ = paths::plugin_path("badabi");
    let mut cfg = standard_config(&up);
    cfg["providers"]["bad"] = json!({"plugin": "badabi"});
    let (code, stderr) = Gateway::start_expect_failure(&to_yaml(&cfg));
    assert!(code.is_some_and(|c| c != 0), "{code:?}\n{stderr}");
    assert!(
        stderr.contains("ABI") || stderr.contains("abi"),
        "the error should mention the ABI:\n{stderr}"
    );
    assert!(stderr.contains("badabi"), "the error names the plugin:\n{stderr}");

    let check = Gateway::check(&to_yaml(&cfg));
    assert!(
        check.code.is_some_and(|c| c != 0),
        "check loads plugins and fails too: {check:?}"
    );
}

/// `tests/fixture-plugins/abi-v1-0`: a plugin laid out exactly as ABI 1.0 (its own frozen
/// copies of the 1.0 structs, no plugin-api, no panic-strategy stamp). Whatever today's structs
/// have grown into, this gateway loads it and it answers, plain and streamed.
#[tokio::test]
async fn a_frozen_abi_1_0_plugin_keeps_loading_and_answering() {
    const ANSWER: &str = "Frozen ABI 1.0 plugin, still answering.";
    let up = MockUpstream::start();
    let _ = paths::plugin_path("abi_v1_0");
    let mut cfg = standard_config(&up);
    cfg["providers"]["frozen"] = json!({"plugin": "abi_v1_0"});
    cfg["models"]["old"] = json!({"targets": [{"provider": "frozen", "model": "v1-0"}]});

    let check = Gateway::check(&to_yaml(&cfg));
    assert_eq!(check.code, Some(0), "check loads the 1.0 plugin: {check:?}");

    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("old", "are you still there?")).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["choices"][0]["message"]["content"], ANSWER, "{v:#}");
    assert_eq!(v["model"], "v1-0", "{v:#}");
    assert_eq!(v["usage"]["total_tokens"], 11, "{v:#}");
    assert_eq!(v["extra_fields"]["provider"], "frozen", "{v:#}");

    let sse = gw.stream(&stream_body("frozen/any-model", "stream, please")).await;
    sse.assert_complete();
    assert_eq!(sse.content(), ANSWER, "{}", sse.dump());

    let mut body = stream_body("old", "with usage");
    body["stream_options"] = json!({"include_usage": true});
    let sse = gw.stream(&body).await;
    sse.assert_complete();
    let usage: Vec<_> = sse
        .chunks()
        .into_iter()
        .filter_map(|c| c["usage"].as_object())
        .collect();
    assert_eq!(usage.len(), 1, "{}", sse.dump());
    assert_eq!(usage[0]["total_tokens"], 11, "{}", sse.dump());
    gw.assert_serving().await;
}

#[test]
fn missing_entry_symbol_is_refused() {
    let up = MockUpstream::start();
    let _ = paths::plugin_path("noentry");
    let mut cfg = standard_config(&up);
    cfg["providers"]["bad"] = json!({"plugin": "noentry"});
    let (code, stderr) = Gateway::start_expect_failure(&to_yaml(&cfg));
    assert!(code.is_some_and(|c| c != 0), "{code:?}\n{stderr}");
    assert!(
        stderr.contains("switchyard_plugin_entry_v1"),
        "the error names the missing symbol:\n{stderr}"
    );
    assert!(stderr.contains("noentry"), "the error names the plugin:\n{stderr}");
}

#[test]
fn plugin_path_that_does_not_exist_is_refused() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["bad"] = json!({"plugin": "/nonexistent/dir/libswitchyard_ghost.so"});
    let (code, stderr) = Gateway::start_expect_failure(&to_yaml(&cfg));
    assert!(code.is_some_and(|c| c != 0), "{code:?}\n{stderr}");
    assert!(
        stderr.contains("/nonexistent/dir/libswitchyard_ghost.so"),
        "the error names the path:\n{stderr}"
    );
}

#[tokio::test]
async fn plugin_panic_is_502_and_the_daemon_keeps_serving() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let reply = gw.chat(&chat_body("local/fault-panic", "panic!")).await;
    reply.assert_status(502);
    reply.assert_error_shape();
    gw.assert_serving().await;

    let sse = gw.stream(&stream_body("local/fault-panic", "panic in a stream")).await;
    assert_eq!(sse.status, 502, "{}", sse.dump());
    gw.assert_serving().await;
    gw.chat(&chat_body("gpt", "others unaffected")).await.assert_status(200);
}

#[tokio::test]
async fn plugin_panic_falls_back() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let mut body = chat_body("local/fault-panic", "catch me");
    body["fallbacks"] = json!(["up/gpt-4o"]);
    let reply = gw.chat(&body).await;
    reply.assert_status(200);
    let v = reply.json();
    assert_eq!(v["model"], format!("gpt-4o{MODEL_SUFFIX}"), "{v:#}");
    assert_eq!(v["extra_fields"]["provider"], "up", "{v:#}");
}

/// Repeated panics switch a provider's plugin instance off for the provider's
/// `circuit_breaker.cooldown`; then one probe goes through and, answering, switches it on.
#[tokio::test]
async fn a_plugin_switched_off_by_panics_recovers_after_the_cooldown() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["local"]["circuit_breaker"] = json!({"failures": 1000, "cooldown": "1s"});
    let gw = Gateway::start_cfg(&cfg);
    // plugin-api's default limit: five panics in a row.
    for _ in 0..5 {
        gw.chat(&chat_body("local/fault-panic", "panic!"))
            .await
            .assert_status(502);
    }
    let reply = gw.chat(&chat_body("echo", "anyone there?")).await;
    reply.assert_status(502);
    assert!(reply.text().contains("disabled"), "{}", reply.text());

    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reply = gw.chat(&chat_body("echo", "back again")).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "back again");
    gw.chat(&chat_body("echo", "and staying")).await.assert_status(200);
}

#[tokio::test]
async fn plugins_dir_defaults_to_the_binary_folder() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg.as_object_mut().expect("object").remove("plugins");
    let gw = Gateway::start_cfg(&cfg);
    gw.chat(&chat_body("gpt", "default dir")).await.assert_status(200);
    gw.assert_serving().await;
}
