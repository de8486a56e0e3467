//! The gateway's side: load a plugin library, validate its declaration, and call its
//! vtable through safe wrappers that collect outputs into host-owned buffers.

use crate::abi::{self, ByteSlice, CallContext, Output, PluginDecl, ProviderVTable, slot, status};
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Size of the provider vtable in ABI 1.0 (the smallest the host accepts).
const PROVIDER_VTABLE_V1_0_SIZE: usize = std::mem::size_of::<ProviderVTable>();

/// After this many caught panics a provider instance is disabled: every further call fails
/// fast instead of running code that is known to be broken.
pub const PANIC_LIMIT: u32 = 5;

/// Why a plugin could not be loaded or instantiated.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin file {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("cannot open plugin library {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path} is not a Switchyard plugin: it does not export the symbol `{symbol}`")]
    MissingSymbol { path: PathBuf, symbol: &'static str },
    #[error(
        "plugin {path} was built for plugin ABI {major}.{minor}, this gateway speaks {host_major}.{host_minor}; rebuild the plugin against this gateway's plugin-api"
    )]
    AbiVersion {
        path: PathBuf,
        major: u16,
        minor: u16,
        host_major: u16,
        host_minor: u16,
    },
    #[error("plugin {path} has an invalid declaration: {reason}")]
    BadDeclaration { path: PathBuf, reason: String },
    #[error("plugin `{plugin}` is not a provider plugin")]
    NotAProvider { plugin: String },
    #[error("plugin `{plugin}` refused the configuration of provider `{provider}`: {reason}")]
    Create {
        plugin: String,
        provider: String,
        reason: String,
    },
}

/// Why a call into a plugin failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin reported an error in the unified shape.
    #[error("{}", .0.message)]
    Plugin(PluginError),
    #[error("plugin `{plugin}` panicked")]
    Panicked { plugin: Arc<str> },
    #[error("plugin `{plugin}` is disabled after repeated panics")]
    Disabled { plugin: Arc<str> },
    #[error("plugin `{plugin}` does not support {call}")]
    Unsupported { plugin: Arc<str>, call: &'static str },
    #[error("plugin `{plugin}` broke the ABI contract: {detail}")]
    Contract { plugin: Arc<str>, detail: String },
}

/// An error item reported by a plugin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginError {
    pub status: u16,
    pub kind: u64,
    pub retryable: bool,
    pub message: String,
    pub error_type: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
}

/// Token counts as reported by a codec.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

/// One unified response or chunk.
#[derive(Debug, Clone, Default)]
pub struct Payload {
    pub json: Vec<u8>,
    /// The model that answered, as the codec reported it (shared: a stream's chunks all name
    /// the same model, so they share one allocation).
    pub model: Arc<str>,
    pub usage: Option<Usage>,
    /// [`abi::chunk_flag`] bits (chunks only).
    pub flags: u64,
}

impl Payload {
    pub fn has_finish_reason(&self) -> bool {
        self.flags & abi::chunk_flag::FINISH_REASON != 0
    }
    pub fn has_empty_choices(&self) -> bool {
        self.flags & abi::chunk_flag::EMPTY_CHOICES != 0
    }
}

/// An item produced by decode / stream / local calls, in order.
#[derive(Debug, Clone)]
pub enum Item {
    Response(Payload),
    Chunk(Payload),
    Done,
    Error(PluginError),
    /// Local providers: wait this long before the next item.
    Delay(u64),
}

/// The HTTP request a codec asks the host to send.
#[derive(Debug, Clone, Default)]
pub struct HttpRequestParts {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Per-call context handed to the plugin.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    pub stream: bool,
    pub unix_time_ms: u64,
    pub model: &'a str,
    pub api_key: &'a str,
    pub request_id: &'a str,
}

impl CallInfo<'_> {
    fn to_abi(self) -> CallContext {
        CallContext {
            struct_size: std::mem::size_of::<CallContext>() as u32,
            stream: u32::from(self.stream),
            unix_time_ms: self.unix_time_ms,
            model: ByteSlice::from_str(self.model),
            api_key: ByteSlice::from_str(self.api_key),
            request_id: ByteSlice::from_str(self.request_id),
        }
    }
}

/// A loaded plugin library. Libraries are never unloaded: code from them may be referenced
/// until the process exits, so the handle is leaked on purpose.
#[derive(Debug, Clone)]
pub struct PluginLibrary {
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    pub capabilities: u32,
    decl: &'static PluginDecl,
}

/// Loads and validates a plugin library.
pub fn load(path: &Path) -> Result<PluginLibrary, LoadError> {
    if !path.exists() {
        return Err(LoadError::NotFound {
            path: path.to_path_buf(),
        });
    }
    // SAFETY: loading a library runs its initialisers. Plugins only load from paths the
    // operator's config names, which is the trust boundary for native code.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| LoadError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));
    // SAFETY: the symbol's type is fixed by the ABI.
    let entry: libloading::Symbol<'static, abi::EntryFn> =
        unsafe { lib.get(abi::ENTRY_SYMBOL.as_bytes()) }.map_err(|_| LoadError::MissingSymbol {
            path: path.to_path_buf(),
            symbol: abi::ENTRY_SYMBOL,
        })?;
    // SAFETY: the entry function takes no arguments and returns a static pointer.
    let decl_ptr = unsafe { entry() };
    // SAFETY: the pointer comes from the plugin's entry symbol.
    unsafe { from_declaration(decl_ptr, path) }
}

/// Validates a declaration returned by an entry symbol.
///
/// # Safety
/// `decl_ptr` must be null or point to at least `struct_size` readable bytes that live for
/// the rest of the process (a plugin's static declaration).
pub unsafe fn from_declaration(decl_ptr: *const PluginDecl, path: &Path) -> Result<PluginLibrary, LoadError> {
    let bad = |reason: &str| LoadError::BadDeclaration {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if decl_ptr.is_null() {
        return Err(bad("the entry symbol returned a null declaration"));
    }
    // SAFETY: non-null, and we only read the prefix we validated below before the rest.
    let size = unsafe { std::ptr::read(decl_ptr.cast::<u32>()) } as usize;
    // The major/minor pair sits right after struct_size in every version.
    if size < 8 {
        return Err(bad("the declaration is too small"));
    }
    // SAFETY: at least 8 bytes are declared readable.
    let (major, minor) = unsafe {
        let p = decl_ptr.cast::<u8>();
        (
            std::ptr::read_unaligned(p.add(4).cast::<u16>()),
            std::ptr::read_unaligned(p.add(6).cast::<u16>()),
        )
    };
    if major != abi::ABI_MAJOR || minor > abi::ABI_MINOR {
        return Err(LoadError::AbiVersion {
            path: path.to_path_buf(),
            major,
            minor,
            host_major: abi::ABI_MAJOR,
            host_minor: abi::ABI_MINOR,
        });
    }
    if size < std::mem::size_of::<PluginDecl>() || size > 1 << 16 {
        return Err(bad(&format!("declaration size {size} is not sane")));
    }
    // SAFETY: the size and version checks above say this is a full v1 declaration.
    let decl: &'static PluginDecl = unsafe { &*decl_ptr };
    // SAFETY: static strings from the plugin.
    let text = |b: ByteSlice| String::from_utf8_lossy(unsafe { b.as_slice() }).into_owned();
    let name = text(decl.name);
    if name.is_empty() {
        return Err(bad("the plugin has no name"));
    }
    if decl.capabilities & abi::capability::PROVIDER != 0 {
        if decl.provider.is_null() {
            return Err(bad("it declares a provider but has no provider vtable"));
        }
        // SAFETY: non-null static vtable.
        let vt_size = unsafe { std::ptr::read(decl.provider.cast::<u32>()) } as usize;
        // At least the ABI 1.0 vtable: the host then holds a reference to a whole, readable
        // struct, and later (appended) fields are checked against the size one by one.
        if !(PROVIDER_VTABLE_V1_0_SIZE..=1 << 16).contains(&vt_size) {
            return Err(bad(&format!("provider vtable size {vt_size} is not sane")));
        }
    }
    Ok(PluginLibrary {
        version: text(decl.version),
        name,
        path: path.to_path_buf(),
        capabilities: decl.capabilities,
        decl,
    })
}

impl PluginLibrary {
    pub fn is_provider(&self) -> bool {
        self.capabilities & abi::capability::PROVIDER != 0
    }

    pub fn is_local(&self) -> bool {
        self.capabilities & abi::capability::LOCAL != 0
    }

    /// Creates a provider instance for one configured provider.
    /// `setup_json` is `{"name", "base_url", "options"}`.
    pub fn provider(&self, provider_name: &str, setup_json: &[u8]) -> Result<ProviderCodec, LoadError> {
        if !self.is_provider() {
            return Err(LoadError::NotAProvider {
                plugin: self.name.clone(),
            });
        }
        let vt = VTable::new(self.decl.provider);
        let create_err = |reason: String| LoadError::Create {
            plugin: self.name.clone(),
            provider: provider_name.to_string(),
            reason,
        };
        let create = vt
            .create()
            .ok_or_else(|| create_err("it has no create function".into()))?;
        let mut sink = Collector::default();
        let out = sink.output();
        // SAFETY: vtable function with valid arguments for the call.
        let instance = unsafe { create(ByteSlice::from_slice(setup_json), &out) };
        if instance.is_null() {
            let reason = sink
                .items
                .iter()
                .find_map(|i| match i {
                    Item::Error(e) => Some(e.message.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "create failed without a reason (or panicked)".into());
            return Err(create_err(reason));
        }
        Ok(ProviderCodec {
            vt,
            instance,
            plugin: Arc::from(self.name.as_str()),
            local: self.is_local(),
            panics: AtomicU32::new(0),
            disabled: AtomicBool::new(false),
        })
    }
}

/// A provider vtable, read respecting its declared size: fields past the end are absent.
#[derive(Clone, Copy)]
struct VTable {
    raw: &'static ProviderVTable,
    size: usize,
}

macro_rules! vt_field {
    ($name:ident, $ty:ty) => {
        fn $name(&self) -> Option<$ty> {
            let end = std::mem::offset_of!(ProviderVTable, $name) + std::mem::size_of::<Option<$ty>>();
            if self.size >= end { self.raw.$name } else { None }
        }
    };
}

impl VTable {
    fn new(ptr: *const ProviderVTable) -> VTable {
        // SAFETY: validated non-null static vtable at load.
        let raw = unsafe { &*ptr };
        VTable {
            raw,
            size: raw.struct_size as usize,
        }
    }
    vt_field!(create, abi::CreateFn);
    vt_field!(destroy, abi::DestroyFn);
    vt_field!(encode_request, abi::EncodeRequestFn);
    vt_field!(decode_response, abi::DecodeFn);
    vt_field!(decode_error, abi::DecodeFn);
    vt_field!(stream_open, abi::StreamOpenFn);
    vt_field!(stream_feed, abi::StreamFeedFn);
    vt_field!(stream_finish, abi::StreamFinishFn);
    vt_field!(stream_close, abi::StreamCloseFn);
    vt_field!(respond_local, abi::EncodeRequestFn);
}

/// One provider instance inside a plugin. Thread-safe: the SDK requires `Provider: Sync`.
pub struct ProviderCodec {
    vt: VTable,
    instance: *mut c_void,
    plugin: Arc<str>,
    local: bool,
    panics: AtomicU32,
    disabled: AtomicBool,
}

// SAFETY: the plugin contract requires instances to be usable from any thread concurrently.
unsafe impl Send for ProviderCodec {}
// SAFETY: as above.
unsafe impl Sync for ProviderCodec {}

impl Drop for ProviderCodec {
    fn drop(&mut self) {
        if let Some(destroy) = self.vt.destroy() {
            // SAFETY: the instance came from this vtable's create and is not used again.
            unsafe { destroy(self.instance) };
        }
    }
}

impl std::fmt::Debug for ProviderCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderCodec")
            .field("plugin", &self.plugin)
            .field("local", &self.local)
            .finish()
    }
}

impl ProviderCodec {
    pub fn plugin_name(&self) -> &str {
        &self.plugin
    }

    /// A local provider answers by itself ([`ProviderCodec::respond_local`]).
    pub fn is_local(&self) -> bool {
        self.local
    }

    pub fn panic_count(&self) -> u32 {
        self.panics.load(Ordering::Relaxed)
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    fn check_enabled(&self) -> Result<(), CallError> {
        if self.is_disabled() {
            return Err(CallError::Disabled {
                plugin: self.plugin.clone(),
            });
        }
        Ok(())
    }

    fn unsupported(&self, call: &'static str) -> CallError {
        CallError::Unsupported {
            plugin: self.plugin.clone(),
            call,
        }
    }

    /// Maps a call's status to a result, counting panics.
    fn outcome(&self, code: i32, sink: &mut Collector, call: &'static str) -> Result<(), CallError> {
        match code {
            status::OK => Ok(()),
            status::ERROR => Err(CallError::Plugin(sink.take_error().unwrap_or_else(|| PluginError {
                status: 502,
                message: format!("plugin `{}` failed in {call} without a reason", self.plugin),
                ..PluginError::default()
            }))),
            status::PANIC => {
                let n = self.panics.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= PANIC_LIMIT {
                    self.disabled.store(true, Ordering::Relaxed);
                }
                Err(CallError::Panicked {
                    plugin: self.plugin.clone(),
                })
            }
            status::UNSUPPORTED => Err(self.unsupported(call)),
            other => Err(CallError::Contract {
                plugin: self.plugin.clone(),
                detail: format!("{call} returned unknown status {other}"),
            }),
        }
    }

    /// Unified request → the HTTP request to send upstream.
    pub fn encode_request(&self, info: &CallInfo<'_>, request: &[u8]) -> Result<HttpRequestParts, CallError> {
        self.check_enabled()?;
        let f = self
            .vt
            .encode_request()
            .ok_or_else(|| self.unsupported("encode_request"))?;
        let ctx = info.to_abi();
        let mut sink = Collector::default();
        let out = sink.output();
        // SAFETY: valid instance, context and sink for the duration of the call.
        let code = unsafe { f(self.instance, &ctx, ByteSlice::from_slice(request), &out) };
        self.outcome(code, &mut sink, "encode_request")?;
        let req = std::mem::take(&mut sink.request);
        if req.url.is_empty() {
            return Err(CallError::Contract {
                plugin: self.plugin.clone(),
                detail: "encode_request produced no URL".into(),
            });
        }
        Ok(req)
    }

    /// Runs one of the two body decoders (same signature) into a fresh sink.
    fn call_decode(&self, f: abi::DecodeFn, info: &CallInfo<'_>, http_status: u16, body: &[u8]) -> (i32, Collector) {
        let ctx = info.to_abi();
        let mut sink = Collector::default();
        let out = sink.output();
        // SAFETY: valid instance, context and sink for the duration of the call.
        let code = unsafe {
            f(
                self.instance,
                &ctx,
                u32::from(http_status),
                ByteSlice::from_slice(body),
                &out,
            )
        };
        (code, sink)
    }

    /// A 2xx upstream body → the unified response.
    pub fn decode_response(&self, info: &CallInfo<'_>, http_status: u16, body: &[u8]) -> Result<Payload, CallError> {
        self.check_enabled()?;
        let f = self
            .vt
            .decode_response()
            .ok_or_else(|| self.unsupported("decode_response"))?;
        let (code, mut sink) = self.call_decode(f, info, http_status, body);
        self.outcome(code, &mut sink, "decode_response")?;
        sink.items
            .into_iter()
            .find_map(|i| match i {
                Item::Response(p) => Some(p),
                _ => None,
            })
            .ok_or_else(|| CallError::Contract {
                plugin: self.plugin.clone(),
                detail: "decode_response produced no response".into(),
            })
    }

    /// A non-2xx upstream body → the unified error.
    pub fn decode_error(&self, info: &CallInfo<'_>, http_status: u16, body: &[u8]) -> Result<PluginError, CallError> {
        self.check_enabled()?;
        let f = self.vt.decode_error().ok_or_else(|| self.unsupported("decode_error"))?;
        let (code, mut sink) = self.call_decode(f, info, http_status, body);
        match self.outcome(code, &mut sink, "decode_error") {
            Ok(()) => {}
            // Reporting the error item with status ERROR is as valid as with OK here.
            Err(CallError::Plugin(e)) => return Ok(e),
            Err(e) => return Err(e),
        }
        sink.take_error().ok_or_else(|| CallError::Contract {
            plugin: self.plugin.clone(),
            detail: "decode_error produced no error".into(),
        })
    }

    /// Local providers: the response items (with delays) for a request.
    pub fn respond_local(&self, info: &CallInfo<'_>, request: &[u8]) -> Result<Vec<Item>, CallError> {
        self.check_enabled()?;
        let f = self
            .vt
            .respond_local()
            .ok_or_else(|| self.unsupported("respond_local"))?;
        let ctx = info.to_abi();
        let mut sink = Collector::default();
        let out = sink.output();
        // SAFETY: as in encode_request.
        let code = unsafe { f(self.instance, &ctx, ByteSlice::from_slice(request), &out) };
        match code {
            // A local provider's error item is its answer (e.g. a simulated 429).
            status::ERROR if sink.has_error() => Ok(sink.items),
            _ => {
                self.outcome(code, &mut sink, "respond_local")?;
                Ok(sink.items)
            }
        }
    }

    /// A decoder for one upstream stream.
    pub fn open_stream(self: &Arc<Self>, info: &CallInfo<'_>) -> Result<StreamDecoder, CallError> {
        self.check_enabled()?;
        let open = self.vt.stream_open().ok_or_else(|| self.unsupported("streaming"))?;
        if self.vt.stream_feed().is_none() {
            return Err(self.unsupported("streaming"));
        }
        let ctx = info.to_abi();
        // SAFETY: valid instance and context for the call.
        let state = unsafe { open(self.instance, &ctx) };
        if state.is_null() {
            return Err(self.unsupported("streaming"));
        }
        Ok(StreamDecoder {
            codec: Arc::clone(self),
            state,
            sink: Collector::default(),
        })
    }
}

/// One stream's decoder state inside the plugin; closed on drop.
pub struct StreamDecoder {
    codec: Arc<ProviderCodec>,
    state: *mut c_void,
    sink: Collector,
}

// SAFETY: the plugin contract lets a stream state move between threads (used by one at a time).
unsafe impl Send for StreamDecoder {}

impl StreamDecoder {
    /// Feeds a fragment; decoded items are appended to `items`.
    pub fn feed(&mut self, info: &CallInfo<'_>, bytes: &[u8], items: &mut Vec<Item>) -> Result<(), CallError> {
        self.codec.check_enabled()?;
        let Some(f) = self.codec.vt.stream_feed() else {
            return Err(self.codec.unsupported("streaming"));
        };
        let ctx = info.to_abi();
        let out = self.sink.output();
        // SAFETY: valid instance, state, context and sink for the call.
        let code = unsafe {
            f(
                self.codec.instance,
                self.state,
                &ctx,
                ByteSlice::from_slice(bytes),
                &out,
            )
        };
        self.drain(code, items, "stream_feed")
    }

    /// The upstream closed the stream; flushes buffered items.
    pub fn finish(&mut self, info: &CallInfo<'_>, items: &mut Vec<Item>) -> Result<(), CallError> {
        self.codec.check_enabled()?;
        let Some(f) = self.codec.vt.stream_finish() else {
            return Ok(());
        };
        let ctx = info.to_abi();
        let out = self.sink.output();
        // SAFETY: as in feed.
        let code = unsafe { f(self.codec.instance, self.state, &ctx, &out) };
        self.drain(code, items, "stream_finish")
    }

    /// Warnings the plugin logged since the last call.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.sink.warnings)
    }

    fn drain(&mut self, code: i32, items: &mut Vec<Item>, call: &'static str) -> Result<(), CallError> {
        let r = match code {
            // An error item mid-stream is data (the host ends the stream with it).
            status::ERROR if self.sink.has_error() => Ok(()),
            _ => self.codec.outcome(code, &mut self.sink, call),
        };
        // The caller's vector is usually empty: swapping hands the items over without moving
        // each one (and both vectors keep their capacity for the next call).
        if items.is_empty() {
            std::mem::swap(items, &mut self.sink.items);
        } else {
            items.append(&mut self.sink.items);
        }
        r
    }
}

impl Drop for StreamDecoder {
    fn drop(&mut self) {
        if let Some(close) = self.codec.vt.stream_close() {
            // SAFETY: state came from stream_open and is not used again.
            unsafe { close(self.codec.instance, self.state) };
        }
    }
}

/// Numbers put before an item; they describe that item and are reset after it.
#[derive(Default)]
struct Pending {
    usage: Usage,
    has_usage: bool,
    flags: u64,
    error_status: u16,
    error_kind: u64,
    retryable: bool,
}

/// The host-owned buffer behind an [`Output`].
#[derive(Default)]
struct Collector {
    request: HttpRequestParts,
    items: Vec<Item>,
    warnings: Vec<String>,
    pending: Pending,
    /// The last model name seen, reused while the codec keeps naming the same one.
    last_model: Option<Arc<str>>,
}

impl Collector {
    fn output(&mut self) -> Output {
        Output {
            struct_size: std::mem::size_of::<Output>() as u32,
            host: (self as *mut Collector).cast::<c_void>(),
            put_bytes: collector_put_bytes,
            put_u64: collector_put_u64,
        }
    }

    fn has_error(&self) -> bool {
        self.items.iter().any(|i| matches!(i, Item::Error(_)))
    }

    fn take_error(&mut self) -> Option<PluginError> {
        let pos = self.items.iter().position(|i| matches!(i, Item::Error(_)))?;
        match self.items.remove(pos) {
            Item::Error(e) => Some(e),
            _ => None,
        }
    }

    fn put_bytes(&mut self, slot_id: u32, a: &[u8], b: &[u8]) {
        // Valid UTF-8 (every real plugin's text) is copied as is; `from_utf8_lossy` alone
        // walks the bytes chunk by chunk, several times slower on short strings.
        let text = |x: &[u8]| match std::str::from_utf8(x) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(x).into_owned(),
        };
        match slot_id {
            slot::METHOD => self.request.method = text(a),
            slot::URL => self.request.url = text(a),
            slot::HEADER => self.request.headers.push((text(a), text(b))),
            slot::BODY => self.request.body.extend_from_slice(a),
            slot::RESPONSE | slot::CHUNK => {
                let p = std::mem::take(&mut self.pending);
                let payload = Payload {
                    json: a.to_vec(),
                    model: self.model(b),
                    usage: p.has_usage.then_some(p.usage),
                    flags: p.flags,
                };
                self.items.push(if slot_id == slot::RESPONSE {
                    Item::Response(payload)
                } else {
                    Item::Chunk(payload)
                });
            }
            slot::DONE => {
                self.pending = Pending::default();
                self.items.push(Item::Done);
            }
            slot::ERROR => {
                let p = std::mem::take(&mut self.pending);
                let details: Option<serde_json::Value> = serde_json::from_slice(b).ok();
                let field = |k: &str| {
                    details
                        .as_ref()
                        .and_then(|d| d.get(k))
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                };
                self.items.push(Item::Error(PluginError {
                    status: if p.error_status == 0 { 502 } else { p.error_status },
                    kind: p.error_kind,
                    retryable: p.retryable,
                    message: text(a),
                    error_type: field("type"),
                    code: field("code"),
                    param: field("param"),
                }));
            }
            slot::WARN => self.warnings.push(text(a)),
            // Unknown slots come from newer plugins; ignoring them is the compatibility rule.
            _ => {}
        }
    }

    fn model(&mut self, name: &[u8]) -> Arc<str> {
        match &self.last_model {
            Some(last) if last.as_bytes() == name => Arc::clone(last),
            _ => {
                let model: Arc<str> = Arc::from(String::from_utf8_lossy(name));
                self.last_model = Some(Arc::clone(&model));
                model
            }
        }
    }

    fn put_u64(&mut self, slot_id: u32, v: u64) {
        let p = &mut self.pending;
        match slot_id {
            slot::PROMPT_TOKENS => (p.usage.prompt_tokens, p.has_usage) = (v, true),
            slot::COMPLETION_TOKENS => (p.usage.completion_tokens, p.has_usage) = (v, true),
            slot::TOTAL_TOKENS => (p.usage.total_tokens, p.has_usage) = (v, true),
            slot::CACHED_TOKENS => p.usage.cached_tokens = v,
            slot::CACHE_WRITE_TOKENS => p.usage.cache_write_tokens = v,
            slot::REASONING_TOKENS => p.usage.reasoning_tokens = v,
            slot::CHUNK_FLAGS => p.flags = v,
            slot::ERROR_STATUS => p.error_status = u16::try_from(v).unwrap_or(502),
            slot::ERROR_KIND => p.error_kind = v,
            slot::ERROR_RETRYABLE => p.retryable = v != 0,
            slot::DELAY_MS => self.items.push(Item::Delay(v)),
            _ => {}
        }
    }
}

unsafe extern "C" fn collector_put_bytes(host: *mut c_void, slot_id: u32, a: ByteSlice, b: ByteSlice) {
    // Host callbacks must never unwind into the plugin.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `host` is the Collector that built this Output, alive for the call; the
        // slices are valid for the call (plugin contract).
        let (c, a, b) = unsafe { (&mut *host.cast::<Collector>(), a.as_slice(), b.as_slice()) };
        c.put_bytes(slot_id, a, b);
    }));
}

unsafe extern "C" fn collector_put_u64(host: *mut c_void, slot_id: u32, value: u64) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as in collector_put_bytes.
        let c = unsafe { &mut *host.cast::<Collector>() };
        c.put_u64(slot_id, value);
    }));
}

/// The platform file name for plugin `name`: `libswitchyard_NAME.so` on Linux.
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}switchyard_{}{}",
        std::env::consts::DLL_PREFIX,
        name,
        std::env::consts::DLL_SUFFIX
    )
}
