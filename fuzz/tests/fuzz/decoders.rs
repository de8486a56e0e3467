//! Targets `<provider>-stream`, `<provider>-response` and `<provider>-error`: what an upstream
//! sends, into each provider plugin's decoders, through the host API on the real `.so` the
//! gateway loads (so the ABI, the SDK's panic guard and the host's collector are in the loop).

use crate::harness::{Corpus, FuzzCase, Outcome, Target, fail};
use crate::mutate;
use proptest::prelude::*;
use proptest::sample::select;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use switchyard_plugin_api::host::{self, CallError, CallInfo, Item, Payload, PluginError, PluginLibrary, Usage};

/// A provider plugin under test and how it is configured.
pub struct Provider {
    /// The plugin's name (`libswitchyard_<plugin>.so`) and the provider's.
    plugin: &'static str,
    /// The upstream model the host names in each call.
    model: &'static str,
    /// Words of its wire format, for the mutator.
    words: &'static [&'static [u8]],
    /// The decoder always writes an end (DONE or an error) when the upstream closes. When
    /// false (OpenAI-compatible servers may omit `[DONE]`) the host ends the stream itself,
    /// which is only right once a chunk carried a `finish_reason`.
    ends_on_close: bool,
    library: OnceLock<PluginLibrary>,
}

pub static OPENAI: Provider = Provider {
    plugin: "openai",
    model: "gpt-4o",
    words: &[
        b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":",
        b"[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n",
        b"\"finish_reason\":\"stop\"",
        b"\"choices\":[]",
        b"\"usage\":{\"prompt_tokens\":",
        b"\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}",
        b"\"extra_fields\":",
        b"\"obfuscation\":\"",
        b"\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"",
    ],
    ends_on_close: false,
    library: OnceLock::new(),
};

pub static ANTHROPIC: Provider = Provider {
    plugin: "anthropic",
    model: "claude-sonnet-4-5",
    words: &[
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":",
        b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":",
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"",
        b"{\"type\":\"input_json_delta\",\"partial_json\":\"",
        b"{\"type\":\"thinking_delta\",\"thinking\":\"",
        b"{\"type\":\"signature_delta\",\"signature\":\"",
        b"{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}",
        b"{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"switchyard_json_response\",\"input\":{}}",
        b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":",
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        b"event: ping\ndata: {\"type\": \"ping\"}\n\n",
        b"\"cache_read_input_tokens\":",
        b"\"cache_creation_input_tokens\":",
        b"\"stop_reason\":\"max_tokens\"",
    ],
    ends_on_close: true,
    library: OnceLock::new(),
};

pub static GEMINI: Provider = Provider {
    plugin: "gemini",
    model: "gemini-2.5-flash",
    words: &[
        b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"",
        b"{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}}}",
        b"{\"text\":\"hm\",\"thought\":true}",
        b"\"finishReason\":\"STOP\"",
        b"\"finishReason\":\"SAFETY\"",
        b"\"index\":",
        b"\"usageMetadata\":{\"promptTokenCount\":",
        b"\"candidatesTokenCount\":",
        b"\"thoughtsTokenCount\":",
        b"\"modelVersion\":\"gemini-2.5-flash-001\",\"responseId\":\"r1\"",
        b"\"promptFeedback\":{\"blockReason\":\"SAFETY\"}",
        b"\"error\":{\"code\":429,\"message\":\"Resource has been exhausted\",\"status\":\"RESOURCE_EXHAUSTED\"}",
        b"\"logprobsResult\":{\"chosenCandidates\":[{\"token\":\"a\",\"logProbability\":-0.5}]}",
    ],
    ends_on_close: true,
    library: OnceLock::new(),
};

/// The key the host hands the plugin (none of the decoders may need it).
const KEY: &str = "sk-fuzz-not-a-real-key";

/// The longest message an error may carry: the plugins cut upstream text at 4 KiB and add a
/// short prefix.
const MAX_ERROR_MESSAGE: usize = switchyard_plugin_api::abi::MAX_ERROR_MESSAGE_BYTES;

impl Provider {
    fn library(&self) -> &PluginLibrary {
        self.library.get_or_init(|| {
            let path = switchyard_e2e::paths::plugin_path(self.plugin);
            host::load(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
        })
    }

    /// A fresh instance per case: one whose panics are counted must not disable the next.
    fn codec(&self) -> Arc<host::ProviderCodec> {
        let setup = format!(r#"{{"name":"{}","base_url":null,"options":{{}}}}"#, self.plugin);
        let codec = self
            .library()
            .provider(self.plugin, setup.as_bytes())
            .unwrap_or_else(|e| panic!("provider {}: {e}", self.plugin));
        Arc::new(codec)
    }

    fn call(&self, stream: bool) -> CallInfo<'static> {
        CallInfo {
            stream,
            unix_time_ms: 1_741_569_952_000,
            model: self.model,
            api_key: KEY,
            request_id: "req-fuzz",
            ..CallInfo::default()
        }
    }

    fn corpus(&self, kind: &str) -> (String, Corpus) {
        let name = format!("{}-{kind}", self.plugin);
        let corpus = Corpus::load(&name);
        (name, corpus)
    }

    fn dictionary(&self, sse: bool) -> Arc<Vec<Vec<u8>>> {
        mutate::dictionary(self.words, sse)
    }
}

/// A `&'static str` for a target name (targets live for the whole test process).
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

// ------------------------------------------------------------------------------- streams

/// An upstream stream and how it arrives.
#[derive(Debug, Clone)]
pub struct StreamCase {
    input: Vec<u8>,
    fragments: Vec<usize>,
}

impl FuzzCase for StreamCase {
    fn corpus_bytes(&self) -> Vec<u8> {
        self.input.clone()
    }

    fn with_bytes(&self, input: Vec<u8>) -> Self {
        StreamCase {
            input,
            fragments: self.fragments.clone(),
        }
    }

    fn describe(&self) -> String {
        format!(", fed in fragments of {:?} bytes then the rest", self.fragments)
    }
}

pub fn fuzz_stream(provider: &'static Provider) {
    let (name, corpus) = provider.corpus("stream");
    let strategy = (
        mutate::bytes(Arc::new(corpus.seeds()), provider.dictionary(true)),
        mutate::fragments(),
    )
        .prop_map(|(input, fragments)| StreamCase { input, fragments });
    let from_file = |_: &str, bytes: &[u8]| {
        [vec![], vec![1; bytes.len()], vec![5; bytes.len() / 5 + 1]]
            .into_iter()
            .map(|fragments| StreamCase {
                input: bytes.to_vec(),
                fragments,
            })
            .collect()
    };
    let name = leak(name);
    Target::new(name, 1.0, from_file, strategy, |case: &StreamCase| {
        check_stream(provider, case)
    })
    .run(&corpus);
    report_newlines(name);
}

/// Where a stream stands, item by item.
#[derive(Default)]
struct StreamLog {
    /// The item that ended the stream.
    ended: Option<&'static str>,
    chunks: usize,
    finish_chunk: bool,
}

impl StreamLog {
    fn take(&mut self, items: &mut Vec<Item>, input: &[u8]) -> Outcome {
        for item in items.drain(..) {
            if let Some(end) = self.ended {
                let check = match item {
                    Item::Done | Item::Error(_) => "stream.second_end",
                    _ => "stream.after_end",
                };
                return fail(check, format!("{} after {end}", describe(&item)));
            }
            match &item {
                Item::Chunk(p) => {
                    check_payload(p, "chunk", input)?;
                    self.chunks += 1;
                    self.finish_chunk |= p.has_finish_reason();
                }
                Item::Done => self.ended = Some("DONE"),
                Item::Error(e) => {
                    check_error(e)?;
                    self.ended = Some("an error");
                }
                Item::Response(_) | Item::Delay(_) => {
                    return fail("stream.item", format!("a stream decoder produced {}", describe(&item)));
                }
            }
        }
        Ok(())
    }
}

fn check_stream(provider: &Provider, case: &StreamCase) -> Outcome {
    let codec = provider.codec();
    let info = provider.call(true);
    let mut decoder = match codec.open_stream(&info) {
        Ok(decoder) => decoder,
        Err(e) => return call_failed("stream_open", e),
    };
    let mut log = StreamLog::default();
    let mut items = Vec::new();
    for fragment in mutate::split(&case.input, &case.fragments) {
        let result = decoder.feed(&info, fragment, &mut items);
        log.take(&mut items, &case.input)?;
        result.or_else(|e| call_failed("stream_feed", e))?;
    }
    let result = decoder.finish(&info, &mut items);
    log.take(&mut items, &case.input)?;
    result.or_else(|e| call_failed("stream_finish", e))?;
    // Without an end, the host fails a stream that produced no chunk, and presents one that
    // did as complete.
    if log.ended.is_none() && (provider.ends_on_close || (log.chunks > 0 && !log.finish_chunk)) {
        return fail(
            "stream.no_end",
            if provider.ends_on_close {
                "the upstream closed and the decoder wrote no end"
            } else {
                "the upstream closed after some chunks, without [DONE] or a finish_reason, and the decoder \
                 wrote no error: the host presents the cut answer as complete"
            },
        );
    }
    // A second `finish` (the host never does it, but nothing may break if it did).
    let result = decoder.finish(&info, &mut items);
    if let Some(item) = items.first() {
        return fail(
            "stream.finish_twice",
            format!("a second finish produced {}", describe(item)),
        );
    }
    result.or_else(|e| call_failed("stream_finish (twice)", e))
}

/// A call that returned an error instead of items: a clean unified error is an answer; a
/// panic, a disabled plugin or a broken contract is a bug. (A panicking plugin prints its
/// own message, with its location, to the test's output; the host only learns that it did.)
fn call_failed(call: &str, e: CallError) -> Outcome {
    match e {
        CallError::Plugin(e) => check_error(&e),
        CallError::Panicked { .. } => fail("plugin.panic", format!("{call} panicked (its message is above)")),
        other => fail("plugin.call", format!("{call}: {other}")),
    }
}

fn describe(item: &Item) -> String {
    match item {
        Item::Chunk(p) => format!("a chunk {}", crate::harness::escape(&p.json, 300)),
        Item::Response(p) => format!("a response {}", crate::harness::escape(&p.json, 300)),
        Item::Done => "DONE".into(),
        Item::Error(e) => format!("an error {:?}", e.message),
        Item::Delay(ms) => format!("a delay of {ms} ms"),
    }
}

// ------------------------------------------------------------------------------- bodies

pub fn fuzz_response(provider: &'static Provider) {
    let (name, corpus) = provider.corpus("response");
    let strategy = mutate::bytes(Arc::new(corpus.seeds()), provider.dictionary(false));
    Target::new(
        leak(name),
        0.5,
        |_, bytes: &[u8]| vec![bytes.to_vec()],
        strategy,
        |body: &Vec<u8>| {
            let codec = provider.codec();
            match codec.decode_response(&provider.call(false), 200, body) {
                Ok(payload) => check_payload(&payload, "response", body),
                Err(e) => call_failed("decode_response", e),
            }
        },
    )
    .run(&corpus);
}

/// A non-2xx answer: its status and body.
#[derive(Debug, Clone)]
pub struct ErrorCase {
    status: u16,
    body: Vec<u8>,
}

impl FuzzCase for ErrorCase {
    fn corpus_bytes(&self) -> Vec<u8> {
        self.body.clone()
    }

    fn with_bytes(&self, body: Vec<u8>) -> Self {
        ErrorCase {
            status: self.status,
            body,
        }
    }

    fn describe(&self) -> String {
        format!(" with HTTP status {}", self.status)
    }
}

/// Statuses upstreams answer with, and any other a server could send.
const STATUSES: &[u16] = &[
    400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529,
];

pub fn fuzz_error(provider: &'static Provider) {
    let (name, corpus) = provider.corpus("error");
    let status = prop_oneof![4 => select(STATUSES), 1 => 300u16..1000];
    let strategy = (
        status,
        mutate::bytes(Arc::new(corpus.seeds()), provider.dictionary(false)),
    )
        .prop_map(|(status, body)| ErrorCase { status, body });
    // A corpus file's name starts with the status it came with.
    let from_file = |file: &str, bytes: &[u8]| {
        let digits: String = file.chars().take_while(char::is_ascii_digit).collect();
        vec![ErrorCase {
            status: digits.parse().unwrap_or(500),
            body: bytes.to_vec(),
        }]
    };
    Target::new(leak(name), 0.5, from_file, strategy, |case: &ErrorCase| {
        let codec = provider.codec();
        match codec.decode_error(&provider.call(false), case.status, &case.body) {
            Ok(e) => check_error(&e),
            Err(e) => call_failed("decode_error", e),
        }
    })
    .run(&corpus);
}

// ------------------------------------------------------------------------------- invariants

/// What the checks read from a chunk or response: enough to compare with the facts the
/// plugin reported beside it. Tolerant of everything else.
#[derive(Deserialize)]
struct Facts<'a> {
    #[serde(default)]
    choices: Option<Vec<Option<ChoiceFacts>>>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceFacts {
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct UsageFacts<'a> {
    #[serde(default, borrow)]
    prompt_tokens: Option<&'a RawValue>,
    #[serde(default, borrow)]
    completion_tokens: Option<&'a RawValue>,
    #[serde(default, borrow)]
    total_tokens: Option<&'a RawValue>,
}

/// A chunk or response the host forwards: one JSON object whose choices, finish reason and
/// usage are what the plugin told the host, with sane counts.
fn check_payload(p: &Payload, what: &'static str, input: &[u8]) -> Outcome {
    // JSON text is UTF-8 (RFC 8259 §8.1); serde_json checks the grammar. Lone surrogate
    // escapes are grammatical and pass through from upstreams, so they are not refused here.
    let text = match std::str::from_utf8(&p.json) {
        Ok(text) => text,
        Err(e) => return fail("payload.utf8", format!("a {what} is not UTF-8 ({e}): {}", esc(&p.json))),
    };
    if let Err(e) = serde_json::from_str::<IgnoredAny>(text) {
        return fail("payload.json", format!("a {what} is not JSON ({e}): {}", esc(&p.json)));
    }
    if !text.trim_start().starts_with('{') {
        return fail(
            "payload.json",
            format!("a {what} is not a JSON object: {}", esc(&p.json)),
        );
    }
    if what == "chunk" {
        note_newline(p, input);
    }
    let facts: Facts<'_> = match serde_json::from_str(text) {
        Ok(facts) => facts,
        Err(e) => {
            return fail(
                "payload.shape",
                format!("a {what}'s choices or usage are malformed ({e}): {}", esc(&p.json)),
            );
        }
    };
    if let Some(usage) = &p.usage {
        check_usage(usage, what)?;
    }
    let json_usage = facts.usage.filter(|u| u.get() != "null");
    match (&p.usage, json_usage) {
        (Some(_), None) => {
            return fail(
                "payload.usage",
                format!("usage reported to the host but not in the {what}"),
            );
        }
        (None, Some(u)) => {
            return fail(
                "payload.usage",
                format!("the {what} carries usage {} the host was not told of", u.get()),
            );
        }
        (Some(usage), Some(raw)) => compare_usage(usage, raw, what)?,
        (None, None) => {}
    }
    if what != "chunk" {
        return Ok(());
    }
    let choices = facts.choices.unwrap_or_default();
    let empty = choices.is_empty();
    let finish = choices.iter().flatten().any(|c| c.finish_reason.is_some());
    if p.has_empty_choices() != empty || p.has_finish_reason() != finish {
        return fail(
            "chunk.flags",
            format!(
                "flags say empty_choices={} finish_reason={}, the chunk has {} choices, finish_reason {finish}: {}",
                p.has_empty_choices(),
                p.has_finish_reason(),
                choices.len(),
                esc(&p.json)
            ),
        );
    }
    Ok(())
}

/// The largest count a sane answer carries: JSON's interoperable integer limit (2^53 - 1,
/// RFC 7493), far above any real token count. Larger values come from saturating or
/// wrapping arithmetic (a float such as 1e300, a negative count) or from an upstream no one
/// should believe; a ledger summing them overflows.
const MAX_SANE_TOKENS: u64 = (1 << 53) - 1;

fn check_usage(u: &Usage, what: &str) -> Outcome {
    let counts = [
        ("prompt_tokens", u.prompt_tokens),
        ("completion_tokens", u.completion_tokens),
        ("total_tokens", u.total_tokens),
        ("cached_tokens", u.cached_tokens),
        ("cache_write_tokens", u.cache_write_tokens),
        ("reasoning_tokens", u.reasoning_tokens),
    ];
    for (name, n) in counts {
        if n > MAX_SANE_TOKENS {
            return fail("usage.range", format!("the {what}'s {name} is {n}"));
        }
    }
    Ok(())
}

/// An integer count the client sees must be the one the host records.
fn compare_usage(u: &Usage, raw: &RawValue, what: &str) -> Outcome {
    let facts: UsageFacts<'_> = match serde_json::from_str(raw.get()) {
        Ok(facts) => facts,
        Err(e) => {
            return fail(
                "payload.usage",
                format!("the {what}'s usage {} is malformed: {e}", raw.get()),
            );
        }
    };
    let pairs = [
        ("prompt_tokens", facts.prompt_tokens, u.prompt_tokens),
        ("completion_tokens", facts.completion_tokens, u.completion_tokens),
        ("total_tokens", facts.total_tokens, u.total_tokens),
    ];
    for (name, json, reported) in pairs {
        // A count past abi::MAX_TOKEN_COUNT is no believable count: the host records 0 (a
        // pass-through codec still forwards the upstream's number to the client as it came).
        if let Some(n) = json.and_then(|j| j.get().parse::<u64>().ok())
            && n != reported
            && !(n > switchyard_plugin_api::abi::MAX_TOKEN_COUNT && reported == 0)
        {
            return fail(
                "payload.usage",
                format!("the {what} says {name} {n}, the host was told {reported}"),
            );
        }
    }
    Ok(())
}

/// An error the host turns into a client answer: a message, not an unbounded echo.
fn check_error(e: &PluginError) -> Outcome {
    if e.message.trim().is_empty() {
        return fail("error.message", format!("an error without a message: {e:?}"));
    }
    if e.message.len() > MAX_ERROR_MESSAGE {
        return fail(
            "error.message",
            format!(
                "an error message of {} bytes (limit {MAX_ERROR_MESSAGE})",
                e.message.len()
            ),
        );
    }
    Ok(())
}

fn esc(bytes: &[u8]) -> String {
    crate::harness::escape(bytes, 600)
}

// ------------------------------------------------------------------------------- newlines

/// Chunks with a raw line break: allowed (the host re-frames every chunk into one line),
/// but counted and shown once, so the report can say which decoders pass them through.
static NEWLINES: AtomicU64 = AtomicU64::new(0);
static NEWLINE_EXAMPLE: Mutex<Option<(Vec<u8>, Vec<u8>)>> = Mutex::new(None);

fn note_newline(p: &Payload, input: &[u8]) {
    if p.json.iter().any(|&b| b == b'\n' || b == b'\r') {
        NEWLINES.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut example) = NEWLINE_EXAMPLE.lock() {
            let shorter = example.as_ref().is_none_or(|(i, _)| input.len() < i.len());
            if shorter {
                *example = Some((input.to_vec(), p.json.clone()));
            }
        }
    }
}

fn report_newlines(target: &str) {
    let n = NEWLINES.load(Ordering::Relaxed);
    if n == 0 {
        return eprintln!("fuzz target `{target}`: no chunk carried a raw line break");
    }
    if let Ok(example) = NEWLINE_EXAMPLE.lock()
        && let Some((input, json)) = example.as_ref()
    {
        eprintln!(
            "fuzz target `{target}`: {n} chunks carried a raw line break (allowed: the host re-frames), e.g. \
             input {} gave {}",
            crate::harness::escape(input, 400),
            crate::harness::escape(json, 400)
        );
    }
}

// ------------------------------------------------------------------------------- tests

#[test]
fn openai_stream() {
    fuzz_stream(&OPENAI);
}

#[test]
fn openai_response() {
    fuzz_response(&OPENAI);
}

#[test]
fn openai_error() {
    fuzz_error(&OPENAI);
}

#[test]
fn anthropic_stream() {
    fuzz_stream(&ANTHROPIC);
}

#[test]
fn anthropic_response() {
    fuzz_response(&ANTHROPIC);
}

#[test]
fn anthropic_error() {
    fuzz_error(&ANTHROPIC);
}

#[test]
fn gemini_stream() {
    fuzz_stream(&GEMINI);
}

#[test]
fn gemini_response() {
    fuzz_response(&GEMINI);
}

#[test]
fn gemini_error() {
    fuzz_error(&GEMINI);
}
