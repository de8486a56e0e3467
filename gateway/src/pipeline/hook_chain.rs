//! One request's hooks: the configured hooks that apply to it, each with the state its
//! `pre_request` left, driven through the phases in DESIGN §2's order — pre phases in config
//! order; post, chunk and done phases in reverse, and only for the hooks the pre phase reached.
//!
//! A request with no hook configured never builds a chain, so the phases cost nothing then.
//! A hook's failure follows its `on_error`: `fail_closed` turns it into the request's error
//! (500 `hook_failed`), `fail_open` skips the hook for that call and counts a fault. Dropping
//! the chain runs `on_done` (when some hook has it) and releases every hook's state exactly
//! once, whatever happened to the request.

use super::ChatRequest;
use super::context::unix_time_ms;
use crate::config::OnError;
use crate::error::GatewayError;
use crate::hooks::{ConfiguredHook, HookSet};
use crate::observability::escaped;
use std::sync::Arc;
use std::time::Instant;
use switchyard_plugin_api::abi::{ByteSlice, HeaderPair, hook_phase};
use switchyard_plugin_api::host::{ChunkVerdict, HookCall, HookRequest, Payload, PostAction, PreAction, Usage};

/// A hook answered the request itself in `pre_request`.
pub enum ShortCircuit {
    /// A plain answer (the client did not ask for a stream).
    Plain { hook: Arc<str>, answer: Payload },
    /// Chunks for a streaming client.
    Chunks { hook: Arc<str>, chunks: Vec<Payload> },
}

/// What served the request, for the `on_done` summary.
#[derive(Default)]
pub struct Outcome {
    pub provider: Option<Arc<str>>,
    pub model: Option<Arc<str>>,
    pub status: u16,
    pub usage: Option<Usage>,
    /// What the answer cost (0 for a cache hit); `None` without usage or a price.
    pub cost: Option<crate::cost::Cost>,
    pub cache_hit: bool,
}

pub struct HookChain {
    /// The hooks the pre phase reached, in config order.
    entered: Vec<Entered>,
    /// What every hook call of the request shares.
    call: CallBase,
    started: Instant,
    any_on_done: bool,
    pub outcome: Outcome,
}

/// The request's side of every hook call, read once per request.
struct CallBase {
    request_id: Arc<str>,
    /// The client's `model`, as sent.
    alias: Arc<str>,
    stream: bool,
    /// One time for the request's calls (a clock read per call was a measurable part of a
    /// no-op hook's cost).
    unix_time_ms: u64,
    /// Client headers some hook asked for (lower-case names). Never changed once built: the
    /// entries' header pairs point into these strings.
    headers: Vec<(String, String)>,
}

struct Entered {
    hook: Arc<ConfiguredHook>,
    request: HookRequest,
    /// The client headers this hook asked for, as the ABI passes them (pointing into
    /// [`CallBase::headers`], which outlives every call); empty for most hooks.
    pairs: Vec<HeaderPair>,
}

impl HookChain {
    /// The chain for one request, or `None` when no configured hook applies to it.
    pub fn new(
        set: &HookSet,
        request_id: &Arc<str>,
        alias: &Arc<str>,
        stream: bool,
        started: Instant,
        headers: Vec<(String, String)>,
    ) -> Option<HookChain> {
        // A hook limited by `models:` to other requests costs this one nothing.
        if !set.hooks.iter().any(|h| h.applies_to(alias)) {
            return None;
        }
        Some(HookChain {
            entered: Vec::with_capacity(set.hooks.len()),
            call: CallBase {
                request_id: Arc::clone(request_id),
                alias: Arc::clone(alias),
                stream,
                unix_time_ms: unix_time_ms(),
                headers,
            },
            started,
            any_on_done: set.any_on_done,
            outcome: Outcome::default(),
        })
    }

    /// The pre phase: every hook that applies to the request's model, in config order. A
    /// replaced request is validated like a client's; a short-circuit or a rejection ends the
    /// phase (the later hooks are not reached).
    pub fn pre_request(
        &mut self,
        set: &HookSet,
        request: &mut ChatRequest,
    ) -> Result<Option<ShortCircuit>, GatewayError> {
        for hook in set.hooks.iter().filter(|h| h.applies_to(&self.call.alias)) {
            let mut entry = Entered {
                hook: Arc::clone(hook),
                request: hook.instance.start(),
                pairs: self.call.pairs_for(hook),
            };
            if !hook.has_phase(hook_phase::PRE_REQUEST) {
                self.entered.push(entry);
                continue;
            }
            let result = entry
                .request
                .pre_request(&self.call.of(&entry.pairs, ""), request.body());
            let action = match result {
                Ok(action) => action,
                Err(e) => {
                    // fail_open: skipped, so its later phases do not run either.
                    fault(hook, "pre_request", &e)?;
                    continue;
                }
            };
            self.entered.push(entry);
            let name = || Arc::clone(&hook.name);
            match action {
                PreAction::Continue => {}
                PreAction::Replace(json) => match ChatRequest::parse(json.into()) {
                    // The client chose how it reads the answer; a hook may not change that.
                    Ok(replaced) if replaced.stream != request.stream => fault(
                        hook,
                        "pre_request",
                        &"its replacement request changes `stream`, which is the client's choice",
                    )?,
                    Ok(replaced) => *request = replaced,
                    Err(e) => fault(hook, "pre_request", &format!("its replacement request is invalid: {e}"))?,
                },
                PreAction::Reject(rejection) => {
                    return Err(GatewayError::HookRejected {
                        hook: hook.name.to_string(),
                        rejection: Box::new(rejection),
                    });
                }
                PreAction::Respond(answer) if !self.call.stream => {
                    return Ok(Some(ShortCircuit::Plain { hook: name(), answer }));
                }
                PreAction::RespondChunks(chunks) if self.call.stream => {
                    return Ok(Some(ShortCircuit::Chunks { hook: name(), chunks }));
                }
                PreAction::Respond(_) | PreAction::RespondChunks(_) => {
                    let expected = if self.call.stream { "chunks" } else { "a plain answer" };
                    fault(
                        hook,
                        "pre_request",
                        &format!("it short-circuited with the wrong kind of answer (the client expects {expected})"),
                    )?;
                }
            }
        }
        Ok(None)
    }

    /// The post phase on a plain answer, in reverse order: a hook may replace it or reject it.
    pub fn post_response(&mut self, answer: &mut Payload) -> Result<(), GatewayError> {
        for i in (0..self.entered.len()).rev() {
            let hook = Arc::clone(&self.entered[i].hook);
            if !hook.has_phase(hook_phase::POST_RESPONSE) {
                continue;
            }
            let model = Arc::clone(&answer.model);
            let entry = &mut self.entered[i];
            let result = entry
                .request
                .post_response(&self.call.of(&entry.pairs, &model), &answer.json);
            match result {
                Ok(PostAction::Keep) => {}
                Ok(PostAction::Replace(mut replacement)) => {
                    // A hook that rewrote the text without restating the model or usage keeps
                    // the upstream's.
                    if replacement.usage.is_none() {
                        replacement.usage = answer.usage;
                    }
                    if replacement.model.is_empty() {
                        replacement.model = Arc::clone(&answer.model);
                    }
                    *answer = replacement;
                }
                Ok(PostAction::Reject(rejection)) => {
                    return Err(GatewayError::HookRejected {
                        hook: hook.name.to_string(),
                        rejection: Box::new(rejection),
                    });
                }
                Err(e) => fault(&hook, "post_response", &e)?,
            }
        }
        Ok(())
    }

    /// Some entered hook has `on_done` (else settling is only releasing states).
    pub fn has_on_done(&self) -> bool {
        self.any_on_done && !self.entered.is_empty()
    }

    /// Whether any entered hook has a chunk phase (else a stream skips the chunk phase).
    pub fn wants_chunks(&self) -> bool {
        self.entered.iter().any(|e| e.hook.has_phase(hook_phase::ON_CHUNK))
    }

    /// The chunk phase on one upstream read's chunks, rewritten in place, in reverse order. On
    /// an error `chunks` holds what the client should still get before the error event.
    pub fn on_chunks(&mut self, chunks: &mut Vec<Payload>) -> Result<(), GatewayError> {
        let order: Vec<usize> = (0..self.entered.len()).rev().collect();
        self.chunks_through(&order, chunks)
    }

    /// The upstream stream ended: each hook (in chunk order) may release held-back chunks,
    /// which still pass through the hooks after it.
    pub fn end_of_stream(&mut self, chunks: &mut Vec<Payload>) -> Result<(), GatewayError> {
        let order: Vec<usize> = (0..self.entered.len()).rev().collect();
        for (pos, &i) in order.iter().enumerate() {
            let hook = Arc::clone(&self.entered[i].hook);
            if !hook.has_phase(hook_phase::ON_CHUNK) {
                continue;
            }
            let mut released = Vec::new();
            let entry = &mut self.entered[i];
            let model = chunks.last().map(|c| Arc::clone(&c.model)).unwrap_or_default();
            let result = entry
                .request
                .end_of_stream(&self.call.of(&entry.pairs, &model), &mut released);
            let verdict = match result {
                Ok(v) => v,
                Err(e) => {
                    fault(&hook, "end_of_stream", &e)?;
                    continue;
                }
            };
            let passed = self.chunks_through(&order[pos + 1..], &mut released);
            chunks.append(&mut released);
            passed?;
            if let ChunkVerdict::End(rejection) = verdict {
                return Err(GatewayError::HookRejected {
                    hook: hook.name.to_string(),
                    rejection: Box::new(rejection),
                });
            }
        }
        Ok(())
    }

    fn chunks_through(&mut self, order: &[usize], chunks: &mut Vec<Payload>) -> Result<(), GatewayError> {
        for &i in order {
            if chunks.is_empty() {
                return Ok(());
            }
            let hook = Arc::clone(&self.entered[i].hook);
            if !hook.has_phase(hook_phase::ON_CHUNK) {
                continue;
            }
            let entry = &mut self.entered[i];
            let model = Arc::clone(&chunks[0].model);
            let result = entry.request.on_chunks(&self.call.of(&entry.pairs, &model), chunks);
            match result {
                Ok(ChunkVerdict::Continue) => {}
                Ok(ChunkVerdict::End(rejection)) => {
                    return Err(GatewayError::HookRejected {
                        hook: hook.name.to_string(),
                        rejection: Box::new(rejection),
                    });
                }
                Err(e) => fault(&hook, "on_chunks", &e)?,
            }
        }
        Ok(())
    }

    /// The `on_done` summary (DESIGN §2): ids, alias, what served it, status, usage, latency.
    /// Written by hand: serde's string escaping was most of a no-op hook's cost per request.
    fn summary(&self) -> Vec<u8> {
        let o = &self.outcome;
        let mut n = itoa::Buffer::new();
        let mut out = Vec::with_capacity(320);
        out.extend_from_slice(b"{\"request_id\":");
        json_str(&mut out, &self.call.request_id);
        out.extend_from_slice(b",\"alias\":");
        json_str(&mut out, &self.call.alias);
        out.extend_from_slice(b",\"provider\":");
        json_opt_str(&mut out, o.provider.as_deref());
        out.extend_from_slice(b",\"model\":");
        json_opt_str(&mut out, o.model.as_deref());
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(n.format(o.status).as_bytes());
        out.extend_from_slice(if self.call.stream {
            b",\"stream\":true"
        } else {
            b",\"stream\":false"
        });
        out.extend_from_slice(b",\"usage\":");
        match o.usage {
            Some(u) => {
                out.extend_from_slice(b"{\"prompt_tokens\":");
                out.extend_from_slice(n.format(u.prompt_tokens).as_bytes());
                out.extend_from_slice(b",\"completion_tokens\":");
                out.extend_from_slice(n.format(u.completion_tokens).as_bytes());
                out.extend_from_slice(b",\"total_tokens\":");
                out.extend_from_slice(n.format(u.total_tokens).as_bytes());
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"cost\":");
        match &o.cost {
            Some(cost) => cost.write_json(&mut out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(if o.cache_hit {
            b",\"cache_hit\":true,\"latency_ms\":"
        } else {
            b",\"cache_hit\":false,\"latency_ms\":"
        });
        out.extend_from_slice(n.format(self.started.elapsed().as_millis() as u64).as_bytes());
        out.push(b'}');
        out
    }
}

/// `s` as a JSON string: copied as is when nothing in it needs escaping (ids and model names
/// nearly always), else through serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Settling the request: `on_done` for the entered hooks (reverse order), then every state is
/// released as the entries drop.
impl Drop for HookChain {
    fn drop(&mut self) {
        if !self.any_on_done || self.entered.is_empty() {
            return;
        }
        let summary = self.summary();
        let model = self.outcome.model.clone().unwrap_or_default();
        for i in (0..self.entered.len()).rev() {
            let hook = Arc::clone(&self.entered[i].hook);
            if !hook.has_phase(hook_phase::ON_DONE) {
                continue;
            }
            let entry = &mut self.entered[i];
            let result = entry.request.on_done(&self.call.of(&entry.pairs, &model), &summary);
            if let Err(e) = result {
                // Nothing is left to fail: the answer is out. Counted and logged only.
                hook.note_fault();
                tracing::warn!(hook = %hook.name, request_id = %self.call.request_id, error = %escaped(&e), "hook on_done failed");
            }
        }
    }
}

/// A hook's failure under its policy: an error for `fail_closed`, a counted fault for
/// `fail_open`.
fn fault(hook: &ConfiguredHook, phase: &'static str, e: &dyn std::fmt::Display) -> Result<(), GatewayError> {
    hook.note_fault();
    tracing::warn!(hook = %hook.name, phase, error = %escaped(e), on_error = ?hook.on_error, "hook failed");
    match hook.on_error {
        OnError::FailOpen => Ok(()),
        OnError::FailClosed => Err(GatewayError::HookFailed {
            hook: hook.name.to_string(),
            reason: format!("{phase}: {e}"),
        }),
    }
}

impl CallBase {
    /// The client headers `hook` asked for, as the ABI passes them (none asked: no allocation).
    fn pairs_for(&self, hook: &ConfiguredHook) -> Vec<HeaderPair> {
        let wanted = hook.instance.wanted_headers();
        if wanted.is_empty() {
            return Vec::new();
        }
        self.headers
            .iter()
            .filter(|(name, _)| wanted.iter().any(|w| w.eq_ignore_ascii_case(name)))
            .map(|(name, value)| HeaderPair {
                name: ByteSlice::from_str(name),
                value: ByteSlice::from_str(value),
            })
            .collect()
    }

    /// One call's context: the request's, the hook's headers, and the model once known.
    fn of<'a>(&'a self, pairs: &'a [HeaderPair], model: &'a str) -> HookCall<'a> {
        HookCall {
            stream: self.stream,
            unix_time_ms: self.unix_time_ms,
            request_id: &self.request_id,
            operation: super::context::CHAT_OPERATION,
            alias: &self.alias,
            virtual_key_id: "",
            model,
            headers: pairs,
        }
    }
}
