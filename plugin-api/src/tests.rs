//! The SDK and the host wrapper talking through the real C ABI, in one process.

use crate::abi::{self, PluginDecl};
use crate::host::{self, CallError, CallInfo, Item, LoadError, PANIC_LIMIT};
use crate::sdk::{ChunkInfo, Context, ErrorKind, Out, Provider, ProviderError, ProviderSetup, StreamDecoder, Usage};
use std::path::Path;
use std::sync::Arc;

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

fn info() -> CallInfo<'static> {
    CallInfo {
        stream: false,
        unix_time_ms: 1,
        model: "m",
        api_key: "sk-secret",
        request_id: "r1",
    }
}

#[test]
fn declaration_is_read() {
    let lib = library();
    assert_eq!(lib.name, "upper");
    assert_eq!(lib.version, "9.9.9");
    assert!(lib.is_provider());
    assert!(!lib.is_local());
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

static FUTURE_MAJOR: PluginDecl = PluginDecl {
    struct_size: std::mem::size_of::<PluginDecl>() as u32,
    abi_major: abi::ABI_MAJOR + 1,
    abi_minor: 0,
    name: abi::ByteSlice::from_str("future"),
    version: abi::ByteSlice::from_str("1"),
    capabilities: 0,
    provider: std::ptr::null(),
    hook: std::ptr::null(),
};

static NEWER_MINOR: PluginDecl = PluginDecl {
    struct_size: std::mem::size_of::<PluginDecl>() as u32,
    abi_major: abi::ABI_MAJOR,
    abi_minor: abi::ABI_MINOR + 1,
    name: abi::ByteSlice::from_str("newer"),
    version: abi::ByteSlice::from_str("1"),
    capabilities: 0,
    provider: std::ptr::null(),
    hook: std::ptr::null(),
};

static NO_VTABLE: PluginDecl = PluginDecl {
    struct_size: std::mem::size_of::<PluginDecl>() as u32,
    abi_major: abi::ABI_MAJOR,
    abi_minor: 0,
    name: abi::ByteSlice::from_str("hollow"),
    version: abi::ByteSlice::from_str("1"),
    capabilities: abi::capability::PROVIDER,
    provider: std::ptr::null(),
    hook: std::ptr::null(),
};

#[test]
fn version_and_declaration_checks_refuse_bad_plugins() {
    let check = |d: &'static PluginDecl| {
        // SAFETY: static declarations.
        unsafe { host::from_declaration(d, Path::new("x.so")) }
    };
    assert!(matches!(check(&FUTURE_MAJOR), Err(LoadError::AbiVersion { major, .. }) if major == abi::ABI_MAJOR + 1));
    assert!(matches!(check(&NEWER_MINOR), Err(LoadError::AbiVersion { .. })));
    assert!(matches!(check(&NO_VTABLE), Err(LoadError::BadDeclaration { .. })));
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
