//! Config reload without a restart: the `ConfigWatcher` actor re-reads the config file when it
//! changes on disk, on `SIGHUP`, and on `POST /admin/reload`, and swaps the routing table.
//!
//! - A valid file applies to new requests at once; requests and streams in flight keep the
//!   table they loaded (the router's `ArcSwap`).
//! - A provider whose config did not change keeps its runtime: connections, circuit state,
//!   counters and concurrency slots (so a reload never doubles a provider's concurrency
//!   while old requests drain). A changed or new provider gets a fresh one. Plugin libraries
//!   are loaded once and never unloaded.
//! - A bad file is refused with the message `switchyard check` prints, logged and counted;
//!   the running config stays.
//! - Settings that belong to the listening server (`server.*`, `plugins.dir`, `admin`) take
//!   effect on restart; a reload that changes them says so in the log.
//!
//! The watcher watches the config file's folder rather than the file: editors replace files
//! by renaming a new one over them, and Kubernetes swaps a `..data` symlink, and both leave a
//! watch on the old inode blind. Every event in the folder re-reads the file and reloads only
//! if its content changed, so each edit reloads once however many events it makes.

use crate::actors::router::RouterHandle;
use crate::app::{self, Previous};
use crate::config::{self, ConfigSource, GatewayConfig, Overrides};
use crate::plugins::PluginLoader;
use actix::prelude::*;
use notify::Watcher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Reloads applied since start.
pub static RELOADS_OK: AtomicU64 = AtomicU64::new(0);
/// Reloads refused (a bad file) since start.
pub static RELOADS_FAILED: AtomicU64 = AtomicU64::new(0);
/// The last refusal's message, for `/admin/status`.
pub static LAST_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Editors write a file in several steps; events closer together than this are one edit.
const SETTLE: Duration = Duration::from_millis(150);

/// What started a reload, for the log.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    FileChanged,
    Signal,
    Admin,
}

/// Reload now. Answers with a summary of what changed, or the refusal message.
#[derive(Message)]
#[rtype(result = "Result<String, String>")]
pub struct Reload(pub Trigger);

pub struct ConfigWatcher {
    path: Option<PathBuf>,
    overrides: Overrides,
    running: GatewayConfig,
    /// Hash of the file's text as last applied (or refused): an event that leaves the text
    /// as it was is no edit.
    seen: u64,
    loader: PluginLoader,
    router: RouterHandle,
    /// Bumped by every folder event; a settled reload runs only if no event came after it.
    events: u64,
}

/// The file watch; dropping it stops watching.
pub struct FileWatch(#[allow(dead_code)] notify::RecommendedWatcher);

impl Actor for ConfigWatcher {
    type Context = Context<Self>;
}

fn text_hash(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl ConfigWatcher {
    /// Starts the watcher on `arbiter` for the config the daemon is running, and the file
    /// watch, before this returns: an edit made once the daemon listens is never missed. The
    /// embedded default has no file: it can be reloaded (to no effect) but not watched. The
    /// returned watch must be kept for as long as the file should be watched.
    pub fn start(
        arbiter: &ArbiterHandle,
        source: &ConfigSource,
        overrides: Overrides,
        running: GatewayConfig,
        router: RouterHandle,
    ) -> (Addr<ConfigWatcher>, Option<FileWatch>) {
        let path = source.path.clone();
        let seen = text_hash(&source.text);
        let plugins_dir = running.plugins.dir.clone();
        let watched = path.clone();
        let addr = ConfigWatcher::start_in_arbiter(arbiter, move |_| ConfigWatcher {
            path,
            overrides,
            running,
            seen,
            loader: PluginLoader::new(plugins_dir.as_deref()),
            router,
            events: 0,
        });
        let watch = watched.as_deref().and_then(|p| watch_folder(p, addr.clone()));
        (addr, watch.map(FileWatch))
    }

    fn reload(&mut self, trigger: Trigger) -> Result<String, String> {
        let Some(path) = self.path.clone() else {
            return Ok("the embedded default config has no file to reload".into());
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read the config file {}: {e}", path.display()));
        let text = match text {
            Ok(t) => t,
            Err(message) => return Err(self.refuse(trigger, message)),
        };
        let hash = text_hash(&text);
        if matches!(trigger, Trigger::FileChanged) && hash == self.seen {
            return Ok("unchanged".into());
        }
        self.seen = hash;
        let source = ConfigSource { path: Some(path), text };
        let cfg = match config::load(&source, &self.overrides) {
            Ok(cfg) => cfg,
            Err(e) => return Err(self.refuse(trigger, e.to_string())),
        };
        let previous_table = self.router.current();
        let previous = Previous {
            config: &self.running,
            table: &previous_table,
        };
        let arbiter = Arbiter::current();
        let built = match app::build_with(&cfg, &source, &arbiter, &mut self.loader, Some(previous)) {
            Ok(b) => b,
            Err(e) => return Err(self.refuse(trigger, e.to_string())),
        };
        for w in &built.warnings {
            tracing::warn!("{w}");
        }
        let summary = changes(&self.running, &cfg);
        for setting in restart_only_changes(&self.running, &cfg) {
            tracing::warn!("config reload: {setting} changed; it takes effect on restart");
        }
        self.router.replace(built.table);
        self.running = cfg;
        RELOADS_OK.fetch_add(1, Ordering::Relaxed);
        tracing::info!(trigger = ?trigger, "config reloaded: {summary}");
        Ok(summary)
    }

    fn refuse(&self, trigger: Trigger, message: String) -> String {
        RELOADS_FAILED.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = LAST_ERROR.lock() {
            *last = Some(message.clone());
        }
        tracing::error!(trigger = ?trigger, "config reload refused; the running config stays:\n{message}");
        message
    }
}

impl Handler<Reload> for ConfigWatcher {
    type Result = Result<String, String>;
    fn handle(&mut self, msg: Reload, _ctx: &mut Self::Context) -> Self::Result {
        self.reload(msg.0)
    }
}

/// A burst of file events: settle, then reload once.
#[derive(Message)]
#[rtype(result = "()")]
struct FolderChanged;

impl Handler<FolderChanged> for ConfigWatcher {
    type Result = ();
    fn handle(&mut self, _: FolderChanged, ctx: &mut Self::Context) {
        // Debounce: only the last event of a burst reloads, once the writer has been quiet for
        // SETTLE, so a file caught half-written is never read.
        self.events += 1;
        let event = self.events;
        ctx.run_later(SETTLE, move |watcher, _| {
            if watcher.events == event {
                let _ = watcher.reload(Trigger::FileChanged);
            }
        });
    }
}

/// Watches the folder holding `path`; events go to the actor as [`FolderChanged`].
fn watch_folder(path: &Path, addr: Addr<ConfigWatcher>) -> Option<notify::RecommendedWatcher> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            // A full mailbox means a reload is queued already.
            let _ = addr.try_send(FolderChanged);
        }
    };
    let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&folder, notify::RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(folder = %folder.display(), "cannot watch the config folder ({e}); reload with SIGHUP or POST /admin/reload");
            None
        }
    }
}

/// One line on what a reload changed in providers and models.
fn changes(old: &GatewayConfig, new: &GatewayConfig) -> String {
    let mut parts = Vec::new();
    let kept = new
        .providers
        .iter()
        .filter(|(name, p)| old.providers.get(name.as_str()) == Some(*p))
        .count();
    parts.push(format!("providers: {} ({} unchanged)", new.providers.len(), kept));
    let added: Vec<&str> = new
        .models
        .keys()
        .filter(|m| !old.models.contains_key(*m))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = old
        .models
        .keys()
        .filter(|m| !new.models.contains_key(*m))
        .map(String::as_str)
        .collect();
    parts.push(format!("models: {}", new.models.len()));
    if !added.is_empty() {
        parts.push(format!("added {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {}", removed.join(", ")));
    }
    parts.join("; ")
}

/// Settings of the listening server, which a reload cannot change in place.
fn restart_only_changes(old: &GatewayConfig, new: &GatewayConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if format!("{:?}", old.server) != format!("{:?}", new.server) {
        changed.push("server");
    }
    if old.plugins.dir != new.plugins.dir {
        changed.push("plugins.dir");
    }
    if old.admin.key != new.admin.key {
        changed.push("admin");
    }
    changed
}
