//! `request_log`: a hook plugin that appends one JSON line per finished request to a file.
//!
//! # Configuration (a `hooks:` entry of the gateway's YAML)
//! ```yaml
//! hooks:
//!   - plugin: request_log        # libswitchyard_request_log.so in plugins.dir
//!     on_error: fail_open        # a full queue or a failed write is a fault, never a failed request
//!     config:
//!       path: logs/requests.jsonl   # required; relative to the gateway's working directory
//!       flush_ms: 200              # optional (default 200): longest time a written line waits
//!                                  # in the buffer while requests keep coming
//! ```
//! The file is opened for appending (created if missing) when the gateway starts; a path that cannot
//! be opened, a missing `path` and unknown keys make the start fail with a message naming them.
//!
//! # Lines
//! One JSON object per line, written once the answer has fully gone out:
//! ```json
//! {"ts":1733400000123,"request_id":"…","alias":"fast","provider":"openai","model":"gpt-4o-mini",
//!  "status":200,"stream":false,"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21},
//!  "cost":{"input_tokens_cost":0.00000135,"output_tokens_cost":0.0000072,"request_cost":0.0,
//!  "total_cost":0.00000855},"cache_hit":false,"latency_ms":412}
//! ```
//! `ts` is when the line was made (Unix milliseconds); the other members are copied from the
//! gateway's request summary, `null` when it has none (`cost` is `null` for a model without a
//! price, and all zeros for a cache hit). Nothing else is copied: no bodies, headers or
//! keys ever reach the file.
//!
//! # Behaviour
//! Only `on_done` runs, off the client's path: it formats the line and hands it to a bounded queue
//! ([`QUEUE_LINES`] lines) without ever waiting. A background thread owns the file: it writes, flushes
//! when the queue runs empty (and at least every `flush_ms` while it does not), and flushes what is
//! left when the gateway stops. When the queue is full the line is dropped and counted, and
//! `on_done` fails so the gateway counts a fault for the hook (so does a line the thread could not
//! write, reported by the next `on_done`).

mod writer;

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchyard_plugin_api::sdk::hook::phase;
use switchyard_plugin_api::sdk::{Hook, HookContext, HookError, HookSetup};

/// How many lines may wait for the writer thread before new ones are dropped.
pub const QUEUE_LINES: usize = 8192;

const DEFAULT_FLUSH_MS: u64 = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    path: PathBuf,
    #[serde(default = "default_flush_ms")]
    flush_ms: u64,
}

fn default_flush_ms() -> u64 {
    DEFAULT_FLUSH_MS
}

/// The summary members copied to a line; anything else in the summary is never read.
#[derive(Deserialize, Serialize)]
struct Line<'a> {
    #[serde(skip_deserializing)]
    ts: u64,
    #[serde(borrow, default)]
    request_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    alias: Option<&'a RawValue>,
    #[serde(borrow, default)]
    provider: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cost: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cache_hit: Option<&'a RawValue>,
    #[serde(borrow, default)]
    latency_ms: Option<&'a RawValue>,
}

/// The line for one request summary, newline included.
fn line(summary: &[u8], ts: u64) -> Result<Vec<u8>, serde_json::Error> {
    let mut line: Line<'_> = serde_json::from_slice(summary)?;
    line.ts = ts;
    let mut out = Vec::with_capacity(summary.len() + 16);
    serde_json::to_writer(&mut out, &line)?;
    out.push(b'\n');
    Ok(out)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub struct RequestLog {
    path: PathBuf,
    queue: Option<SyncSender<Vec<u8>>>,
    writer: Option<JoinHandle<()>>,
    dropped: AtomicU64,
    /// Lines the writer thread failed to write since the last `on_done` reported them.
    failed: Arc<AtomicU64>,
}

impl RequestLog {
    /// Opens the file and starts the writer thread, from the hook's `config:` JSON.
    pub fn from_config(config: &serde_json::Value) -> Result<RequestLog, String> {
        let raw = RawConfig::deserialize(config).map_err(|e| format!("request_log config: {e}"))?;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&raw.path)
            .map_err(|e| format!("request_log: cannot open `{}` for appending: {e}", raw.path.display()))?;
        let (queue, lines) = sync_channel(QUEUE_LINES);
        let failed = Arc::new(AtomicU64::new(0));
        let writer = writer::spawn(file, lines, Duration::from_millis(raw.flush_ms), failed.clone())
            .map_err(|e| format!("request_log: cannot start the writer thread: {e}"))?;
        Ok(RequestLog {
            path: raw.path,
            queue: Some(queue),
            writer: Some(writer),
            dropped: AtomicU64::new(0),
            failed,
        })
    }

    /// Lines dropped because the queue was full, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues one line without waiting.
    fn push(&self, line: Vec<u8>) -> Result<(), HookError> {
        let Some(queue) = &self.queue else {
            return Err("request_log: stopped".into());
        };
        match queue.try_send(line) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                Err(HookError(format!(
                    "request_log: queue full, line dropped ({n} dropped since start)"
                )))
            }
            Err(TrySendError::Disconnected(_)) => Err("request_log: the writer thread has stopped".into()),
        }
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        // Closing the queue lets the writer drain it, flush and end.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Hook for RequestLog {
    type State = ();
    const PHASES: u32 = phase::ON_DONE;

    fn create(setup: HookSetup) -> Result<Self, String> {
        RequestLog::from_config(&setup.config)
    }

    fn on_done(&self, _ctx: &HookContext<'_>, _state: Option<&mut ()>, summary: &[u8]) -> Result<(), HookError> {
        let line = line(summary, unix_ms()).map_err(|e| HookError(format!("request_log: unreadable summary: {e}")))?;
        self.push(line)?;
        match self.failed.swap(0, Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(HookError(format!(
                "request_log: {n} line(s) could not be written to `{}`",
                self.path.display()
            ))),
        }
    }
}

switchyard_plugin_api::export_hook!(RequestLog, name = "request_log", version = env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests;
