//! `system_prompt`: a hook plugin that adds a system message to every chat request, per alias.
//!
//! # Configuration (a `hooks:` entry of the gateway's YAML)
//! ```yaml
//! hooks:
//!   - plugin: system_prompt      # libswitchyard_system_prompt.so in plugins.dir
//!     config:
//!       default:                 # optional: for every model not listed under `aliases`
//!         text: "You are a helpful assistant."
//!         position: prepend      # optional: prepend (default) or append
//!       aliases:                 # optional: by the `model` string the client sent
//!         fast:
//!           text: "Answer in one sentence."
//!           position: append
//! ```
//! - `aliases.<model>`: used when the client's `model` is exactly `<model>` (an alias or a
//!   `provider/model` string); otherwise `default`; with neither, the request goes on unchanged.
//! - `text` (string, required in an entry): the content of the added `{"role":"system"}` message.
//! - `position`: `prepend` puts the message first in `messages`, `append` last.
//!
//! Unknown keys (at the top or in an entry) and a wrong `position` make the hook's creation, and so
//! the gateway's start, fail with a message naming the key. No `config:` adds nothing.
//!
//! # Behaviour
//! Only `pre_request` runs. The message is spliced into the request's `messages` array: every other
//! byte of the request (other members, their order, number spellings) reaches the upstream as the
//! client sent it. The client's own system messages are kept; the added one goes before or after them.
//! A request without a `messages` array is left alone (the gateway refuses it anyway).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use switchyard_plugin_api::sdk::hook::phase;
use switchyard_plugin_api::sdk::{Hook, HookContext, HookError, HookSetup, PreAction};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Entries are read one by one, so an error can name the entry.
    #[serde(default)]
    default: Option<serde_json::Value>,
    #[serde(default)]
    aliases: HashMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    text: String,
    #[serde(default)]
    position: Position,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Position {
    #[default]
    Prepend,
    Append,
}

/// One configured prompt, its message already encoded (so a request costs no serialisation).
struct Entry {
    message: Vec<u8>,
    position: Position,
}

impl Entry {
    /// Reads the entry at `place` (named in errors).
    fn read(place: &str, value: &serde_json::Value) -> Result<Entry, String> {
        let err = |e: serde_json::Error| format!("system_prompt config: {place}: {e}");
        let raw = RawEntry::deserialize(value).map_err(err)?;
        // Written by hand so `role` comes first, as clients write it.
        let mut message = br#"{"role":"system","content":"#.to_vec();
        serde_json::to_writer(&mut message, &raw.text).map_err(err)?;
        message.push(b'}');
        Ok(Entry {
            message,
            position: raw.position,
        })
    }
}

pub struct SystemPrompt {
    default: Option<Entry>,
    aliases: HashMap<String, Entry>,
}

/// The member of the request this hook reads, borrowed from the body.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
}

impl SystemPrompt {
    /// Builds the hook from its `config:` JSON (`null` configures nothing).
    pub fn from_config(config: &serde_json::Value) -> Result<SystemPrompt, String> {
        if config.is_null() {
            return Ok(SystemPrompt {
                default: None,
                aliases: HashMap::new(),
            });
        }
        let raw = RawConfig::deserialize(config).map_err(|e| format!("system_prompt config: {e}"))?;
        let default = raw.default.map(|d| Entry::read("default", &d)).transpose()?;
        let mut aliases = HashMap::with_capacity(raw.aliases.len());
        for (alias, entry) in &raw.aliases {
            let entry = Entry::read(&format!("aliases.{alias}"), entry)?;
            aliases.insert(alias.clone(), entry);
        }
        Ok(SystemPrompt { default, aliases })
    }

    /// `request` with the prompt for `alias` added, or `None` when there is none for it (or the
    /// request has no `messages` array).
    pub fn apply(&self, alias: &str, request: &[u8]) -> Result<Option<Vec<u8>>, serde_json::Error> {
        let Some(entry) = self.aliases.get(alias).or(self.default.as_ref()) else {
            return Ok(None);
        };
        let parsed: Request<'_> = serde_json::from_slice(request)?;
        let Some(messages) = parsed.messages else {
            return Ok(None);
        };
        let text = messages.get();
        if !text.starts_with('[') || !text.ends_with(']') {
            return Ok(None);
        }
        // The raw value is borrowed from `request`: its place there is pointer arithmetic.
        let Some(start) = (text.as_ptr() as usize).checked_sub(request.as_ptr() as usize) else {
            return Ok(None);
        };
        let end = start + text.len();
        if end > request.len() {
            return Ok(None);
        }
        let empty = text[1..text.len() - 1].trim().is_empty();
        let mut out = Vec::with_capacity(request.len() + entry.message.len() + 1);
        match entry.position {
            Position::Prepend => {
                out.extend_from_slice(&request[..=start]);
                out.extend_from_slice(&entry.message);
                if !empty {
                    out.push(b',');
                }
                out.extend_from_slice(&request[start + 1..]);
            }
            Position::Append => {
                out.extend_from_slice(&request[..end - 1]);
                if !empty {
                    out.push(b',');
                }
                out.extend_from_slice(&entry.message);
                out.extend_from_slice(&request[end - 1..]);
            }
        }
        Ok(Some(out))
    }
}

impl Hook for SystemPrompt {
    type State = ();
    const PHASES: u32 = phase::PRE_REQUEST;

    fn create(setup: HookSetup) -> Result<Self, String> {
        SystemPrompt::from_config(&setup.config)
    }

    fn pre_request(
        &self,
        ctx: &HookContext<'_>,
        request: &[u8],
        _state: &mut Option<()>,
    ) -> Result<PreAction, HookError> {
        match self.apply(ctx.alias, request) {
            Ok(Some(new)) => Ok(PreAction::Replace(new)),
            Ok(None) => Ok(PreAction::Continue),
            Err(e) => Err(HookError(format!("system_prompt: unreadable request: {e}"))),
        }
    }
}

switchyard_plugin_api::export_hook!(
    SystemPrompt,
    name = "system_prompt",
    version = env!("CARGO_PKG_VERSION")
);

#[cfg(test)]
mod tests;
