//! The official `openai` Python SDK (a client nobody here wrote) against the running daemon.
//!
//! Python: `SWITCHYARD_TEST_PYTHON`, else `<target>/py-venv/bin/python`, created on first use with
//! `python3 -m venv` + `pip install -r tests/python/requirements.txt`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_e2e::paths::{target_dir, workspace_root};
use switchyard_e2e::upstream::MODEL_SUFFIX;
use switchyard_e2e::{Gateway, MockUpstream, UPSTREAM_KEY, standard_config};

const CLIENT_KEY: &str = "sk-python-client-key-must-not-leak";
const PYTEST_TIMEOUT: Duration = Duration::from_secs(240);

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: failed to run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python interpreter to use, creating the venv when needed.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_TEST_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = target_dir().join("py-venv");
    let python = venv.join("bin").join("python");
    let requirements = workspace_root().join("tests/python/requirements.txt");
    // The marker holds the requirements it was installed from: edit them and the venv updates.
    let ready = venv.join(".switchyard-e2e-ready");
    let wanted = std::fs::read(&requirements).unwrap_or_else(|e| panic!("read {}: {e}", requirements.display()));
    if python.is_file() && std::fs::read(&ready).is_ok_and(|have| have == wanted) {
        return python;
    }
    if !python.is_file() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        );
    }
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        "pip install -r tests/python/requirements.txt",
    );
    let _ = std::fs::write(&ready, &wanted);
    python
}

fn run_pytest(python: &Path, env: &[(&str, String)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("pytest.out");
    let out = File::create(&out_path).expect("create output file");
    let err = out.try_clone().expect("clone output file");
    let mut cmd = Command::new(python);
    cmd.current_dir(workspace_root())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"])
        .arg(workspace_root().join("tests/python/test_openai_sdk.py"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn pytest");
    let deadline = Instant::now() + PYTEST_TIMEOUT;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) => (s.success(), output),
        None => (false, format!("pytest timed out after {PYTEST_TIMEOUT:?}\n{output}")),
    }
}

#[test]
fn openai_python_sdk_against_the_daemon() {
    let python = python();
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let env = [
        ("E2E_GATEWAY_URL", gw.base_url()),
        ("E2E_MODEL", "gpt".to_owned()),
        ("E2E_UPSTREAM_MODEL", format!("gpt-4o{MODEL_SUFFIX}")),
        ("E2E_PROVIDER", "up".to_owned()),
        ("E2E_FAILING_MODEL", "up/fail-500".to_owned()),
        ("E2E_FALLBACK_MODEL", "local/echo".to_owned()),
        ("E2E_FALLBACK_PROVIDER", "local".to_owned()),
        ("E2E_CLIENT_KEY", CLIENT_KEY.to_owned()),
    ];
    let (ok, output) = run_pytest(&python, &env);
    assert!(
        ok,
        "the openai Python SDK tests failed:\n{output}\n--- daemon output ---\n{}",
        gw.logs()
    );

    // What reached the upstream.
    let requests = up.requests();
    assert!(!requests.is_empty());
    let bodies: Vec<Value> = requests.iter().map(|r| r.json()).collect();
    let find = |pred: &dyn Fn(&Value) -> bool, what: &str| -> Value {
        bodies
            .iter()
            .find(|b| pred(b))
            .cloned()
            .unwrap_or_else(|| panic!("no upstream request {what}; got {bodies:#?}"))
    };

    let sampling = find(&|b| b["seed"] == 4242, "with seed 4242");
    assert_eq!(sampling["stop"], json!(["<END>"]), "{sampling:#}");
    assert_eq!(sampling["logprobs"], true, "{sampling:#}");
    assert_eq!(sampling["top_logprobs"], 2, "{sampling:#}");
    assert_eq!(sampling["max_completion_tokens"], 64, "{sampling:#}");
    assert_eq!(sampling["n"], 2, "{sampling:#}");
    assert_eq!(sampling["temperature"], 0.5, "{sampling:#}");
    assert_eq!(sampling["model"], "gpt-4o", "{sampling:#}");

    let structured = find(
        &|b| b.pointer("/response_format/json_schema/name") == Some(&json!("e2e_schema")),
        "with the json_schema response_format",
    );
    assert_eq!(
        structured["response_format"],
        json!({"type": "json_schema", "json_schema": {
            "name": "e2e_schema", "strict": true,
            "schema": {"type": "object", "properties": {"upstream_saw": {"type": "string"}},
                       "required": ["upstream_saw"], "additionalProperties": false}}}),
        "response_format reaches the upstream unchanged"
    );

    let tools = find(
        &|b| b.pointer("/tools/0/function/name") == Some(&json!("get_weather")),
        "with tools",
    );
    assert_eq!(tools["tools"][0]["function"]["strict"], true, "{tools:#}");
    assert_eq!(
        tools["tools"][0]["function"]["parameters"]["required"],
        json!(["query"]),
        "{tools:#}"
    );

    let marker = find(&|b| b.get("x_e2e_marker").is_some(), "with the unknown field");
    assert_eq!(marker["x_e2e_marker"], json!({"nested": [1, "two"]}));

    let failing = find(&|b| b["model"] == "fail-500", "for the failing model");
    assert!(failing.get("fallbacks").is_none(), "{failing:#}");

    for (rec, body) in requests.iter().zip(&bodies) {
        assert!(
            body.get("fallbacks").is_none(),
            "`fallbacks` must not reach the upstream: {body}"
        );
        assert_eq!(
            rec.header_all("authorization"),
            vec![format!("Bearer {UPSTREAM_KEY}").as_str()],
            "upstream auth is the configured key only"
        );
        let headers = format!("{:?}", rec.headers);
        assert!(
            !headers.contains(CLIENT_KEY),
            "the client's key reached the upstream: {headers}"
        );
        if body["stream"] == true {
            assert_eq!(
                body["stream_options"]["include_usage"], true,
                "streams always ask for usage: {body}"
            );
        }
    }
}
