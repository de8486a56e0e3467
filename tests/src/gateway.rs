//! Running the `switchyard` binary: as a daemon ([`Gateway`]) or as a one-shot CLI ([`Gateway::cli`]).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::config::to_yaml;
use crate::paths;

/// How long the daemon may take to print its listening line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running daemon. Killed (SIGKILL) on drop unless it already exited.
pub struct Gateway {
    child: Child,
    port: u16,
    logs: Arc<Mutex<String>>,
    dir: TempDir,
    config_path: PathBuf,
    exit: Option<ExitStatus>,
}

/// How a one-shot run of the binary ended.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Options for starting a daemon beyond the config itself.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Extra command-line arguments, after `--config PATH --port 0`.
    pub args: Vec<String>,
    /// Extra environment variables for the child.
    pub env: Vec<(String, String)>,
    /// How the daemon is told about the config file.
    pub config: ConfigSource,
}

/// How the daemon finds its config in [`Gateway::start_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config PATH` (the default).
    #[default]
    Flag,
    /// `SWITCHYARD_CONFIG=PATH` in the environment, no flag.
    Env,
    /// `config/gateway.yaml` in the working folder, no flag.
    WorkingDir,
    /// Nothing at all: the daemon uses its embedded default (the YAML given is not written).
    Embedded,
}

enum Event {
    Port(u16),
    Eof,
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Finds `listening on http://HOST:PORT` in a log line.
fn listening_port(line: &str) -> Option<u16> {
    let line = strip_ansi(line);
    let at = line.find("listening on http://")?;
    let rest = &line[at + "listening on http://".len()..];
    let authority: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    let port = authority.rsplit(':').next()?;
    port.parse().ok()
}

fn base_command(bin: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Loopback only: never send upstream traffic through a proxy from the environment.
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    // Settings from the developer's shell must not change what the tests see.
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && name.starts_with("SWITCHYARD_")
            && name != "SWITCHYARD_BIN"
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn write_config(dir: &TempDir, yaml: &str) -> PathBuf {
    let path = dir.path().join("switchyard-test.yaml");
    std::fs::write(&path, yaml).expect("write the test config");
    path
}

fn spawn_reader<R: Read + Send + 'static>(
    stream: R,
    logs: Arc<Mutex<String>>,
    own: Option<Arc<Mutex<String>>>,
    events: mpsc::Sender<Event>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&raw);
                    if let Ok(mut all) = logs.lock() {
                        all.push_str(&line);
                        if !line.ends_with('\n') {
                            all.push('\n');
                        }
                    }
                    if let Some(own) = &own
                        && let Ok(mut own) = own.lock()
                    {
                        own.push_str(&line);
                    }
                    if let Some(port) = listening_port(&line) {
                        let _ = events.send(Event::Port(port));
                    }
                }
            }
        }
        let _ = events.send(Event::Eof);
    });
}

impl Gateway {
    /// Writes `yaml` to a temp file and starts the daemon on a free port. Panics (with the daemon's
    /// output) if it does not print its listening line within [`STARTUP_TIMEOUT`].
    pub fn start(yaml: &str) -> Gateway {
        Self::start_with(yaml, StartOptions::default())
    }

    /// [`Gateway::start`] for a config given as a JSON value (rendered to YAML).
    pub fn start_cfg(config: &Value) -> Gateway {
        Self::start(&to_yaml(config))
    }

    /// [`Gateway::start_cfg`] logging at debug level (for tests of what the logs hold).
    pub fn start_cfg_debug_logs(config: &Value) -> Gateway {
        Self::start_with(
            &to_yaml(config),
            StartOptions {
                args: vec!["--log-level".into(), "debug".into()],
                ..StartOptions::default()
            },
        )
    }

    /// [`Gateway::start`] with extra arguments and environment.
    pub fn start_with(yaml: &str, options: StartOptions) -> Gateway {
        let bin = paths::switchyard_bin();
        let dir = tempfile::tempdir().expect("create a temp dir");
        let config_path = match options.config {
            ConfigSource::WorkingDir => {
                let folder = dir.path().join("config");
                std::fs::create_dir_all(&folder).expect("create config/");
                let path = folder.join("gateway.yaml");
                std::fs::write(&path, yaml).expect("write config/gateway.yaml");
                path
            }
            ConfigSource::Embedded => dir.path().join("(embedded default)"),
            ConfigSource::Flag | ConfigSource::Env => write_config(&dir, yaml),
        };
        let mut cmd = base_command(&bin, dir.path());
        match options.config {
            ConfigSource::Flag => {
                cmd.arg("--config").arg(&config_path);
            }
            ConfigSource::Env => {
                cmd.env("SWITCHYARD_CONFIG", &config_path);
            }
            ConfigSource::WorkingDir | ConfigSource::Embedded => {}
        }
        cmd.arg("--port").arg("0").args(&options.args);
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", bin.display()));
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            spawn_reader(out, logs.clone(), None, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(err, logs.clone(), None, tx);
        }

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut eofs = 0;
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Event::Port(port)) => break port,
                Ok(Event::Eof) => {
                    eofs += 1;
                    if eofs == 2 {
                        let status = child.wait().ok();
                        thread::sleep(Duration::from_millis(50));
                        panic!(
                            "switchyard exited before listening (status {status:?}).\n\
                             config ({}):\n{yaml}\n--- daemon output ---\n{}",
                            config_path.display(),
                            logs.lock().map(|l| l.clone()).unwrap_or_default()
                        );
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "switchyard did not print `listening on http://127.0.0.1:PORT` within {:?}.\n\
                         config ({}):\n{yaml}\n--- daemon output ---\n{}",
                        STARTUP_TIMEOUT,
                        config_path.display(),
                        logs.lock().map(|l| l.clone()).unwrap_or_default()
                    );
                }
            }
        };
        Gateway {
            child,
            port,
            logs,
            dir,
            config_path,
            exit: None,
        }
    }

    /// Starts the daemon with `yaml`, expecting it to refuse: returns (exit code, stderr). Panics if it
    /// starts listening or does not exit within [`STARTUP_TIMEOUT`].
    pub fn start_expect_failure(yaml: &str) -> (Option<i32>, String) {
        let bin = paths::switchyard_bin();
        let dir = tempfile::tempdir().expect("create a temp dir");
        let config_path = write_config(&dir, yaml);
        let mut cmd = base_command(&bin, dir.path());
        cmd.arg("--config").arg(&config_path).arg("--port").arg("0");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", bin.display()));
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            spawn_reader(out, logs.clone(), None, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(err, logs.clone(), Some(stderr.clone()), tx);
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut eofs = 0;
        while eofs < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Event::Port(port)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "expected switchyard to refuse this config, but it is listening on port {port}.\n\
                         config:\n{yaml}\n--- daemon output ---\n{}",
                        logs.lock().map(|l| l.clone()).unwrap_or_default()
                    );
                }
                Ok(Event::Eof) => eofs += 1,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "expected switchyard to exit on this config, but it neither exited nor \
                         listened within {STARTUP_TIMEOUT:?}.\nconfig:\n{yaml}\n--- output ---\n{}",
                        logs.lock().map(|l| l.clone()).unwrap_or_default()
                    );
                }
            }
        }
        let status = wait_timeout(&mut child, STARTUP_TIMEOUT).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("switchyard closed its output but did not exit");
        });
        let stderr = stderr.lock().map(|s| s.clone()).unwrap_or_default();
        (status.code(), stderr)
    }

    /// Runs the binary once with `args` (working folder: a fresh temp dir) and collects its output.
    /// Gives up (panics) after 60 s.
    pub fn cli(args: &[&str]) -> CliOutput {
        let dir = tempfile::tempdir().expect("create a temp dir");
        Self::cli_in(dir.path(), args)
    }

    /// `switchyard check --config <temp file with yaml>`.
    pub fn check(yaml: &str) -> CliOutput {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let path = write_config(&dir, yaml);
        let path = path.display().to_string();
        Self::cli_in(dir.path(), &["check", "--config", &path])
    }

    /// `switchyard check --config PATH` for an existing (or deliberately missing) file.
    pub fn check_path(path: &str) -> CliOutput {
        Self::cli(&["check", "--config", path])
    }

    fn cli_in(cwd: &Path, args: &[&str]) -> CliOutput {
        let bin = paths::switchyard_bin();
        let mut cmd = base_command(&bin, cwd);
        cmd.args(args);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", bin.display()));
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let out_thread = thread::spawn(move || {
            let mut s = String::new();
            if let Some(out) = out.as_mut() {
                let mut bytes = Vec::new();
                let _ = out.read_to_end(&mut bytes);
                s = String::from_utf8_lossy(&bytes).into_owned();
            }
            s
        });
        let err_thread = thread::spawn(move || {
            let mut s = String::new();
            if let Some(err) = err.as_mut() {
                let mut bytes = Vec::new();
                let _ = err.read_to_end(&mut bytes);
                s = String::from_utf8_lossy(&bytes).into_owned();
            }
            s
        });
        let status = wait_timeout(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`switchyard {}` did not exit within 60 s", args.join(" "));
        });
        CliOutput {
            code: status.code(),
            stdout: out_thread.join().unwrap_or_default(),
            stderr: err_thread.join().unwrap_or_default(),
        }
    }

    /// The port the daemon listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the daemon printed so far (stdout and stderr interleaved by line).
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The config file the daemon was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temp folder holding the config (removed on drop).
    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM to the daemon.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `INT`, …) to the daemon.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run `kill`");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Waits (blocking) for the daemon to exit; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exit {
            return Some(status);
        }
        let status = wait_timeout(&mut self.child, timeout)?;
        self.exit = Some(status);
        Some(status)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                false
            }
            _ => true,
        }
    }
}

/// Polls `child` until it exits or `timeout` passes.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_port() {
        assert_eq!(
            listening_port("2026-01-01T00:00:00Z  INFO switchyard: listening on http://127.0.0.1:41234"),
            Some(41234)
        );
        assert_eq!(
            listening_port(r#"{"level":"INFO","fields":{"message":"listening on http://127.0.0.1:5001/"}}"#),
            Some(5001)
        );
        assert_eq!(
            listening_port("\u{1b}[32mINFO\u{1b}[0m listening on http://127.0.0.1:80 (2 workers)"),
            Some(80)
        );
        assert_eq!(listening_port("starting"), None);
    }
}
