//! Hooks on the plugin's side: the [`Hook`] trait, its typed actions, and the glue that
//! [`crate::export_hook!`] / [`crate::export_plugin!`] export.
//!
//! A hook declares its phases in [`Hook::PHASES`] (the host never calls the others) and
//! implements only those methods; the defaults continue / keep. Per-request state is typed
//! ([`Hook::State`]): `pre_request` may set it, later phases of the same request get it back,
//! and the host drops it exactly once whatever happens to the request.

use super::{ChunkInfo, Context, ErrorKind, Out, ProviderError, Usage};
use crate::abi::{self, ByteSlice, HeaderPair, slot};

/// The phase bits for [`Hook::PHASES`].
pub use crate::abi::hook_phase as phase;

/// What `create` receives: the hook's entry from the gateway's `hooks:` list.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct HookSetup {
    /// The configured hook name.
    pub name: String,
    /// `config:` from YAML, hook-specific (`null` when absent).
    #[serde(default)]
    pub config: serde_json::Value,
}

/// Per-call context of a hook (borrowed for the call). Fields a 1.0 host does not send read
/// as empty.
#[derive(Debug, Clone, Copy)]
pub struct HookContext<'a> {
    /// Request id, stream flag, time, and the resolved model once known.
    pub base: Context<'a>,
    /// `chat`, `embeddings`, …
    pub operation: &'a str,
    pub alias: &'a str,
    /// Empty until virtual keys exist.
    pub virtual_key_id: &'a str,
    headers: &'a [HeaderPair],
}

impl<'a> HookContext<'a> {
    /// A client header the hook asked for in [`Hook::wanted_headers`] (names are lower case).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every client header the host passed.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        // SAFETY: the host's header slices live for the call, which outlives 'a.
        let text = |b: ByteSlice| std::str::from_utf8(unsafe { b.as_slice() }).unwrap_or("");
        self.headers.iter().map(move |h| (text(h.name), text(h.value)))
    }
}

/// A whole answer written by a hook (short-circuit or replacement).
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// Unified (OpenAI chat completion) JSON object.
    pub json: Vec<u8>,
    /// The model that answered. Left empty in a `post_response` replacement, the gateway
    /// keeps the answer's.
    pub model: String,
    /// Left `None` in a `post_response` replacement, the gateway keeps the answer's.
    pub usage: Option<Usage>,
}

/// One chunk of a short-circuit stream.
#[derive(Debug, Clone, Default)]
pub struct ReplyChunk {
    /// Unified chunk JSON object.
    pub json: Vec<u8>,
    pub model: String,
    pub info: ChunkInfo,
}

/// A deliberate refusal: the client receives `status`, `body` and `headers` as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    /// The complete error body JSON.
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    /// An OpenAI-shaped error body: `{"error":{"message","type","code","param":null}}`.
    pub fn new(status: u16, error_type: &str, code: Option<&str>, message: &str) -> Rejection {
        let body = serde_json::json!({
            "error": {"message": message, "type": error_type, "code": code, "param": null}
        });
        Rejection {
            status,
            body: serde_json::to_vec(&body).unwrap_or_default(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What `pre_request` decides.
#[derive(Debug, Clone)]
pub enum PreAction {
    Continue,
    /// Send this request JSON instead.
    Replace(Vec<u8>),
    /// Answer now with a plain response; no upstream call.
    ShortCircuit(Reply),
    /// Answer a streaming client now with these chunks; no upstream call.
    ShortCircuitChunks(Vec<ReplyChunk>),
    Reject(Rejection),
}

/// What `post_response` decides.
#[derive(Debug, Clone)]
pub enum PostAction {
    Keep,
    Replace(Reply),
    Reject(Rejection),
}

/// The hook itself failed (not a decision): the host applies the hook's `on_error` policy.
#[derive(Debug, Clone)]
pub struct HookError(pub String);

impl<S: Into<String>> From<S> for HookError {
    fn from(message: S) -> Self {
        HookError(message.into())
    }
}

/// The chunks of one upstream read, borrowed for the call.
#[derive(Clone, Copy)]
pub struct ChunkBatch<'a> {
    slices: &'a [ByteSlice],
}

impl<'a> ChunkBatch<'a> {
    pub fn len(&self) -> usize {
        self.slices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// Chunk `i`'s unified JSON.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        // SAFETY: the host's slices live for the call, which outlives 'a.
        self.slices.get(i).map(|s| unsafe { s.as_slice() })
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        // SAFETY: as in `get`.
        self.slices.iter().map(|s| unsafe { s.as_slice() })
    }
}

/// The answer to a chunk batch. Writing nothing keeps the batch as it is; once anything is
/// written, the batch becomes exactly what was written, in order (a chunk neither kept nor
/// replaced is dropped).
pub struct ChunkOut<'o, 'a> {
    out: &'o mut Out<'a>,
}

impl ChunkOut<'_, '_> {
    /// Forwards input chunk `i` unchanged at this place.
    pub fn keep(&mut self, i: usize) {
        self.out.number(slot::CHUNK_KEEP, i as u64);
    }

    /// Drops input chunk `i` (needed only when nothing else is written for the batch).
    pub fn drop_chunk(&mut self, i: usize) {
        self.out.number(slot::CHUNK_DROP, i as u64);
    }

    /// Forwards input chunk `i` rewritten as `json` at this place; the gateway keeps the
    /// input's model, usage and flags (for a hook that only changes the text).
    pub fn replace(&mut self, i: usize, json: &[u8]) {
        self.out.number(slot::CHUNK_REPLACE, i as u64);
        self.out.chunk(json, "", &ChunkInfo::default());
    }

    /// Forwards a new chunk at this place: held-back text released, or a chunk of the hook's
    /// own (use [`ChunkOut::replace`] to rewrite an input chunk).
    pub fn emit(&mut self, json: &[u8], model: &str, info: &ChunkInfo) {
        self.out.chunk(json, model, info);
    }

    /// Ends the stream with this error after what was written before it.
    pub fn end_with(&mut self, rejection: &Rejection) {
        write_rejection(self.out, rejection);
    }
}

/// A hook plugin. Implement the phases named in [`Hook::PHASES`]; the rest default to
/// continue / keep and are never called.
pub trait Hook: Send + Sync + Sized + 'static {
    /// Per-request state, from `pre_request` to the request's end.
    type State: Send + 'static;
    /// [`phase`] bits: the phases the host calls.
    const PHASES: u32;

    fn create(setup: HookSetup) -> Result<Self, String>;

    /// Client headers this hook needs in [`HookContext::header`] (asked once, at create).
    fn wanted_headers(&self) -> Vec<String> {
        Vec::new()
    }

    /// The client's request (unified JSON). Set `*state` to keep something for later phases.
    fn pre_request(
        &self,
        _ctx: &HookContext<'_>,
        _request: &[u8],
        _state: &mut Option<Self::State>,
    ) -> Result<PreAction, HookError> {
        Ok(PreAction::Continue)
    }

    /// A plain (non-streamed) answer.
    fn post_response(
        &self,
        _ctx: &HookContext<'_>,
        _state: Option<&mut Self::State>,
        _response: &[u8],
    ) -> Result<PostAction, HookError> {
        Ok(PostAction::Keep)
    }

    /// A batch of stream chunks (one upstream read's worth).
    fn on_chunks(
        &self,
        _ctx: &HookContext<'_>,
        _state: Option<&mut Self::State>,
        _chunks: ChunkBatch<'_>,
        _out: &mut ChunkOut<'_, '_>,
    ) -> Result<(), HookError> {
        Ok(())
    }

    /// The upstream stream ended: release held-back text with [`ChunkOut::emit`].
    fn end_of_stream(
        &self,
        _ctx: &HookContext<'_>,
        _state: Option<&mut Self::State>,
        _out: &mut ChunkOut<'_, '_>,
    ) -> Result<(), HookError> {
        Ok(())
    }

    /// The request's summary JSON (ids, alias, provider, model, status, usage, latency).
    fn on_done(
        &self,
        _ctx: &HookContext<'_>,
        _state: Option<&mut Self::State>,
        _summary: &[u8],
    ) -> Result<(), HookError> {
        Ok(())
    }
}

fn write_rejection(out: &mut Out<'_>, r: &Rejection) {
    for (name, value) in &r.headers {
        out.bytes(slot::REPLY_HEADER, name.as_bytes(), value.as_bytes());
    }
    out.number(slot::ERROR_STATUS, u64::from(r.status));
    out.bytes(slot::REJECT, &r.body, &[]);
}

fn write_reply(out: &mut Out<'_>, r: &Reply) {
    out.response(&r.json, &r.model, r.usage.as_ref());
}

/// Generated glue for hooks; used by the export macros. Not a public API.
#[doc(hidden)]
pub mod glue {
    use super::*;
    use crate::abi::{CallContext, HookVTable, Output, read_field, status};
    use crate::sdk::__private::{context, create_instance, destroy, guard, text, writer};
    use std::ffi::c_void;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    /// The hook fields of the host's context (empty past a 1.0 host's size) and the state.
    ///
    /// # Safety
    /// `ctx` is a valid CallContext of its declared size whose slices live for `'a`.
    pub(crate) unsafe fn hook_context<'a>(ctx: *const CallContext) -> (HookContext<'a>, *mut c_void) {
        // SAFETY: every read is checked against the host's declared size.
        unsafe {
            let size = abi::declared_size(ctx);
            let s = |b: Option<ByteSlice>| b.map_or("", |b| text(b));
            let headers_ptr = read_field!(ctx, size, CallContext, client_headers).unwrap_or(std::ptr::null());
            let count = read_field!(ctx, size, CallContext, client_header_count).unwrap_or(0);
            let headers = if headers_ptr.is_null() || count == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(headers_ptr, count)
            };
            let hook = HookContext {
                base: context(ctx),
                operation: s(read_field!(ctx, size, CallContext, operation)),
                alias: s(read_field!(ctx, size, CallContext, alias)),
                virtual_key_id: s(read_field!(ctx, size, CallContext, virtual_key_id)),
                headers,
            };
            let state = read_field!(ctx, size, CallContext, hook_state).unwrap_or(std::ptr::null_mut());
            (hook, state)
        }
    }

    /// # Safety
    /// `state` is null or a live `H::State` from `pre_request::<H>`, used by this call only.
    unsafe fn state<'a, H: Hook>(state: *mut c_void) -> Option<&'a mut H::State> {
        // SAFETY: guaranteed by the caller.
        unsafe { state.cast::<H::State>().as_mut() }
    }

    fn failed(r: Result<(), HookError>, out: &mut Out<'_>) -> i32 {
        match r {
            Ok(()) => status::OK,
            Err(HookError(message)) => {
                out.error(&ProviderError::new(500, ErrorKind::Other, message).with_type("hook_failed"));
                status::ERROR
            }
        }
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn create<H: Hook>(config: ByteSlice, out: *const Output) -> *mut c_void {
        // SAFETY: the host's arguments, valid for the call.
        unsafe {
            create_instance(config, out, H::create, |h: &H, out| {
                for name in h.wanted_headers() {
                    out.bytes(slot::WANT_HEADER, name.as_bytes(), &[]);
                }
            })
        }
    }

    /// # Safety
    /// `state` came from `pre_request::<H>` and is not used after this call.
    pub unsafe extern "C" fn release_state<H: Hook>(_instance: *mut c_void, state: *mut c_void) {
        if !state.is_null() {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: created by `pre_request::<H>` with Box::into_raw.
                drop(unsafe { Box::from_raw(state.cast::<H::State>()) });
            }));
        }
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn pre_request<H: Hook>(
        instance: *mut c_void,
        ctx: *const CallContext,
        request: ByteSlice,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: all pointers are valid for the call (host contract).
            let (h, (ctx, _), request, mut out) = unsafe {
                (
                    &*instance.cast::<H>(),
                    hook_context(ctx),
                    request.as_slice(),
                    writer(out),
                )
            };
            let mut state = None;
            let r = h.pre_request(&ctx, request, &mut state);
            if let Some(state) = state {
                let ptr = Box::into_raw(Box::new(state));
                out.number(slot::HOOK_STATE, ptr.expose_provenance() as u64);
            }
            let action = match r {
                Ok(action) => action,
                Err(e) => return failed(Err(e), &mut out),
            };
            match &action {
                PreAction::Continue => {}
                PreAction::Replace(request) => out.bytes(slot::REQUEST, request, &[]),
                PreAction::ShortCircuit(reply) => write_reply(&mut out, reply),
                PreAction::ShortCircuitChunks(chunks) => {
                    for c in chunks {
                        out.chunk(&c.json, &c.model, &c.info);
                    }
                }
                PreAction::Reject(r) => write_rejection(&mut out, r),
            }
            status::OK
        })
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn post_response<H: Hook>(
        instance: *mut c_void,
        ctx: *const CallContext,
        response: ByteSlice,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: all pointers are valid for the call; the state is this request's.
            let (h, (ctx, st), response, mut out) = unsafe {
                (
                    &*instance.cast::<H>(),
                    hook_context(ctx),
                    response.as_slice(),
                    writer(out),
                )
            };
            // SAFETY: the host hands back this request's state, one call at a time.
            let r = h.post_response(&ctx, unsafe { state::<H>(st) }, response);
            match r {
                Ok(PostAction::Keep) => status::OK,
                Ok(PostAction::Replace(reply)) => {
                    write_reply(&mut out, &reply);
                    status::OK
                }
                Ok(PostAction::Reject(r)) => {
                    write_rejection(&mut out, &r);
                    status::OK
                }
                Err(e) => failed(Err(e), &mut out),
            }
        })
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn on_chunks<H: Hook>(
        instance: *mut c_void,
        ctx: *const CallContext,
        chunks: *const ByteSlice,
        count: usize,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: all pointers are valid for the call (host contract).
            let (h, (ctx, st), mut out) = unsafe { (&*instance.cast::<H>(), hook_context(ctx), writer(out)) };
            let slices = if chunks.is_null() || count == 0 {
                &[][..]
            } else {
                // SAFETY: the host passes `count` slices valid for the call.
                unsafe { std::slice::from_raw_parts(chunks, count) }
            };
            let mut chunk_out = ChunkOut { out: &mut out };
            // SAFETY: as in post_response.
            let r = h.on_chunks(&ctx, unsafe { state::<H>(st) }, ChunkBatch { slices }, &mut chunk_out);
            failed(r, &mut out)
        })
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn end_of_stream<H: Hook>(
        instance: *mut c_void,
        ctx: *const CallContext,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: all pointers are valid for the call (host contract).
            let (h, (ctx, st), mut out) = unsafe { (&*instance.cast::<H>(), hook_context(ctx), writer(out)) };
            let mut chunk_out = ChunkOut { out: &mut out };
            // SAFETY: as in post_response.
            let r = h.end_of_stream(&ctx, unsafe { state::<H>(st) }, &mut chunk_out);
            failed(r, &mut out)
        })
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn on_done<H: Hook>(
        instance: *mut c_void,
        ctx: *const CallContext,
        summary: ByteSlice,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: all pointers are valid for the call (host contract).
            let (h, (ctx, st), summary, mut out) = unsafe {
                (
                    &*instance.cast::<H>(),
                    hook_context(ctx),
                    summary.as_slice(),
                    writer(out),
                )
            };
            // SAFETY: as in post_response.
            let r = h.on_done(&ctx, unsafe { state::<H>(st) }, summary);
            failed(r, &mut out)
        })
    }

    pub const fn hook_vtable<H: Hook>() -> HookVTable {
        HookVTable {
            struct_size: size_of::<HookVTable>() as u32,
            phases: H::PHASES,
            create: Some(create::<H>),
            destroy: Some(destroy::<H>),
            pre_request: Some(pre_request::<H>),
            post_response: Some(post_response::<H>),
            // 1.0's per-chunk slot: superseded by `on_chunks`.
            on_chunk: None,
            on_done: Some(on_done::<H>),
            release_state: Some(release_state::<H>),
            on_chunks: Some(on_chunks::<H>),
            end_of_stream: Some(end_of_stream::<H>),
        }
    }
}
