//! The `guardrail` hook: the engine behind the gateway's hook phases.
//!
//! - `pre_request`: a `deny` match rejects the request (400 `guardrail_blocked`, naming the rule, never
//!   the matched text); redaction replaces the request. A streaming request gets a [`StreamRedactor`]
//!   as its state, and only when redaction is configured (deny rules alone need no state).
//! - `post_response`: the answer redacted, replaced only when something changed.
//! - `on_chunks` / `end_of_stream`: chunks go through the request's [`StreamRedactor`]; unchanged
//!   chunks are kept as the host holds them (no copy), changed ones re-emitted, and held-back text
//!   released at the end of the stream.

use std::sync::Arc;

use switchyard_plugin_api::sdk::hook::phase;
use switchyard_plugin_api::sdk::{
    ChunkBatch, ChunkOut, Hook, HookContext, HookError, HookSetup, PostAction, PreAction, Rejection, Reply,
};

use crate::meta::Meta;
use crate::{CheckError, Denied, Guardrail, StreamRedactor};

pub struct GuardrailHook {
    guard: Arc<Guardrail>,
}

/// The client's answer to a request a `deny` rule matched.
pub fn rejection(denied: &Denied) -> Rejection {
    let message = format!(
        "request blocked by guardrail rule {} ({}): a message matches a deny rule",
        denied.rule_index, denied.rule
    );
    Rejection::new(400, "invalid_request_error", Some("guardrail_blocked"), &message)
}

fn fault(e: impl std::fmt::Display) -> HookError {
    HookError(e.to_string())
}

impl Hook for GuardrailHook {
    type State = StreamRedactor;
    const PHASES: u32 = phase::PRE_REQUEST | phase::POST_RESPONSE | phase::ON_CHUNK;

    fn create(setup: HookSetup) -> Result<Self, String> {
        let config = if setup.config.is_null() {
            b"{}".to_vec()
        } else {
            serde_json::to_vec(&setup.config).map_err(|e| e.to_string())?
        };
        let guard = Guardrail::from_config(&config).map_err(|e| e.to_string())?;
        Ok(GuardrailHook { guard: Arc::new(guard) })
    }

    fn pre_request(
        &self,
        ctx: &HookContext<'_>,
        request: &[u8],
        state: &mut Option<StreamRedactor>,
    ) -> Result<PreAction, HookError> {
        let action = match self.guard.check_request(request) {
            Err(CheckError::Denied(denied)) => return Ok(PreAction::Reject(rejection(&denied))),
            Err(CheckError::Malformed(e)) => return Err(fault(e)),
            Ok(Some(redacted)) => PreAction::Replace(redacted),
            Ok(None) => PreAction::Continue,
        };
        if ctx.base.stream && self.guard.redacts() {
            *state = Some(StreamRedactor::new(self.guard.clone()));
        }
        Ok(action)
    }

    fn post_response(
        &self,
        _ctx: &HookContext<'_>,
        _state: Option<&mut StreamRedactor>,
        response: &[u8],
    ) -> Result<PostAction, HookError> {
        let Some(json) = self.guard.redact_response(response).map_err(fault)? else {
            return Ok(PostAction::Keep);
        };
        // Only the text changed: the gateway keeps the answer's model and usage.
        Ok(PostAction::Replace(Reply {
            json,
            ..Reply::default()
        }))
    }

    fn on_chunks(
        &self,
        _ctx: &HookContext<'_>,
        state: Option<&mut StreamRedactor>,
        chunks: ChunkBatch<'_>,
        out: &mut ChunkOut<'_, '_>,
    ) -> Result<(), HookError> {
        let Some(redactor) = state else {
            return Ok(());
        };
        // Nothing written keeps the whole batch; once one chunk changes, every chunk must be
        // written in order, so the unchanged ones before it are kept then.
        let mut written = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            let Some(json) = redactor.redact_chunk(chunk).map_err(fault)? else {
                if written > 0 {
                    out.keep(i);
                    written = i + 1;
                }
                continue;
            };
            for k in written..i {
                out.keep(k);
            }
            // Only the text changed: the gateway keeps the chunk's model, usage and flags.
            out.replace(i, &json);
            written = i + 1;
        }
        Ok(())
    }

    fn end_of_stream(
        &self,
        ctx: &HookContext<'_>,
        state: Option<&mut StreamRedactor>,
        out: &mut ChunkOut<'_, '_>,
    ) -> Result<(), HookError> {
        let Some(redactor) = state else {
            return Ok(());
        };
        for json in redactor.finish().map_err(fault)? {
            let meta = Meta::read(&json).map_err(fault)?;
            out.emit(&json, meta.model_or(ctx.base.model), &meta.info);
        }
        Ok(())
    }
}

switchyard_plugin_api::export_hook!(GuardrailHook, name = "guardrail", version = env!("CARGO_PKG_VERSION"));
