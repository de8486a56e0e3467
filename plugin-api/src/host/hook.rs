//! Hooks on the host's side: the vtable validated at load, one [`HookInstance`] per
//! configured hook, and a [`HookRequest`] per request that owns the hook's per-request state
//! and releases it exactly once when dropped, whatever happened to the request.
//!
//! Phases the hook did not declare cost nothing: the wrapper answers continue/keep without
//! crossing the boundary.

use super::panic_circuit::{PanicCircuit, Ticket};
use super::{
    CallError, Collector, Item, LoadError, PanicPolicy, Payload, PluginLibrary, admit, check_vtable_size,
    create_instance, outcome,
};
use crate::abi::frozen::v1_0;
use crate::abi::{self, ByteSlice, CallContext, HeaderPair, HookVTable, hook_phase, read_field};
use std::ffi::c_void;
use std::sync::Arc;

/// A deliberate refusal by a hook: the client gets exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    /// The complete error body JSON.
    pub body: Vec<u8>,
    /// Extra response headers (e.g. `Retry-After`).
    pub headers: Vec<(String, String)>,
}

/// What `pre_request` decided. When a hook put several actions, the strongest wins:
/// reject, then short-circuit, then replace.
#[derive(Debug, Clone)]
pub enum PreAction {
    Continue,
    /// The new request JSON.
    Replace(Vec<u8>),
    /// Answer with this response; no upstream call.
    Respond(Payload),
    /// Answer a streaming client with these chunks; no upstream call.
    RespondChunks(Vec<Payload>),
    Reject(Rejection),
}

/// What `post_response` decided.
#[derive(Debug, Clone)]
pub enum PostAction {
    Keep,
    Replace(Payload),
    Reject(Rejection),
}

/// After `on_chunks` / `end_of_stream` rewrote the batch in place: go on, or end the stream
/// with this error after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkVerdict {
    Continue,
    End(Rejection),
}

/// Per-call context for a hook (the host side of [`CallContext`]'s hook fields).
#[derive(Debug, Clone, Copy, Default)]
pub struct HookCall<'a> {
    pub stream: bool,
    pub unix_time_ms: u64,
    pub request_id: &'a str,
    /// `chat`, `embeddings`, …
    pub operation: &'a str,
    pub alias: &'a str,
    /// Empty until virtual keys exist.
    pub virtual_key_id: &'a str,
    /// The resolved upstream model once known (empty in `pre_request`).
    pub model: &'a str,
    /// The client headers this hook asked for ([`HookInstance::wanted_headers`]).
    pub headers: &'a [HeaderPair],
}

impl HookCall<'_> {
    fn to_abi(self, state: *mut c_void) -> CallContext {
        CallContext {
            struct_size: size_of::<CallContext>() as u32,
            stream: u32::from(self.stream),
            unix_time_ms: self.unix_time_ms,
            model: ByteSlice::from_str(self.model),
            // Hooks never see provider secrets.
            api_key: ByteSlice::EMPTY,
            request_id: ByteSlice::from_str(self.request_id),
            operation: ByteSlice::from_str(self.operation),
            alias: ByteSlice::from_str(self.alias),
            virtual_key_id: ByteSlice::from_str(self.virtual_key_id),
            client_headers: self.headers.as_ptr(),
            client_header_count: self.headers.len(),
            hook_state: state,
        }
    }
}

/// What only hook calls put into a [`Collector`].
#[derive(Default)]
pub(super) struct HookSink {
    pub(super) request: Option<Vec<u8>>,
    pub(super) reply_headers: Vec<(String, String)>,
    reject: Option<Rejection>,
    /// HOOK_STATE as put (a pointer as an integer; 0 = none).
    pub(super) state: u64,
    pub(super) want_headers: Vec<String>,
    /// CHUNK_KEEP: (input chunk, number of items put before it).
    plan: Vec<(u64, usize)>,
    /// CHUNK_REPLACE: (input chunk, the item that replaces it).
    replacements: Vec<(u64, usize)>,
    /// A CHUNK_KEEP or CHUNK_DROP was put: the batch is what the hook put, not the input.
    pub(super) answered: bool,
}

impl HookSink {
    pub(super) fn reject(&mut self, status: u16, body: &[u8]) {
        if self.reject.is_none() {
            self.reject = Some(Rejection {
                status: if status == 0 { 400 } else { status },
                body: body.to_vec(),
                headers: std::mem::take(&mut self.reply_headers),
            });
        }
    }

    pub(super) fn keep(&mut self, input: u64, position: usize) {
        self.answered = true;
        self.plan.push((input, position));
    }

    pub(super) fn replace(&mut self, input: u64, item: usize) {
        self.answered = true;
        self.replacements.push((input, item));
    }
}

/// Copies and validates a plugin's hook vtable: sizes, a phase mask this ABI knows, and the
/// slots each declared phase needs.
///
/// # Safety
/// `ptr` is non-null and points to `struct_size` readable bytes.
pub(super) unsafe fn copy_vtable(ptr: *const HookVTable) -> Result<HookVTable, String> {
    // SAFETY: guaranteed by the caller.
    let size = unsafe { abi::declared_size(ptr) };
    check_vtable_size("hook", size, v1_0::HOOK_VTABLE_SIZE)?;
    macro_rules! slot {
        ($name:ident) => {
            // SAFETY: the read is checked against the declared size.
            unsafe { read_field!(ptr, size, HookVTable, $name) }.flatten()
        };
    }
    // SAFETY: as in `slot!` (a 1.0 field, always covered).
    let phases = unsafe { read_field!(ptr, size, HookVTable, phases) }.unwrap_or(0);
    let vt = HookVTable {
        struct_size: size as u32,
        phases,
        create: slot!(create),
        destroy: slot!(destroy),
        pre_request: slot!(pre_request),
        post_response: slot!(post_response),
        on_chunk: slot!(on_chunk),
        on_done: slot!(on_done),
        release_state: slot!(release_state),
        on_chunks: slot!(on_chunks),
        end_of_stream: slot!(end_of_stream),
    };
    if phases == 0 {
        return Err("the hook declares no phase".into());
    }
    if phases & !hook_phase::ALL != 0 {
        return Err(format!(
            "the hook's phase mask {phases:#x} has phases this gateway does not know"
        ));
    }
    let missing = |what: &str| Err(format!("the hook has no {what} function"));
    if vt.create.is_none() {
        return missing("create");
    }
    if vt.destroy.is_none() {
        return missing("destroy");
    }
    let needs = [
        (hook_phase::PRE_REQUEST, vt.pre_request.is_some(), "pre_request"),
        (hook_phase::POST_RESPONSE, vt.post_response.is_some(), "post_response"),
        (
            hook_phase::ON_CHUNK,
            vt.on_chunks.is_some() || vt.on_chunk.is_some(),
            "on_chunks",
        ),
        (hook_phase::ON_DONE, vt.on_done.is_some(), "on_done"),
    ];
    for (phase, present, name) in needs {
        if phases & phase != 0 && !present {
            return Err(format!("the hook declares the {name} phase but has no {name} function"));
        }
    }
    Ok(vt)
}

impl PluginLibrary {
    pub fn is_hook(&self) -> bool {
        self.capabilities & abi::capability::HOOK != 0
    }

    /// Creates the instance for one configured hook: `create` gets `{"name", "config"}`, with
    /// `config_json` (the hook's `config:` as JSON; empty reads as `null`) inserted as is.
    pub fn hook(
        &self,
        hook_name: &str,
        config_json: &[u8],
        panic_policy: PanicPolicy,
    ) -> Result<HookInstance, LoadError> {
        let create_err = |reason: String| LoadError::CreateHook {
            plugin: self.name.clone(),
            hook: hook_name.to_string(),
            reason,
        };
        let Some(vt) = self.hook else {
            return Err(LoadError::NotAHook {
                plugin: self.name.clone(),
            });
        };
        let create = vt
            .create
            .ok_or_else(|| create_err("it has no create function".into()))?;
        let name_json = serde_json::to_string(hook_name).map_err(|e| create_err(e.to_string()))?;
        let config: &[u8] = if config_json.is_empty() { b"null" } else { config_json };
        let mut setup = Vec::with_capacity(config.len() + name_json.len() + 22);
        setup.extend_from_slice(b"{\"name\":");
        setup.extend_from_slice(name_json.as_bytes());
        setup.extend_from_slice(b",\"config\":");
        setup.extend_from_slice(config);
        setup.push(b'}');
        let (instance, sink) = create_instance(create, &setup).map_err(create_err)?;
        Ok(HookInstance {
            vt,
            instance,
            plugin: Arc::from(self.name.as_str()),
            name: Arc::from(hook_name),
            wanted_headers: sink.hook.want_headers,
            circuit: PanicCircuit::new(panic_policy),
        })
    }
}

/// One configured hook inside a plugin. Thread-safe (the SDK requires `Hook: Sync`).
pub struct HookInstance {
    /// The plugin's slots, copied at load.
    vt: HookVTable,
    instance: *mut c_void,
    plugin: Arc<str>,
    name: Arc<str>,
    wanted_headers: Vec<String>,
    circuit: PanicCircuit,
}

// SAFETY: the plugin contract requires instances to be usable from any thread concurrently.
unsafe impl Send for HookInstance {}
// SAFETY: as above.
unsafe impl Sync for HookInstance {}

impl Drop for HookInstance {
    fn drop(&mut self) {
        // Every HookRequest holds an Arc to this instance, so no state outlives it.
        if let Some(destroy) = self.vt.destroy {
            // SAFETY: the instance came from this vtable's create and is not used again.
            unsafe { destroy(self.instance) };
        }
    }
}

impl std::fmt::Debug for HookInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookInstance")
            .field("plugin", &self.plugin)
            .field("name", &self.name)
            .field("phases", &self.vt.phases)
            .finish()
    }
}

impl HookInstance {
    pub fn plugin_name(&self) -> &str {
        &self.plugin
    }

    /// The configured hook's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The declared [`hook_phase`] mask.
    pub fn phases(&self) -> u32 {
        self.vt.phases
    }

    pub fn has_phase(&self, phase: u32) -> bool {
        self.vt.phases & phase != 0
    }

    /// Client header names (lower case) the hook asked for at create; pass them in
    /// [`HookCall::headers`].
    pub fn wanted_headers(&self) -> &[String] {
        &self.wanted_headers
    }

    /// Panics caught in this instance since it was created.
    pub fn panic_count(&self) -> u32 {
        self.circuit.panics()
    }

    /// Switched off after repeated panics, until a probe call after the cooldown succeeds.
    pub fn is_disabled(&self) -> bool {
        self.circuit.is_disabled()
    }

    /// The per-request handle: every phase of one request goes through it, and dropping it
    /// releases the hook's state for the request.
    pub fn start(self: &Arc<Self>) -> HookRequest {
        HookRequest {
            hook: Arc::clone(self),
            state: std::ptr::null_mut(),
            slices: Vec::new(),
        }
    }

    fn outcome(&self, ticket: Ticket, code: i32, sink: &mut Collector, call: &'static str) -> Result<(), CallError> {
        outcome(&self.plugin, &self.circuit, ticket, code, sink, call)
    }
}

/// One request's view of one hook. Owns the state `pre_request` returned and releases it
/// exactly once, on drop (success, error, client gone, or a state replaced by a second
/// `pre_request`).
pub struct HookRequest {
    hook: Arc<HookInstance>,
    state: *mut c_void,
    /// The batch's slices, kept for the next batch so a stream allocates them once.
    slices: Vec<ByteSlice>,
}

// SAFETY: a state is used by one thread at a time (every call takes `&mut self`), as the
// plugin contract allows; `slices` is empty between calls.
unsafe impl Send for HookRequest {}

impl Drop for HookRequest {
    fn drop(&mut self) {
        self.release();
    }
}

impl HookRequest {
    pub fn hook(&self) -> &Arc<HookInstance> {
        &self.hook
    }

    /// `pre_request` returned a state that is still held.
    pub fn has_state(&self) -> bool {
        !self.state.is_null()
    }

    fn release(&mut self) {
        let state = std::mem::replace(&mut self.state, std::ptr::null_mut());
        if state.is_null() {
            return;
        }
        if let Some(release) = self.hook.vt.release_state {
            // SAFETY: the state came from this instance's pre_request and is not used again.
            unsafe { release(self.hook.instance, state) };
        }
    }

    /// Calls a phase with the request-or-response signature; its outputs land in `sink`
    /// (the caller's, so the large collector is never moved).
    fn call(
        &mut self,
        f: abi::EncodeRequestFn,
        info: &HookCall<'_>,
        input: &[u8],
        call: &'static str,
        sink: &mut Collector,
    ) -> Result<(), CallError> {
        let ticket = admit(&self.hook.plugin, &self.hook.circuit)?;
        let ctx = info.to_abi(self.state);
        let out = sink.output();
        // SAFETY: valid instance, context, input and sink for the duration of the call.
        let code = unsafe { f(self.hook.instance, &ctx, ByteSlice::from_slice(input), &out) };
        self.hook.outcome(ticket, code, sink, call)
    }

    /// Runs `pre_request` (continue when the hook has no such phase).
    pub fn pre_request(&mut self, info: &HookCall<'_>, request: &[u8]) -> Result<PreAction, CallError> {
        let Some(f) = self
            .hook
            .vt
            .pre_request
            .filter(|_| self.hook.has_phase(hook_phase::PRE_REQUEST))
        else {
            return Ok(PreAction::Continue);
        };
        let ticket = admit(&self.hook.plugin, &self.hook.circuit)?;
        let ctx = info.to_abi(self.state);
        let mut sink = Collector::default();
        let out = sink.output();
        // SAFETY: valid instance, context, input and sink for the duration of the call.
        let code = unsafe { f(self.hook.instance, &ctx, ByteSlice::from_slice(request), &out) };
        // The state is taken whatever the call returned, so it is released even when the
        // hook failed after putting it. A hook that cannot release (1.0) cannot put one.
        if sink.hook.state != 0 && self.hook.vt.release_state.is_some() {
            self.release();
            self.state = std::ptr::with_exposed_provenance_mut(sink.hook.state as usize);
        }
        self.hook.outcome(ticket, code, &mut sink, "pre_request")?;
        if let Some(r) = sink.hook.reject.take() {
            return Ok(PreAction::Reject(r));
        }
        let mut chunks = Vec::new();
        for item in std::mem::take(&mut sink.items) {
            match item {
                Item::Response(p) => return Ok(PreAction::Respond(p)),
                Item::Chunk(p) => chunks.push(p),
                _ => {}
            }
        }
        if !chunks.is_empty() {
            return Ok(PreAction::RespondChunks(chunks));
        }
        if let Some(request) = sink.hook.request.take() {
            return Ok(PreAction::Replace(request));
        }
        // 1.0 described a replacement as BODY items.
        if !sink.request.body.is_empty() {
            return Ok(PreAction::Replace(std::mem::take(&mut sink.request.body)));
        }
        Ok(PreAction::Continue)
    }

    /// Runs `post_response` on a plain answer (keep when the hook has no such phase).
    pub fn post_response(&mut self, info: &HookCall<'_>, response: &[u8]) -> Result<PostAction, CallError> {
        let Some(f) = self
            .hook
            .vt
            .post_response
            .filter(|_| self.hook.has_phase(hook_phase::POST_RESPONSE))
        else {
            return Ok(PostAction::Keep);
        };
        let mut sink = Collector::default();
        self.call(f, info, response, "post_response", &mut sink)?;
        if let Some(r) = sink.hook.reject.take() {
            return Ok(PostAction::Reject(r));
        }
        for item in std::mem::take(&mut sink.items) {
            if let Item::Response(p) = item {
                return Ok(PostAction::Replace(p));
            }
        }
        Ok(PostAction::Keep)
    }

    /// Runs the chunk phase on one upstream read's chunks, rewriting `chunks` in place (kept,
    /// replaced, dropped, or held-back text released). A hook that answers nothing leaves
    /// `chunks` untouched and, after a request's first batch, allocates nothing.
    pub fn on_chunks(&mut self, info: &HookCall<'_>, chunks: &mut Vec<Payload>) -> Result<ChunkVerdict, CallError> {
        if !self.hook.has_phase(hook_phase::ON_CHUNK) || chunks.is_empty() {
            return Ok(ChunkVerdict::Continue);
        }
        if let Some(f) = self.hook.vt.on_chunks {
            let ticket = admit(&self.hook.plugin, &self.hook.circuit)?;
            self.slices
                .extend(chunks.iter().map(|p| ByteSlice::from_slice(&p.json)));
            let ctx = info.to_abi(self.state);
            let mut sink = Collector::default();
            let out = sink.output();
            // SAFETY: valid instance, context, slices (borrowing `chunks`, untouched during the
            // call) and sink for the duration of the call.
            let code = unsafe { f(self.hook.instance, &ctx, self.slices.as_ptr(), self.slices.len(), &out) };
            self.slices.clear();
            self.hook.outcome(ticket, code, &mut sink, "on_chunks")?;
            rebuild(chunks, &mut sink);
            return Ok(verdict(&mut sink));
        }
        let Some(f) = self.hook.vt.on_chunk else {
            return Ok(ChunkVerdict::Continue);
        };
        // A 1.0 hook: one call per chunk.
        for input in std::mem::take(chunks) {
            let mut sink = Collector::default();
            self.call(f, info, &input.json, "on_chunk", &mut sink)?;
            let mut one = vec![input];
            rebuild(&mut one, &mut sink);
            chunks.append(&mut one);
            if let ChunkVerdict::End(r) = verdict(&mut sink) {
                return Ok(ChunkVerdict::End(r));
            }
        }
        Ok(ChunkVerdict::Continue)
    }

    /// The upstream stream ended: the hook may append held-back chunks to `chunks`.
    pub fn end_of_stream(&mut self, info: &HookCall<'_>, chunks: &mut Vec<Payload>) -> Result<ChunkVerdict, CallError> {
        let Some(f) = self
            .hook
            .vt
            .end_of_stream
            .filter(|_| self.hook.has_phase(hook_phase::ON_CHUNK))
        else {
            return Ok(ChunkVerdict::Continue);
        };
        let ticket = admit(&self.hook.plugin, &self.hook.circuit)?;
        let ctx = info.to_abi(self.state);
        let mut sink = Collector::default();
        let out = sink.output();
        // SAFETY: valid instance, context and sink for the duration of the call.
        let code = unsafe { f(self.hook.instance, &ctx, &out) };
        self.hook.outcome(ticket, code, &mut sink, "end_of_stream")?;
        chunks.extend(sink.items.drain(..).filter_map(|i| match i {
            Item::Chunk(p) => Some(p),
            _ => None,
        }));
        Ok(verdict(&mut sink))
    }

    /// Hands the hook the request's summary JSON (nothing when it has no such phase).
    pub fn on_done(&mut self, info: &HookCall<'_>, summary: &[u8]) -> Result<(), CallError> {
        let Some(f) = self
            .hook
            .vt
            .on_done
            .filter(|_| self.hook.has_phase(hook_phase::ON_DONE))
        else {
            return Ok(());
        };
        self.call(f, info, summary, "on_done", &mut Collector::default())
    }
}

fn verdict(sink: &mut Collector) -> ChunkVerdict {
    match sink.hook.reject.take() {
        Some(r) => ChunkVerdict::End(r),
        None => ChunkVerdict::Continue,
    }
}

/// Turns `batch` into what the hook put: kept inputs and new chunks in the order put. A hook
/// that put neither leaves the batch as it is.
fn rebuild(batch: &mut Vec<Payload>, sink: &mut Collector) {
    let has_new = sink.items.iter().any(|i| matches!(i, Item::Chunk(_)));
    if !sink.hook.answered && !has_new {
        return;
    }
    // A replacement takes its input's model, usage and flags (read before any input is
    // moved out by a keep).
    for &(input, item) in &sink.hook.replacements {
        let source = usize::try_from(input).ok().and_then(|i| batch.get(i));
        if let (Some(source), Some(Item::Chunk(p))) = (source, sink.items.get_mut(item)) {
            p.model = Arc::clone(&source.model);
            p.usage = source.usage;
            p.flags = source.flags;
        }
    }
    let mut inputs: Vec<Option<Payload>> = std::mem::take(batch).into_iter().map(Some).collect();
    let mut keep = |input: u64, batch: &mut Vec<Payload>| {
        // An index out of range or kept twice is ignored: the batch never gains a chunk the
        // upstream did not send or the hook did not write.
        let taken = usize::try_from(input)
            .ok()
            .and_then(|i| inputs.get_mut(i))
            .and_then(Option::take);
        batch.extend(taken);
    };
    let mut plan = sink.hook.plan.drain(..).peekable();
    for (position, item) in std::mem::take(&mut sink.items).into_iter().enumerate() {
        while let Some((input, _)) = plan.next_if(|&(_, before)| before <= position) {
            keep(input, batch);
        }
        if let Item::Chunk(p) = item {
            batch.push(p);
        }
    }
    for (input, _) in plan {
        keep(input, batch);
    }
}
