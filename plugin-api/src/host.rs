//! The gateway's side: load a plugin library, validate its declaration, and call its
//! vtable through safe wrappers that collect outputs into host-owned buffers.
//!
//! The host never holds a reference to a plugin's declaration or vtable: the plugin may have
//! been built against an older minor version whose structs are smaller than today's. Every
//! field is read through a raw pointer once the plugin's declared `struct_size` is known to
//! cover it, and the vtable's slots are copied into host memory at load.

mod hook;
mod panic_circuit;

pub use hook::{ChunkVerdict, HookCall, HookInstance, HookRequest, PostAction, PreAction, Rejection};
pub use panic_circuit::{PANIC_COOLDOWN, PANIC_LIMIT, PanicPolicy};

use crate::abi::frozen::v1_0;
use crate::abi::{self, ByteSlice, CallContext, Output, PluginDecl, ProviderVTable, read_field, slot, status};
use panic_circuit::{PanicCircuit, Ticket};
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest `struct_size` the loader believes; anything larger is garbage, not a struct.
const MAX_STRUCT_SIZE: usize = 1 << 16;

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
    #[error(
        "plugin `{plugin}` ({path}) was built with panic = \"abort\": a panic in it would abort the whole gateway instead of failing one request; build it with panic = \"unwind\" (the default; check `[profile.*] panic` in its Cargo.toml)"
    )]
    PanicAbort { plugin: String, path: PathBuf },
    #[error("plugin `{plugin}` is not a provider plugin")]
    NotAProvider { plugin: String },
    #[error("plugin `{plugin}` is not a hook plugin")]
    NotAHook { plugin: String },
    #[error("plugin `{plugin}` refused the configuration of hook `{hook}`: {reason}")]
    CreateHook {
        plugin: String,
        hook: String,
        reason: String,
    },
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
    #[error("plugin `{plugin}` is disabled after repeated panics (until a probe call succeeds after its cooldown)")]
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

/// An error message cut to [`abi::MAX_ERROR_MESSAGE_BYTES`] on a character boundary: a plugin
/// not built with the SDK may hand over any length, and the message reaches a client.
fn bounded_message(mut message: String) -> String {
    if message.len() > abi::MAX_ERROR_MESSAGE_BYTES {
        let mut end = abi::MAX_ERROR_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

/// Token counts as reported by a codec.
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
#[derive(Debug, Clone, Copy, Default)]
pub struct CallInfo<'a> {
    pub stream: bool,
    pub unix_time_ms: u64,
    pub model: &'a str,
    pub api_key: &'a str,
    pub request_id: &'a str,
    /// `chat`, … (see [`abi::operation::name`]).
    pub operation: &'a str,
    /// What the client asked for (an alias or `provider/model`).
    pub alias: &'a str,
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
            operation: ByteSlice::from_str(self.operation),
            alias: ByteSlice::from_str(self.alias),
            virtual_key_id: ByteSlice::EMPTY,
            client_headers: std::ptr::null(),
            client_header_count: 0,
            hook_state: std::ptr::null_mut(),
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
    /// The [`abi::operation`] bits the plugin serves.
    pub operations: u64,
    /// The provider vtable's slots, copied at load; slots past the plugin's declared size
    /// (a plugin built against an older minor) are `None`.
    provider: Option<ProviderVTable>,
    /// The hook vtable's slots, copied and validated at load the same way.
    hook: Option<abi::HookVTable>,
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
/// the rest of the process (a plugin's static declaration), and so must its vtables.
pub unsafe fn from_declaration(decl_ptr: *const PluginDecl, path: &Path) -> Result<PluginLibrary, LoadError> {
    let bad = |reason: &str| LoadError::BadDeclaration {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if decl_ptr.is_null() {
        return Err(bad("the entry symbol returned a null declaration"));
    }
    // SAFETY: non-null, and every version's declaration starts with its size.
    let size = unsafe { abi::declared_size(decl_ptr) };
    // SAFETY: each read is checked against the declared size. Major and minor sit right after
    // struct_size in every version, so they are read before the size is judged.
    let (major, minor) = unsafe {
        (
            read_field!(decl_ptr, size, PluginDecl, abi_major),
            read_field!(decl_ptr, size, PluginDecl, abi_minor),
        )
    };
    let (Some(major), Some(minor)) = (major, minor) else {
        return Err(bad("the declaration is too small"));
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
    // Every 1.x declaration has at least the 1.0 fields; today's struct may be larger.
    if !(v1_0::PLUGIN_DECL_SIZE..=MAX_STRUCT_SIZE).contains(&size) {
        return Err(bad(&format!("declaration size {size} is not sane")));
    }
    // SAFETY: 1.0 fields, covered by the size just checked (so the defaults are never used).
    let (name, version, capabilities, provider, hook) = unsafe {
        (
            read_field!(decl_ptr, size, PluginDecl, name).unwrap_or(ByteSlice::EMPTY),
            read_field!(decl_ptr, size, PluginDecl, version).unwrap_or(ByteSlice::EMPTY),
            read_field!(decl_ptr, size, PluginDecl, capabilities).unwrap_or(0),
            read_field!(decl_ptr, size, PluginDecl, provider).unwrap_or(std::ptr::null()),
            read_field!(decl_ptr, size, PluginDecl, hook).unwrap_or(std::ptr::null()),
        )
    };
    // SAFETY: a 1.1 field, read only when the declared size covers it.
    let operations = unsafe { read_field!(decl_ptr, size, PluginDecl, operations) }.unwrap_or(abi::operation::DEFAULT);
    // SAFETY: static strings from the plugin.
    let text = |b: ByteSlice| String::from_utf8_lossy(unsafe { b.as_slice() }).into_owned();
    let name = text(name);
    if name.is_empty() {
        return Err(bad("the plugin has no name"));
    }
    if capabilities & abi::capability::PANIC_ABORT != 0 {
        return Err(LoadError::PanicAbort {
            plugin: name,
            path: path.to_path_buf(),
        });
    }
    let provider = if capabilities & abi::capability::PROVIDER != 0 {
        if provider.is_null() {
            return Err(bad("it declares a provider but has no provider vtable"));
        }
        // SAFETY: a non-null static vtable from the plugin.
        Some(unsafe { copy_provider_vtable(provider) }.map_err(|reason| bad(&reason))?)
    } else {
        None
    };
    let hook = if capabilities & abi::capability::HOOK != 0 {
        if hook.is_null() {
            return Err(bad("it declares a hook but has no hook vtable"));
        }
        // SAFETY: a non-null static vtable from the plugin.
        Some(unsafe { hook::copy_vtable(hook) }.map_err(|reason| bad(&reason))?)
    } else {
        None
    };
    Ok(PluginLibrary {
        version: text(version),
        name,
        path: path.to_path_buf(),
        capabilities,
        operations,
        provider,
        hook,
    })
}

pub(crate) fn check_vtable_size(what: &str, size: usize, v1_0_size: usize) -> Result<(), String> {
    if (v1_0_size..=MAX_STRUCT_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(format!("{what} vtable size {size} is not sane"))
    }
}

/// Copies a plugin's provider vtable into host memory, slot by slot; a slot past the
/// plugin's declared size (a later minor's slot in an older plugin) is `None`.
///
/// # Safety
/// `ptr` is non-null and points to `struct_size` readable bytes.
unsafe fn copy_provider_vtable(ptr: *const ProviderVTable) -> Result<ProviderVTable, String> {
    // SAFETY: guaranteed by the caller.
    let size = unsafe { abi::declared_size(ptr) };
    check_vtable_size("provider", size, v1_0::PROVIDER_VTABLE_SIZE)?;
    macro_rules! slot {
        ($name:ident) => {
            // SAFETY: the read is checked against the declared size.
            unsafe { read_field!(ptr, size, ProviderVTable, $name) }.flatten()
        };
    }
    Ok(ProviderVTable {
        struct_size: size as u32,
        create: slot!(create),
        destroy: slot!(destroy),
        encode_request: slot!(encode_request),
        decode_response: slot!(decode_response),
        decode_error: slot!(decode_error),
        stream_open: slot!(stream_open),
        stream_feed: slot!(stream_feed),
        stream_finish: slot!(stream_finish),
        stream_close: slot!(stream_close),
        respond_local: slot!(respond_local),
        #[cfg(test)]
        appended_for_tests: slot!(appended_for_tests),
    })
}

#[cfg(test)]
impl PluginLibrary {
    /// The provider slots as copied at load.
    pub(crate) fn provider_slots(&self) -> Option<&ProviderVTable> {
        self.provider.as_ref()
    }
}

impl PluginLibrary {
    pub fn is_provider(&self) -> bool {
        self.capabilities & abi::capability::PROVIDER != 0
    }

    pub fn is_local(&self) -> bool {
        self.capabilities & abi::capability::LOCAL != 0
    }

    /// Creates a provider instance for one configured provider, with the default
    /// [`PanicPolicy`]. `setup_json` is `{"name", "base_url", "options"}`.
    pub fn provider(&self, provider_name: &str, setup_json: &[u8]) -> Result<ProviderCodec, LoadError> {
        self.provider_with(provider_name, setup_json, PanicPolicy::default())
    }

    /// [`PluginLibrary::provider`] with the host's [`PanicPolicy`] for the instance.
    pub fn provider_with(
        &self,
        provider_name: &str,
        setup_json: &[u8],
        panic_policy: PanicPolicy,
    ) -> Result<ProviderCodec, LoadError> {
        let Some(vt) = self.provider else {
            return Err(LoadError::NotAProvider {
                plugin: self.name.clone(),
            });
        };
        let create_err = |reason: String| LoadError::Create {
            plugin: self.name.clone(),
            provider: provider_name.to_string(),
            reason,
        };
        let create = vt
            .create
            .ok_or_else(|| create_err("it has no create function".into()))?;
        let (instance, _) = create_instance(create, setup_json).map_err(create_err)?;
        Ok(ProviderCodec {
            vt,
            instance,
            plugin: Arc::from(self.name.as_str()),
            local: self.is_local(),
            circuit: PanicCircuit::new(panic_policy),
        })
    }
}

/// Calls a vtable's `create`; the instance and what it put, or the reason it refused.
fn create_instance(create: abi::CreateFn, setup_json: &[u8]) -> Result<(*mut c_void, Collector), String> {
    let mut sink = Collector::default();
    let out = sink.output();
    // SAFETY: vtable function with valid arguments for the call.
    let instance = unsafe { create(ByteSlice::from_slice(setup_json), &out) };
    if instance.is_null() {
        return Err(sink
            .take_error()
            .map(|e| e.message)
            .unwrap_or_else(|| "create failed without a reason (or panicked)".into()));
    }
    Ok((instance, sink))
}

/// One provider instance inside a plugin. Thread-safe: the SDK requires `Provider: Sync`.
pub struct ProviderCodec {
    /// The plugin's slots, copied at load (never a reference into the plugin's memory).
    vt: ProviderVTable,
    instance: *mut c_void,
    plugin: Arc<str>,
    local: bool,
    circuit: PanicCircuit,
}

// SAFETY: the plugin contract requires instances to be usable from any thread concurrently.
unsafe impl Send for ProviderCodec {}
// SAFETY: as above.
unsafe impl Sync for ProviderCodec {}

impl Drop for ProviderCodec {
    fn drop(&mut self) {
        if let Some(destroy) = self.vt.destroy {
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

    /// Panics caught in this instance since it was created.
    pub fn panic_count(&self) -> u32 {
        self.circuit.panics()
    }

    /// Switched off after repeated panics, until a probe call after the cooldown succeeds.
    pub fn is_disabled(&self) -> bool {
        self.circuit.is_disabled()
    }

    fn admit(&self) -> Result<Ticket, CallError> {
        admit(&self.plugin, &self.circuit)
    }

    fn unsupported(&self, call: &'static str) -> CallError {
        CallError::Unsupported {
            plugin: self.plugin.clone(),
            call,
        }
    }

    fn outcome(&self, ticket: Ticket, code: i32, sink: &mut Collector, call: &'static str) -> Result<(), CallError> {
        outcome(&self.plugin, &self.circuit, ticket, code, sink, call)
    }

    /// Unified request → the HTTP request to send upstream.
    pub fn encode_request(&self, info: &CallInfo<'_>, request: &[u8]) -> Result<HttpRequestParts, CallError> {
        let f = self
            .vt
            .encode_request
            .ok_or_else(|| self.unsupported("encode_request"))?;
        let ticket = self.admit()?;
        let ctx = info.to_abi();
        let mut sink = Collector::default();
        let out = sink.output();
        // SAFETY: valid instance, context and sink for the duration of the call.
        let code = unsafe { f(self.instance, &ctx, ByteSlice::from_slice(request), &out) };
        self.outcome(ticket, code, &mut sink, "encode_request")?;
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
    fn call_decode(
        &self,
        f: abi::DecodeFn,
        info: &CallInfo<'_>,
        http_status: u16,
        body: &[u8],
    ) -> Result<(Ticket, i32, Collector), CallError> {
        let ticket = self.admit()?;
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
        Ok((ticket, code, sink))
    }

    /// A 2xx upstream body → the unified response.
    pub fn decode_response(&self, info: &CallInfo<'_>, http_status: u16, body: &[u8]) -> Result<Payload, CallError> {
        let f = self
            .vt
            .decode_response
            .ok_or_else(|| self.unsupported("decode_response"))?;
        let (ticket, code, mut sink) = self.call_decode(f, info, http_status, body)?;
        self.outcome(ticket, code, &mut sink, "decode_response")?;
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
        let f = self.vt.decode_error.ok_or_else(|| self.unsupported("decode_error"))?;
        let (ticket, code, mut sink) = self.call_decode(f, info, http_status, body)?;
        match self.outcome(ticket, code, &mut sink, "decode_error") {
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
        let f = self.vt.respond_local.ok_or_else(|| self.unsupported("respond_local"))?;
        let ticket = self.admit()?;
        let ctx = info.to_abi();
        let mut sink = Collector::default();
        let out = sink.output();
        // SAFETY: as in encode_request.
        let code = unsafe { f(self.instance, &ctx, ByteSlice::from_slice(request), &out) };
        // A local provider's error item is its answer (e.g. a simulated 429).
        if code == status::ERROR && sink.has_error() {
            self.circuit.returned(ticket);
            return Ok(sink.items);
        }
        self.outcome(ticket, code, &mut sink, "respond_local")?;
        Ok(sink.items)
    }

    /// A decoder for one upstream stream.
    pub fn open_stream(self: &Arc<Self>, info: &CallInfo<'_>) -> Result<StreamDecoder, CallError> {
        let open = self.vt.stream_open.ok_or_else(|| self.unsupported("streaming"))?;
        if self.vt.stream_feed.is_none() {
            return Err(self.unsupported("streaming"));
        }
        let ticket = self.admit()?;
        let ctx = info.to_abi();
        // SAFETY: valid instance and context for the call.
        let state = unsafe { open(self.instance, &ctx) };
        // stream_open has no status: it returned, so it counts as a normal return.
        self.circuit.returned(ticket);
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

/// Bytes per event assumed when sizing the item buffer for one read: a chat chunk event with
/// its id, model and choice takes well over this, so the estimate seldom reserves more than a
/// read produces; a read of smaller events still grows the buffer as needed.
const MIN_EVENT_BYTES: usize = 128;

impl StreamDecoder {
    /// Feeds a fragment; decoded items are appended to `items`.
    pub fn feed(&mut self, info: &CallInfo<'_>, bytes: &[u8], items: &mut Vec<Item>) -> Result<(), CallError> {
        let Some(f) = self.codec.vt.stream_feed else {
            return Err(self.codec.unsupported("streaming"));
        };
        let ticket = self.codec.admit()?;
        let ctx = info.to_abi();
        // Room for the events these bytes likely hold, so a read of many events fills one
        // allocation instead of doubling its way there, copying every item at each step; the
        // capacity stays for the stream's later reads.
        self.sink.items.reserve(bytes.len() / MIN_EVENT_BYTES);
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
        self.drain(ticket, code, items, "stream_feed")
    }

    /// The upstream closed the stream; flushes buffered items.
    pub fn finish(&mut self, info: &CallInfo<'_>, items: &mut Vec<Item>) -> Result<(), CallError> {
        let Some(f) = self.codec.vt.stream_finish else {
            return Ok(());
        };
        let ticket = self.codec.admit()?;
        let ctx = info.to_abi();
        let out = self.sink.output();
        // SAFETY: as in feed.
        let code = unsafe { f(self.codec.instance, self.state, &ctx, &out) };
        self.drain(ticket, code, items, "stream_finish")
    }

    /// Warnings the plugin logged since the last call.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.sink.warnings)
    }

    fn drain(&mut self, ticket: Ticket, code: i32, items: &mut Vec<Item>, call: &'static str) -> Result<(), CallError> {
        let r = match code {
            // An error item mid-stream is data (the host ends the stream with it).
            status::ERROR if self.sink.has_error() => {
                self.codec.circuit.returned(ticket);
                Ok(())
            }
            _ => self.codec.outcome(ticket, code, &mut self.sink, call),
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
        if let Some(close) = self.codec.vt.stream_close {
            // SAFETY: state came from stream_open and is not used again.
            unsafe { close(self.codec.instance, self.state) };
        }
    }
}

/// The right to call into a plugin instance now; hand the ticket to [`outcome`] (or
/// [`PanicCircuit::returned`]) after the call, whatever it returned.
fn admit(plugin: &Arc<str>, circuit: &PanicCircuit) -> Result<Ticket, CallError> {
    circuit
        .admit()
        .ok_or_else(|| CallError::Disabled { plugin: plugin.clone() })
}

/// Reports a finished call to the panic circuit and maps its status to a result.
fn outcome(
    plugin: &Arc<str>,
    circuit: &PanicCircuit,
    ticket: Ticket,
    code: i32,
    sink: &mut Collector,
    call: &'static str,
) -> Result<(), CallError> {
    if code == status::PANIC {
        circuit.panicked(ticket);
        return Err(CallError::Panicked { plugin: plugin.clone() });
    }
    circuit.returned(ticket);
    match code {
        status::OK => Ok(()),
        status::ERROR => Err(CallError::Plugin(sink.take_error().unwrap_or_else(|| PluginError {
            status: 502,
            message: format!("plugin `{plugin}` failed in {call} without a reason"),
            ..PluginError::default()
        }))),
        status::UNSUPPORTED => Err(CallError::Unsupported {
            plugin: plugin.clone(),
            call,
        }),
        other => Err(CallError::Contract {
            plugin: plugin.clone(),
            detail: format!("{call} returned unknown status {other}"),
        }),
    }
}

/// Numbers put before an item; they describe that item and are reset after it.
#[derive(Default)]
struct Pending {
    usage: Usage,
    has_usage: bool,
    flags: u64,
    /// CHUNK_REPLACE: the input chunk the next chunk replaces.
    replaces: Option<u64>,
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
    /// What only hook calls put.
    hook: hook::HookSink,
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
                if let (slot::CHUNK, Some(input)) = (slot_id, p.replaces) {
                    self.hook.replace(input, self.items.len());
                }
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
                    message: bounded_message(text(a)),
                    error_type: field("type"),
                    code: field("code"),
                    param: field("param"),
                }));
            }
            slot::WARN => self.warnings.push(text(a)),
            slot::REQUEST => self.hook.request = Some(a.to_vec()),
            slot::REPLY_HEADER => self.hook.reply_headers.push((text(a), text(b))),
            slot::REJECT => {
                let p = std::mem::take(&mut self.pending);
                self.hook.reject(p.error_status, a);
            }
            slot::WANT_HEADER => self.hook.want_headers.push(text(a).to_ascii_lowercase()),
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
        // Whatever a plugin reports, a token count stays in the range the ledger and cost
        // arithmetic are built for (the SDK already reads unbelievable counts as 0).
        let tokens = v.min(abi::MAX_TOKEN_COUNT);
        match slot_id {
            slot::PROMPT_TOKENS => (p.usage.prompt_tokens, p.has_usage) = (tokens, true),
            slot::COMPLETION_TOKENS => (p.usage.completion_tokens, p.has_usage) = (tokens, true),
            slot::TOTAL_TOKENS => (p.usage.total_tokens, p.has_usage) = (tokens, true),
            slot::CACHED_TOKENS => p.usage.cached_tokens = tokens,
            slot::CACHE_WRITE_TOKENS => p.usage.cache_write_tokens = tokens,
            slot::CACHE_WRITE_1H_TOKENS => p.usage.cache_write_1h_tokens = tokens,
            slot::REASONING_TOKENS => p.usage.reasoning_tokens = tokens,
            slot::CHUNK_FLAGS => p.flags = v,
            slot::ERROR_STATUS => p.error_status = u16::try_from(v).unwrap_or(502),
            slot::ERROR_KIND => p.error_kind = v,
            slot::ERROR_RETRYABLE => p.retryable = v != 0,
            slot::DELAY_MS => self.items.push(Item::Delay(v)),
            slot::HOOK_STATE => self.hook.state = v,
            slot::CHUNK_KEEP => {
                let position = self.items.len();
                self.hook.keep(v, position);
            }
            slot::CHUNK_DROP => self.hook.answered = true,
            slot::CHUNK_REPLACE => p.replaces = Some(v),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugins_error_message_is_bounded_on_a_character_boundary() {
        assert_eq!(bounded_message("short".to_string()), "short");
        let long = "€".repeat(2000); // 6000 bytes, 3 per character
        let cut = bounded_message(long.clone());
        assert!(cut.len() <= abi::MAX_ERROR_MESSAGE_BYTES && cut.len() > abi::MAX_ERROR_MESSAGE_BYTES - 3);
        assert!(long.starts_with(&cut));
    }
}
