//! Hooks through the real C ABI in one process: the SDK's glue on one side, the host's
//! wrapper on the other. Every action of every phase, the per-request state's single release,
//! the panic circuit, and compatibility with a 1.0 hook vtable and a 1.0 host's context.

use super::{Upper, library as provider_library};
use crate::abi::frozen::{v1_0, v1_1};
use crate::abi::{self, ByteSlice, CallContext, CreateFn, DestroyFn, EncodeRequestFn, HeaderPair, Output, PluginDecl};
use crate::abi::{capability, hook_phase, slot};
use crate::host::{
    self, CallError, ChunkVerdict, HookCall, HookInstance, LoadError, PanicPolicy, Payload, PostAction, PreAction,
};
use crate::sdk::hook::glue;
use crate::sdk::{
    ChunkBatch, ChunkInfo, ChunkOut, Hook, HookContext, HookError, HookSetup, PostAction as SdkPost,
    PreAction as SdkPre, Rejection, Reply, ReplyChunk, Usage,
};
use std::collections::HashMap;
use std::ffi::c_void;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Releases of per-request states, by the tag of the hook instance that made them (tests run
/// in parallel, each with its own tag).
static RELEASES: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

fn releases(tag: &str) -> usize {
    let map = RELEASES.lock().expect("lock");
    map.as_ref().and_then(|m| m.get(tag)).copied().unwrap_or(0)
}

/// The per-request state: counts its own release, and holds text back across chunks.
struct Tracker {
    tag: String,
    held: String,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let mut map = RELEASES.lock().expect("lock");
        *map.get_or_insert_with(HashMap::new)
            .entry(self.tag.clone())
            .or_default() += 1;
    }
}

/// A hook whose every decision is named by its input, so one fixture covers every action.
struct Fixture {
    tag: String,
    headers: Vec<String>,
}

fn chunk_json(text: &str) -> Vec<u8> {
    format!(r#"{{"c":"{text}"}}"#).into_bytes()
}

impl Hook for Fixture {
    type State = Tracker;
    const PHASES: u32 = hook_phase::ALL;

    fn create(setup: HookSetup) -> Result<Self, String> {
        let tag = setup.config.get("tag").and_then(|t| t.as_str()).ok_or("no tag")?;
        let headers = setup
            .config
            .get("headers")
            .and_then(|h| h.as_array())
            .map(|h| h.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Ok(Fixture {
            tag: format!("{}:{tag}", setup.name),
            headers,
        })
    }

    fn wanted_headers(&self) -> Vec<String> {
        self.headers.clone()
    }

    fn pre_request(
        &self,
        ctx: &HookContext<'_>,
        request: &[u8],
        state: &mut Option<Tracker>,
    ) -> Result<SdkPre, HookError> {
        *state = Some(Tracker {
            tag: self.tag.clone(),
            held: String::new(),
        });
        Ok(match request {
            b"continue" => SdkPre::Continue,
            b"replace" => SdkPre::Replace(b"REPLACED".to_vec()),
            b"respond" => SdkPre::ShortCircuit(Reply {
                json: br#"{"answer":1}"#.to_vec(),
                model: "hook-model".into(),
                usage: Some(Usage {
                    prompt_tokens: 3,
                    completion_tokens: 4,
                    total_tokens: 7,
                    ..Usage::default()
                }),
            }),
            b"chunks" => SdkPre::ShortCircuitChunks(vec![
                ReplyChunk {
                    json: chunk_json("a"),
                    model: "hook-model".into(),
                    info: ChunkInfo::default(),
                },
                ReplyChunk {
                    json: chunk_json("b"),
                    model: "hook-model".into(),
                    info: ChunkInfo {
                        finish_reason: true,
                        ..ChunkInfo::default()
                    },
                },
            ]),
            b"reject" => SdkPre::Reject(
                Rejection::new(429, "rate_limit_error", Some("slow_down"), "wait").with_header("Retry-After", "7"),
            ),
            b"context" => {
                let seen = format!(
                    "{}|{}|{}|{}|{}",
                    ctx.operation,
                    ctx.alias,
                    ctx.virtual_key_id,
                    ctx.base.request_id,
                    ctx.header("x-tenant").unwrap_or("-"),
                );
                SdkPre::Reject(Rejection {
                    status: 418,
                    body: seen.into_bytes(),
                    headers: Vec::new(),
                })
            }
            b"fail" => return Err("the hook is broken".into()),
            b"panic" => panic!("hook bug"),
            _ => SdkPre::Continue,
        })
    }

    fn post_response(
        &self,
        _ctx: &HookContext<'_>,
        state: Option<&mut Tracker>,
        response: &[u8],
    ) -> Result<SdkPost, HookError> {
        if state.is_none() {
            return Err("no state".into());
        }
        Ok(match response {
            b"replace" => SdkPost::Replace(Reply {
                json: b"REPLACED".to_vec(),
                model: "m2".into(),
                usage: None,
            }),
            b"reject" => SdkPost::Reject(Rejection::new(451, "policy", None, "not here")),
            _ => SdkPost::Keep,
        })
    }

    fn on_chunks(
        &self,
        _ctx: &HookContext<'_>,
        state: Option<&mut Tracker>,
        chunks: ChunkBatch<'_>,
        out: &mut ChunkOut<'_, '_>,
    ) -> Result<(), HookError> {
        let state = state.ok_or("no state")?;
        if chunks.iter().all(|c| c == chunk_json("noop").as_slice()) {
            return Ok(());
        }
        for (i, c) in chunks.iter().enumerate() {
            let text = std::str::from_utf8(c).map_err(|e| e.to_string())?;
            let inner = text.trim_start_matches(r#"{"c":""#).trim_end_matches(r#""}"#);
            match inner {
                "drop" => out.drop_chunk(i),
                "replace" => out.emit(&chunk_json("REPLACED"), "m", &ChunkInfo::default()),
                "rewrite" => out.replace(i, &chunk_json("REWRITTEN")),
                "end" => out.end_with(&Rejection::new(500, "server_error", None, "cut")),
                "boom" => panic!("chunk bug"),
                held if held.starts_with("hold:") => {
                    state.held.push_str(&held[5..]);
                    // Holding every chunk of a batch writes nothing else: say so.
                    out.drop_chunk(i);
                }
                _ => out.keep(i),
            }
        }
        Ok(())
    }

    fn end_of_stream(
        &self,
        _ctx: &HookContext<'_>,
        state: Option<&mut Tracker>,
        out: &mut ChunkOut<'_, '_>,
    ) -> Result<(), HookError> {
        let state = state.ok_or("no state")?;
        if !state.held.is_empty() {
            out.emit(&chunk_json(&state.held), "m", &ChunkInfo::default());
            state.held.clear();
        }
        Ok(())
    }

    fn on_done(&self, _ctx: &HookContext<'_>, state: Option<&mut Tracker>, summary: &[u8]) -> Result<(), HookError> {
        match (state, summary) {
            (None, _) => Err("no state".into()),
            (_, b"fail") => Err("cannot log".into()),
            _ => Ok(()),
        }
    }
}

/// The fixture's declaration (the test binary's one entry symbol is the provider's, so the
/// hook is declared the way `export_plugin!` does: both vtables in one declaration).
static HOOK_VTABLE: abi::HookVTable = glue::hook_vtable::<Fixture>();
static PROVIDER_VTABLE: abi::ProviderVTable = crate::sdk::__private::provider_vtable::<Upper>();
static BOTH: PluginDecl =
    crate::sdk::__private::plugin_declaration("both", "1.1.0", false, true, Some(&PROVIDER_VTABLE), Some(&HOOK_VTABLE));

fn library() -> host::PluginLibrary {
    // SAFETY: a static declaration built by the SDK.
    unsafe { host::from_declaration(&BOTH, Path::new("in-process")) }.expect("valid declaration")
}

fn hook(tag: &str) -> Arc<HookInstance> {
    hook_with(tag, PanicPolicy::default())
}

fn hook_with(tag: &str, policy: PanicPolicy) -> Arc<HookInstance> {
    let config = format!(r#"{{"tag":"{tag}","headers":["X-Tenant"]}}"#);
    Arc::new(library().hook("h", config.as_bytes(), policy).expect("hook instance"))
}

fn call() -> HookCall<'static> {
    HookCall {
        request_id: "r1",
        operation: "chat",
        alias: "fast",
        ..HookCall::default()
    }
}

fn chunk(text: &str) -> Payload {
    Payload {
        json: chunk_json(text),
        model: Arc::from("m"),
        ..Payload::default()
    }
}

fn texts(chunks: &[Payload]) -> Vec<String> {
    chunks
        .iter()
        .map(|p| String::from_utf8_lossy(&p.json).into_owned())
        .collect()
}

#[test]
fn one_library_declares_provider_and_hook() {
    let lib = library();
    assert!(lib.is_provider() && lib.is_hook());
    assert_ne!(lib.capabilities & capability::PANIC_UNWIND, 0);
    lib.provider("p", br#"{"name":"p"}"#)
        .expect("the provider side works too");
    let h = hook("decl");
    assert_eq!(h.phases(), hook_phase::ALL);
    assert_eq!(h.wanted_headers(), ["x-tenant"]);
    assert_eq!(h.name(), "h");
    // The provider-only library is not a hook.
    let r = provider_library().hook("h", b"{}", PanicPolicy::default());
    assert!(matches!(r, Err(LoadError::NotAHook { .. })), "{r:?}");
    // A refused config names the hook and the reason.
    let r = library().hook("h", b"{}", PanicPolicy::default());
    assert!(
        matches!(&r, Err(LoadError::CreateHook { reason, .. }) if reason == "no tag"),
        "{r:?}"
    );
}

#[test]
fn every_pre_request_action() {
    let h = hook("pre");
    let pre = |req: &[u8]| h.start().pre_request(&call(), req).expect("action");
    assert!(matches!(pre(b"continue"), PreAction::Continue));
    assert!(matches!(pre(b"replace"), PreAction::Replace(r) if r == b"REPLACED"));
    match pre(b"respond") {
        PreAction::Respond(p) => {
            assert_eq!(p.json, br#"{"answer":1}"#);
            assert_eq!(&*p.model, "hook-model");
            assert_eq!(p.usage.map(|u| u.total_tokens), Some(7));
        }
        other => panic!("{other:?}"),
    }
    match pre(b"chunks") {
        PreAction::RespondChunks(c) => {
            assert_eq!(texts(&c), [r#"{"c":"a"}"#, r#"{"c":"b"}"#]);
            assert!(!c[0].has_finish_reason() && c[1].has_finish_reason());
        }
        other => panic!("{other:?}"),
    }
    match pre(b"reject") {
        PreAction::Reject(r) => {
            assert_eq!(r.status, 429);
            assert_eq!(r.headers, [("Retry-After".to_string(), "7".to_string())]);
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json body");
            assert_eq!(body["error"]["code"], "slow_down");
            assert_eq!(body["error"]["type"], "rate_limit_error");
        }
        other => panic!("{other:?}"),
    }
    // Every request's state was released once its handle went.
    assert_eq!(releases("h:pre"), 5);
}

#[test]
fn the_context_carries_operation_alias_key_and_the_headers_asked_for() {
    let h = hook("ctx");
    let headers = [HeaderPair::new("x-tenant", "acme")];
    let info = HookCall {
        virtual_key_id: "vk-1",
        headers: &headers,
        ..call()
    };
    match h.start().pre_request(&info, b"context").expect("action") {
        PreAction::Reject(r) => assert_eq!(r.body, b"chat|fast|vk-1|r1|acme"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_post_response_action() {
    let h = hook("post");
    let mut req = h.start();
    req.pre_request(&call(), b"continue").expect("pre");
    assert!(matches!(req.post_response(&call(), b"keep"), Ok(PostAction::Keep)));
    assert!(
        matches!(req.post_response(&call(), b"replace"), Ok(PostAction::Replace(p)) if p.json == b"REPLACED" && &*p.model == "m2")
    );
    assert!(matches!(req.post_response(&call(), b"reject"), Ok(PostAction::Reject(r)) if r.status == 451));
    // Without pre_request there is no state: the fixture reports that as its own failure.
    let r = h.start().post_response(&call(), b"keep");
    assert!(
        matches!(&r, Err(CallError::Plugin(e)) if e.message == "no state"),
        "{r:?}"
    );
}

#[test]
fn every_chunk_action_and_held_back_text() {
    let h = hook("chunks");
    let mut req = h.start();
    req.pre_request(&call(), b"continue").expect("pre");

    // A hook that writes nothing leaves the batch untouched.
    let mut batch = vec![chunk("noop"), chunk("noop")];
    assert_eq!(req.on_chunks(&call(), &mut batch).expect("ok"), ChunkVerdict::Continue);
    assert_eq!(texts(&batch), [r#"{"c":"noop"}"#, r#"{"c":"noop"}"#]);

    // Keep, drop, replace, hold back, in one batch.
    let mut batch = vec![
        chunk("one"),
        chunk("drop"),
        chunk("replace"),
        chunk("hold:se"),
        chunk("two"),
    ];
    assert_eq!(req.on_chunks(&call(), &mut batch).expect("ok"), ChunkVerdict::Continue);
    assert_eq!(
        texts(&batch),
        [r#"{"c":"one"}"#, r#"{"c":"REPLACED"}"#, r#"{"c":"two"}"#]
    );

    // A rewrite keeps its input's model, usage and flags; a new chunk has its own.
    let mut flagged = chunk("rewrite");
    flagged.model = Arc::from("upstream-model");
    flagged.flags = crate::abi::chunk_flag::FINISH_REASON | crate::abi::chunk_flag::HAS_USAGE;
    flagged.usage = Some(crate::host::Usage {
        total_tokens: 9,
        ..Default::default()
    });
    let mut batch = vec![chunk("one"), flagged, chunk("replace")];
    req.on_chunks(&call(), &mut batch).expect("ok");
    assert_eq!(
        texts(&batch),
        [r#"{"c":"one"}"#, r#"{"c":"REWRITTEN"}"#, r#"{"c":"REPLACED"}"#]
    );
    assert_eq!(&*batch[1].model, "upstream-model");
    assert!(batch[1].has_finish_reason());
    assert_eq!(batch[1].usage.map(|u| u.total_tokens), Some(9));
    assert_eq!((&*batch[2].model, batch[2].flags, batch[2].usage), ("m", 0, None));

    // Text held across batches comes out at the end of the stream.
    let mut batch = vec![chunk("hold:cret")];
    req.on_chunks(&call(), &mut batch).expect("ok");
    assert!(batch.is_empty(), "all held back");
    let mut tail = Vec::new();
    assert_eq!(
        req.end_of_stream(&call(), &mut tail).expect("ok"),
        ChunkVerdict::Continue
    );
    assert_eq!(texts(&tail), [r#"{"c":"secret"}"#]);

    // Ending the stream with an error keeps what came before it.
    let mut batch = vec![chunk("one"), chunk("end"), chunk("never")];
    match req.on_chunks(&call(), &mut batch).expect("ok") {
        ChunkVerdict::End(r) => assert_eq!(r.status, 500),
        other => panic!("{other:?}"),
    }
    assert_eq!(texts(&batch)[0], r#"{"c":"one"}"#);

    req.on_done(&call(), br#"{"status":200}"#).expect("done");
    let r = req.on_done(&call(), b"fail");
    assert!(
        matches!(&r, Err(CallError::Plugin(e)) if e.message == "cannot log" && e.error_type.as_deref() == Some("hook_failed")),
        "{r:?}"
    );
    assert_eq!(releases("h:chunks"), 0, "held while the request lives");
    drop(req);
    assert_eq!(releases("h:chunks"), 1);
}

#[test]
fn state_is_released_exactly_once_on_success_error_panic_and_early_drop() {
    let h = hook("release");
    // Success through every phase.
    {
        let mut req = h.start();
        req.pre_request(&call(), b"continue").expect("pre");
        assert!(req.has_state());
        req.post_response(&call(), b"keep").expect("post");
        req.on_done(&call(), b"{}").expect("done");
    }
    assert_eq!(releases("h:release"), 1);
    // The hook failed after creating its state: the host still got it, and releases it once.
    {
        let mut req = h.start();
        let r = req.pre_request(&call(), b"fail");
        assert!(
            matches!(&r, Err(CallError::Plugin(e)) if e.message == "the hook is broken"),
            "{r:?}"
        );
        assert!(req.has_state());
    }
    assert_eq!(releases("h:release"), 2);
    // A panic drops the state inside the plugin while unwinding; the host never sees it.
    {
        let mut req = h.start();
        assert!(matches!(
            req.pre_request(&call(), b"panic"),
            Err(CallError::Panicked { .. })
        ));
        assert!(!req.has_state());
    }
    assert_eq!(releases("h:release"), 3);
    // Client gone right after pre_request.
    let mut req = h.start();
    req.pre_request(&call(), b"continue").expect("pre");
    drop(req);
    assert_eq!(releases("h:release"), 4);
    // A second pre_request on the same handle (never done by the gateway) releases the first.
    let mut req = h.start();
    req.pre_request(&call(), b"continue").expect("pre");
    req.pre_request(&call(), b"continue").expect("pre");
    assert_eq!(releases("h:release"), 5);
    drop(req);
    assert_eq!(releases("h:release"), 6);
}

#[test]
fn a_panicking_hook_is_disabled_and_recovers_through_a_probe() {
    let policy = PanicPolicy {
        limit: 2,
        cooldown: Duration::from_millis(50),
    };
    let h = hook_with("panics", policy);
    for _ in 0..2 {
        assert!(matches!(
            h.start().pre_request(&call(), b"panic"),
            Err(CallError::Panicked { .. })
        ));
    }
    assert!(h.is_disabled());
    assert_eq!(h.panic_count(), 2);
    assert!(matches!(
        h.start().pre_request(&call(), b"continue"),
        Err(CallError::Disabled { .. })
    ));
    // Chunk-phase panics count in the same circuit.
    let mut batch = vec![chunk("boom")];
    assert!(matches!(
        h.start().on_chunks(&call(), &mut batch),
        Err(CallError::Disabled { .. })
    ));
    std::thread::sleep(Duration::from_millis(80));
    assert!(matches!(
        h.start().pre_request(&call(), b"continue"),
        Ok(PreAction::Continue)
    ));
    assert!(!h.is_disabled());
}

// ---- validation and compatibility ----

/// The ABI 1.0 hook vtable, frozen: never edit.
#[repr(C)]
struct HookV1_0 {
    struct_size: u32,
    phases: u32,
    create: Option<CreateFn>,
    destroy: Option<DestroyFn>,
    pre_request: Option<EncodeRequestFn>,
    post_response: Option<EncodeRequestFn>,
    on_chunk: Option<EncodeRequestFn>,
    on_done: Option<EncodeRequestFn>,
}

/// The 1.0 vtable and a neighbour that would read as a bogus `release_state` if the host read
/// past the declared size.
#[repr(C)]
struct HookAndNeighbour {
    vtable: HookV1_0,
    neighbour: [usize; 3],
}

#[repr(C)]
struct DeclV1_0 {
    struct_size: u32,
    abi_major: u16,
    abi_minor: u16,
    name: ByteSlice,
    version: ByteSlice,
    capabilities: u32,
    provider: *const c_void,
    hook: *const HookAndNeighbour,
}

// SAFETY: immutable static data.
unsafe impl Sync for DeclV1_0 {}

static LEGACY_INSTANCE: u8 = 0;

unsafe extern "C" fn legacy_create(_: ByteSlice, _: *const Output) -> *mut c_void {
    (&raw const LEGACY_INSTANCE).cast_mut().cast()
}
unsafe extern "C" fn legacy_destroy(_: *mut c_void) {}

/// 1.0's replace was BODY; it also puts a state it has no way to release, which the host must
/// ignore.
unsafe extern "C" fn legacy_pre(_: *mut c_void, _: *const CallContext, req: ByteSlice, out: *const Output) -> i32 {
    // SAFETY: valid for the call (host contract).
    let (out, req) = unsafe { (&*out, req.as_slice()) };
    // SAFETY: the host's callbacks with its own pointer.
    unsafe {
        (out.put_u64)(out.host, slot::HOOK_STATE, 0xdead_beef);
        if req == b"replace" {
            (out.put_bytes)(out.host, slot::BODY, ByteSlice::from_str("OLD-STYLE"), ByteSlice::EMPTY);
        }
    }
    abi::status::OK
}

/// 1.0's per-chunk call: CHUNK replaces, nothing keeps.
unsafe extern "C" fn legacy_chunk(_: *mut c_void, _: *const CallContext, c: ByteSlice, out: *const Output) -> i32 {
    // SAFETY: valid for the call (host contract).
    let (out, c) = unsafe { (&*out, c.as_slice()) };
    if c == chunk_json("replace").as_slice() {
        let new = chunk_json("LEGACY");
        // SAFETY: the host's callbacks with its own pointer.
        unsafe {
            (out.put_bytes)(
                out.host,
                slot::CHUNK,
                ByteSlice::from_slice(&new),
                ByteSlice::from_str("m"),
            )
        };
    }
    abi::status::OK
}

const LEGACY_VTABLE: HookV1_0 = HookV1_0 {
    struct_size: v1_0::HOOK_VTABLE_SIZE as u32,
    phases: hook_phase::PRE_REQUEST | hook_phase::ON_CHUNK,
    create: Some(legacy_create),
    destroy: Some(legacy_destroy),
    pre_request: Some(legacy_pre),
    post_response: None,
    on_chunk: Some(legacy_chunk),
    on_done: None,
};

static LEGACY_HOOK: HookAndNeighbour = HookAndNeighbour {
    vtable: LEGACY_VTABLE,
    neighbour: [0x5a5a_5a5a; 3],
};

const fn legacy_decl(hook: &'static HookAndNeighbour) -> DeclV1_0 {
    DeclV1_0 {
        struct_size: v1_0::PLUGIN_DECL_SIZE as u32,
        abi_major: 1,
        abi_minor: 0,
        name: ByteSlice::from_str("legacy-hook"),
        version: ByteSlice::from_str("1.0.0"),
        capabilities: capability::HOOK,
        provider: std::ptr::null(),
        hook,
    }
}

static LEGACY: DeclV1_0 = legacy_decl(&LEGACY_HOOK);

fn load(decl: &'static DeclV1_0) -> Result<host::PluginLibrary, LoadError> {
    // SAFETY: static declarations and vtables of their declared sizes.
    unsafe { host::from_declaration((&raw const *decl).cast::<PluginDecl>(), Path::new("abi-1.0-hook")) }
}

#[test]
fn a_1_0_hook_vtable_loads_and_runs_without_its_1_1_slots() {
    assert_eq!(size_of::<HookV1_0>(), v1_0::HOOK_VTABLE_SIZE);
    assert!(size_of::<abi::HookVTable>() > v1_0::HOOK_VTABLE_SIZE);
    let lib = load(&LEGACY).expect("a 1.0 hook loads");
    let h = Arc::new(lib.hook("old", b"", PanicPolicy::default()).expect("instance"));
    let mut req = h.start();
    assert!(matches!(req.pre_request(&call(), b"continue"), Ok(PreAction::Continue)));
    assert!(
        !req.has_state(),
        "a hook that cannot release a state gets none handed back"
    );
    assert!(matches!(req.pre_request(&call(), b"replace"), Ok(PreAction::Replace(r)) if r == b"OLD-STYLE"));
    let mut batch = vec![chunk("one"), chunk("replace"), chunk("two")];
    assert_eq!(req.on_chunks(&call(), &mut batch).expect("ok"), ChunkVerdict::Continue);
    assert_eq!(texts(&batch), [r#"{"c":"one"}"#, r#"{"c":"LEGACY"}"#, r#"{"c":"two"}"#]);
    // Phases it did not declare cost nothing and change nothing.
    assert!(matches!(req.post_response(&call(), b"x"), Ok(PostAction::Keep)));
    let mut tail = Vec::new();
    assert_eq!(
        req.end_of_stream(&call(), &mut tail).expect("ok"),
        ChunkVerdict::Continue
    );
    assert!(tail.is_empty());
}

#[test]
fn hook_vtables_are_validated_at_load() {
    static NO_PRE: HookAndNeighbour = HookAndNeighbour {
        vtable: HookV1_0 {
            pre_request: None,
            ..LEGACY_VTABLE
        },
        neighbour: [0; 3],
    };
    static UNKNOWN_PHASE: HookAndNeighbour = HookAndNeighbour {
        vtable: HookV1_0 {
            phases: 1 << 9,
            ..LEGACY_VTABLE
        },
        neighbour: [0; 3],
    };
    static NO_PHASE: HookAndNeighbour = HookAndNeighbour {
        vtable: HookV1_0 {
            phases: 0,
            ..LEGACY_VTABLE
        },
        neighbour: [0; 3],
    };
    static SHORT: HookAndNeighbour = HookAndNeighbour {
        vtable: HookV1_0 {
            struct_size: v1_0::HOOK_VTABLE_SIZE as u32 - 8,
            ..LEGACY_VTABLE
        },
        neighbour: [0; 3],
    };
    static DECLS: [DeclV1_0; 4] = [
        legacy_decl(&NO_PRE),
        legacy_decl(&UNKNOWN_PHASE),
        legacy_decl(&NO_PHASE),
        legacy_decl(&SHORT),
    ];
    let reasons = [
        "no pre_request function",
        "phases this gateway does not know",
        "no phase",
        "not sane",
    ];
    for (decl, reason) in DECLS.iter().zip(reasons) {
        let r = load(decl);
        assert!(
            matches!(&r, Err(LoadError::BadDeclaration { reason: got, .. }) if got.contains(reason)),
            "{reason}: {r:?}"
        );
    }
}

fn hook_context_of(size: usize, headers: &[HeaderPair]) -> CallContext {
    CallContext {
        struct_size: size as u32,
        stream: 1,
        unix_time_ms: 7,
        model: ByteSlice::from_str("m"),
        api_key: ByteSlice::EMPTY,
        request_id: ByteSlice::from_str("r1"),
        operation: ByteSlice::from_str("chat"),
        alias: ByteSlice::from_str("fast"),
        virtual_key_id: ByteSlice::from_str("vk"),
        client_headers: headers.as_ptr(),
        client_header_count: headers.len(),
        hook_state: (&raw const LEGACY_INSTANCE).cast_mut().cast(),
    }
}

#[test]
fn the_sdk_reads_a_1_0_hosts_smaller_context_as_empty_hook_fields() {
    assert_eq!(size_of::<CallContext>(), v1_1::CALL_CONTEXT_SIZE);
    let headers = [HeaderPair::new("x-tenant", "acme")];
    let full = hook_context_of(v1_1::CALL_CONTEXT_SIZE, &headers);
    // SAFETY: a valid context whose slices are static.
    let (c, state) = unsafe { glue::hook_context(&full) };
    assert_eq!((c.operation, c.alias, c.virtual_key_id), ("chat", "fast", "vk"));
    assert_eq!(c.header("X-Tenant"), Some("acme"));
    assert!(!state.is_null());

    // A 1.0 host: the memory past its size is there but not its own, and must read as empty.
    let older = hook_context_of(v1_0::CALL_CONTEXT_SIZE, &headers);
    // SAFETY: at least the declared size is readable.
    let (c, state) = unsafe { glue::hook_context(&older) };
    assert_eq!((c.base.request_id, c.base.stream), ("r1", true));
    assert_eq!((c.operation, c.alias, c.virtual_key_id), ("", "", ""));
    assert_eq!(c.headers().count(), 0);
    assert!(state.is_null());
    // A host cut off between the header pointer and its count reads no header either.
    let cut = hook_context_of(offset_of!(CallContext, client_header_count), &headers);
    // SAFETY: as above.
    let (c, _) = unsafe { glue::hook_context(&cut) };
    assert_eq!((c.alias, c.headers().count()), ("fast", 0));
}
