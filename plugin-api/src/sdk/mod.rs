//! The plugin author's side: safe traits, an output writer, and [`crate::export_provider!`].
//!
//! A provider implements [`Provider`] (and a [`StreamDecoder`] for streams); the export macro
//! generates the entry symbol and a vtable whose every call is wrapped in `catch_unwind`, so a
//! panic becomes an error for that request instead of aborting the gateway.
//!
//! Helpers shared by provider plugins, plain Rust on the plugin's side of the ABI, so that a
//! provider is its mapping and little else:
//! - [`setup`]: `base_url` and `options:` checks for [`Provider::create`];
//! - [`sse`]: a push-based server-sent events parser;
//! - [`sse_decoder`]: a [`StreamDecoder`] built on it, which leaves a provider only what each
//!   event means;
//! - [`errors`]: reading upstream error bodies and classifying them ([`Provider::decode_error`]);
//! - [`unified`]: writing the unified responses, stream chunks and usage;
//! - [`embeddings`]: the unified embeddings request and response (operation `embeddings`).
//!
//! # Operations
//! A provider serves chat unless its export says more (`operations = …` in
//! [`crate::export_provider!`]); the host hands it only the operations it declared, and each
//! call names its own in [`Context::operation`]. A provider serving more than chat branches on
//! it in every call that reads or writes a body ([`Context::is_embeddings`]), so that chat code
//! is never handed an embeddings request.

use crate::abi::{self, ByteSlice};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub mod embeddings;
pub mod errors;
pub mod hook;
pub mod setup;
pub mod sse;
pub mod sse_decoder;
pub mod unified;

#[cfg(test)]
mod recorder;

pub use errors::{default_error, status_class, truncate};
pub use hook::{
    ChunkBatch, ChunkOut, Hook, HookContext, HookError, HookSetup, PostAction, PreAction, Rejection, Reply, ReplyChunk,
};

pub use serde_json;

/// The operation bits for `operations = …` in [`crate::export_provider!`].
pub use crate::abi::operation;

/// What `create` receives: the provider's configuration from the gateway's YAML.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ProviderSetup {
    /// The configured provider name (a YAML key under `providers:`).
    pub name: String,
    /// `base_url` from YAML; `None` means the plugin's own default.
    #[serde(default)]
    pub base_url: Option<String>,
    /// `options:` from YAML, plugin-specific.
    #[serde(default)]
    pub options: serde_json::Value,
}

/// Per-call context (borrowed from the host for the duration of the call).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub stream: bool,
    pub unix_time_ms: u64,
    /// Upstream model for this attempt.
    pub model: &'a str,
    /// Secret key for this attempt, empty if none. Never echo it into an output body.
    pub api_key: &'a str,
    pub request_id: &'a str,
    /// What the call is for: `chat`, `embeddings` (the names of [`abi::operation`]). Empty
    /// from a 1.0 host, which only ever calls for chat.
    pub operation: &'a str,
}

impl Context<'_> {
    /// The call is for embeddings: its request and answer are the unified embeddings shapes
    /// ([`embeddings`]), never a chat completion.
    pub fn is_embeddings(&self) -> bool {
        self.operation == abi::operation::name(abi::operation::EMBEDDINGS)
    }

    /// The call is for a chat completion (a 1.0 host, which names no operation, included).
    pub fn is_chat(&self) -> bool {
        self.operation.is_empty() || self.operation == abi::operation::name(abi::operation::CHAT)
    }
}

/// Token counts in the unified schema.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    /// The part of `cache_write_tokens` written to a 1-hour cache.
    pub cache_write_1h_tokens: u64,
    pub reasoning_tokens: u64,
}

/// A token count read from an upstream's usage object: integers and, from lax compatible
/// servers, floats such as `12.0`, so a cosmetic difference in usage never turns a good answer
/// into a 502. Range-checked, as every number from an upstream is: a negative count, NaN, or
/// one above [`abi::MAX_TOKEN_COUNT`] (`1e300`, `u64::MAX`: no believable count) reads as 0,
/// so sums of a few counts stay far from overflow and a hostile usage object cannot turn into
/// absurd totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TokenCount(pub u64);

impl<'de> serde::Deserialize<'de> for TokenCount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, Visitor};
        use std::fmt;

        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = TokenCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token count")
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<TokenCount, E> {
                Ok(TokenCount(if v > abi::MAX_TOKEN_COUNT { 0 } else { v }))
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<TokenCount, E> {
                self.visit_u64(u64::try_from(v).unwrap_or(0))
            }
            fn visit_f64<E: Error>(self, v: f64) -> Result<TokenCount, E> {
                let believable = v.is_finite() && (0.0..=abi::MAX_TOKEN_COUNT as f64).contains(&v);
                // In range, `as` truncates a fraction (`12.0` → 12), which is all it does here.
                Ok(TokenCount(if believable { v as u64 } else { 0 }))
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

/// Facts about one stream chunk that the host needs without parsing it again.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChunkInfo {
    /// Some choice carries a `finish_reason`.
    pub finish_reason: bool,
    /// `choices` is empty (OpenAI's usage-only chunk).
    pub empty_choices: bool,
    /// Usage reported by this chunk, if any.
    pub usage: Option<Usage>,
}

/// Error classes; see [`abi::error_kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Other,
    RateLimit,
    ContextLength,
    ContentFilter,
    Authentication,
    Overloaded,
    InvalidRequest,
    NotFound,
    Server,
    Malformed,
}

impl ErrorKind {
    /// OpenAI's `error.type` word for the class, for an error whose upstream gave none.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::ContextLength | ErrorKind::ContentFilter | ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Server | ErrorKind::Overloaded | ErrorKind::Malformed | ErrorKind::Other => "server_error",
        }
    }

    fn code(self) -> u64 {
        use abi::error_kind as k;
        match self {
            ErrorKind::Other => k::OTHER,
            ErrorKind::RateLimit => k::RATE_LIMIT,
            ErrorKind::ContextLength => k::CONTEXT_LENGTH,
            ErrorKind::ContentFilter => k::CONTENT_FILTER,
            ErrorKind::Authentication => k::AUTHENTICATION,
            ErrorKind::Overloaded => k::OVERLOADED,
            ErrorKind::InvalidRequest => k::INVALID_REQUEST,
            ErrorKind::NotFound => k::NOT_FOUND,
            ErrorKind::Server => k::SERVER,
            ErrorKind::Malformed => k::MALFORMED,
        }
    }
}

/// An error in the unified (OpenAI) shape, with what the host needs to route around it.
#[derive(Debug, Clone)]
pub struct ProviderError {
    pub status: u16,
    pub kind: ErrorKind,
    pub retryable: bool,
    pub message: String,
    /// OpenAI error `type` (`invalid_request_error`, `rate_limit_error`, …).
    pub error_type: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
    unsupported: bool,
}

impl ProviderError {
    pub fn new(status: u16, kind: ErrorKind, message: impl Into<String>) -> ProviderError {
        ProviderError {
            status,
            kind,
            retryable: false,
            message: message.into(),
            error_type: None,
            code: None,
            param: None,
            unsupported: false,
        }
    }

    /// The upstream answered bytes the codec cannot read (the host answers 502).
    pub fn malformed(message: impl Into<String>) -> ProviderError {
        ProviderError::new(502, ErrorKind::Malformed, message)
    }

    /// The request cannot be expressed in this provider's protocol (the host answers 400).
    pub fn invalid_request(message: impl Into<String>) -> ProviderError {
        ProviderError::new(400, ErrorKind::InvalidRequest, message).with_type("invalid_request_error")
    }

    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    pub fn with_type(mut self, error_type: impl Into<String>) -> Self {
        self.error_type = Some(error_type.into());
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Clients read `error.type`: when there is none, sets OpenAI's word for the class
    /// ([`ErrorKind::openai_type`]).
    pub fn with_default_type(self) -> Self {
        if self.error_type.is_some() {
            return self;
        }
        let word = self.kind.openai_type();
        self.with_type(word)
    }

    /// The host asked for an operation this plugin does not serve (it should not: the
    /// plugin's declaration lists what it serves). A 400 naming the operation, never a guess
    /// at an answer of the wrong shape.
    pub fn unsupported_operation(operation: &str) -> ProviderError {
        let operation = if operation.is_empty() { "chat" } else { operation };
        ProviderError::invalid_request(format!("this provider does not serve the `{operation}` operation"))
            .with_code("unsupported_operation")
    }

    fn unsupported() -> ProviderError {
        let mut e = ProviderError::new(501, ErrorKind::Other, "not supported by this plugin");
        e.unsupported = true;
        e
    }
}

/// Writes a call's outputs into the host's buffers.
pub struct Out<'a> {
    /// The host's [`abi::Output`], copied field by field: never a reference to the whole
    /// struct, which may be an older host's smaller one.
    host: *mut std::ffi::c_void,
    put_bytes: abi::PutBytesFn,
    put_u64: abi::PutU64Fn,
    _call: std::marker::PhantomData<&'a abi::Output>,
}

impl<'a> Out<'a> {
    fn bytes(&mut self, slot: u32, a: &[u8], b: &[u8]) {
        // SAFETY: the host guarantees its callbacks and `host` are valid for this call; the
        // slices outlive the callback, which copies them.
        unsafe { (self.put_bytes)(self.host, slot, ByteSlice::from_slice(a), ByteSlice::from_slice(b)) }
    }

    fn number(&mut self, slot: u32, value: u64) {
        // SAFETY: as in `bytes`.
        unsafe { (self.put_u64)(self.host, slot, value) }
    }

    fn usage(&mut self, usage: &Usage) {
        use abi::slot;
        self.number(slot::PROMPT_TOKENS, usage.prompt_tokens);
        self.number(slot::COMPLETION_TOKENS, usage.completion_tokens);
        self.number(slot::TOTAL_TOKENS, usage.total_tokens);
        self.number(slot::CACHED_TOKENS, usage.cached_tokens);
        self.number(slot::CACHE_WRITE_TOKENS, usage.cache_write_tokens);
        if usage.cache_write_1h_tokens != 0 {
            self.number(slot::CACHE_WRITE_1H_TOKENS, usage.cache_write_1h_tokens);
        }
        self.number(slot::REASONING_TOKENS, usage.reasoning_tokens);
    }

    // ---- encode_request ----

    pub fn method(&mut self, method: &str) {
        self.bytes(abi::slot::METHOD, method.as_bytes(), &[]);
    }

    pub fn url(&mut self, url: &str) {
        self.bytes(abi::slot::URL, url.as_bytes(), &[]);
    }

    pub fn header(&mut self, name: &str, value: &str) {
        self.bytes(abi::slot::HEADER, name.as_bytes(), value.as_bytes());
    }

    /// Appends to the request body.
    pub fn body(&mut self, bytes: &[u8]) {
        self.bytes(abi::slot::BODY, bytes, &[]);
    }

    // ---- items ----

    /// A whole unified response (a JSON object without `extra_fields`).
    pub fn response(&mut self, json: &[u8], model: &str, usage: Option<&Usage>) {
        if let Some(u) = usage {
            self.usage(u);
        }
        self.bytes(abi::slot::RESPONSE, json, model.as_bytes());
    }

    /// One unified stream chunk (a JSON object without `extra_fields`).
    pub fn chunk(&mut self, json: &[u8], model: &str, info: &ChunkInfo) {
        let mut flags = 0;
        if info.finish_reason {
            flags |= abi::chunk_flag::FINISH_REASON;
        }
        if info.empty_choices {
            flags |= abi::chunk_flag::EMPTY_CHOICES;
        }
        if let Some(u) = &info.usage {
            flags |= abi::chunk_flag::HAS_USAGE;
            self.usage(u);
        }
        self.number(abi::slot::CHUNK_FLAGS, flags);
        self.bytes(abi::slot::CHUNK, json, model.as_bytes());
    }

    /// The upstream stream is complete.
    pub fn done(&mut self) {
        self.bytes(abi::slot::DONE, &[], &[]);
    }

    /// An error item (also usable mid-stream: the host ends the stream with it).
    pub fn error(&mut self, err: &ProviderError) {
        self.number(abi::slot::ERROR_STATUS, u64::from(err.status));
        self.number(abi::slot::ERROR_KIND, err.kind.code());
        self.number(abi::slot::ERROR_RETRYABLE, u64::from(err.retryable));
        let details = serde_json::json!({
            "type": err.error_type,
            "code": err.code,
            "param": err.param,
        });
        let details = serde_json::to_vec(&details).unwrap_or_default();
        // A parser's reason can quote the upstream's whole body (found by the fuzzer: serde's
        // "invalid type: string \"…\"" for a 4 KB string): every message is cut here.
        let message = errors::truncate(&err.message, abi::MAX_ERROR_MESSAGE_BYTES);
        self.bytes(abi::slot::ERROR, message.as_bytes(), &details);
    }

    /// Local providers: the host waits this long before delivering the next item.
    pub fn delay_ms(&mut self, ms: u64) {
        self.number(abi::slot::DELAY_MS, ms);
    }

    /// A line for the host's log (e.g. a malformed event that was skipped).
    pub fn warn(&mut self, message: &str) {
        self.bytes(abi::slot::WARN, message.as_bytes(), &[]);
    }
}

/// Decodes one upstream stream fed in arbitrary byte fragments.
pub trait StreamDecoder: Send {
    /// Consume a fragment; emit zero or more CHUNK / DONE / ERROR items.
    fn feed(&mut self, ctx: &Context<'_>, bytes: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError>;
    /// The upstream closed the stream: flush what is buffered.
    fn finish(&mut self, ctx: &Context<'_>, out: &mut Out<'_>) -> Result<(), ProviderError>;
}

/// A provider plugin. HTTP providers implement the codec calls; local providers
/// (declared with `local = true`) implement [`Provider::respond_local`].
pub trait Provider: Send + Sync + Sized + 'static {
    fn create(setup: ProviderSetup) -> Result<Self, String>;

    /// Unified request JSON (model resolved, gateway-only fields removed) → HTTP request.
    fn encode_request(&self, _ctx: &Context<'_>, _request: &[u8], _out: &mut Out<'_>) -> Result<(), ProviderError> {
        Err(ProviderError::unsupported())
    }

    /// A 2xx upstream body → `out.response(..)`.
    fn decode_response(
        &self,
        _ctx: &Context<'_>,
        _status: u16,
        _body: &[u8],
        _out: &mut Out<'_>,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::unsupported())
    }

    /// A non-2xx upstream body → the unified error.
    fn decode_error(&self, _ctx: &Context<'_>, status: u16, body: &[u8]) -> ProviderError {
        default_error(status, body)
    }

    /// A decoder for one upstream stream.
    fn open_stream(&self, _ctx: &Context<'_>) -> Option<Box<dyn StreamDecoder>> {
        None
    }

    /// Local providers: answer the request (RESPONSE, or CHUNK* + DONE when streaming).
    fn respond_local(&self, _ctx: &Context<'_>, _request: &[u8], _out: &mut Out<'_>) -> Result<(), ProviderError> {
        Err(ProviderError::unsupported())
    }
}

/// Generated glue; used by [`crate::export_provider!`]. Not a public API.
#[doc(hidden)]
pub mod __private {
    use super::*;
    use crate::abi::{CallContext, Output, status};
    use std::ffi::c_void;

    pub use crate::abi;

    /// Every exported call runs inside this: a panic becomes `status::PANIC`, never an
    /// unwind across the C boundary (providers and hooks alike).
    pub(crate) fn guard(f: impl FnOnce() -> i32) -> i32 {
        catch_unwind(AssertUnwindSafe(f)).unwrap_or(status::PANIC)
    }

    /// The host's context, read field by field: an older host's context may end before a
    /// field this SDK knows, which then reads as empty.
    ///
    /// # Safety
    /// `ctx` must be a valid CallContext (of its declared size) whose slices live for the call.
    /// A host string (UTF-8 by contract; anything else reads as empty). Empty ones, the
    /// most common in hook calls, skip the check.
    ///
    /// # Safety
    /// `b` points to `b.len` readable bytes that live for `'a`.
    pub(crate) unsafe fn text<'a>(b: ByteSlice) -> &'a str {
        if b.len == 0 {
            return "";
        }
        // SAFETY: guaranteed by the caller.
        std::str::from_utf8(unsafe { b.as_slice() }).unwrap_or("")
    }

    pub(crate) unsafe fn context<'a>(ctx: *const CallContext) -> Context<'a> {
        use crate::abi::read_field;
        // SAFETY: the host passes a valid pointer for the call; every read below is checked
        // against the size the host declared.
        let size = unsafe { abi::declared_size(ctx) };
        // SAFETY: the host's slices live for the call.
        let s = |b: Option<ByteSlice>| b.map_or("", |b| unsafe { text(b) });
        // SAFETY: as above.
        unsafe {
            Context {
                stream: read_field!(ctx, size, CallContext, stream).is_some_and(|v| v != 0),
                unix_time_ms: read_field!(ctx, size, CallContext, unix_time_ms).unwrap_or(0),
                model: s(read_field!(ctx, size, CallContext, model)),
                api_key: s(read_field!(ctx, size, CallContext, api_key)),
                request_id: s(read_field!(ctx, size, CallContext, request_id)),
                // ABI 1.1: past a 1.0 host's context, which reads as empty (chat).
                operation: s(read_field!(ctx, size, CallContext, operation)),
            }
        }
    }

    /// The writer for the host's `out`, its callbacks copied out of the host's struct.
    ///
    /// # Safety
    /// `out` must be a valid Output (of its declared size) for `'a`.
    pub(crate) unsafe fn writer<'a>(out: *const Output) -> Out<'a> {
        use crate::abi::read_field;
        unsafe extern "C" fn drop_bytes(_: *mut c_void, _: u32, _: ByteSlice, _: ByteSlice) {}
        unsafe extern "C" fn drop_u64(_: *mut c_void, _: u32, _: u64) {}
        // SAFETY: the host passes a valid pointer for the call; every read is checked against
        // the size the host declared (a host without the callbacks gets its outputs dropped).
        unsafe {
            let size = abi::declared_size(out);
            Out {
                host: read_field!(out, size, Output, host).unwrap_or(std::ptr::null_mut()),
                put_bytes: read_field!(out, size, Output, put_bytes).unwrap_or(drop_bytes),
                put_u64: read_field!(out, size, Output, put_u64).unwrap_or(drop_u64),
                _call: std::marker::PhantomData,
            }
        }
    }

    fn finish(result: Result<(), ProviderError>, out: &mut Out<'_>) -> i32 {
        match result {
            Ok(()) => status::OK,
            Err(e) if e.unsupported => status::UNSUPPORTED,
            Err(e) => {
                out.error(&e);
                status::ERROR
            }
        }
    }

    /// Builds an instance from the host's setup JSON, providers and hooks alike: reads the
    /// setup, calls `make`, lets `announce` write what the host must learn at creation, and
    /// boxes the instance (freed by [`destroy`]). A failure is an ERROR item and null; a panic
    /// is null.
    ///
    /// # Safety
    /// `config` and `out` are the host's, valid for the call.
    pub unsafe fn create_instance<S, T>(
        config: ByteSlice,
        out: *const Output,
        make: impl FnOnce(S) -> Result<T, String>,
        announce: impl FnOnce(&T, &mut Out<'_>),
    ) -> *mut c_void
    where
        S: serde::de::DeserializeOwned,
    {
        let r = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: valid for the call.
            let mut out = unsafe { writer(out) };
            // SAFETY: the host's slice lives for the call.
            let setup: Result<S, String> =
                serde_json::from_slice(unsafe { config.as_slice() }).map_err(|e| e.to_string());
            match setup.and_then(make) {
                Ok(instance) => {
                    announce(&instance, &mut out);
                    Box::into_raw(Box::new(instance)).cast::<c_void>()
                }
                Err(message) => {
                    out.error(&ProviderError::new(500, ErrorKind::Other, message));
                    std::ptr::null_mut()
                }
            }
        }));
        r.unwrap_or(std::ptr::null_mut())
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn create<P: Provider>(config: ByteSlice, out: *const Output) -> *mut c_void {
        // SAFETY: the host's arguments, valid for the call.
        unsafe { create_instance(config, out, P::create, |_: &P, _| {}) }
    }

    /// Frees an instance a `create` boxed, provider or hook alike.
    ///
    /// # Safety
    /// `instance` came from a `create::<T>` (`Box::into_raw` of a `T`) and is not used after
    /// this call.
    pub unsafe extern "C" fn destroy<T>(instance: *mut c_void) {
        if !instance.is_null() {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: created by `create::<T>` with Box::into_raw.
                drop(unsafe { Box::from_raw(instance.cast::<T>()) });
            }));
        }
    }

    /// The borrowed arguments every provider call starts from.
    ///
    /// # Safety
    /// `instance` is a live `P` from `create::<P>`; `ctx`, `bytes` and `out` are valid for `'a`.
    unsafe fn unpack<'a, P: Provider>(
        instance: *mut c_void,
        ctx: *const CallContext,
        bytes: ByteSlice,
        out: *const Output,
    ) -> (&'a P, Context<'a>, &'a [u8], Out<'a>) {
        // SAFETY: guaranteed by the caller.
        unsafe { (&*instance.cast::<P>(), context(ctx), bytes.as_slice(), writer(out)) }
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn encode_request<P: Provider>(
        instance: *mut c_void,
        ctx: *const CallContext,
        request: ByteSlice,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: all pointers are valid for the call (host contract).
            let (p, ctx, req, mut out) = unsafe { unpack::<P>(instance, ctx, request, out) };
            let r = p.encode_request(&ctx, req, &mut out);
            finish(r, &mut out)
        })
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn respond_local<P: Provider>(
        instance: *mut c_void,
        ctx: *const CallContext,
        request: ByteSlice,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: all pointers are valid for the call (host contract).
            let (p, ctx, req, mut out) = unsafe { unpack::<P>(instance, ctx, request, out) };
            let r = p.respond_local(&ctx, req, &mut out);
            finish(r, &mut out)
        })
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn decode_response<P: Provider>(
        instance: *mut c_void,
        ctx: *const CallContext,
        http_status: u32,
        body: ByteSlice,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: all pointers are valid for the call (host contract).
            let (p, ctx, body, mut out) = unsafe { unpack::<P>(instance, ctx, body, out) };
            let status = u16::try_from(http_status).unwrap_or(u16::MAX);
            let r = p.decode_response(&ctx, status, body, &mut out);
            finish(r, &mut out)
        })
    }

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn decode_error<P: Provider>(
        instance: *mut c_void,
        ctx: *const CallContext,
        http_status: u32,
        body: ByteSlice,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: all pointers are valid for the call (host contract).
            let (p, ctx, body, mut out) = unsafe { unpack::<P>(instance, ctx, body, out) };
            let status = u16::try_from(http_status).unwrap_or(u16::MAX);
            let e = p.decode_error(&ctx, status, body);
            out.error(&e);
            status::OK
        })
    }

    type State = Box<dyn StreamDecoder>;

    /// # Safety
    /// Called by the host through the vtable with valid arguments.
    pub unsafe extern "C" fn stream_open<P: Provider>(instance: *mut c_void, ctx: *const CallContext) -> *mut c_void {
        let r = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: valid for the call (host contract).
            let (p, ctx) = unsafe { (&*instance.cast::<P>(), context(ctx)) };
            match p.open_stream(&ctx) {
                Some(state) => Box::into_raw(Box::new(state)).cast::<c_void>(),
                None => std::ptr::null_mut(),
            }
        }));
        r.unwrap_or(std::ptr::null_mut())
    }

    /// # Safety
    /// `state` came from `stream_open` and is used by one thread at a time.
    pub unsafe extern "C" fn stream_feed(
        _instance: *mut c_void,
        state: *mut c_void,
        ctx: *const CallContext,
        bytes: ByteSlice,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: valid for the call (host contract).
            let (s, ctx, bytes, mut out) =
                unsafe { (&mut *state.cast::<State>(), context(ctx), bytes.as_slice(), writer(out)) };
            let r = s.feed(&ctx, bytes, &mut out);
            finish(r, &mut out)
        })
    }

    /// # Safety
    /// `state` came from `stream_open` and is used by one thread at a time.
    pub unsafe extern "C" fn stream_finish(
        _instance: *mut c_void,
        state: *mut c_void,
        ctx: *const CallContext,
        out: *const Output,
    ) -> i32 {
        guard(|| {
            // SAFETY: valid for the call (host contract).
            let (s, ctx, mut out) = unsafe { (&mut *state.cast::<State>(), context(ctx), writer(out)) };
            let r = s.finish(&ctx, &mut out);
            finish(r, &mut out)
        })
    }

    /// # Safety
    /// `state` came from `stream_open` and is not used after this call.
    pub unsafe extern "C" fn stream_close(_instance: *mut c_void, state: *mut c_void) {
        if !state.is_null() {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: created by `stream_open` with Box::into_raw.
                drop(unsafe { Box::from_raw(state.cast::<State>()) });
            }));
        }
    }

    pub const fn provider_vtable<P: Provider>() -> abi::ProviderVTable {
        abi::ProviderVTable {
            struct_size: std::mem::size_of::<abi::ProviderVTable>() as u32,
            create: Some(create::<P>),
            destroy: Some(destroy::<P>),
            encode_request: Some(encode_request::<P>),
            decode_response: Some(decode_response::<P>),
            decode_error: Some(decode_error::<P>),
            stream_open: Some(stream_open::<P>),
            stream_feed: Some(stream_feed),
            stream_finish: Some(stream_finish),
            stream_close: Some(stream_close),
            respond_local: Some(respond_local::<P>),
            #[cfg(test)]
            appended_for_tests: None,
        }
    }

    /// The declaration [`crate::export_provider!`] exports (a provider only), serving the
    /// [`abi::operation`] bits in `operations`.
    pub const fn declaration(
        name: &'static str,
        version: &'static str,
        local: bool,
        operations: u64,
        panic_unwind: bool,
        provider: &'static abi::ProviderVTable,
    ) -> abi::PluginDecl {
        let mut decl = plugin_declaration(name, version, local, panic_unwind, Some(provider), None);
        decl.operations = operations;
        decl
    }

    /// The declaration the export macros export: a provider, a hook, or both. `panic_unwind` is
    /// `cfg!(panic = "unwind")` evaluated in the plugin's crate (the macro's caller), where the
    /// strategy is decided.
    pub const fn plugin_declaration(
        name: &'static str,
        version: &'static str,
        local: bool,
        panic_unwind: bool,
        provider: Option<&'static abi::ProviderVTable>,
        hook: Option<&'static abi::HookVTable>,
    ) -> abi::PluginDecl {
        use abi::capability;
        let mut capabilities = if panic_unwind {
            capability::PANIC_UNWIND
        } else {
            capability::PANIC_ABORT
        };
        let provider = match provider {
            Some(p) => {
                capabilities |= capability::PROVIDER | if local { capability::LOCAL } else { 0 };
                p as *const abi::ProviderVTable
            }
            None => std::ptr::null(),
        };
        let hook = match hook {
            Some(h) => {
                capabilities |= capability::HOOK;
                h as *const abi::HookVTable
            }
            None => std::ptr::null(),
        };
        abi::PluginDecl {
            struct_size: std::mem::size_of::<abi::PluginDecl>() as u32,
            abi_major: abi::ABI_MAJOR,
            abi_minor: abi::ABI_MINOR,
            name: abi::ByteSlice::from_str(name),
            version: abi::ByteSlice::from_str(version),
            capabilities,
            provider,
            hook,
            // Chat unless the export says more (`operations = …` of `export_provider!`,
            // through [`declaration`]).
            operations: abi::operation::CHAT,
            #[cfg(test)]
            appended_for_tests: 0,
        }
    }
}

/// Exports a [`Provider`] as a Switchyard plugin.
///
/// `local` (default `false`) says the provider answers by itself ([`Provider::respond_local`]);
/// `operations` (default [`operation::CHAT`]) is the [`operation`] bits it serves, a constant
/// expression. Both are optional, in that order.
///
/// ```ignore
/// switchyard_plugin_api::export_provider!(MyCodec, name = "mycodec", version = "0.1.0");
/// // a provider that answers by itself:
/// switchyard_plugin_api::export_provider!(Mock, name = "mock", version = "0.1.0", local = true);
/// // one that serves embeddings too:
/// use switchyard_plugin_api::sdk::operation;
/// switchyard_plugin_api::export_provider!(
///     MyCodec, name = "mycodec", version = "0.1.0", operations = operation::CHAT | operation::EMBEDDINGS
/// );
/// ```
#[macro_export]
macro_rules! export_provider {
    ($ty:ty, name = $name:expr, version = $version:expr) => {
        $crate::export_provider!($ty, name = $name, version = $version, local = false);
    };
    ($ty:ty, name = $name:expr, version = $version:expr, local = $local:expr) => {
        $crate::export_provider!(
            $ty,
            name = $name,
            version = $version,
            local = $local,
            operations = $crate::abi::operation::CHAT
        );
    };
    ($ty:ty, name = $name:expr, version = $version:expr, operations = $operations:expr) => {
        $crate::export_provider!(
            $ty,
            name = $name,
            version = $version,
            local = false,
            operations = $operations
        );
    };
    ($ty:ty, name = $name:expr, version = $version:expr, local = $local:expr, operations = $operations:expr) => {
        const _: () = {
            use $crate::sdk::__private::abi;
            static VTABLE: abi::ProviderVTable = $crate::sdk::__private::provider_vtable::<$ty>();
            // `cfg!` here is evaluated in the plugin's crate: the stamp tells the loader
            // whether the boundary guard can catch a panic at all.
            static DECL: abi::PluginDecl = $crate::sdk::__private::declaration(
                $name,
                $version,
                $local,
                $operations,
                cfg!(panic = "unwind"),
                &VTABLE,
            );
            #[unsafe(no_mangle)]
            pub extern "C" fn switchyard_plugin_entry_v1() -> *const abi::PluginDecl {
                &DECL
            }
        };
    };
}

/// Exports a [`Hook`] as a Switchyard plugin.
///
/// ```ignore
/// switchyard_plugin_api::export_hook!(MyGuard, name = "guard", version = "0.1.0");
/// ```
#[macro_export]
macro_rules! export_hook {
    ($ty:ty, name = $name:expr, version = $version:expr) => {
        const _: () = {
            use $crate::sdk::__private::abi;
            static HOOK: abi::HookVTable = $crate::sdk::hook::glue::hook_vtable::<$ty>();
            static DECL: abi::PluginDecl = $crate::sdk::__private::plugin_declaration(
                $name,
                $version,
                false,
                cfg!(panic = "unwind"),
                None,
                Some(&HOOK),
            );
            #[unsafe(no_mangle)]
            pub extern "C" fn switchyard_plugin_entry_v1() -> *const abi::PluginDecl {
                &DECL
            }
        };
    };
}

/// Exports one library that is both a [`Provider`] and a [`Hook`] (one entry symbol per
/// library, so use this instead of [`crate::export_provider!`] plus [`crate::export_hook!`]).
///
/// ```ignore
/// switchyard_plugin_api::export_plugin!(name = "both", version = "0.1.0", provider = MyCodec, hook = MyGuard);
/// ```
#[macro_export]
macro_rules! export_plugin {
    (name = $name:expr, version = $version:expr, provider = $p:ty, hook = $h:ty) => {
        $crate::export_plugin!(
            name = $name,
            version = $version,
            provider = $p,
            hook = $h,
            local = false
        );
    };
    (name = $name:expr, version = $version:expr, provider = $p:ty, hook = $h:ty, local = $local:expr) => {
        const _: () = {
            use $crate::sdk::__private::abi;
            static PROVIDER: abi::ProviderVTable = $crate::sdk::__private::provider_vtable::<$p>();
            static HOOK: abi::HookVTable = $crate::sdk::hook::glue::hook_vtable::<$h>();
            static DECL: abi::PluginDecl = $crate::sdk::__private::plugin_declaration(
                $name,
                $version,
                $local,
                cfg!(panic = "unwind"),
                Some(&PROVIDER),
                Some(&HOOK),
            );
            #[unsafe(no_mangle)]
            pub extern "C" fn switchyard_plugin_entry_v1() -> *const abi::PluginDecl {
                &DECL
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_are_read_laxly() {
        let read = |json: &str| serde_json::from_str::<TokenCount>(json).map(|c| c.0).ok();
        assert_eq!(read("12"), Some(12));
        assert_eq!(read("12.0"), Some(12));
        assert_eq!(read("12.7"), Some(12));
        assert_eq!(read("-3"), Some(0));
        // Range-checked: no believable count is this large, so it reads as none (0).
        assert_eq!(read("1e30"), Some(0));
        assert_eq!(read("1e300"), Some(0));
        assert_eq!(read("18446744073709551615"), Some(0));
        assert_eq!(read(&abi::MAX_TOKEN_COUNT.to_string()), Some(abi::MAX_TOKEN_COUNT));
        assert_eq!(read("\"12\""), None);
        assert_eq!(read("null"), None);
    }

    #[test]
    fn an_error_message_is_cut_to_the_abi_limit_on_a_character_boundary() {
        // A parser's reason quoting a 5 KB upstream string, ending in multi-byte characters.
        let reason = format!("invalid type: string \"{}\"", "é".repeat(2600));
        let lines = recorder::record(|out| out.error(&ProviderError::malformed(reason.as_str())));
        let message = lines[0].strip_prefix("ERROR 502 ").expect("one error line");
        assert!(message.len() <= abi::MAX_ERROR_MESSAGE_BYTES, "{} bytes", message.len());
        assert!(message.len() > abi::MAX_ERROR_MESSAGE_BYTES - 2);
        assert!(reason.starts_with(message));
        // A short message goes through whole.
        let lines = recorder::record(|out| out.error(&ProviderError::malformed("cut short")));
        assert_eq!(lines, ["ERROR 502 cut short"]);
    }

    fn call_context(struct_size: usize, operation: &'static str) -> abi::CallContext {
        abi::CallContext {
            struct_size: struct_size as u32,
            stream: 0,
            unix_time_ms: 7,
            model: ByteSlice::from_str("m"),
            api_key: ByteSlice::EMPTY,
            request_id: ByteSlice::from_str("r1"),
            operation: ByteSlice::from_str(operation),
            alias: ByteSlice::EMPTY,
            virtual_key_id: ByteSlice::EMPTY,
            client_headers: std::ptr::null(),
            client_header_count: 0,
            hook_state: std::ptr::null_mut(),
        }
    }

    #[test]
    fn the_context_names_the_operation_and_a_1_0_host_means_chat() {
        use abi::frozen::{v1_0, v1_1};
        let read = |ctx: &abi::CallContext| {
            // SAFETY: a valid context whose slices are static.
            let c = unsafe { __private::context(ctx) };
            (c.operation, c.is_embeddings(), c.is_chat())
        };
        let full = call_context(v1_1::CALL_CONTEXT_SIZE, "embeddings");
        assert_eq!(read(&full), ("embeddings", true, false));
        assert_eq!(
            read(&call_context(v1_1::CALL_CONTEXT_SIZE, "chat")),
            ("chat", false, true)
        );
        // A 1.0 host's context ends before `operation`: the memory past it is not the host's.
        let older = call_context(v1_0::CALL_CONTEXT_SIZE, "embeddings");
        assert_eq!(read(&older), ("", false, true));
        let other = call_context(v1_1::CALL_CONTEXT_SIZE, "images");
        assert_eq!(read(&other), ("images", false, false));
        let e = ProviderError::unsupported_operation("images");
        assert_eq!((e.status, e.code.as_deref()), (400, Some("unsupported_operation")));
        assert!(e.message.contains("`images`"), "{}", e.message);
    }

    #[test]
    fn a_provider_declares_the_operations_it_was_exported_with() {
        static VTABLE: abi::ProviderVTable = __private::provider_vtable::<NoProvider>();
        let both = abi::operation::CHAT | abi::operation::EMBEDDINGS;
        let decl = __private::declaration("p", "1", true, both, true, &VTABLE);
        assert_eq!(decl.operations, both);
        assert_ne!(decl.capabilities & abi::capability::LOCAL, 0);
        let hook_or_plugin = __private::plugin_declaration("p", "1", false, true, Some(&VTABLE), None);
        assert_eq!(hook_or_plugin.operations, abi::operation::CHAT);
    }

    struct NoProvider;
    impl Provider for NoProvider {
        fn create(_: ProviderSetup) -> Result<Self, String> {
            Ok(NoProvider)
        }
    }

    #[test]
    fn classes_by_status_and_their_openai_words() {
        let class = |status| {
            let (kind, retryable) = status_class(status);
            (kind, retryable, kind.openai_type())
        };
        assert_eq!(class(429), (ErrorKind::RateLimit, true, "rate_limit_error"));
        assert_eq!(class(403), (ErrorKind::Authentication, false, "authentication_error"));
        assert_eq!(class(404), (ErrorKind::NotFound, false, "not_found_error"));
        assert_eq!(class(413), (ErrorKind::InvalidRequest, false, "invalid_request_error"));
        assert_eq!(class(503), (ErrorKind::Server, true, "server_error"));
        assert_eq!(class(529), (ErrorKind::Overloaded, true, "server_error"));
        assert_eq!(class(501), (ErrorKind::Server, false, "server_error"));
        let typed = ProviderError::new(400, ErrorKind::InvalidRequest, "x").with_type("mine");
        assert_eq!(typed.with_default_type().error_type.as_deref(), Some("mine"));
        let untyped = ProviderError::new(400, ErrorKind::ContextLength, "x");
        assert_eq!(
            untyped.with_default_type().error_type.as_deref(),
            Some("invalid_request_error")
        );
    }
}
