//! The hook driven through the real C ABI, as the gateway loads and calls it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_plugin_api::abi::{PluginDecl, hook_phase};
use switchyard_plugin_api::host::{self, HookCall, HookInstance, LoadError, PanicPolicy};

use super::*;

// The export macro's entry symbol, reached by its C name as the host's loader does.
unsafe extern "C" {
    fn switchyard_plugin_entry_v1() -> *const PluginDecl;
}

fn try_hook(config: &Value) -> Result<Arc<HookInstance>, LoadError> {
    // SAFETY: the static declaration exported by this crate.
    let lib = unsafe { host::from_declaration(switchyard_plugin_entry_v1(), Path::new("in-process")) }.unwrap();
    lib.hook("log", config.to_string().as_bytes(), PanicPolicy::default())
        .map(Arc::new)
}

fn summary(id: &str) -> Vec<u8> {
    json!({
        "request_id": id, "alias": "fast", "provider": "openai", "model": "gpt-x", "status": 200,
        "stream": true, "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        "cost": null, "cache_hit": false, "latency_ms": 12,
        // Never copied:
        "api_key": "sk-secret", "body": "the prompt", "headers": {"authorization": "Bearer x"}
    })
    .to_string()
    .into_bytes()
}

fn done(h: &Arc<HookInstance>, summary: &[u8]) -> Result<(), host::CallError> {
    let call = HookCall {
        request_id: "r",
        operation: "chat",
        alias: "fast",
        ..HookCall::default()
    };
    h.start().on_done(&call, summary)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn one_line_per_request_with_only_the_known_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
    let h = try_hook(&json!({"path": path, "flush_ms": 50})).unwrap();
    assert_eq!(h.phases(), hook_phase::ON_DONE);
    let before = unix_ms();
    done(&h, &summary("r1")).unwrap();
    done(&h, &summary("r2")).unwrap();
    // A sparse summary: what it lacks is null.
    done(&h, br#"{"request_id":"r3","status":502}"#).unwrap();
    drop(h); // destroy: flush and join

    let got = lines(&path);
    assert_eq!(got.len(), 4, "appended after the existing line: {got:?}");
    assert_eq!(got[0], json!({"earlier": true}));
    let first = got[1].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut expected = vec![
        "ts",
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
    ];
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected);
    assert!(first["ts"].as_u64().unwrap() >= before);
    assert_eq!(first["request_id"], "r1");
    assert_eq!(first["usage"]["total_tokens"], 7);
    assert_eq!(first["stream"], true);
    assert_eq!(got[2]["request_id"], "r2");
    assert_eq!(got[3]["status"], 502);
    assert_eq!(got[3]["model"], Value::Null);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("sk-secret") && !text.contains("the prompt") && !text.contains("Bearer"));
}

#[test]
fn lines_reach_the_file_while_the_gateway_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.jsonl");
    let h = try_hook(&json!({"path": path})).unwrap();
    done(&h, &summary("live")).unwrap();
    // Flushed when the queue runs empty: no need to wait for the stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&path).unwrap_or_default().is_empty() {
        assert!(Instant::now() < deadline, "the line never reached the file");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(lines(&path)[0]["request_id"], "live");
    drop(h);
}

#[test]
fn config_errors_name_the_path_or_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("no-such-dir").join("x.jsonl");
    let e = try_hook(&json!({"path": bad})).err().unwrap().to_string();
    assert!(e.contains(&*bad.to_string_lossy()), "{e}");
    let e = try_hook(&json!({"flush_ms": 5})).err().unwrap().to_string();
    assert!(e.contains("path"), "{e}");
    let e = try_hook(&json!({"path": dir.path().join("a"), "flush": 5}))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("flush"), "{e}");
    let e = try_hook(&Value::Null).err().unwrap().to_string();
    assert!(e.contains("request_log config"), "{e}");
}

#[test]
fn an_unreadable_summary_fails_the_call_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    let h = try_hook(&json!({"path": path})).unwrap();
    assert!(done(&h, b"not json").is_err());
    drop(h);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = RequestLog::from_config(&json!({"path": dir.path().join("q.jsonl")})).unwrap();
    // A queue of one that nobody reads, in place of the real one (whose writer then ends).
    let (queue, _lines) = sync_channel(1);
    drop(log.queue.replace(queue));
    log.push(b"a\n".to_vec()).unwrap();
    let e = log.push(b"b\n".to_vec()).unwrap_err();
    assert!(e.0.contains("queue full"), "{}", e.0);
    assert!(log.push(b"c\n".to_vec()).is_err());
    assert_eq!(log.dropped(), 2);
}
