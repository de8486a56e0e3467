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
//!
//! The watch (inotify, Linux) asks only for the events that end an edit — a file written and
//! closed, created, renamed, deleted, its attributes changed — not for opens, reads or each
//! `write`: a folder that also holds files other processes read or append to (a served file,
//! a log) must not wake the daemon on every access (measured: it cost a stream benchmark ~5%
//! CPU with the generic watcher, which asks for opens). Elsewhere there is no file watch;
//! `SIGHUP` and `POST /admin/reload` still reload.

use crate::actors::router::RouterHandle;
use crate::app::{self, Previous};
use crate::config::{self, ConfigSource, GatewayConfig, Overrides};
use crate::plugins::PluginLoader;
use crate::routing::RouteTable;
use actix::prelude::*;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Reloads applied since start.
pub static RELOADS_OK: AtomicU64 = AtomicU64::new(0);
/// Reloads refused (a bad file) since start.
pub static RELOADS_FAILED: AtomicU64 = AtomicU64::new(0);
/// Events the config folder's watch has read since start (`/admin/status`): a folder whose
/// other files are busy shows here, and should not.
pub static FILE_EVENTS: AtomicU64 = AtomicU64::new(0);
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
    /// The table the last reload built (the running one): the base of the next, even while
    /// the router is still swapping it in.
    table: Arc<RouteTable>,
    /// Bumped by every folder event; a settled reload runs only if no event came after it.
    events: u64,
}

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
    ) -> Addr<ConfigWatcher> {
        let path = source.path.clone();
        let seen = text_hash(&source.text);
        let plugins_dir = running.plugins.dir.clone();
        // The watch is set here, on the caller's thread: the kernel queues events from now on,
        // and the actor reads them once it runs.
        let watch = path.as_deref().and_then(folder_watch::watch);
        ConfigWatcher::start_in_arbiter(arbiter, move |ctx| {
            if let Some(watch) = watch {
                folder_watch::attach(watch, ctx);
            }
            ConfigWatcher {
                path,
                overrides,
                running,
                seen,
                loader: PluginLoader::new(plugins_dir.as_deref()),
                table: router.current(),
                router,
                events: 0,
            }
        })
    }

    /// Re-reads the file; on success, the summary and the swap to await (the new table is
    /// live once it completes).
    fn reload(&mut self, trigger: Trigger) -> Result<(String, Option<Swap>), String> {
        let Some(path) = self.path.clone() else {
            return Ok(("the embedded default config has no file to reload".into(), None));
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read the config file {}: {e}", path.display()));
        let text = match text {
            Ok(t) => t,
            Err(message) => return Err(self.refuse(trigger, message)),
        };
        let hash = text_hash(&text);
        if matches!(trigger, Trigger::FileChanged) && hash == self.seen {
            return Ok(("unchanged".into(), None));
        }
        self.seen = hash;
        let source = ConfigSource { path: Some(path), text };
        let cfg = match config::load(&source, &self.overrides) {
            Ok(cfg) => cfg,
            Err(e) => return Err(self.refuse(trigger, e.to_string())),
        };
        let previous = Previous {
            config: &self.running,
            table: &self.table,
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
        self.table = Arc::new(built.table);
        crate::memory::release_now();
        let swap = Box::pin(self.router.replace(Arc::clone(&self.table)));
        self.running = cfg;
        RELOADS_OK.fetch_add(1, Ordering::Relaxed);
        tracing::info!(trigger = ?trigger, "config reloaded: {summary}");
        Ok((summary, Some(swap)))
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

/// The router's swap of a new table, to await.
type Swap = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

impl Handler<Reload> for ConfigWatcher {
    type Result = ResponseFuture<Result<String, String>>;
    /// Answers once the new table is live: the next request after "reloaded" sees it.
    fn handle(&mut self, msg: Reload, _ctx: &mut Self::Context) -> Self::Result {
        let result = self.reload(msg.0);
        Box::pin(async move {
            let (summary, swap) = result?;
            if let Some(swap) = swap {
                swap.await;
            }
            Ok(summary)
        })
    }
}

impl ConfigWatcher {
    /// A file event in the folder: settle, then reload once. Only the last event of a burst
    /// reloads, once the writer has been quiet for SETTLE, so a file caught half-written is
    /// never read.
    fn folder_changed(&mut self, ctx: &mut Context<Self>) {
        self.events += 1;
        let event = self.events;
        ctx.run_later(SETTLE, move |watcher, _| {
            if watcher.events == event
                && let Ok((_, Some(swap))) = watcher.reload(Trigger::FileChanged)
            {
                actix::spawn(swap);
            }
        });
    }
}

/// The config folder's watch: inotify, for the events that end an edit.
#[cfg(target_os = "linux")]
mod folder_watch {
    use super::ConfigWatcher;
    use actix::prelude::*;
    use inotify::{EventOwned, Inotify, WatchMask};
    use std::io;
    use std::path::Path;
    use std::sync::atomic::Ordering;

    /// What an edit ends with, however it is made: written and closed (in place), created,
    /// renamed in or out (editors, a ConfigMap's `..data` swap), deleted, chmod/touch. Not
    /// `OPEN`, `ACCESS` or `MODIFY`, which other files in the folder make all the time.
    const EDIT_EVENTS: WatchMask = WatchMask::CLOSE_WRITE
        .union(WatchMask::CREATE)
        .union(WatchMask::MOVED_TO)
        .union(WatchMask::MOVED_FROM)
        .union(WatchMask::DELETE)
        .union(WatchMask::ATTRIB);

    /// Watches the folder holding `path`; `None` (with a warning) when it cannot.
    pub(super) fn watch(path: &Path) -> Option<Inotify> {
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let watch = Inotify::init().and_then(|inotify| {
            inotify.watches().add(folder, EDIT_EVENTS)?;
            Ok(inotify)
        });
        match watch {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(folder = %folder.display(), "cannot watch the config folder ({e}); reload with SIGHUP or POST /admin/reload");
                None
            }
        }
    }

    /// The watch's events become the actor's stream (read on its arbiter: no thread of its own).
    pub(super) fn attach(watch: Inotify, ctx: &mut Context<ConfigWatcher>) {
        match watch.into_event_stream(vec![0u8; 4096]) {
            Ok(events) => {
                ConfigWatcher::add_stream(events, ctx);
            }
            Err(e) => {
                tracing::warn!("cannot read the config folder's events ({e}); reload with SIGHUP or POST /admin/reload")
            }
        }
    }

    impl StreamHandler<io::Result<EventOwned>> for ConfigWatcher {
        /// Any event, or a read error (an overflowed queue lost some): the file is re-read,
        /// and reloads only if its text changed.
        fn handle(&mut self, _event: io::Result<EventOwned>, ctx: &mut Context<Self>) {
            super::FILE_EVENTS.fetch_add(1, Ordering::Relaxed);
            self.folder_changed(ctx);
        }

        /// The stream never ends while the watch lives; if it did, the actor must keep
        /// serving SIGHUP and admin reloads (the default would stop it).
        fn finished(&mut self, _ctx: &mut Context<Self>) {
            tracing::warn!("the config folder's watch ended; reload with SIGHUP or POST /admin/reload");
        }
    }
}

/// Without inotify there is no file watch: SIGHUP and `POST /admin/reload` reload.
#[cfg(not(target_os = "linux"))]
mod folder_watch {
    use super::ConfigWatcher;
    use actix::prelude::*;
    use std::path::Path;

    pub(super) struct NoWatch;

    pub(super) fn watch(_path: &Path) -> Option<NoWatch> {
        tracing::info!("config file watching needs Linux; reload with SIGHUP or POST /admin/reload");
        None
    }

    pub(super) fn attach(_watch: NoWatch, _ctx: &mut Context<ConfigWatcher>) {}
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
