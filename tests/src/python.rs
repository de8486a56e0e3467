//! Running the official `openai` Python SDK tests (pytest) against the daemon.
//!
//! The interpreter is `SWITCHYARD_TEST_PYTHON` when set (scripts/test.sh sets it), else a venv
//! under the target folder created from `tests/python/requirements.txt` when missing or stale.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths::{target_dir, workspace_root};

/// Longest a pytest run may take before it is killed and the test fails.
pub const PYTEST_TIMEOUT: Duration = Duration::from_secs(240);

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

/// `SWITCHYARD_TEST_PYTHON`, else `<target>/py-venv/bin/python`, created on first use from
/// `tests/python/requirements.txt` (the same venv `python_sdk.rs` uses).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_TEST_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = target_dir().join("py-venv");
    let python = venv.join("bin").join("python");
    let requirements = workspace_root().join("tests/python/requirements.txt");
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

/// Runs one pytest file with `env`; returns whether it passed and its output.
pub fn run_pytest(python: &Path, script: &str, env: &[(&str, String)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("pytest.out");
    let out = File::create(&out_path).expect("create output file");
    let err = out.try_clone().expect("clone output file");
    let mut cmd = Command::new(python);
    cmd.current_dir(workspace_root())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"])
        .arg(workspace_root().join(script))
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
