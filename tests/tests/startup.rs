//! The command line and config validation: `--version`, `check`, startup errors that name the file
//! and the field, keys from the environment.

use serde_json::{Value, json};
use switchyard_e2e::client::chat_body;
use switchyard_e2e::gateway::{ConfigSource, StartOptions};
use switchyard_e2e::{Gateway, MockUpstream, UPSTREAM_KEY, standard_config, to_yaml};

/// The file name every test config is written to (the path is in a temp folder).
const CONFIG_FILE: &str = "switchyard-test.yaml";

#[track_caller]
fn assert_refused(config: &Value, must_mention: &[&str]) -> String {
    let (code, stderr) = Gateway::start_expect_failure(&to_yaml(config));
    assert!(
        code.is_some_and(|c| c != 0),
        "startup must fail with a non-zero exit code, got {code:?}; stderr:\n{stderr}"
    );
    for needle in must_mention {
        assert!(
            stderr.contains(needle),
            "the startup error should mention {needle:?}; stderr:\n{stderr}"
        );
    }
    stderr
}

#[test]
fn version_flag_prints_the_version() {
    let out = Gateway::cli(&["--version"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "--version prints the workspace version: {out:?}"
    );
}

#[test]
fn check_prints_the_routing_table() {
    let up = MockUpstream::start();
    let out = Gateway::check(&to_yaml(&standard_config(&up)));
    assert_eq!(out.code, Some(0), "check must succeed on a valid config: {out:?}");
    for needle in ["gpt", "gpt-4o", "up", "echo", "local"] {
        assert!(
            out.stdout.contains(needle),
            "the routing table should mention {needle:?}; stdout:\n{}",
            out.stdout
        );
    }
}

#[test]
fn check_rejects_an_invalid_config() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["bse_url"] = cfg["providers"]["up"]["base_url"].take();
    strip_nulls(&mut cfg);
    let out = Gateway::check(&to_yaml(&cfg));
    assert!(out.code.is_some_and(|c| c != 0), "{out:?}");
    assert!(out.stderr.contains("bse_url"), "{out:?}");
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(map) = v {
        map.retain(|_, x| !x.is_null());
        for x in map.values_mut() {
            strip_nulls(x);
        }
    }
}

#[test]
fn unknown_key_names_file_and_field_and_suggests_the_nearest() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["bse_url"] = cfg["providers"]["up"]["base_url"].take();
    strip_nulls(&mut cfg);
    assert_refused(&cfg, &[CONFIG_FILE, "bse_url", "base_url"]);
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["servr"] = cfg["server"].take();
    strip_nulls(&mut cfg);
    assert_refused(&cfg, &[CONFIG_FILE, "servr", "server"]);
}

#[test]
fn unknown_plugin_is_an_error() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["ghostly"] = json!({"plugin": "nosuch"});
    assert_refused(&cfg, &["nosuch"]);
}

#[test]
fn bad_duration_names_the_field() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["timeout"] = json!("5 parsecs");
    assert_refused(&cfg, &["timeout"]);
}

#[test]
fn alias_pointing_at_an_unknown_provider_is_an_error() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["models"]["broken"] = json!({"targets": [{"provider": "ghost", "model": "m"}]});
    assert_refused(&cfg, &["ghost"]);
}

#[test]
fn invalid_yaml_is_an_error_naming_the_file() {
    let (code, stderr) = Gateway::start_expect_failure("server:\n  host: [127.0.0.1\nproviders: {\n");
    assert!(code.is_some_and(|c| c != 0), "{code:?} {stderr}");
    assert!(stderr.contains(CONFIG_FILE), "stderr:\n{stderr}");
}

#[test]
fn missing_config_file_is_an_error() {
    let out = Gateway::check_path("/nonexistent/switchyard-missing.yaml");
    assert!(out.code.is_some_and(|c| c != 0), "{out:?}");
    assert!(out.stderr.contains("switchyard-missing.yaml"), "{out:?}");
}

#[tokio::test]
async fn cli_port_overrides_the_config_file() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    // A port the test user cannot bind: only the CLI's `--port 0` lets this start.
    cfg["server"]["port"] = json!(1);
    let gw = Gateway::start_cfg(&cfg);
    assert_ne!(gw.port(), 1);
    gw.assert_serving().await;
}

#[tokio::test]
async fn host_and_json_log_format_flags() {
    let up = MockUpstream::start();
    let gw = Gateway::start_with(
        &to_yaml(&standard_config(&up)),
        StartOptions {
            args: vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--log-format".into(),
                "json".into(),
                "--log-level".into(),
                "info".into(),
            ],
            ..StartOptions::default()
        },
    );
    gw.assert_serving().await;
    let logs = gw.logs();
    assert!(
        logs.lines()
            .any(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object())),
        "--log-format json writes JSON log lines:\n{logs}"
    );
}

#[tokio::test]
async fn unset_env_key_only_disables_that_key() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["keys"] = json!([
        {"value": "env.SWITCHYARD_E2E_SURELY_UNSET_KEY", "weight": 1000.0},
        {"value": UPSTREAM_KEY, "weight": 1.0},
    ]);
    let gw = Gateway::start_cfg(&cfg);
    for i in 0..4 {
        gw.chat(&chat_body("gpt", &format!("key {i}"))).await.assert_status(200);
        assert_eq!(
            up.last_request().header("authorization"),
            Some(&*format!("Bearer {UPSTREAM_KEY}")),
            "the disabled key is never used"
        );
    }
    let logs = gw.logs();
    assert!(
        logs.contains("SWITCHYARD_E2E_SURELY_UNSET_KEY"),
        "a warning names the unset variable:\n{logs}"
    );
}

#[tokio::test]
async fn provider_without_a_usable_key_answers_503() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["keys"] = json!([{"value": "env.SWITCHYARD_E2E_SURELY_UNSET_KEY"}]);
    let gw = Gateway::start_cfg(&cfg);
    let reply = gw.chat(&chat_body("gpt", "no key")).await;
    reply.assert_error(503, "no_usable_key");
    assert!(up.requests().is_empty(), "nothing is sent without a key");
    gw.assert_serving().await;
}

#[tokio::test]
async fn config_path_from_the_environment() {
    let up = MockUpstream::start();
    let gw = Gateway::start_with(
        &to_yaml(&standard_config(&up)),
        StartOptions {
            config: ConfigSource::Env,
            ..StartOptions::default()
        },
    );
    // `gpt` only exists in the test config, not in the embedded default.
    gw.chat(&chat_body("gpt", "env config")).await.assert_status(200);
}

#[tokio::test]
async fn config_from_the_working_folder() {
    let up = MockUpstream::start();
    let gw = Gateway::start_with(
        &to_yaml(&standard_config(&up)),
        StartOptions {
            config: ConfigSource::WorkingDir,
            ..StartOptions::default()
        },
    );
    gw.chat(&chat_body("gpt", "config/gateway.yaml"))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn embedded_default_config_serves_the_mock_provider() {
    let gw = Gateway::start_with(
        "",
        StartOptions {
            config: ConfigSource::Embedded,
            ..StartOptions::default()
        },
    );
    let models = gw.get("/v1/models").await;
    models.assert_status(200);
    let v = models.json();
    let first = v["data"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the embedded default lists at least one model: {v:#}"))
        .to_owned();
    let reply = gw.chat(&chat_body(&first, "default config")).await;
    reply.assert_status(200);
    assert!(reply.content().contains("default config"), "{}", reply.text());
}

/// The embedded default serves everyone from one shared `mock`: a client asking for its fault
/// models must not be able to make it fail (a panicking model would disable it for everybody).
#[tokio::test]
async fn clients_cannot_switch_off_the_default_mock() {
    let gw = Gateway::start_with(
        "",
        StartOptions {
            config: ConfigSource::Embedded,
            ..StartOptions::default()
        },
    );
    for _ in 0..10 {
        let reply = gw.chat(&chat_body("local/fault-panic", "no panic here")).await;
        reply.assert_status(200);
        assert_eq!(reply.content(), "no panic here");
    }
    let reply = gw.chat(&chat_body("default", "still serving")).await;
    reply.assert_status(200);
    assert_eq!(reply.content(), "still serving");
}

#[tokio::test]
async fn cli_beats_the_environment() {
    let up = MockUpstream::start();
    let gw = Gateway::start_with(
        &to_yaml(&standard_config(&up)),
        StartOptions {
            env: vec![
                ("SWITCHYARD_CONFIG".into(), "/nonexistent/switchyard-env.yaml".into()),
                ("SWITCHYARD_PORT".into(), "1".into()),
                ("SWITCHYARD_HOST".into(), "203.0.113.7".into()),
            ],
            args: vec!["--host".into(), "127.0.0.1".into()],
            ..StartOptions::default()
        },
    );
    assert_ne!(gw.port(), 1);
    gw.chat(&chat_body("gpt", "cli wins")).await.assert_status(200);
}

#[test]
fn a_base_url_the_http_client_cannot_send_is_refused_at_startup() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["base_url"] = json!("http://bücher.example/v1");
    let stderr = assert_refused(&cfg, &[CONFIG_FILE, "providers.up.base_url", "percent-encode"]);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn hook_plugins_are_checked_like_provider_plugins() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["hooks"] = json!([{"plugin": "no-such-hook"}]);
    assert_refused(&cfg, &[CONFIG_FILE, "hooks.0.plugin", "no-such-hook"]);
    // A provider plugin is not a hook.
    cfg["hooks"] = json!([{"plugin": "mock"}]);
    assert_refused(&cfg, &[CONFIG_FILE, "hooks.0.plugin", "not a hook plugin"]);
    let out = Gateway::check(&to_yaml(&cfg));
    assert_ne!(out.code, Some(0), "check refuses it too: {out:?}");
    assert!(out.stderr.contains("hooks.0.plugin"), "{}", out.stderr);
}

#[test]
fn cache_backend_is_validated() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["cache"] = json!({"enabled": true, "backend": "memroy"});
    assert_refused(&cfg, &["cache.backend", "did you mean `memory`"]);
    cfg["cache"] = json!({"enabled": true, "backend": "redis"});
    assert_refused(&cfg, &["redis.url"]);
    cfg["redis"] = json!({"url": "http://127.0.0.1:6379"});
    assert_refused(&cfg, &["redis.url", "redis://"]);
    cfg["redis"] = json!({"url": "redis://127.0.0.1:6379", "timeout": "0s"});
    assert_refused(&cfg, &["redis.timeout"]);
    cfg["redis"] = json!({});
    cfg["cache"] = json!({"enabled": true, "max_entries": 0});
    assert_refused(&cfg, &["cache.max_entries"]);
    cfg["cache"] = json!({"enabled": true, "max_bytes": "10B"});
    assert_refused(&cfg, &["cache.max_bytes", "1KiB"]);
}

/// Durations and sizes are bounded, so no arithmetic on them can overflow at run time.
#[test]
fn absurd_durations_and_sizes_are_refused() {
    let up = MockUpstream::start();
    let mut cfg = standard_config(&up);
    cfg["providers"]["up"]["first_token_timeout"] = json!("500000000y");
    assert_refused(&cfg, &["first_token_timeout", "366d"]);
    let mut cfg = standard_config(&up);
    cfg["server"]["max_body_size"] = json!("5PiB");
    assert_refused(&cfg, &["max_body_size", "1TiB"]);
    let mut cfg = standard_config(&up);
    cfg["models"]["gpt"]["targets"][0]["weight"] = json!(1e300);
    assert_refused(&cfg, &["models.gpt.targets", "up to 1e9"]);
}
