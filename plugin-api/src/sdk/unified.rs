//! Writing the unified schema (OpenAI's chat completions) that a translating provider answers
//! with: the `chat.completion` object, `chat.completion.chunk`s and the `usage` object.
//!
//! - [`Completion`] (with [`Choice`], [`Message`], [`ToolCall`], [`ReasoningDetail`],
//!   [`Logprobs`]): a whole answer, serialised with serde ([`to_json`]).
//! - [`ChunkWriter`]: a stream's chunks, written into one reused buffer behind a head (`id`,
//!   `object`, `created`, `model`) serialised once per stream, with the [`ChunkInfo`] the host
//!   needs derived from what was written. A chunk costs no allocation once the buffer is warm.
//! - [`UsageJson`]: OpenAI's `usage` object, with the details the upstream reports
//!   ([`UsageParts`]).
//! - [`Text`]: a string value, either text to escape or a JSON string token copied as it arrived
//!   (a delta forwarded without unescaping it).
//!
//! Shapes follow OpenAI's: a message always has `content` (`null` beside tool calls) and
//! `refusal: null`; a choice has `logprobs` (`null` when not asked for); optional members
//! (`reasoning`, `reasoning_details`, `tool_calls`, `system_fingerprint`, `usage`) are left out
//! when there is nothing to say.
//!
//! ```
//! use switchyard_plugin_api::sdk::unified::{ChunkHead, ChunkWriter, Choice, Completion, Message, UsageJson, UsageParts};
//! use switchyard_plugin_api::sdk::Usage;
//!
//! let usage = Usage { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, ..Usage::default() };
//! let completion = Completion {
//!     id: "chatcmpl-1",
//!     created: 1_700_000_000,
//!     model: "m",
//!     system_fingerprint: None,
//!     choices: [Choice::new(0, Message::text("Hi there"), "stop")],
//!     usage: Some(UsageJson::new(usage, UsageParts::TOTALS)),
//! };
//! let json = completion.to_json().unwrap();
//! assert!(json.starts_with(br#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000"#));
//!
//! let mut chunks = ChunkWriter::new();
//! chunks.start(&ChunkHead { id: "chatcmpl-1", created: 1_700_000_000, model: "m", ..ChunkHead::default() });
//! chunks.choice(0, None, None, |delta| {
//!     delta.role();
//!     delta.content("Hi");
//! });
//! let chunk = chunks.end();
//! assert_eq!(
//!     chunk.json,
//!     br#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"logprobs":null,"finish_reason":null}]}"#
//! );
//! assert!(!chunk.info.finish_reason && !chunk.info.empty_choices);
//! ```

use super::{ChunkInfo, Context, ErrorKind, Out, ProviderError, Usage};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::io::Write as _;

/// OpenAI's `created` (Unix seconds) for an answer made during this call.
pub fn created(ctx: &Context<'_>) -> u64 {
    ctx.unix_time_ms / 1000
}

/// Serialises a unified object. It cannot fail for the types of this module (no maps, no
/// fallible `Serialize`); a failure would be the plugin's bug, so it is a 500, not a panic.
pub fn to_json(value: &impl Serialize) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(value).map_err(|e| {
        ProviderError::new(
            500,
            ErrorKind::Server,
            format!("the provider could not write its unified answer: {e}"),
        )
    })
}

// ------------------------------------------------------------------------------------ strings

/// A string value of the unified JSON.
#[derive(Debug, Clone)]
pub struct Text<'a>(Repr<'a>);

#[derive(Debug, Clone)]
enum Repr<'a> {
    /// Written escaped.
    Plain(Cow<'a, str>),
    /// A JSON string token, written as it is.
    Json(&'a RawValue),
}

impl<'a> Text<'a> {
    /// A JSON string token as it arrived from the upstream (escapes and all), to be copied into
    /// the output without unescaping and escaping it again; `None` if `raw` is not a string.
    pub fn json(raw: &'a RawValue) -> Option<Text<'a>> {
        raw.get().starts_with('"').then_some(Text(Repr::Json(raw)))
    }

    /// Whether the string is empty (`""`).
    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Plain(s) => s.is_empty(),
            Repr::Json(raw) => raw.get() == "\"\"",
        }
    }

    /// Appends the string as a JSON string token.
    #[inline]
    fn write(&self, buf: &mut Vec<u8>) {
        match &self.0 {
            // Writing into a Vec cannot fail, and a str always serialises.
            Repr::Plain(s) => {
                let _ = serde_json::to_writer(&mut *buf, s.as_ref());
            }
            Repr::Json(raw) => buf.extend_from_slice(raw.get().as_bytes()),
        }
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Text<'a> {
        Text(Repr::Plain(Cow::Borrowed(s)))
    }
}

impl<'a> From<&'a String> for Text<'a> {
    fn from(s: &'a String) -> Text<'a> {
        Text(Repr::Plain(Cow::Borrowed(s)))
    }
}

impl From<String> for Text<'_> {
    fn from(s: String) -> Self {
        Text(Repr::Plain(Cow::Owned(s)))
    }
}

impl<'a> From<Cow<'a, str>> for Text<'a> {
    fn from(s: Cow<'a, str>) -> Text<'a> {
        Text(Repr::Plain(s))
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Plain(s) => serializer.serialize_str(s),
            Repr::Json(raw) => raw.serialize(serializer),
        }
    }
}

// -------------------------------------------------------------------------------------- usage

/// Which usage details an upstream reports, beside the prompt, completion and total counts.
/// A detail it does not report is left out of the `usage` object rather than claimed as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageParts {
    /// `prompt_tokens_details.cached_tokens`: prompt tokens read from a cache.
    pub cached: bool,
    /// `prompt_tokens_details.cache_write_tokens` (the gateway's own detail): prompt tokens
    /// written to a cache, which some providers price apart.
    pub cache_write: bool,
    /// `completion_tokens_details.reasoning_tokens`: completion tokens spent thinking.
    pub reasoning: bool,
}

impl UsageParts {
    /// Only the three counts.
    pub const TOTALS: UsageParts = UsageParts {
        cached: false,
        cache_write: false,
        reasoning: false,
    };
    /// What OpenAI reports: cached and reasoning tokens.
    pub const OPENAI: UsageParts = UsageParts {
        cached: true,
        cache_write: false,
        reasoning: true,
    };
}

/// OpenAI's `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageJson {
    pub usage: Usage,
    pub parts: UsageParts,
}

impl UsageJson {
    pub fn new(usage: Usage, parts: UsageParts) -> UsageJson {
        UsageJson { usage, parts }
    }
}

impl Serialize for UsageJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct PromptDetails<'u>(&'u UsageJson);
        impl Serialize for PromptDetails<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let UsageJson { usage, parts } = self.0;
                let mut s = serializer.serialize_struct("PromptTokensDetails", 2)?;
                if parts.cached {
                    s.serialize_field("cached_tokens", &usage.cached_tokens)?;
                }
                if parts.cache_write {
                    s.serialize_field("cache_write_tokens", &usage.cache_write_tokens)?;
                }
                s.end()
            }
        }
        struct CompletionDetails(u64);
        impl Serialize for CompletionDetails {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut s = serializer.serialize_struct("CompletionTokensDetails", 1)?;
                s.serialize_field("reasoning_tokens", &self.0)?;
                s.end()
            }
        }

        let UsageJson { usage, parts } = self;
        let mut s = serializer.serialize_struct("CompletionUsage", 5)?;
        s.serialize_field("prompt_tokens", &usage.prompt_tokens)?;
        s.serialize_field("completion_tokens", &usage.completion_tokens)?;
        s.serialize_field("total_tokens", &usage.total_tokens)?;
        if parts.cached || parts.cache_write {
            s.serialize_field("prompt_tokens_details", &PromptDetails(self))?;
        }
        if parts.reasoning {
            s.serialize_field("completion_tokens_details", &CompletionDetails(usage.reasoning_tokens))?;
        }
        s.end()
    }
}

// ---------------------------------------------------------------------------------- responses

/// A `chat.completion`. `choices` is any serialisable sequence of [`Choice`]s (an array, a
/// `Vec`, or a serializer that writes them one by one).
#[derive(Debug, Clone)]
pub struct Completion<'a, C> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: Option<&'a str>,
    pub choices: C,
    pub usage: Option<UsageJson>,
}

impl<C: Serialize> Completion<'_, C> {
    /// The object's JSON (see [`to_json`]).
    pub fn to_json(&self) -> Result<Vec<u8>, ProviderError> {
        to_json(self)
    }
}

impl<C: Serialize> Serialize for Completion<'_, C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Completion", 7)?;
        s.serialize_field("id", self.id)?;
        s.serialize_field("object", "chat.completion")?;
        s.serialize_field("created", &self.created)?;
        s.serialize_field("model", self.model)?;
        if let Some(fingerprint) = self.system_fingerprint {
            s.serialize_field("system_fingerprint", fingerprint)?;
        }
        s.serialize_field("choices", &self.choices)?;
        if let Some(usage) = &self.usage {
            s.serialize_field("usage", usage)?;
        }
        s.end()
    }
}

/// One choice of a `chat.completion`.
#[derive(Debug, Clone)]
pub struct Choice<'a> {
    pub index: u32,
    pub message: Message<'a>,
    /// `null` when `None`.
    pub logprobs: Option<Logprobs>,
    pub finish_reason: &'a str,
}

impl<'a> Choice<'a> {
    /// A choice without logprobs.
    pub fn new(index: u32, message: Message<'a>, finish_reason: &'a str) -> Choice<'a> {
        Choice {
            index,
            message,
            logprobs: None,
            finish_reason,
        }
    }
}

impl Serialize for Choice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Choice", 4)?;
        s.serialize_field("index", &self.index)?;
        s.serialize_field("message", &self.message)?;
        s.serialize_field("logprobs", &self.logprobs)?;
        s.serialize_field("finish_reason", self.finish_reason)?;
        s.end()
    }
}

/// The assistant's message of a choice.
#[derive(Debug, Clone, Default)]
pub struct Message<'a> {
    /// `null` when `None` (OpenAI's way beside tool calls).
    pub content: Option<Text<'a>>,
    pub reasoning: Option<Text<'a>>,
    /// OpenRouter's shape for reasoning a client hands back on its next turn (signed thinking).
    pub reasoning_details: Vec<ReasoningDetail<'a>>,
    pub tool_calls: Vec<ToolCall<'a>>,
}

impl<'a> Message<'a> {
    /// A message with text content and nothing else.
    pub fn text(content: impl Into<Text<'a>>) -> Message<'a> {
        Message {
            content: Some(content.into()),
            ..Message::default()
        }
    }
}

impl Serialize for Message<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Message", 6)?;
        s.serialize_field("role", "assistant")?;
        s.serialize_field("content", &self.content)?;
        s.serialize_field("refusal", &())?;
        if let Some(reasoning) = &self.reasoning {
            s.serialize_field("reasoning", reasoning)?;
        }
        if !self.reasoning_details.is_empty() {
            s.serialize_field("reasoning_details", &self.reasoning_details)?;
        }
        if !self.tool_calls.is_empty() {
            s.serialize_field("tool_calls", &self.tool_calls)?;
        }
        s.end()
    }
}

/// An entry of `reasoning_details` (OpenRouter's shape, which clients already pass back).
#[derive(Debug, Clone)]
pub enum ReasoningDetail<'a> {
    /// `reasoning.text`: thinking text, its signature, or (in a stream) either alone.
    Text {
        text: Option<Text<'a>>,
        signature: Option<Text<'a>>,
    },
    /// `reasoning.encrypted`: thinking the upstream returns only encrypted.
    Encrypted { data: Text<'a> },
}

impl Serialize for ReasoningDetail<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ReasoningDetail", 3)?;
        match self {
            ReasoningDetail::Text { text, signature } => {
                s.serialize_field("type", "reasoning.text")?;
                if let Some(text) = text {
                    s.serialize_field("text", text)?;
                }
                if let Some(signature) = signature {
                    s.serialize_field("signature", signature)?;
                }
            }
            ReasoningDetail::Encrypted { data } => {
                s.serialize_field("type", "reasoning.encrypted")?;
                s.serialize_field("data", data)?;
            }
        }
        s.end()
    }
}

/// A function call, whole (in a response, or a stream's first delta of it) or a stream's later
/// delta of it (only `index` and an `arguments` fragment).
#[derive(Debug, Clone)]
pub struct ToolCall<'a> {
    /// Streams only: the call's position among the choice's calls.
    pub index: Option<u32>,
    /// Written with `type: "function"`; absent from a stream's later deltas of the call.
    pub id: Option<Text<'a>>,
    pub name: Option<Text<'a>>,
    /// JSON text (OpenAI sends the arguments as a string), or a fragment of it in a stream.
    pub arguments: Text<'a>,
    /// A signature the upstream needs back with the call on the next turn, carried as
    /// `extra_content.google.thought_signature` (the convention of Google's OpenAI-compatible
    /// API, which OpenAI clients hand back unchanged).
    pub thought_signature: Option<Text<'a>>,
}

impl<'a> ToolCall<'a> {
    /// A whole call: id, name and arguments.
    pub fn new(id: impl Into<Text<'a>>, name: impl Into<Text<'a>>, arguments: impl Into<Text<'a>>) -> ToolCall<'a> {
        ToolCall {
            index: None,
            id: Some(id.into()),
            name: Some(name.into()),
            arguments: arguments.into(),
            thought_signature: None,
        }
    }

    /// A stream's later delta of call `index`: a fragment of its arguments.
    pub fn arguments_delta(index: u32, arguments: impl Into<Text<'a>>) -> ToolCall<'a> {
        ToolCall {
            index: Some(index),
            id: None,
            name: None,
            arguments: arguments.into(),
            thought_signature: None,
        }
    }
}

impl Serialize for ToolCall<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Function<'c>(&'c ToolCall<'c>);
        impl Serialize for Function<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut s = serializer.serialize_struct("Function", 2)?;
                if let Some(name) = &self.0.name {
                    s.serialize_field("name", name)?;
                }
                s.serialize_field("arguments", &self.0.arguments)?;
                s.end()
            }
        }
        struct Extra<'c>(&'c Text<'c>);
        impl Serialize for Extra<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                struct Google<'c>(&'c Text<'c>);
                impl Serialize for Google<'_> {
                    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                        let mut s = serializer.serialize_struct("Google", 1)?;
                        s.serialize_field("thought_signature", self.0)?;
                        s.end()
                    }
                }
                let mut s = serializer.serialize_struct("ExtraContent", 1)?;
                s.serialize_field("google", &Google(self.0))?;
                s.end()
            }
        }

        let mut s = serializer.serialize_struct("ToolCall", 5)?;
        if let Some(index) = self.index {
            s.serialize_field("index", &index)?;
        }
        if let Some(id) = &self.id {
            s.serialize_field("id", id)?;
            s.serialize_field("type", "function")?;
        }
        s.serialize_field("function", &Function(self))?;
        if let Some(signature) = &self.thought_signature {
            s.serialize_field("extra_content", &Extra(signature))?;
        }
        s.end()
    }
}

/// OpenAI's `logprobs` object of a choice (`refusal` is always `null`: no upstream reports
/// refusal logprobs apart).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Logprobs {
    pub content: Vec<TokenLogprob>,
}

impl Logprobs {
    pub fn new(content: Vec<TokenLogprob>) -> Logprobs {
        Logprobs { content }
    }
}

impl Serialize for Logprobs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Logprobs", 2)?;
        s.serialize_field("content", &self.content)?;
        s.serialize_field("refusal", &())?;
        s.end()
    }
}

/// One token of [`Logprobs`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    /// The token's UTF-8 bytes.
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

/// One of the most likely tokens at a position of [`Logprobs`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    pub bytes: Vec<u8>,
}

// ------------------------------------------------------------------------------------- chunks

/// What every chunk of a stream repeats.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChunkHead<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: Option<&'a str>,
    /// Write `"usage": null` in every chunk but the usage chunk, as OpenAI does when the client
    /// asked for usage (`stream_options.include_usage`).
    pub usage_null: bool,
}

/// Writes one stream's `chat.completion.chunk`s: [`ChunkWriter::start`] once with the head,
/// then per chunk [`ChunkWriter::choice`] for each of its choices (none for an empty-choices
/// chunk) and [`ChunkWriter::send`] (or [`ChunkWriter::end`]); [`ChunkWriter::send_usage`] for
/// the usage chunk.
#[derive(Debug, Default)]
pub struct ChunkWriter {
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[`
    head: Vec<u8>,
    model: String,
    usage_null: bool,
    /// The chunk being written.
    buf: Vec<u8>,
    /// Choices written into `buf` since the last chunk ended.
    choices: usize,
    /// One of them has a `finish_reason`.
    finish_reason: bool,
}

/// A written chunk, for [`Out::chunk`] (or a test's recorder).
#[derive(Debug, Clone, Copy)]
pub struct ChunkOut<'w> {
    pub json: &'w [u8],
    pub model: &'w str,
    pub info: ChunkInfo,
}

impl ChunkWriter {
    pub fn new() -> ChunkWriter {
        ChunkWriter::default()
    }

    /// Sets what every chunk repeats. A writer used before this writes an empty id and model.
    pub fn start(&mut self, head: &ChunkHead<'_>) {
        self.model.clear();
        self.model.push_str(head.model);
        self.usage_null = head.usage_null;
        let h = &mut self.head;
        h.clear();
        h.extend_from_slice(b"{\"id\":");
        Text::from(head.id).write(h);
        h.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        let _ = write!(h, "{}", head.created);
        h.extend_from_slice(b",\"model\":");
        Text::from(head.model).write(h);
        if let Some(fingerprint) = head.system_fingerprint {
            h.extend_from_slice(b",\"system_fingerprint\":");
            Text::from(fingerprint).write(h);
        }
        h.extend_from_slice(b",\"choices\":[");
        // The next chunk starts afresh.
        self.choices = 0;
        self.finish_reason = false;
    }

    pub fn is_started(&self) -> bool {
        !self.head.is_empty()
    }

    /// The model every chunk names.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Adds a choice to the chunk being written: its `delta` members (written by `delta`),
    /// its `logprobs` (`null` when `None`) and `finish_reason` (`null` when `None`).
    // Per chunk: the frame is written in as few copies as the common case allows (index 0,
    // no logprobs, no finish reason), each a bounds check and a memcpy call.
    #[inline]
    pub fn choice(
        &mut self,
        index: u32,
        finish_reason: Option<&str>,
        logprobs: Option<&Logprobs>,
        delta: impl FnOnce(&mut Delta<'_>),
    ) {
        self.open_choice();
        let buf = &mut self.buf;
        if index == 0 {
            buf.extend_from_slice(b"{\"index\":0,\"delta\":{");
        } else {
            buf.extend_from_slice(b"{\"index\":");
            write_u32(buf, index);
            buf.extend_from_slice(b",\"delta\":{");
        }
        delta(&mut Delta { buf, empty: true });
        if logprobs.is_none() && finish_reason.is_none() {
            buf.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":null}");
            return;
        }
        buf.extend_from_slice(b"},\"logprobs\":");
        match logprobs {
            Some(logprobs) => {
                let _ = serde_json::to_writer(&mut *buf, logprobs);
            }
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"finish_reason\":");
        match finish_reason {
            Some(reason) => Text::from(reason).write(buf),
            None => buf.extend_from_slice(b"null"),
        }
        buf.push(b'}');
        self.finish_reason |= finish_reason.is_some();
    }

    #[inline]
    fn open_choice(&mut self) {
        if self.choices == 0 {
            self.begin();
        } else {
            self.buf.push(b',');
        }
        self.choices += 1;
    }

    #[inline]
    fn begin(&mut self) {
        if self.head.is_empty() {
            self.start(&ChunkHead::default());
        }
        self.buf.clear();
        self.buf.extend_from_slice(&self.head);
    }

    /// Ends the chunk made of the choices added since the last one.
    #[inline(always)]
    pub fn end(&mut self) -> ChunkOut<'_> {
        if self.choices == 0 {
            self.begin();
        }
        self.buf
            .extend_from_slice(if self.usage_null { b"],\"usage\":null}" } else { b"]}" });
        let info = ChunkInfo {
            finish_reason: std::mem::take(&mut self.finish_reason),
            empty_choices: std::mem::take(&mut self.choices) == 0,
            usage: None,
        };
        ChunkOut {
            json: &self.buf,
            model: &self.model,
            info,
        }
    }

    /// The usage chunk: no choices, and `usage`. Choices added since the last chunk are
    /// dropped.
    pub fn end_usage(&mut self, usage: &Usage, parts: UsageParts) -> ChunkOut<'_> {
        self.choices = 0;
        self.finish_reason = false;
        self.begin();
        self.buf.extend_from_slice(b"],\"usage\":");
        let _ = serde_json::to_writer(&mut self.buf, &UsageJson::new(*usage, parts));
        self.buf.push(b'}');
        ChunkOut {
            json: &self.buf,
            model: &self.model,
            info: ChunkInfo {
                finish_reason: false,
                empty_choices: true,
                usage: Some(*usage),
            },
        }
    }

    /// [`ChunkWriter::end`], handed to the host.
    #[inline(always)]
    pub fn send(&mut self, out: &mut Out<'_>) {
        let chunk = self.end();
        out.chunk(chunk.json, chunk.model, &chunk.info);
    }

    /// [`ChunkWriter::end_usage`], handed to the host.
    pub fn send_usage(&mut self, out: &mut Out<'_>, usage: &Usage, parts: UsageParts) {
        let chunk = self.end_usage(usage, parts);
        out.chunk(chunk.json, chunk.model, &chunk.info);
    }
}

/// Appends `n` in decimal. Per chunk, where `write!` and its formatting machinery cost more
/// than the rest of the choice's frame.
fn write_u32(buf: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

/// The members of one choice's `delta`, written in the order they are called.
pub struct Delta<'b> {
    buf: &'b mut Vec<u8>,
    empty: bool,
}

impl Delta<'_> {
    /// `key` is the member's name quoted, with its colon.
    #[inline]
    fn key(&mut self, key: &[u8]) {
        if !std::mem::replace(&mut self.empty, false) {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(key);
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// `"role": "assistant"` (a choice's first delta).
    #[inline]
    pub fn role(&mut self) {
        self.key(b"\"role\":\"assistant\"");
    }

    #[inline(always)]
    pub fn content<'t>(&mut self, text: impl Into<Text<'t>>) {
        self.key(b"\"content\":");
        text.into().write(self.buf);
    }

    /// `"content": null` (OpenAI's first delta of a tool-call answer).
    pub fn null_content(&mut self) {
        self.key(b"\"content\":null");
    }

    #[inline]
    pub fn reasoning<'t>(&mut self, text: impl Into<Text<'t>>) {
        self.key(b"\"reasoning\":");
        text.into().write(self.buf);
    }

    pub fn reasoning_details(&mut self, details: &[ReasoningDetail<'_>]) {
        self.key(b"\"reasoning_details\":");
        let _ = serde_json::to_writer(&mut *self.buf, details);
    }

    pub fn tool_calls(&mut self, calls: &[ToolCall<'_>]) {
        self.key(b"\"tool_calls\":");
        let _ = serde_json::to_writer(&mut *self.buf, calls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn value(json: &[u8]) -> Value {
        serde_json::from_slice(json).expect("valid JSON")
    }

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).expect("raw JSON")
    }

    const USAGE: Usage = Usage {
        prompt_tokens: 10,
        completion_tokens: 5,
        total_tokens: 15,
        cached_tokens: 4,
        cache_write_tokens: 3,
        cache_write_1h_tokens: 0,
        reasoning_tokens: 2,
    };

    #[test]
    fn usage_writes_the_parts_the_upstream_reports() {
        let usage = |parts| serde_json::to_value(UsageJson::new(USAGE, parts)).expect("usage");
        assert_eq!(
            usage(UsageParts::TOTALS),
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
        );
        assert_eq!(
            usage(UsageParts::OPENAI),
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                   "prompt_tokens_details": {"cached_tokens": 4},
                   "completion_tokens_details": {"reasoning_tokens": 2}})
        );
        let caching = UsageParts {
            cached: true,
            cache_write: true,
            reasoning: false,
        };
        assert_eq!(
            usage(caching),
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                   "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 3}})
        );
    }

    #[test]
    fn completion_has_openais_shape() {
        let args = raw(r#""{\"a\":1}""#);
        let calls = vec![ToolCall {
            thought_signature: Some("sig".into()),
            ..ToolCall::new("call_1", "f", Text::json(&args).expect("string"))
        }];
        let message = Message {
            content: None,
            reasoning: Some("hmm".into()),
            reasoning_details: vec![
                ReasoningDetail::Text {
                    text: Some("hmm".into()),
                    signature: Some("s1".into()),
                },
                ReasoningDetail::Encrypted { data: "xyz".into() },
            ],
            tool_calls: calls,
        };
        let completion = Completion {
            id: "c1",
            created: 7,
            model: "m",
            system_fingerprint: Some("fp"),
            choices: vec![
                Choice {
                    logprobs: Some(Logprobs::new(vec![TokenLogprob {
                        token: "a".into(),
                        logprob: -0.5,
                        bytes: vec![97],
                        top_logprobs: vec![TopLogprob {
                            token: "a".into(),
                            logprob: -0.5,
                            bytes: vec![97],
                        }],
                    }])),
                    ..Choice::new(0, message, "tool_calls")
                },
                Choice::new(1, Message::text(String::from("plain \"quoted\"")), "stop"),
            ],
            usage: None,
        };
        assert_eq!(
            value(&completion.to_json().expect("json")),
            json!({
                "id": "c1", "object": "chat.completion", "created": 7, "model": "m",
                "system_fingerprint": "fp",
                "choices": [
                    {"index": 0, "message": {
                        "role": "assistant", "content": null, "refusal": null, "reasoning": "hmm",
                        "reasoning_details": [
                            {"type": "reasoning.text", "text": "hmm", "signature": "s1"},
                            {"type": "reasoning.encrypted", "data": "xyz"}],
                        "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "f", "arguments": "{\"a\":1}"},
                            "extra_content": {"google": {"thought_signature": "sig"}}}]},
                     "logprobs": {"content": [{"token": "a", "logprob": -0.5, "bytes": [97],
                        "top_logprobs": [{"token": "a", "logprob": -0.5, "bytes": [97]}]}], "refusal": null},
                     "finish_reason": "tool_calls"},
                    {"index": 1, "message": {"role": "assistant", "content": "plain \"quoted\"", "refusal": null},
                     "logprobs": null, "finish_reason": "stop"}
                ]
            })
        );
    }

    #[test]
    fn json_text_is_copied_as_it_arrived() {
        let escaped = raw(r#""caf\u00e9 \"x\"""#);
        let text = Text::json(&escaped).expect("a string");
        let mut buf = Vec::new();
        text.write(&mut buf);
        assert_eq!(buf, br#""caf\u00e9 \"x\"""#);
        assert!(Text::json(&raw("12")).is_none());
        assert!(Text::json(&raw(r#""""#)).is_some_and(|t| t.is_empty()));
        assert!(Text::from("").is_empty() && !Text::from("x").is_empty());
    }

    #[test]
    fn chunks_share_a_head_and_say_what_they_hold() {
        let mut w = ChunkWriter::new();
        w.start(&ChunkHead {
            id: "c\"1",
            created: 9,
            model: "m",
            system_fingerprint: Some("fp"),
            usage_null: true,
        });
        assert!(w.is_started() && w.model() == "m");
        w.choice(0, None, None, |d| {
            d.role();
            d.null_content();
            d.tool_calls(&[ToolCall {
                index: Some(0),
                ..ToolCall::new("call_1", "f", "")
            }]);
        });
        w.choice(1, Some("stop"), None, |d| assert!(d.is_empty()));
        let chunk = w.end();
        assert_eq!(
            value(chunk.json),
            json!({"id": "c\"1", "object": "chat.completion.chunk", "created": 9, "model": "m",
                   "system_fingerprint": "fp", "usage": null, "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [
                    {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
                 "logprobs": null, "finish_reason": null},
                {"index": 1, "delta": {}, "logprobs": null, "finish_reason": "stop"}]})
        );
        assert!(chunk.info.finish_reason && !chunk.info.empty_choices && chunk.info.usage.is_none());

        let piece = raw(r#""\"b\":2}""#);
        w.choice(0, None, None, |d| {
            d.content("x");
            d.reasoning(Text::json(&piece).expect("string"));
            d.tool_calls(&[ToolCall::arguments_delta(0, Text::json(&piece).expect("string"))]);
        });
        let chunk = w.end();
        assert_eq!(
            value(chunk.json)["choices"],
            json!([{"index": 0, "delta": {"content": "x", "reasoning": "\"b\":2}",
                "tool_calls": [{"index": 0, "function": {"arguments": "\"b\":2}"}}]},
                "logprobs": null, "finish_reason": null}])
        );
        assert!(!chunk.info.finish_reason, "facts are per chunk");

        let chunk = w.end();
        assert_eq!(value(chunk.json)["choices"], json!([]));
        assert!(chunk.info.empty_choices);

        let chunk = w.end_usage(&USAGE, UsageParts::TOTALS);
        let v = value(chunk.json);
        assert_eq!(v["choices"], json!([]));
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
        );
        assert!(chunk.info.empty_choices && chunk.info.usage == Some(USAGE));
    }

    #[test]
    fn indexes_are_written_in_decimal() {
        for n in [0, 7, 10, 99, 100, 4_294_967_295] {
            let mut buf = Vec::new();
            write_u32(&mut buf, n);
            assert_eq!(buf, n.to_string().as_bytes());
        }
    }

    #[test]
    fn an_unstarted_writer_still_writes_json() {
        let mut w = ChunkWriter::new();
        w.choice(0, Some("stop"), None, |_| {});
        let v = value(w.end().json);
        assert_eq!((v["id"].as_str(), v["model"].as_str()), (Some(""), Some("")));
    }

    #[test]
    fn buffers_are_reused_once_warm() {
        let mut w = ChunkWriter::new();
        w.start(&ChunkHead {
            id: "c",
            model: "m",
            ..ChunkHead::default()
        });
        let write = |w: &mut ChunkWriter| {
            w.choice(0, None, None, |d| d.content("some words of a delta"));
            w.end().json.len()
        };
        write(&mut w);
        let warm = (w.buf.as_ptr(), w.buf.capacity());
        for _ in 0..100 {
            write(&mut w);
            assert_eq!((w.buf.as_ptr(), w.buf.capacity()), warm);
        }
    }
}
