//! The SDK and the host wrapper talking through the real C ABI, in one process.

use crate::abi::{self, PluginDecl};
use crate::host::{self, CallError, CallInfo, Item, LoadError, PANIC_LIMIT, PanicPolicy};
use crate::sdk::{ChunkInfo, Context, ErrorKind, Out, Provider, ProviderError, ProviderSetup, StreamDecoder, Usage};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod abi_v1_0;
mod hooks;

struct Upper {
    base: String,
}

struct Lines {
    buf: Vec<u8>,
}

impl StreamDecoder for Lines {
    fn feed(&mut self, _ctx: &Context<'_>, bytes: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        self.buf.extend_from_slice(bytes);
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            match &line[..line.len() - 1] {
                b"done" => out.done(),
                b"boom" => panic!("decoder exploded"),
                b"err" => out.error(&ProviderError::new(500, ErrorKind::Server, "mid-stream")),
                text => out.chunk(text, "m", &ChunkInfo::default()),
            }
        }
        Ok(())
    }
    fn finish(&mut self, _ctx: &Context<'_>, out: &mut Out<'_>) -> Result<(), ProviderError> {
        if !self.buf.is_empty() {
            out.chunk(&self.buf, "m", &ChunkInfo::default());
            self.buf.clear();
        }
        Ok(())
    }
}

impl Provider for Upper {
    fn create(setup: ProviderSetup) -> Result<Self, String> {
        if setup.options.get("refuse").is_some() {
            return Err("refused by options".into());
        }
        Ok(Upper {
            base: setup.base_url.unwrap_or_else(|| "http://default".into()),
        })
    }

    fn encode_request(&self, ctx: &Context<'_>, request: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        if request == b"panic" {
            panic!("plugin bug");
        }
        if request == b"hold" {
            hold();
        }
        if request == b"bad" {
            return Err(ProviderError::invalid_request("cannot encode").with_param("messages"));
        }
        out.method("POST");
        out.url(&format!("{}/x", self.base));
        out.header("authorization", &format!("Bearer {}", ctx.api_key));
        out.body(&request.to_ascii_uppercase());
        Ok(())
    }

    fn decode_response(
        &self,
        _ctx: &Context<'_>,
        _status: u16,
        body: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), ProviderError> {
        let usage = Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
            total_tokens: 7,
            ..Usage::default()
        };
        out.response(body, "up-model", Some(&usage));
        Ok(())
    }

    fn open_stream(&self, _ctx: &Context<'_>) -> Option<Box<dyn StreamDecoder>> {
        Some(Box::new(Lines { buf: Vec::new() }))
    }
}

crate::export_provider!(Upper, name = "upper", version = "9.9.9");

/// Calls to `encode_request(b"hold")` that have started.
static HELD: AtomicUsize = AtomicUsize::new(0);
/// Lets held calls return.
static RELEASE: AtomicBool = AtomicBool::new(false);

/// Blocks the calling plugin call until [`RELEASE`] (or a generous deadline, so a broken test
/// fails instead of hanging).
fn hold() {
    HELD.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !RELEASE.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

// The macro's entry symbol is unnameable in Rust; reach it by its C name, as the host does.
unsafe extern "C" {
    fn switchyard_plugin_entry_v1() -> *const PluginDecl;
}

fn library() -> host::PluginLibrary {
    // SAFETY: the declaration is the static one the macro exported in this binary.
    unsafe { host::from_declaration(switchyard_plugin_entry_v1(), Path::new("in-process")) }.expect("valid declaration")
}

fn codec(options: &str) -> Result<host::ProviderCodec, LoadError> {
    let setup = format!(r#"{{"name":"p","base_url":"http://up","options":{options}}}"#);
    library().provider("p", setup.as_bytes())
}

fn codec_with(policy: PanicPolicy) -> host::ProviderCodec {
    library()
        .provider_with("p", br#"{"name":"p","base_url":"http://up"}"#, policy)
        .expect("instance")
}

fn info() -> CallInfo<'static> {
    CallInfo {
        stream: false,
        unix_time_ms: 1,
        model: "m",
        api_key: "sk-secret",
        request_id: "r1",
        ..CallInfo::default()
    }
}

#[test]
fn declaration_is_read() {
    let lib = library();
    assert_eq!(lib.name, "upper");
    assert_eq!(lib.version, "9.9.9");
    assert!(lib.is_provider());
    assert!(!lib.is_local());
    // The export macro stamps the panic strategy of the crate it expands in (tests unwind).
    assert_ne!(lib.capabilities & abi::capability::PANIC_UNWIND, 0);
    assert_eq!(lib.capabilities & abi::capability::PANIC_ABORT, 0);
}

#[test]
fn encode_and_decode_round_trip() {
    let c = codec("{}").expect("instance");
    let req = c.encode_request(&info(), b"hello").expect("encoded");
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "http://up/x");
    assert_eq!(
        req.headers,
        vec![("authorization".to_string(), "Bearer sk-secret".to_string())]
    );
    assert_eq!(req.body, b"HELLO");
    let resp = c.decode_response(&info(), 200, b"{\"a\":1}").expect("decoded");
    assert_eq!(resp.json, b"{\"a\":1}");
    assert_eq!(&*resp.model, "up-model");
    assert_eq!(resp.usage.map(|u| u.total_tokens), Some(7));
}

#[test]
fn plugin_errors_come_back_in_the_unified_shape() {
    let c = codec("{}").expect("instance");
    match c.encode_request(&info(), b"bad") {
        Err(CallError::Plugin(e)) => {
            assert_eq!(e.status, 400);
            assert_eq!(e.param.as_deref(), Some("messages"));
            assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));
        }
        other => panic!("expected a plugin error, got {other:?}"),
    }
    let e = c.decode_error(&info(), 429, b"slow down").expect("decoded error");
    assert_eq!(e.status, 429);
    assert!(e.retryable);
    assert_eq!(e.kind, abi::error_kind::RATE_LIMIT);
}

#[test]
fn create_failure_names_plugin_provider_and_reason() {
    let err = codec(r#"{"refuse":true}"#).expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("upper") && text.contains("refused by options"), "{text}");
}

#[test]
fn unsupported_calls_are_reported_not_faked() {
    let c = codec("{}").expect("instance");
    assert!(matches!(
        c.respond_local(&info(), b"{}"),
        Err(CallError::Unsupported { .. })
    ));
}

#[test]
fn panics_become_errors_and_repeated_panics_disable_the_instance() {
    let c = codec("{}").expect("instance");
    for _ in 0..PANIC_LIMIT {
        assert!(matches!(
            c.encode_request(&info(), b"panic"),
            Err(CallError::Panicked { .. })
        ));
    }
    assert!(c.is_disabled());
    assert!(matches!(
        c.encode_request(&info(), b"hello"),
        Err(CallError::Disabled { .. })
    ));
}

fn short_cooldown(limit: u32) -> PanicPolicy {
    PanicPolicy {
        limit,
        cooldown: Duration::from_millis(40),
    }
}

fn panicked(r: Result<host::HttpRequestParts, CallError>) -> bool {
    matches!(r, Err(CallError::Panicked { .. }))
}

fn disabled(r: Result<host::HttpRequestParts, CallError>) -> bool {
    matches!(r, Err(CallError::Disabled { .. }))
}

#[test]
fn a_disabled_instance_recovers_through_a_probe_after_the_cooldown() {
    let c = codec_with(short_cooldown(3));
    for _ in 0..3 {
        assert!(panicked(c.encode_request(&info(), b"panic")));
    }
    assert!(c.is_disabled());
    assert!(disabled(c.encode_request(&info(), b"hello")), "fails fast while off");
    std::thread::sleep(Duration::from_millis(60));
    // The probe panics: off for another cooldown.
    assert!(panicked(c.encode_request(&info(), b"panic")));
    assert!(c.is_disabled());
    assert!(disabled(c.encode_request(&info(), b"hello")));
    std::thread::sleep(Duration::from_millis(60));
    // The probe succeeds: on again, with the count reset.
    c.encode_request(&info(), b"hello").expect("the probe goes through");
    assert!(!c.is_disabled());
    c.encode_request(&info(), b"hello").expect("on again");
    assert!(panicked(c.encode_request(&info(), b"panic")));
    assert!(!c.is_disabled(), "one panic after recovery is under the limit");
    assert_eq!(c.panic_count(), 5);
}

#[test]
fn a_normal_return_between_panics_resets_the_count() {
    let c = codec_with(short_cooldown(2));
    for _ in 0..5 {
        assert!(panicked(c.encode_request(&info(), b"panic")));
        // A reported error is a normal return too: the plugin's code ran to the end.
        assert!(matches!(c.encode_request(&info(), b"bad"), Err(CallError::Plugin(_))));
    }
    assert!(!c.is_disabled());
}

#[test]
fn only_one_of_many_concurrent_calls_is_the_probe() {
    let c = Arc::new(codec_with(short_cooldown(1)));
    assert!(panicked(c.encode_request(&info(), b"panic")));
    std::thread::sleep(Duration::from_millis(60));
    const CALLERS: usize = 16;
    let start = Arc::new(std::sync::Barrier::new(CALLERS));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (c, start, done_tx) = (Arc::clone(&c), Arc::clone(&start), done_tx.clone());
            std::thread::spawn(move || {
                start.wait();
                let r = c.encode_request(&info(), b"hold");
                let ok = r.is_ok();
                let _ = done_tx.send(());
                (ok, disabled(r))
            })
        })
        .collect();
    // Every caller but the probe fails fast while the probe is held inside the plugin.
    for _ in 0..CALLERS - 1 {
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a caller fails fast");
    }
    assert_eq!(HELD.load(Ordering::SeqCst), 1, "exactly one call reached the plugin");
    RELEASE.store(true, Ordering::SeqCst);
    let results: Vec<(bool, bool)> = threads.into_iter().map(|t| t.join().expect("caller")).collect();
    assert_eq!(results.iter().filter(|r| r.0).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| r.1).count(), CALLERS - 1, "{results:?}");
    assert!(!c.is_disabled(), "the probe succeeded");
}

#[test]
fn stream_decoder_panics_count_in_the_same_circuit() {
    let c = Arc::new(codec_with(short_cooldown(2)));
    let mut items = Vec::new();
    // Two streams opened first: opening one is a normal return, which resets the count.
    let mut streams = [
        c.open_stream(&info()).expect("stream"),
        c.open_stream(&info()).expect("stream"),
    ];
    for s in &mut streams {
        assert!(matches!(
            s.feed(&info(), b"boom\n", &mut items),
            Err(CallError::Panicked { .. })
        ));
    }
    assert!(c.is_disabled());
    assert!(matches!(c.open_stream(&info()), Err(CallError::Disabled { .. })));
    assert!(disabled(c.encode_request(&info(), b"hello")));
    std::thread::sleep(Duration::from_millis(60));
    // A stream's calls can be the probe too.
    let mut s = c.open_stream(&info()).expect("the probe opens a stream");
    assert!(!c.is_disabled());
    s.feed(&info(), b"one\n", &mut items).expect("fed");
}

#[test]
fn stream_decoder_gets_arbitrary_fragments() {
    let c = Arc::new(codec("{}").expect("instance"));
    let mut s = c.open_stream(&info()).expect("stream");
    let mut items = Vec::new();
    for frag in [&b"one\ntw"[..], b"o", b"\nerr\ndone\ntail"] {
        s.feed(&info(), frag, &mut items).expect("fed");
    }
    s.finish(&info(), &mut items).expect("finished");
    let kinds: Vec<String> = items
        .iter()
        .map(|i| match i {
            Item::Chunk(p) => String::from_utf8_lossy(&p.json).into_owned(),
            Item::Done => "DONE".into(),
            Item::Error(e) => format!("ERR {}", e.status),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["one", "two", "ERR 500", "DONE", "tail"]);
    // A panic inside the decoder is an error for that stream, not a crash.
    assert!(matches!(
        s.feed(&info(), b"boom\n", &mut items),
        Err(CallError::Panicked { .. })
    ));
}

const fn declaration(name: &'static str, major: u16, minor: u16, capabilities: u32) -> PluginDecl {
    PluginDecl {
        struct_size: std::mem::size_of::<PluginDecl>() as u32,
        abi_major: major,
        abi_minor: minor,
        name: abi::ByteSlice::from_str(name),
        version: abi::ByteSlice::from_str("1"),
        capabilities,
        provider: std::ptr::null(),
        hook: std::ptr::null(),
        operations: abi::operation::CHAT,
        appended_for_tests: 0,
    }
}

static FUTURE_MAJOR: PluginDecl = declaration("future", abi::ABI_MAJOR + 1, 0, 0);
static NEWER_MINOR: PluginDecl = declaration("newer", abi::ABI_MAJOR, abi::ABI_MINOR + 1, 0);
static NO_VTABLE: PluginDecl = declaration("hollow", abi::ABI_MAJOR, 0, abi::capability::PROVIDER);
static NO_HOOK_VTABLE: PluginDecl = declaration("hookless", abi::ABI_MAJOR, 0, abi::capability::HOOK);
static PANIC_ABORT: PluginDecl = declaration("aborter", abi::ABI_MAJOR, 0, abi::capability::PANIC_ABORT);

#[test]
fn version_and_declaration_checks_refuse_bad_plugins() {
    let check = |d: &'static PluginDecl| {
        // SAFETY: static declarations.
        unsafe { host::from_declaration(d, Path::new("x.so")) }
    };
    assert!(matches!(check(&FUTURE_MAJOR), Err(LoadError::AbiVersion { major, .. }) if major == abi::ABI_MAJOR + 1));
    assert!(matches!(check(&NEWER_MINOR), Err(LoadError::AbiVersion { .. })));
    assert!(matches!(check(&NO_VTABLE), Err(LoadError::BadDeclaration { .. })));
    assert!(matches!(check(&NO_HOOK_VTABLE), Err(LoadError::BadDeclaration { .. })));
    // SAFETY: null is allowed and refused.
    assert!(matches!(
        unsafe { host::from_declaration(std::ptr::null(), Path::new("x.so")) },
        Err(LoadError::BadDeclaration { .. })
    ));
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = host::load(Path::new("/nonexistent/libswitchyard_nope.so")).expect_err("missing");
    assert!(err.to_string().contains("does not exist"));
}

#[test]
fn a_plugin_built_with_panic_abort_is_refused_with_the_fix() {
    // SAFETY: a static declaration.
    let err =
        unsafe { host::from_declaration(&PANIC_ABORT, Path::new("/p/libswitchyard_aborter.so")) }.expect_err("refused");
    assert!(matches!(err, LoadError::PanicAbort { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("aborter") && text.contains("/p/libswitchyard_aborter.so"),
        "{text}"
    );
    assert!(text.contains(r#"build it with panic = "unwind""#), "{text}");
}
