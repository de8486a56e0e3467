//! Fixture: a provider plugin exactly as one built against plugin ABI 1.0 looks to the host.
//!
//! It does not use plugin-api: the declaration, the vtable and the structs the host hands it
//! are its own `#[repr(C)]` copies of the 1.0 layouts, so a change to today's structs cannot
//! change this library. The end-to-end tests load it into the current gateway and expect real
//! answers, plain and streamed: that is the proof that a 1.x host keeps loading 1.0 plugins.
//!
//! It is a small local provider (like the built-in mock): `respond_local` answers every chat
//! request with a fixed text and usage. Its declaration carries no panic-strategy stamp, as no
//! 1.0 declaration did, and it must load all the same.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

// ============================================================================================
// FROZEN: the ABI 1.0 layouts and constants. Never edit anything in this block — a plugin
// already built against ABI 1.0 cannot be edited either. If the gateway stops loading this
// library, the gateway broke compatibility, not this fixture.
// ============================================================================================

const ABI_MAJOR: u16 = 1;
const ABI_MINOR: u16 = 0;

const CAPABILITY_PROVIDER: u32 = 1 << 0;
const CAPABILITY_LOCAL: u32 = 1 << 2;

const STATUS_OK: i32 = 0;
const STATUS_PANIC: i32 = 2;
const STATUS_UNSUPPORTED: i32 = 3;

const SLOT_RESPONSE: u32 = 10;
const SLOT_CHUNK: u32 = 11;
const SLOT_DONE: u32 = 12;
const SLOT_PROMPT_TOKENS: u32 = 20;
const SLOT_COMPLETION_TOKENS: u32 = 21;
const SLOT_TOTAL_TOKENS: u32 = 22;
const SLOT_CHUNK_FLAGS: u32 = 26;

const CHUNK_FINISH_REASON: u64 = 1 << 0;
const CHUNK_EMPTY_CHOICES: u64 = 1 << 1;
const CHUNK_HAS_USAGE: u64 = 1 << 2;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ByteSlice {
    ptr: *const u8,
    len: usize,
}

#[repr(C)]
pub struct PluginDecl {
    struct_size: u32,
    abi_major: u16,
    abi_minor: u16,
    name: ByteSlice,
    version: ByteSlice,
    capabilities: u32,
    provider: *const ProviderVTable,
    hook: *const c_void,
}

#[repr(C)]
pub struct Output {
    struct_size: u32,
    host: *mut c_void,
    put_bytes: unsafe extern "C" fn(host: *mut c_void, slot: u32, a: ByteSlice, b: ByteSlice),
    put_u64: unsafe extern "C" fn(host: *mut c_void, slot: u32, value: u64),
}

#[repr(C)]
pub struct CallContext {
    struct_size: u32,
    stream: u32,
    unix_time_ms: u64,
    model: ByteSlice,
    api_key: ByteSlice,
    request_id: ByteSlice,
}

type CreateFn = unsafe extern "C" fn(config: ByteSlice, out: *const Output) -> *mut c_void;
type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);
type EncodeRequestFn =
    unsafe extern "C" fn(instance: *mut c_void, ctx: *const CallContext, request: ByteSlice, out: *const Output) -> i32;
type DecodeFn = unsafe extern "C" fn(
    instance: *mut c_void,
    ctx: *const CallContext,
    http_status: u32,
    body: ByteSlice,
    out: *const Output,
) -> i32;
type StreamOpenFn = unsafe extern "C" fn(instance: *mut c_void, ctx: *const CallContext) -> *mut c_void;
type StreamFeedFn = unsafe extern "C" fn(
    instance: *mut c_void,
    state: *mut c_void,
    ctx: *const CallContext,
    bytes: ByteSlice,
    out: *const Output,
) -> i32;
type StreamFinishFn =
    unsafe extern "C" fn(instance: *mut c_void, state: *mut c_void, ctx: *const CallContext, out: *const Output) -> i32;
type StreamCloseFn = unsafe extern "C" fn(instance: *mut c_void, state: *mut c_void);

#[repr(C)]
pub struct ProviderVTable {
    struct_size: u32,
    create: Option<CreateFn>,
    destroy: Option<DestroyFn>,
    encode_request: Option<EncodeRequestFn>,
    decode_response: Option<DecodeFn>,
    decode_error: Option<DecodeFn>,
    stream_open: Option<StreamOpenFn>,
    stream_feed: Option<StreamFeedFn>,
    stream_finish: Option<StreamFinishFn>,
    stream_close: Option<StreamCloseFn>,
    respond_local: Option<EncodeRequestFn>,
}

// ============================================================================================
// End of the frozen block.
// ============================================================================================

// SAFETY: immutable static data.
unsafe impl Sync for PluginDecl {}

const fn bytes(s: &'static str) -> ByteSlice {
    ByteSlice {
        ptr: s.as_ptr(),
        len: s.len(),
    }
}

static VTABLE: ProviderVTable = ProviderVTable {
    struct_size: size_of::<ProviderVTable>() as u32,
    create: Some(create),
    destroy: Some(destroy),
    encode_request: None,
    decode_response: None,
    decode_error: None,
    stream_open: None,
    stream_feed: None,
    stream_finish: None,
    stream_close: None,
    respond_local: Some(respond_local),
};

static DECLARATION: PluginDecl = PluginDecl {
    struct_size: size_of::<PluginDecl>() as u32,
    abi_major: ABI_MAJOR,
    abi_minor: ABI_MINOR,
    name: bytes("abi_v1_0"),
    version: bytes("1.0.0"),
    capabilities: CAPABILITY_PROVIDER | CAPABILITY_LOCAL,
    provider: &VTABLE,
    hook: std::ptr::null(),
};

#[unsafe(no_mangle)]
pub extern "C" fn switchyard_plugin_entry_v1() -> *const PluginDecl {
    &DECLARATION
}

/// The answer to every request.
pub const ANSWER: &str = "Frozen ABI 1.0 plugin, still answering.";
/// The usage reported with it.
const PROMPT_TOKENS: u64 = 5;
const COMPLETION_TOKENS: u64 = 6;

/// The instance has no state; any non-null pointer names it.
static INSTANCE: u8 = 0;

unsafe extern "C" fn create(_config: ByteSlice, _out: *const Output) -> *mut c_void {
    (&raw const INSTANCE).cast_mut().cast::<c_void>()
}

unsafe extern "C" fn destroy(_instance: *mut c_void) {}

/// # Safety
/// `s` points to `len` bytes valid for the call (host contract).
unsafe fn text<'a>(s: ByteSlice) -> &'a str {
    if s.ptr.is_null() || s.len == 0 {
        return "";
    }
    // SAFETY: guaranteed by the caller.
    std::str::from_utf8(unsafe { std::slice::from_raw_parts(s.ptr, s.len) }).unwrap_or("")
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Writer {
    out: *const Output,
}

impl Writer {
    fn bytes(&self, slot: u32, a: &str, b: &str) {
        // SAFETY: the host's Output is valid for the call; the callback copies the slices.
        unsafe { ((*self.out).put_bytes)((*self.out).host, slot, bytes_of(a), bytes_of(b)) }
    }

    fn number(&self, slot: u32, value: u64) {
        // SAFETY: as in `bytes`.
        unsafe { ((*self.out).put_u64)((*self.out).host, slot, value) }
    }

    fn usage(&self) {
        self.number(SLOT_PROMPT_TOKENS, PROMPT_TOKENS);
        self.number(SLOT_COMPLETION_TOKENS, COMPLETION_TOKENS);
        self.number(SLOT_TOTAL_TOKENS, PROMPT_TOKENS + COMPLETION_TOKENS);
    }

    fn chunk(&self, head: &str, choices: &str, usage: &str, model: &str, flags: u64) {
        self.number(SLOT_CHUNK_FLAGS, flags);
        let json = format!("{{{head},\"choices\":{choices},\"usage\":{usage}}}");
        self.bytes(SLOT_CHUNK, &json, model);
    }
}

fn bytes_of(s: &str) -> ByteSlice {
    ByteSlice {
        ptr: s.as_ptr(),
        len: s.len(),
    }
}

unsafe extern "C" fn respond_local(
    _instance: *mut c_void,
    ctx: *const CallContext,
    _request: ByteSlice,
    out: *const Output,
) -> i32 {
    if ctx.is_null() || out.is_null() {
        return STATUS_UNSUPPORTED;
    }
    // A 1.0 plugin wrapped every call like this: a panic must never unwind into the host.
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the host's context is valid for the call and at least the 1.0 size.
        let ctx = unsafe { &*ctx };
        // SAFETY: the host's slices live for the call.
        let (model, request_id) = unsafe { (text(ctx.model), text(ctx.request_id)) };
        answer(
            ctx.stream != 0,
            ctx.unix_time_ms / 1000,
            model,
            request_id,
            &Writer { out },
        );
        STATUS_OK
    }))
    .unwrap_or(STATUS_PANIC)
}

fn answer(stream: bool, created: u64, model: &str, request_id: &str, w: &Writer) {
    let head = format!(
        "\"id\":{},\"object\":\"{}\",\"created\":{created},\"model\":{}",
        json_string(&format!("chatcmpl-abi10-{request_id}")),
        if stream {
            "chat.completion.chunk"
        } else {
            "chat.completion"
        },
        json_string(model),
    );
    let usage = format!(
        "{{\"prompt_tokens\":{PROMPT_TOKENS},\"completion_tokens\":{COMPLETION_TOKENS},\"total_tokens\":{}}}",
        PROMPT_TOKENS + COMPLETION_TOKENS
    );
    if !stream {
        let json = format!(
            "{{{head},\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{}}},\"finish_reason\":\"stop\"}}],\"usage\":{usage}}}",
            json_string(ANSWER)
        );
        w.usage();
        w.bytes(SLOT_RESPONSE, &json, model);
        return;
    }
    let delta = |delta: &str, finish: &str| format!("[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]");
    w.chunk(
        &head,
        &delta("{\"role\":\"assistant\",\"content\":\"\"}", "null"),
        "null",
        model,
        0,
    );
    for piece in ANSWER.split_inclusive(' ') {
        let content = format!("{{\"content\":{}}}", json_string(piece));
        w.chunk(&head, &delta(&content, "null"), "null", model, 0);
    }
    w.chunk(&head, &delta("{}", "\"stop\""), "null", model, CHUNK_FINISH_REASON);
    w.usage();
    w.chunk(&head, "[]", &usage, model, CHUNK_EMPTY_CHOICES | CHUNK_HAS_USAGE);
    w.bytes(SLOT_DONE, "", "");
}
