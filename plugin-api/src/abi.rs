//! The C ABI itself: every type that crosses the library boundary.
//!
//! Rules that keep it stable across compilers and versions:
//! - only integers, raw pointers and borrowed byte slices cross; payloads are JSON bytes;
//! - every struct starts with `struct_size`, and fields are only ever appended, so an older
//!   reader can tell which fields a newer writer filled in;
//! - outputs go into host-owned buffers through the host's [`Output`] callbacks: nothing
//!   allocated on one side is freed on the other;
//! - function pointers are nullable (`Option<fn>`), so a vtable can grow without breaking
//!   plugins built against an older minor version;
//! - the size of every struct as of each minor version is frozen in [`frozen`]: a reader
//!   accepts any struct at least that large, and reads a field only after checking that the
//!   writer's declared `struct_size` covers it (never through a reference to a whole struct,
//!   which would claim today's size of memory from a writer that may have built a smaller one).

use std::ffi::c_void;

/// Incremented on any incompatible change; the host refuses a plugin whose major differs.
pub const ABI_MAJOR: u16 = 1;
/// Incremented when fields or slots are appended; the host accepts plugins with minor ≤ its own.
pub const ABI_MINOR: u16 = 1;
/// The largest token count either side believes (2^50, about 10^15: far above any real count,
/// and small enough that a sum of a few stays below 2^53, JSON's exact-integer limit). The
/// SDK reads larger counts from an upstream as 0; the host caps what a plugin reports.
pub const MAX_TOKEN_COUNT: u64 = 1 << 50;
/// The longest error message either side passes on, in bytes: an upstream's words cut at
/// 4 KiB plus the codec's own prefix. The SDK cuts what a plugin reports; the host cuts what
/// any plugin hands it, so a client never gets an unbounded echo of an upstream's body.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096 + 256;

/// The one symbol every plugin exports (an [`EntryFn`]).
pub const ENTRY_SYMBOL: &str = "switchyard_plugin_entry_v1";

/// Signature of the entry symbol: returns a pointer to a `'static` declaration.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDecl;

/// A borrowed byte slice. Valid only for the duration of the call that receives it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ByteSlice {
    pub ptr: *const u8,
    pub len: usize,
}

impl ByteSlice {
    pub const EMPTY: ByteSlice = ByteSlice {
        ptr: std::ptr::null(),
        len: 0,
    };

    pub const fn from_slice(bytes: &[u8]) -> ByteSlice {
        ByteSlice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    pub const fn from_str(s: &str) -> ByteSlice {
        ByteSlice::from_slice(s.as_bytes())
    }

    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive `'a` (or `len` must be 0).
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

impl HeaderPair {
    pub const fn new(name: &str, value: &str) -> HeaderPair {
        HeaderPair {
            name: ByteSlice::from_str(name),
            value: ByteSlice::from_str(value),
        }
    }
}

/// Capability flags in [`PluginDecl::capabilities`].
pub mod capability {
    /// The plugin has a provider vtable.
    pub const PROVIDER: u32 = 1 << 0;
    /// The plugin has a hook vtable.
    pub const HOOK: u32 = 1 << 1;
    /// The provider answers itself (`respond_local`) instead of encoding an HTTP request.
    pub const LOCAL: u32 = 1 << 2;
    /// Stamped by the SDK: the plugin was built with `panic = "unwind"`, so its boundary
    /// guard turns a panic into an error status.
    pub const PANIC_UNWIND: u32 = 1 << 3;
    /// Stamped by the SDK: the plugin was built with `panic = "abort"`; a panic in it would
    /// abort the whole gateway, so the loader refuses it. (A declaration with neither bit,
    /// written by hand or before the stamp existed, loads.)
    pub const PANIC_ABORT: u32 = 1 << 4;
}

/// The operations a plugin serves (1.1 [`PluginDecl::operations`]); the call context names the
/// one at hand (`chat`, …) so a plugin is only ever handed what it declared.
pub mod operation {
    /// Chat completions (`POST /v1/chat/completions`).
    pub const CHAT: u64 = 1 << 0;
    /// Embeddings (`POST /embeddings`-shaped; the gateway asks for them for its semantic cache).
    pub const EMBEDDINGS: u64 = 1 << 1;
    /// What a declaration without the field (ABI 1.0) serves: chat only.
    pub const DEFAULT: u64 = CHAT;

    /// The name the call context carries for an operation bit.
    pub const fn name(op: u64) -> &'static str {
        match op {
            CHAT => "chat",
            EMBEDDINGS => "embeddings",
            _ => "",
        }
    }
}

/// What the entry symbol returns.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDecl {
    pub struct_size: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    /// UTF-8 plugin name (e.g. `openai`), `'static`.
    pub name: ByteSlice,
    /// UTF-8 plugin version, `'static`.
    pub version: ByteSlice,
    pub capabilities: u32,
    /// Null unless `capabilities` has [`capability::PROVIDER`].
    pub provider: *const ProviderVTable,
    /// Null unless `capabilities` has [`capability::HOOK`].
    pub hook: *const HookVTable,
    /// 1.1: the [`operation`] bits the plugin serves (absent in 1.0: chat only).
    pub operations: u64,
    /// Stands for a field a later minor version appends. Only the unit-test build has it,
    /// so the tests run as a host whose declaration is larger than 1.0's and prove that a
    /// 1.0 declaration keeps loading.
    #[cfg(test)]
    pub appended_for_tests: u64,
}

// SAFETY: a declaration is immutable static data.
unsafe impl Sync for PluginDecl {}

/// Host-owned sink for everything a plugin call produces.
///
/// A call's output is a sequence of *items* (`put_bytes` with an item slot). Numeric values
/// (`put_u64`) describe the next item put and are reset after it; see [`slot`].
#[repr(C)]
pub struct Output {
    pub struct_size: u32,
    pub host: *mut c_void,
    pub put_bytes: PutBytesFn,
    pub put_u64: PutU64Fn,
}

/// [`Output::put_bytes`]: one item (or request part) into the slot.
pub type PutBytesFn = unsafe extern "C" fn(host: *mut c_void, slot: u32, a: ByteSlice, b: ByteSlice);
/// [`Output::put_u64`]: a number describing the next item.
pub type PutU64Fn = unsafe extern "C" fn(host: *mut c_void, slot: u32, value: u64);

/// Per-call context from the host. Time and secrets come from here: plugins do no I/O.
#[repr(C)]
#[derive(Debug)]
pub struct CallContext {
    pub struct_size: u32,
    /// 1 when the client asked for a stream.
    pub stream: u32,
    /// Wall-clock time, for signing schemes that need it.
    pub unix_time_ms: u64,
    /// The upstream model for this attempt (already resolved from the alias).
    pub model: ByteSlice,
    /// The key chosen for this attempt; empty when the provider has none.
    pub api_key: ByteSlice,
    /// The request id, for upstream correlation headers.
    pub request_id: ByteSlice,
    // ---- ABI 1.1 (read only when the host's `struct_size` covers them) ----
    /// What the client asked for: `chat`, `embeddings`, … (empty from a 1.0 host).
    pub operation: ByteSlice,
    /// The alias the client named (the `model` field of its request).
    pub alias: ByteSlice,
    /// The virtual key's id; empty until virtual keys exist.
    pub virtual_key_id: ByteSlice,
    /// Hooks: the client headers the hook asked for at `create` ([`slot::WANT_HEADER`]), with
    /// lower-case names, host-owned and valid for the call. Null (count 0) for providers.
    pub client_headers: *const HeaderPair,
    pub client_header_count: usize,
    /// Hooks: the state this hook's `pre_request` returned for this request
    /// ([`slot::HOOK_STATE`]), or null. Owned by the plugin; the host only hands it back,
    /// never dereferences it, and releases it exactly once through
    /// [`HookVTable::release_state`].
    pub hook_state: *mut c_void,
}

/// One client header (ABI 1.1): name and value, borrowed for the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HeaderPair {
    pub name: ByteSlice,
    pub value: ByteSlice,
}

/// Status returned by every fallible vtable call.
pub mod status {
    /// Success; outputs are complete.
    pub const OK: i32 = 0;
    /// The plugin reported an error item through [`super::slot::ERROR`].
    pub const ERROR: i32 = 1;
    /// The plugin panicked; the SDK caught it at the boundary.
    pub const PANIC: i32 = 2;
    /// The plugin does not implement this call.
    pub const UNSUPPORTED: i32 = 3;
}

/// Slot numbers for [`Output`].
pub mod slot {
    // ---- encode_request (a provider's HTTP request) ----
    /// `a` = HTTP method.
    pub const METHOD: u32 = 1;
    /// `a` = absolute URL.
    pub const URL: u32 = 2;
    /// `a` = header name, `b` = value. May repeat.
    pub const HEADER: u32 = 3;
    /// `a` = body bytes, appended (may repeat).
    pub const BODY: u32 = 4;

    // ---- items of decode_response / stream_feed / respond_local ----
    /// `a` = unified (OpenAI chat completion) JSON object without `extra_fields`; `b` = model.
    pub const RESPONSE: u32 = 10;
    /// `a` = unified chunk JSON object without `extra_fields`; `b` = model.
    pub const CHUNK: u32 = 11;
    /// The upstream said the stream is complete (`[DONE]` or its protocol's equivalent).
    pub const DONE: u32 = 12;
    /// An error item: `a` = message, `b` = JSON `{"type", "code", "param"}` (fields optional).
    pub const ERROR: u32 = 13;
    /// `a` = a warning for the host's log (a malformed event skipped, …). Not an item.
    pub const WARN: u32 = 14;

    // ---- numbers describing the next item ----
    pub const PROMPT_TOKENS: u32 = 20;
    pub const COMPLETION_TOKENS: u32 = 21;
    pub const TOTAL_TOKENS: u32 = 22;
    pub const CACHED_TOKENS: u32 = 23;
    pub const CACHE_WRITE_TOKENS: u32 = 24;
    pub const REASONING_TOKENS: u32 = 25;
    /// Bit set of [`super::chunk_flag`].
    pub const CHUNK_FLAGS: u32 = 26;
    /// 1.1: the part of CACHE_WRITE_TOKENS written to a 1-hour cache (Anthropic prices it
    /// apart from 5-minute writes). A host before 1.1 ignores it.
    pub const CACHE_WRITE_1H_TOKENS: u32 = 27;
    /// HTTP status of the next ERROR item.
    pub const ERROR_STATUS: u32 = 30;
    /// [`super::error_kind`] of the next ERROR item.
    pub const ERROR_KIND: u32 = 31;
    /// 1 when the next ERROR item may succeed if retried.
    pub const ERROR_RETRYABLE: u32 = 32;
    /// Local providers: milliseconds the host waits before delivering the next item.
    pub const DELAY_MS: u32 = 40;

    // ---- hooks (ABI 1.1); see [`super::HookVTable`] for which phase puts what ----
    /// `pre_request`: `a` = the whole new request JSON (replace).
    pub const REQUEST: u32 = 50;
    /// `a` = header name, `b` = value, for the next REJECT item. May repeat.
    pub const REPLY_HEADER: u32 = 51;
    /// A deliberate refusal (not a hook failure): `a` = the complete error body JSON the client
    /// receives, its HTTP status put before it with [`ERROR_STATUS`] (default 400). In
    /// `on_chunks` / `end_of_stream` it ends the stream with that error after the chunks put
    /// before it.
    pub const REJECT: u32 = 52;
    /// Number: `pre_request`'s per-request state pointer (as an integer). The host hands it
    /// back in [`super::CallContext::hook_state`] and releases it exactly once.
    pub const HOOK_STATE: u32 = 53;
    /// `create`: `a` = the name of a client header the hook wants in its context. May repeat.
    pub const WANT_HEADER: u32 = 54;
    /// Number: `on_chunks` keeps input chunk number `value` (0-based) at this place.
    pub const CHUNK_KEEP: u32 = 55;
    /// Number: `on_chunks` drops input chunk number `value` (only marks the batch as answered).
    pub const CHUNK_DROP: u32 = 56;
    /// Number: the next `CHUNK` replaces input chunk number `value` at this place, keeping
    /// that chunk's model, usage and flags (its own model name and numbers are ignored), so a
    /// hook that only rewrites the text need not re-derive them.
    pub const CHUNK_REPLACE: u32 = 57;
}

/// Flags on a CHUNK item.
pub mod chunk_flag {
    /// A choice in this chunk carries a `finish_reason`.
    pub const FINISH_REASON: u64 = 1 << 0;
    /// The chunk has an empty `choices` array (OpenAI's usage-only chunk).
    pub const EMPTY_CHOICES: u64 = 1 << 1;
    /// The usage numbers put before this chunk are real (the chunk has non-null `usage`).
    pub const HAS_USAGE: u64 = 1 << 2;
}

/// Classes of provider errors; the host decides retry and fallback from them.
pub mod error_kind {
    pub const OTHER: u64 = 0;
    pub const RATE_LIMIT: u64 = 1;
    pub const CONTEXT_LENGTH: u64 = 2;
    pub const CONTENT_FILTER: u64 = 3;
    pub const AUTHENTICATION: u64 = 4;
    pub const OVERLOADED: u64 = 5;
    pub const INVALID_REQUEST: u64 = 6;
    pub const NOT_FOUND: u64 = 7;
    pub const SERVER: u64 = 8;
    /// The upstream answered something the codec could not read.
    pub const MALFORMED: u64 = 9;
}

pub type CreateFn = unsafe extern "C" fn(config: ByteSlice, out: *const Output) -> *mut c_void;
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);
pub type EncodeRequestFn =
    unsafe extern "C" fn(instance: *mut c_void, ctx: *const CallContext, request: ByteSlice, out: *const Output) -> i32;
pub type DecodeFn = unsafe extern "C" fn(
    instance: *mut c_void,
    ctx: *const CallContext,
    http_status: u32,
    body: ByteSlice,
    out: *const Output,
) -> i32;
pub type StreamOpenFn = unsafe extern "C" fn(instance: *mut c_void, ctx: *const CallContext) -> *mut c_void;
pub type StreamFeedFn = unsafe extern "C" fn(
    instance: *mut c_void,
    state: *mut c_void,
    ctx: *const CallContext,
    bytes: ByteSlice,
    out: *const Output,
) -> i32;
pub type StreamFinishFn =
    unsafe extern "C" fn(instance: *mut c_void, state: *mut c_void, ctx: *const CallContext, out: *const Output) -> i32;
pub type StreamCloseFn = unsafe extern "C" fn(instance: *mut c_void, state: *mut c_void);

/// A provider: a pure codec between the unified schema and one upstream protocol
/// (or, with [`capability::LOCAL`], a responder that answers by itself).
///
/// One instance is created per configured provider (`create` gets
/// `{"name", "base_url", "options"}` as JSON). Instances are shared across threads; a
/// stream state is used by one thread at a time.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProviderVTable {
    pub struct_size: u32,
    /// Returns null on failure after putting an ERROR item.
    pub create: Option<CreateFn>,
    pub destroy: Option<DestroyFn>,
    /// Unified request JSON → METHOD, URL, HEADER*, BODY*.
    pub encode_request: Option<EncodeRequestFn>,
    /// 2xx upstream body → one RESPONSE item (or an ERROR item).
    pub decode_response: Option<DecodeFn>,
    /// Non-2xx upstream body → one ERROR item with status, kind and retryable flag.
    pub decode_error: Option<DecodeFn>,
    /// New decoder state for one upstream stream.
    pub stream_open: Option<StreamOpenFn>,
    /// Arbitrary fragment of the upstream stream → zero or more CHUNK / DONE / ERROR items.
    pub stream_feed: Option<StreamFeedFn>,
    /// End of the upstream stream: flush whatever is buffered.
    pub stream_finish: Option<StreamFinishFn>,
    pub stream_close: Option<StreamCloseFn>,
    /// Local providers: unified request → RESPONSE (or CHUNK* DONE when streaming), with
    /// optional DELAY_MS before items, or an ERROR item.
    pub respond_local: Option<EncodeRequestFn>,
    /// Stands for a slot a later minor version appends (unit-test build only, as
    /// [`PluginDecl::appended_for_tests`]): a 1.0 vtable must read as not having it.
    #[cfg(test)]
    pub appended_for_tests: Option<DestroyFn>,
}

/// Hook phases (bit set in [`HookVTable::phases`]); the host skips phases a hook lacks.
pub mod hook_phase {
    pub const PRE_REQUEST: u32 = 1 << 0;
    pub const POST_RESPONSE: u32 = 1 << 1;
    /// `on_chunks` (or 1.0's `on_chunk`), and `end_of_stream` when the slot is set.
    pub const ON_CHUNK: u32 = 1 << 2;
    pub const ON_DONE: u32 = 1 << 3;
    /// Every phase this ABI knows; a mask with other bits is refused at load.
    pub const ALL: u32 = PRE_REQUEST | POST_RESPONSE | ON_CHUNK | ON_DONE;
}

/// 1.1 `on_chunks`: a batch of `count` unified chunk JSON objects (one upstream read's worth).
/// `chunks` points to `count` host-owned slices valid for the call.
pub type OnChunksFn = unsafe extern "C" fn(
    instance: *mut c_void,
    ctx: *const CallContext,
    chunks: *const ByteSlice,
    count: usize,
    out: *const Output,
) -> i32;
/// 1.1 `end_of_stream`: the upstream stream is over; the hook may release held-back chunks.
pub type EndOfStreamFn =
    unsafe extern "C" fn(instance: *mut c_void, ctx: *const CallContext, out: *const Output) -> i32;
/// 1.1 `release_state`: frees a state `pre_request` returned. Called exactly once per state.
pub type ReleaseStateFn = unsafe extern "C" fn(instance: *mut c_void, state: *mut c_void);

/// Hooks inspect, change or answer requests; phases as DESIGN §2 (Envoy's dynamic modules are
/// the model: a status per phase call, actions as output items, a local reply).
///
/// Every phase call returns a [`status`]: `OK` with the action's items, `ERROR` with an ERROR
/// item when the hook itself failed (the host applies the hook's `on_error` policy), `PANIC`.
/// Inputs are borrowed for the call; outputs are copied by the host's [`Output`]; the only
/// plugin-owned pointers the host holds are the instance (freed by `destroy`) and per-request
/// states (freed by `release_state`).
///
/// - `create`: config `{"name", "config"}` → instance, plus WANT_HEADER items (the headers
///   the host copies into [`CallContext::client_headers`] for every phase call).
/// - `pre_request` (request JSON): nothing = continue; REQUEST = replace; RESPONSE =
///   short-circuit with a plain answer; CHUNK* = short-circuit with chunks (streaming
///   clients); REPLY_HEADER* REJECT = reject. May put HOOK_STATE (whatever the action).
/// - `post_response` (plain response JSON): nothing = keep; RESPONSE = replace; REJECT.
/// - `on_chunks` (a batch): nothing at all = keep every chunk unchanged. Otherwise the batch
///   becomes exactly what was put, in order: CHUNK_KEEP(i) forwards input chunk i, a CHUNK
///   item forwards a new chunk (a replacement, or held-back text released), CHUNK_DROP(i) and
///   inputs never kept are dropped. A REJECT item ends the stream with that error.
/// - `end_of_stream`: CHUNK* (held-back text) and optionally REJECT, as in `on_chunks`.
/// - `on_done` (summary JSON: ids, alias, provider, model, status, usage, latency): nothing.
///
/// A 1.0 vtable (no 1.1 slots) still loads: its hook gets no state, and its per-chunk
/// `on_chunk` is called once per chunk (nothing = keep, CHUNK = replace).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HookVTable {
    pub struct_size: u32,
    pub phases: u32,
    pub create: Option<CreateFn>,
    pub destroy: Option<DestroyFn>,
    pub pre_request: Option<EncodeRequestFn>,
    pub post_response: Option<EncodeRequestFn>,
    /// 1.0's per-chunk call; a 1.1 hook sets `on_chunks` instead.
    pub on_chunk: Option<EncodeRequestFn>,
    pub on_done: Option<EncodeRequestFn>,
    // ---- ABI 1.1 ----
    /// Required when `pre_request` can return a state; a state returned by a hook without it
    /// is never handed back (a 1.0 hook cannot return one).
    pub release_state: Option<ReleaseStateFn>,
    /// Batched chunk phase; preferred over `on_chunk` when set.
    pub on_chunks: Option<OnChunksFn>,
    pub end_of_stream: Option<EndOfStreamFn>,
}

/// The size in bytes of every struct that crosses the boundary, as of each minor version.
///
/// These are the ABI: a reader accepts a struct whose declared `struct_size` is at least
/// the size of the oldest minor it supports, whatever today's Rust struct has grown to. They
/// are written as counts of fixed-width integers and pointer-sized words (`P`), never as
/// `size_of` a Rust type, so appending a field to a struct cannot move them. Never edit a
/// published minor's module; a new minor adds its own.
pub mod frozen {
    /// One pointer-sized word (pointers, `usize`, function pointers).
    const P: usize = size_of::<usize>();

    /// ABI 1.0.
    pub mod v1_0 {
        use super::P;

        /// struct_size, major and minor (8 bytes), name and version (a pointer and a length
        /// each), capabilities (padded to a word), provider and hook vtable pointers.
        pub const PLUGIN_DECL_SIZE: usize = 8 + 7 * P;
        /// struct_size (padded to a word) and ten nullable function pointers.
        pub const PROVIDER_VTABLE_SIZE: usize = 11 * P;
        /// struct_size and phases (8 bytes) and six nullable function pointers.
        pub const HOOK_VTABLE_SIZE: usize = 8 + 6 * P;
        /// struct_size and stream (8 bytes), unix_time_ms (8 bytes), three byte slices.
        pub const CALL_CONTEXT_SIZE: usize = 16 + 6 * P;
        /// struct_size (padded to a word), the host pointer and two callbacks.
        pub const OUTPUT_SIZE: usize = 4 * P;
    }

    /// ABI 1.1: the declaration, the context and the hook vtable grew; the others did not.
    pub mod v1_1 {
        use super::P;

        /// 1.0's, then `operations` (8 bytes).
        pub const PLUGIN_DECL_SIZE: usize = super::v1_0::PLUGIN_DECL_SIZE + 8;
        pub const PROVIDER_VTABLE_SIZE: usize = super::v1_0::PROVIDER_VTABLE_SIZE;
        /// 1.0's, then release_state, on_chunks and end_of_stream.
        pub const HOOK_VTABLE_SIZE: usize = 8 + 9 * P;
        /// 1.0's, then operation, alias, virtual_key_id (byte slices), the header pointer and
        /// count, and hook_state.
        pub const CALL_CONTEXT_SIZE: usize = 16 + 15 * P;
        pub const OUTPUT_SIZE: usize = super::v1_0::OUTPUT_SIZE;
        /// A header pair: two byte slices.
        pub const HEADER_PAIR_SIZE: usize = 4 * P;
    }
}

// Today's structs never shrink below a frozen size, and are exactly the current minor's sizes:
// a field appended without bumping `ABI_MINOR` (and freezing the new sizes) fails the build
// here. (The unit-test build appends a field on purpose; see `appended_for_tests`.)
const _: () = {
    use frozen::{v1_0, v1_1};
    assert!(size_of::<PluginDecl>() >= v1_0::PLUGIN_DECL_SIZE);
    assert!(size_of::<ProviderVTable>() >= v1_0::PROVIDER_VTABLE_SIZE);
    assert!(size_of::<HookVTable>() >= v1_0::HOOK_VTABLE_SIZE);
    assert!(size_of::<CallContext>() >= v1_0::CALL_CONTEXT_SIZE);
    assert!(size_of::<Output>() >= v1_0::OUTPUT_SIZE);
    assert!(size_of::<HeaderPair>() == v1_1::HEADER_PAIR_SIZE);
    assert!(size_of::<HookVTable>() == v1_1::HOOK_VTABLE_SIZE);
    assert!(size_of::<CallContext>() == v1_1::CALL_CONTEXT_SIZE);
    assert!(size_of::<Output>() == v1_1::OUTPUT_SIZE);
    #[cfg(not(test))]
    assert!(
        ABI_MINOR == 1
            && size_of::<PluginDecl>() == v1_1::PLUGIN_DECL_SIZE
            && size_of::<ProviderVTable>() == v1_1::PROVIDER_VTABLE_SIZE
    );
};

/// Reads the field at `offset` of a struct the other side of the boundary wrote, or `None`
/// when that side's struct (`declared_size` bytes) ends before the field: it was built
/// against an older minor version that did not have it. `_field` only names the field's type
/// (use [`read_field!`], which passes a projection that is never called).
///
/// # Safety
/// `base` must point to at least `declared_size` readable bytes, and `offset` must be the
/// offset of a field of type `T` in `S`.
#[cfg(any(feature = "sdk", feature = "host"))]
#[inline(always)]
pub(crate) unsafe fn read_field_at<S, T: Copy>(
    base: *const S,
    declared_size: usize,
    offset: usize,
    _field: fn(&S) -> &T,
) -> Option<T> {
    if offset + size_of::<T>() > declared_size {
        return None;
    }
    // SAFETY: the field lies within the `declared_size` readable bytes (checked above); the
    // writer may not have aligned it for this side, hence the unaligned read.
    Some(unsafe { base.cast::<u8>().add(offset).cast::<T>().read_unaligned() })
}

/// `read_field!(ptr, declared_size, Struct, field)`: [`read_field_at`] for a named field.
/// Must be used inside `unsafe`, under `read_field_at`'s contract.
#[cfg(any(feature = "sdk", feature = "host"))]
macro_rules! read_field {
    ($ptr:expr, $declared_size:expr, $S:ty, $field:ident) => {
        $crate::abi::read_field_at($ptr, $declared_size, ::core::mem::offset_of!($S, $field), |s: &$S| {
            &s.$field
        })
    };
}
#[cfg(any(feature = "sdk", feature = "host"))]
pub(crate) use read_field;

/// The `struct_size` every boundary struct starts with.
///
/// # Safety
/// `ptr` must be non-null and point to at least 4 readable bytes.
#[cfg(any(feature = "sdk", feature = "host"))]
#[inline(always)]
pub(crate) unsafe fn declared_size<S>(ptr: *const S) -> usize {
    // SAFETY: guaranteed by the caller; every version's struct starts with a u32 size.
    unsafe { ptr.cast::<u32>().read_unaligned() as usize }
}

#[cfg(test)]
mod layout {
    //! Layout assertions: these offsets are the ABI. A failure here means an incompatible
    //! change — bump `ABI_MAJOR` or append instead. Each struct's 1.0 fields end exactly at
    //! its frozen 1.0 size (today's struct may be larger: the test build appends a field).
    use super::frozen::{v1_0, v1_1};
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    const P: usize = size_of::<usize>();

    #[test]
    fn byte_slice() {
        assert_eq!(size_of::<ByteSlice>(), 2 * P);
        assert_eq!(offset_of!(ByteSlice, ptr), 0);
        assert_eq!(offset_of!(ByteSlice, len), P);
    }

    #[test]
    fn plugin_decl() {
        assert_eq!(offset_of!(PluginDecl, struct_size), 0);
        assert_eq!(offset_of!(PluginDecl, abi_major), 4);
        assert_eq!(offset_of!(PluginDecl, abi_minor), 6);
        assert_eq!(offset_of!(PluginDecl, name), 8);
        assert_eq!(offset_of!(PluginDecl, version), 8 + 2 * P);
        assert_eq!(offset_of!(PluginDecl, capabilities), 8 + 4 * P);
        assert_eq!(offset_of!(PluginDecl, provider), 8 + 5 * P);
        assert_eq!(offset_of!(PluginDecl, hook), 8 + 6 * P);
        assert_eq!(offset_of!(PluginDecl, hook) + P, v1_0::PLUGIN_DECL_SIZE);
        assert!(size_of::<PluginDecl>() >= v1_0::PLUGIN_DECL_SIZE);
    }

    #[test]
    fn output() {
        assert_eq!(offset_of!(Output, struct_size), 0);
        assert_eq!(offset_of!(Output, host), P);
        assert_eq!(offset_of!(Output, put_bytes), 2 * P);
        assert_eq!(offset_of!(Output, put_u64), 3 * P);
        assert_eq!(offset_of!(Output, put_u64) + P, v1_0::OUTPUT_SIZE);
        assert!(size_of::<Output>() >= v1_0::OUTPUT_SIZE);
    }

    #[test]
    fn call_context() {
        assert_eq!(offset_of!(CallContext, struct_size), 0);
        assert_eq!(offset_of!(CallContext, stream), 4);
        assert_eq!(offset_of!(CallContext, unix_time_ms), 8);
        assert_eq!(offset_of!(CallContext, model), 16);
        assert_eq!(offset_of!(CallContext, api_key), 16 + 2 * P);
        assert_eq!(offset_of!(CallContext, request_id), 16 + 4 * P);
        assert_eq!(offset_of!(CallContext, request_id) + 2 * P, v1_0::CALL_CONTEXT_SIZE);
        assert_eq!(offset_of!(CallContext, operation), v1_0::CALL_CONTEXT_SIZE);
        assert_eq!(offset_of!(CallContext, alias), 16 + 8 * P);
        assert_eq!(offset_of!(CallContext, virtual_key_id), 16 + 10 * P);
        assert_eq!(offset_of!(CallContext, client_headers), 16 + 12 * P);
        assert_eq!(offset_of!(CallContext, client_header_count), 16 + 13 * P);
        assert_eq!(offset_of!(CallContext, hook_state), 16 + 14 * P);
        assert_eq!(offset_of!(CallContext, hook_state) + P, v1_1::CALL_CONTEXT_SIZE);
        assert_eq!(offset_of!(HeaderPair, value), 2 * P);
    }

    #[test]
    fn provider_vtable() {
        // struct_size padded to a pointer, then ten nullable function pointers.
        assert_eq!(size_of::<Option<CreateFn>>(), P);
        assert_eq!(offset_of!(ProviderVTable, create), P);
        assert_eq!(offset_of!(ProviderVTable, respond_local), 10 * P);
        assert_eq!(
            offset_of!(ProviderVTable, respond_local) + P,
            v1_0::PROVIDER_VTABLE_SIZE
        );
        assert!(size_of::<ProviderVTable>() >= v1_0::PROVIDER_VTABLE_SIZE);
        assert_eq!(align_of::<ProviderVTable>(), P);
    }

    #[test]
    fn hook_vtable() {
        assert_eq!(offset_of!(HookVTable, phases), 4);
        assert_eq!(offset_of!(HookVTable, create), 8);
        assert_eq!(offset_of!(HookVTable, on_done), 8 + 5 * P);
        assert_eq!(offset_of!(HookVTable, on_done) + P, v1_0::HOOK_VTABLE_SIZE);
        assert_eq!(offset_of!(HookVTable, release_state), v1_0::HOOK_VTABLE_SIZE);
        assert_eq!(offset_of!(HookVTable, on_chunks), 8 + 7 * P);
        assert_eq!(offset_of!(HookVTable, end_of_stream) + P, v1_1::HOOK_VTABLE_SIZE);
    }

    /// The test build simulates a later minor: the structs the loader reads are larger than
    /// their 1.0 sizes, so the 1.0 declarations in the crate's tests really are smaller.
    #[test]
    fn the_test_build_is_a_later_minor() {
        assert!(size_of::<PluginDecl>() > v1_0::PLUGIN_DECL_SIZE);
        assert!(size_of::<ProviderVTable>() > v1_0::PROVIDER_VTABLE_SIZE);
    }
}
