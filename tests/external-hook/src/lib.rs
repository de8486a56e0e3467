//! `block_users`: an example of a Switchyard hook plugin written outside the Switchyard
//! repository, and the template to start a new hook from.
//!
//! It refuses requests whose OpenAI `user` field names a blocked user, before any upstream is
//! called. Configured in the gateway's YAML:
//!
//! ```yaml
//! hooks:
//!   - plugin: block_users
//!     config: {blocked_users: ["mallory", "trudy"]}
//! ```
//!
//! A hook implements only the phases it names in `PHASES`; the gateway never calls the others.
//! Every phase sees the unified (OpenAI-shaped) JSON, whatever provider serves the request, and
//! the export macro wraps each call so that a panic becomes a hook fault (handled by the hook's
//! `on_error` policy) instead of taking the gateway down.

use serde_json::Value;
use switchyard_plugin_api::sdk::hook::phase;
use switchyard_plugin_api::sdk::{Hook, HookContext, HookError, HookSetup, PreAction, Rejection};

struct BlockUsers {
    blocked: Vec<String>,
}

impl Hook for BlockUsers {
    /// Nothing to carry from `pre_request` to later phases.
    type State = ();
    const PHASES: u32 = phase::PRE_REQUEST;

    /// Called once per `hooks:` entry naming this plugin; `setup.config` is its `config:`.
    /// An error here stops the gateway at start-up with this message, naming the hook.
    fn create(setup: HookSetup) -> Result<Self, String> {
        let blocked = match setup.config.get("blocked_users") {
            None => Vec::new(),
            Some(list) => serde_json::from_value(list.clone())
                .map_err(|e| format!("blocked_users must be a list of strings: {e}"))?,
        };
        Ok(BlockUsers { blocked })
    }

    fn pre_request(
        &self,
        _ctx: &HookContext<'_>,
        request: &[u8],
        _state: &mut Option<()>,
    ) -> Result<PreAction, HookError> {
        // Runs on every request: with nothing blocked, do not even read the body.
        if self.blocked.is_empty() {
            return Ok(PreAction::Continue);
        }
        // The gateway validated the request already; a body that still fails to parse is a
        // hook fault, which the hook's `on_error` policy handles. Never panic on client input.
        let request: Value = serde_json::from_slice(request).map_err(|e| format!("unreadable request: {e}"))?;
        let user = request.get("user").and_then(Value::as_str);
        if user.is_some_and(|user| self.blocked.iter().any(|b| b == user)) {
            // The client gets exactly this status, body and headers.
            return Ok(PreAction::Reject(Rejection::new(
                403,
                "permission_error",
                Some("user_blocked"),
                "this user may not use the gateway",
            )));
        }
        Ok(PreAction::Continue)
    }
}

// The one line that makes this crate a hook plugin: the entry symbol the gateway looks for.
switchyard_plugin_api::export_hook!(BlockUsers, name = "block_users", version = env!("CARGO_PKG_VERSION"));
