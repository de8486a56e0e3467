//! The configured hooks: each `hooks:` entry's plugin instance, failure policy and model
//! filter, built when the config loads (or reloads) and read by the pipeline from the route
//! table's snapshot. The per-request side is [`crate::pipeline::hook_chain`].

use crate::config::{HookConfig, OnError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_plugin_api::abi::hook_phase;
use switchyard_plugin_api::host::HookInstance;

pub struct ConfiguredHook {
    pub name: Arc<str>,
    pub instance: Arc<HookInstance>,
    pub on_error: OnError,
    /// `None`: every request (`*`).
    models: Option<Vec<String>>,
    /// Failures skipped under `fail_open` or answered with `hook_failed` under `fail_closed`.
    faults: AtomicU64,
    /// What it was built from: a reload keeps an unchanged hook (and its counters).
    pub config: HookConfig,
}

impl ConfiguredHook {
    pub fn new(config: HookConfig, instance: HookInstance) -> ConfiguredHook {
        let models = (!config.models.iter().any(|m| m == "*")).then(|| config.models.clone());
        ConfiguredHook {
            name: Arc::from(config.name()),
            instance: Arc::new(instance),
            on_error: config.on_error,
            models,
            faults: AtomicU64::new(0),
            config,
        }
    }

    /// Whether the hook sees a request for `model` (as the client wrote it).
    pub fn applies_to(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.iter().any(|x| x == model))
    }

    pub fn has_phase(&self, phase: u32) -> bool {
        self.instance.has_phase(phase)
    }

    pub fn note_fault(&self) {
        self.faults.fetch_add(1, Ordering::Relaxed);
    }

    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// The `/admin/status` entry.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "name": &*self.name,
            "plugin": self.instance.plugin_name(),
            "on_error": match self.on_error { OnError::FailClosed => "fail_closed", OnError::FailOpen => "fail_open" },
            "faults": self.faults(),
            "panics": self.instance.panic_count(),
            "disabled": self.instance.is_disabled(),
        })
    }
}

/// The hooks of one config, in order, with what the request path needs precomputed.
#[derive(Default)]
pub struct HookSet {
    pub hooks: Vec<Arc<ConfiguredHook>>,
    /// Every client header some hook asked for: read once per request (names parsed here,
    /// not per request).
    pub wanted_headers: Vec<actix_web::http::header::HeaderName>,
    /// Some hook has an `on_done` phase (else no summary is built).
    pub any_on_done: bool,
}

impl HookSet {
    pub fn new(hooks: Vec<Arc<ConfiguredHook>>) -> HookSet {
        let mut wanted_headers = Vec::new();
        for h in &hooks {
            for name in h.instance.wanted_headers() {
                // A name that is not a valid header name can match no header.
                let Ok(name) = actix_web::http::header::HeaderName::from_bytes(name.as_bytes()) else {
                    continue;
                };
                if !wanted_headers.contains(&name) {
                    wanted_headers.push(name);
                }
            }
        }
        let any_on_done = hooks.iter().any(|h| h.has_phase(hook_phase::ON_DONE));
        HookSet {
            hooks,
            wanted_headers,
            any_on_done,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }
}
