//! Minor-version compatibility in both directions, in one process.
//!
//! The unit-test build appends a field to `PluginDecl` and `ProviderVTable` (see
//! `appended_for_tests`), so this host is a later minor than 1.0. A declaration laid out
//! exactly as ABI 1.0 lays it out must keep loading and working, and nothing past its declared
//! size may be read. The other direction — a plugin's SDK reading an older host's smaller
//! context and output — is checked with structs cut short.

use super::{Upper, info};
use crate::abi::frozen::v1_0;
use crate::abi::{ByteSlice, CallContext, CreateFn, DecodeFn, DestroyFn, EncodeRequestFn, Output, PluginDecl};
use crate::abi::{StreamCloseFn, StreamFeedFn, StreamFinishFn, StreamOpenFn, capability, slot};
use crate::host;
use crate::sdk::__private as glue;
use std::ffi::c_void;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// The ABI 1.0 declaration, frozen: never edit.
#[repr(C)]
struct DeclV1_0 {
    struct_size: u32,
    abi_major: u16,
    abi_minor: u16,
    name: ByteSlice,
    version: ByteSlice,
    capabilities: u32,
    provider: *const VTableV1_0,
    hook: *const c_void,
}

// SAFETY: immutable static data.
unsafe impl Sync for DeclV1_0 {}

/// The ABI 1.0 provider vtable, frozen: never edit.
#[repr(C)]
struct VTableV1_0 {
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

/// The 1.0 vtable and what happens to follow it in the plugin's memory: a word that would
/// read as a (bogus) function pointer if the host read past the declared size.
#[repr(C)]
struct VTableAndNeighbour {
    vtable: VTableV1_0,
    neighbour: usize,
}

static VTABLE: VTableAndNeighbour = VTableAndNeighbour {
    vtable: VTableV1_0 {
        struct_size: v1_0::PROVIDER_VTABLE_SIZE as u32,
        create: Some(glue::create::<Upper>),
        destroy: Some(glue::destroy::<Upper>),
        encode_request: Some(glue::encode_request::<Upper>),
        decode_response: Some(glue::decode_response::<Upper>),
        decode_error: Some(glue::decode_error::<Upper>),
        stream_open: Some(glue::stream_open::<Upper>),
        stream_feed: Some(glue::stream_feed),
        stream_finish: Some(glue::stream_finish),
        stream_close: Some(glue::stream_close),
        respond_local: None,
    },
    neighbour: 0x5a5a_5a5a,
};

/// Unstamped (no panic-strategy bit), as every 1.0 declaration is: it must load.
static DECL: DeclV1_0 = DeclV1_0 {
    struct_size: v1_0::PLUGIN_DECL_SIZE as u32,
    abi_major: 1,
    abi_minor: 0,
    name: ByteSlice::from_str("frozen"),
    version: ByteSlice::from_str("1.0.0"),
    capabilities: capability::PROVIDER,
    provider: &VTABLE.vtable,
    hook: std::ptr::null(),
};

#[test]
fn a_1_0_plugin_loads_and_works_in_a_host_whose_structs_grew() {
    assert_eq!(size_of::<DeclV1_0>(), v1_0::PLUGIN_DECL_SIZE);
    assert_eq!(size_of::<VTableV1_0>(), v1_0::PROVIDER_VTABLE_SIZE);
    assert!(
        size_of::<PluginDecl>() > v1_0::PLUGIN_DECL_SIZE,
        "this host is a later minor"
    );

    // SAFETY: a static declaration and vtable of their declared sizes.
    let lib = unsafe { host::from_declaration((&raw const DECL).cast::<PluginDecl>(), Path::new("abi-1.0")) }
        .expect("a 1.0 declaration loads");
    assert_eq!((lib.name.as_str(), lib.version.as_str()), ("frozen", "1.0.0"));
    assert_eq!(
        lib.operations,
        crate::abi::operation::CHAT,
        "a 1.0 declaration has no operations field: it serves chat only"
    );
    let slots = lib.provider_slots().expect("provider slots");
    assert!(
        slots.appended_for_tests.is_none(),
        "a slot past the plugin's declared size reads as absent"
    );
    assert!(slots.respond_local.is_none() && slots.encode_request.is_some());

    let codec = lib
        .provider("p", br#"{"name":"p","base_url":"http://up"}"#)
        .expect("instance through the 1.0 vtable");
    let req = codec.encode_request(&info(), b"hi").expect("encoded");
    assert_eq!((req.url.as_str(), req.body.as_slice()), ("http://up/x", &b"HI"[..]));
}

#[test]
fn a_declaration_smaller_than_1_0_is_refused() {
    static SHORT: DeclV1_0 = DeclV1_0 {
        struct_size: v1_0::PLUGIN_DECL_SIZE as u32 - 8,
        ..DECL
    };
    // SAFETY: as above (the host must not read past the declared size, which is shorter).
    let r = unsafe { host::from_declaration((&raw const SHORT).cast::<PluginDecl>(), Path::new("short")) };
    assert!(matches!(r, Err(host::LoadError::BadDeclaration { .. })), "{r:?}");
}

fn context(struct_size: usize) -> CallContext {
    CallContext {
        struct_size: struct_size as u32,
        stream: 1,
        unix_time_ms: 7,
        model: ByteSlice::from_str("m"),
        api_key: ByteSlice::from_str("k"),
        request_id: ByteSlice::from_str("r1"),
        operation: ByteSlice::from_str("chat"),
        alias: ByteSlice::from_str("fast"),
        virtual_key_id: ByteSlice::EMPTY,
        client_headers: std::ptr::null(),
        client_header_count: 0,
        hook_state: std::ptr::null_mut(),
    }
}

#[test]
fn the_sdk_reads_no_context_field_past_the_hosts_declared_size() {
    let full = context(size_of::<CallContext>());
    // SAFETY: a valid context.
    let c = unsafe { glue::context(&full) };
    assert_eq!((c.stream, c.unix_time_ms, c.model, c.request_id), (true, 7, "m", "r1"));

    // An older host whose context ended before `request_id` (the memory is there, but it is
    // not the host's: it must read as empty).
    let older = context(offset_of!(CallContext, request_id));
    // SAFETY: at least the declared size is readable.
    let c = unsafe { glue::context(&older) };
    assert_eq!((c.stream, c.model, c.api_key, c.request_id), (true, "m", "k", ""));
}

static NUMBERS: AtomicU32 = AtomicU32::new(0);

unsafe extern "C" fn count_bytes(_: *mut c_void, _: u32, _: ByteSlice, _: ByteSlice) {}
unsafe extern "C" fn count_numbers(_: *mut c_void, _: u32, _: u64) {
    NUMBERS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn the_sdk_calls_no_output_callback_past_the_hosts_declared_size() {
    let output = |struct_size: usize| Output {
        struct_size: struct_size as u32,
        host: std::ptr::null_mut(),
        put_bytes: count_bytes,
        put_u64: count_numbers,
    };
    let full = output(size_of::<Output>());
    // SAFETY: a valid output for the call.
    unsafe { glue::writer(&full) }.delay_ms(1);
    assert_eq!(NUMBERS.load(Ordering::SeqCst), 1);

    let older = output(offset_of!(Output, put_u64));
    // SAFETY: at least the declared size is readable.
    unsafe { glue::writer(&older) }.delay_ms(1);
    assert_eq!(
        NUMBERS.load(Ordering::SeqCst),
        1,
        "the callback past the end is not called"
    );
    let _ = slot::DELAY_MS;
}
