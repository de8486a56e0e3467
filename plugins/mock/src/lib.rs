//! `mock`: Switchyard's built-in local provider. It needs no network and no key, and answers
//! deterministically in OpenAI's shape, for demos, end-to-end tests, benchmarks and fault
//! tests. It is a *local* provider: the gateway hands it the unified request and it answers
//! by itself; any delay it wants is applied by the gateway's timer (the plugin never sleeps).
//!
//! # Options (`providers.<name>.options`, all optional)
//! - `text` (string): the chat answer for models other than `echo`. Unset: echo.
//! - `latency_ms` (integer, default 0): delay before the response or the first stream chunk.
//! - `chunk_delay_ms` (integer, default 0): delay before each content chunk of a stream.
//! - `words_per_chunk` (integer ≥ 1, default 1): words per content chunk of a stream.
//! - `fault_models` (boolean, default false): whether the fault models below fail. They are
//!   for tests of the gateway's error handling; off, a client cannot make a shared mock fail
//!   (or panic) on purpose, and a `fault-*` name is answered like any other model name.
//!
//! Unknown keys and wrong types make start-up fail with a message naming the option.
//!
//! # Models
//! - `echo`: answers with the text of the last `user` message (a content string, or the
//!   `text` parts of a content array concatenated as they are).
//! - any other name: answers with `text`, or echoes when unset. With `fault_models: true`, the
//!   names starting with `fault-` are fault models instead, which fail instead of answering
//!   (before any output unless noted):
//!
//! | model                  | status | kind            | retryable | error `type` / `code`                          |
//! |------------------------|--------|-----------------|-----------|------------------------------------------------|
//! | `fault-429`            | 429    | RateLimit       | yes       | `rate_limit_error` / `rate_limit_exceeded`     |
//! | `fault-500`            | 500    | Server          | yes       | `server_error` / `internal_error`              |
//! | `fault-503`            | 503    | Overloaded      | yes       | `server_error` / `service_unavailable`         |
//! | `fault-400`            | 400    | InvalidRequest  | no        | `invalid_request_error` / `invalid_value`      |
//! | `fault-context-length` | 400    | ContextLength   | no        | `invalid_request_error` / `context_length_exceeded` |
//! | `fault-content-filter` | 400    | ContentFilter   | no        | `invalid_request_error` / `content_filter`     |
//! | `fault-mid-stream`     | 500    | Server          | yes       | as `fault-500`; a stream first sends its opening and first content chunks |
//! | `fault-panic`          | —      | —               | —         | `panic!` in the plugin, to exercise the host's panic guard |
//! | any other `fault-*`    | 404    | NotFound        | no        | `not_found_error` / `model_not_found`          |
//!
//! # Answers
//! - Tokens are whitespace-separated words: prompt tokens are the words of every message's
//!   text content, completion tokens the words of every choice's answer.
//! - `n` (1–128) identical choices; `max_tokens` / `max_completion_tokens` (the smaller, if
//!   both) cut the answer to that many words with `finish_reason: "length"`.
//! - With `tools` offered (and `tool_choice` not `"none"`), a last user message
//!   `call NAME ARGS` (e.g. `call get_weather {"city":"Paris"}`) is answered with a call of
//!   NAME with ARGS (`{}` when absent) and `finish_reason: "tool_calls"`.
//! - A stream sends a role chunk, content chunks of `words_per_chunk` words (concatenated,
//!   they equal the non-streaming text), a `finish_reason` chunk and, when
//!   `stream_options.include_usage` is true, a usage chunk with empty `choices`.
//! - A malformed request (no `messages`, wrong types, `n` or `max_tokens` out of range) is
//!   a 400 `invalid_request_error`.
//!
//! # Embeddings
//! The mock serves the `embeddings` operation too (declared with chat), for any model name:
//! the OpenAI embeddings request (`input` a string or an array of strings, `dimensions`,
//! `encoding_format` `float` or `base64`) is answered with OpenAI's `list` object, one
//! deterministic vector per input, computed locally (module `embed`):
//! - each text's features are its character trigrams (lower-cased, whitespace collapsed,
//!   padded with a space at each end) and its words, each hashed with 64-bit FNV-1a into one
//!   of `dimensions` buckets with a sign from the hash, the sum scaled to unit length. The
//!   same text always gives the same vector, on every build; near spellings are close
//!   (cosine > 0.9 for a question with and without a doubled `?`), unrelated texts far;
//! - **an empty or whitespace-only text is the unit vector of bucket 0** (`[1, 0, 0, …]`),
//!   never a zero vector and never an error, so that any prompt can be embedded;
//! - `dimensions` defaults to 256 and must be 1–4096 (else 400, `param: dimensions`); at most
//!   2048 inputs and 2²¹ numbers per answer (else 400, `param: input`); token-id inputs, an
//!   empty `input` array and unknown `encoding_format`s are 400s;
//! - `usage.prompt_tokens` (and `total_tokens`) is the inputs' word count, as for chat;
//! - `latency_ms` delays the answer; the fault models fail as they do for chat (a
//!   `fault-mid-stream` fails at once: embeddings never stream).

mod answer;
mod embed;
mod fault;
mod options;
mod request;
mod stream;

#[cfg(test)]
mod tests;

pub use options::MockOptions;

use answer::{Answer, Reply};
use fault::Fault;
use request::ChatRequest;
use switchyard_plugin_api::sdk::{ChunkInfo, Context, Out, Provider, ProviderError, ProviderSetup, Usage, operation};

/// The model that always echoes, whatever `text` says.
const ECHO: &str = "echo";

/// One configured mock provider.
#[derive(Debug)]
pub struct Mock {
    options: MockOptions,
}

impl Provider for Mock {
    fn create(setup: ProviderSetup) -> Result<Self, String> {
        Ok(Mock {
            options: MockOptions::from_json(&setup.options)?,
        })
    }

    fn respond_local(&self, ctx: &Context<'_>, request: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        self.respond(ctx, request, out)
    }
}

switchyard_plugin_api::export_provider!(
    Mock,
    name = "mock",
    version = env!("CARGO_PKG_VERSION"),
    local = true,
    operations = operation::CHAT | operation::EMBEDDINGS
);

impl Mock {
    /// The answer to one request, written to `sink`; an `Err` is the error item. The
    /// operation decides which answer: a chat request never reaches the embedder, nor an
    /// embeddings request the chat code.
    fn respond(&self, ctx: &Context<'_>, request: &[u8], sink: &mut impl Sink) -> Result<(), ProviderError> {
        if ctx.is_embeddings() {
            self.embeddings(ctx, request, sink)
        } else if ctx.is_chat() {
            self.chat(ctx, request, sink)
        } else {
            Err(ProviderError::unsupported_operation(ctx.operation))
        }
    }

    /// The fault `ctx.model` stands for when fault models are on: `Err` fails the call before
    /// any output; `Ok(Some)` is the error a stream ends with after its first chunks.
    fn fault(&self, ctx: &Context<'_>) -> Result<Option<ProviderError>, ProviderError> {
        let fault = if self.options.fault_models {
            fault::for_model(ctx.model)
        } else {
            None
        };
        match fault {
            None => Ok(None),
            Some(Fault::Error(error)) => Err(error),
            Some(Fault::Panic) => {
                panic!("mock provider: model `fault-panic` panics on purpose, to test the host's panic guard")
            }
            Some(Fault::MidStream(error)) if ctx.stream => Ok(Some(error)),
            Some(Fault::MidStream(error)) => Err(error),
        }
    }

    fn embeddings(&self, ctx: &Context<'_>, request: &[u8], sink: &mut impl Sink) -> Result<(), ProviderError> {
        // Faults first, as for chat; embeddings never stream, so a mid-stream fault fails now.
        if let Some(error) = self.fault(ctx)? {
            return Err(error);
        }
        embed::respond(ctx, self.options.latency_ms, request, sink)
    }

    fn chat(&self, ctx: &Context<'_>, request: &[u8], sink: &mut impl Sink) -> Result<(), ProviderError> {
        // Faults come first: they stand for an upstream that fails whatever it is sent.
        let cut = self.fault(ctx)?;

        let request = ChatRequest::parse(request)?;
        let user_text = request.last_user_text();
        let source = match &self.options.text {
            Some(text) if ctx.model != ECHO => text.as_str(),
            _ => user_text.as_ref(),
        };
        let reply = Reply::new(source, &user_text, request.tools_enabled(), request.word_limit());
        let choices = request.choices();
        let prompt_tokens = request.prompt_words();
        // `choices` ≤ 128 (checked by the parser), so the product cannot overflow.
        let completion_tokens = reply.words() * choices as u64;
        let answer = Answer {
            id: format!("chatcmpl-mock-{}", ctx.request_id),
            created: ctx.unix_time_ms / 1000,
            model: ctx.model,
            reply,
            choices,
            usage: Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens: prompt_tokens + completion_tokens,
                ..Usage::default()
            },
        };

        if ctx.stream {
            return stream::send(&answer, &self.options, request.include_usage(), cut, sink);
        }
        let json = answer.completion_json()?;
        sink.delay(self.options.latency_ms);
        sink.response(&json, ctx.model, &answer.usage);
        Ok(())
    }
}

/// Where an answer is written: the SDK's [`Out`] in the plugin, a recorder in unit tests
/// (an `Out` can only be made by the SDK's generated glue).
trait Sink {
    fn response(&mut self, json: &[u8], model: &str, usage: &Usage);
    fn chunk(&mut self, json: &[u8], model: &str, info: &ChunkInfo);
    fn delay_ms(&mut self, ms: u64);
    fn done(&mut self);

    /// A delay, left out when it is zero so the host has no no-op timers to run.
    fn delay(&mut self, ms: u64) {
        if ms > 0 {
            self.delay_ms(ms);
        }
    }
}

impl Sink for Out<'_> {
    fn response(&mut self, json: &[u8], model: &str, usage: &Usage) {
        Out::response(self, json, model, Some(usage));
    }

    fn chunk(&mut self, json: &[u8], model: &str, info: &ChunkInfo) {
        Out::chunk(self, json, model, info);
    }

    fn delay_ms(&mut self, ms: u64) {
        Out::delay_ms(self, ms);
    }

    fn done(&mut self) {
        Out::done(self);
    }
}
