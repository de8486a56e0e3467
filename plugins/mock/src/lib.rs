//! `mock`: Switchyard's built-in local provider. It needs no network and no key, and answers
//! deterministically in OpenAI's shape, for demos, end-to-end tests, benchmarks and fault
//! tests. It is a *local* provider: the gateway hands it the unified request and it answers
//! by itself; any delay it wants is applied by the gateway's timer (the plugin never sleeps).
//!
//! # Options (`providers.<name>.options`, all optional)
//! - `text` (string): the answer for models other than `echo`. Unset: echo.
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

mod answer;
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
use switchyard_plugin_api::sdk::{ChunkInfo, Context, Out, Provider, ProviderError, ProviderSetup, Usage};

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

switchyard_plugin_api::export_provider!(Mock, name = "mock", version = env!("CARGO_PKG_VERSION"), local = true);

impl Mock {
    /// The answer to one request, written to `sink`; an `Err` is the error item.
    fn respond(&self, ctx: &Context<'_>, request: &[u8], sink: &mut impl Sink) -> Result<(), ProviderError> {
        // Faults come first: they stand for an upstream that fails whatever it is sent.
        let fault = if self.options.fault_models {
            fault::for_model(ctx.model)
        } else {
            None
        };
        let cut = match fault {
            None => None,
            Some(Fault::Error(error)) => return Err(error),
            Some(Fault::Panic) => {
                panic!("mock provider: model `fault-panic` panics on purpose, to test the host's panic guard")
            }
            Some(Fault::MidStream(error)) if ctx.stream => Some(error),
            Some(Fault::MidStream(error)) => return Err(error),
        };

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
