//! The `anthropic` provider plugin: a codec between the unified (OpenAI chat completions)
//! schema and Anthropic's Messages API (`POST {base_url}/v1/messages`, default base URL
//! `https://api.anthropic.com`), both directions, streaming included.
//!
//! Requests carry `x-api-key` (the configured key, only when there is one) and
//! `anthropic-version` (`2023-06-01`, or the `anthropic_version` option). Options:
//! `anthropic_version` (string) and `default_max_tokens` (integer, default 4096: the API
//! requires `max_tokens`, OpenAI clients usually omit it). Unknown options are refused at start.
//!
//! # What maps to what
//!
//! | OpenAI (unified) | Anthropic | notes |
//! |---|---|---|
//! | `system` / `developer` messages | `system` | all of them, in order, wherever they stand (a string, or text blocks when cached) |
//! | `user` text, `image_url` (http(s) URL or base64 data URL), `file` (PDF data URL) | `text`, `image` (`url` / `base64` source), `document` blocks | `detail` is dropped |
//! | consecutive same-role messages | one turn | the API wants alternating turns; `tool` results join the user turn, first |
//! | assistant `tool_calls` | `tool_use` blocks | arguments parsed back to an object; ids made `[A-Za-z0-9_-]` |
//! | `tool` messages | `tool_result` blocks (text or text + images) | |
//! | assistant `reasoning_details` (signed) | `thinking` / `redacted_thinking` blocks | what this codec returns; lets extended thinking continue across tool turns |
//! | `max_completion_tokens` / `max_tokens` | `max_tokens` | default `default_max_tokens` (+ the thinking budget when thinking) |
//! | `temperature`, `top_p`, `top_k` | same | forwarded as written; dropped when thinking (the API fixes them then) |
//! | `stop` | `stop_sequences` | empty strings dropped |
//! | `tools` (function) | `tools` (`input_schema` = `parameters`) | `strict` dropped; `cache_control` kept |
//! | `tool_choice` auto / none / required / named | `auto` / `none` / `any` / `tool` | `parallel_tool_calls: false` → `disable_parallel_tool_use` |
//! | `reasoning_effort` minimal / low / medium / high / xhigh | `thinking.budget_tokens` 1024 / 2048 / 8192 / 16384 / 24576 | `none`: off; with a client limit, at most half of it (≥ 1024) |
//! | `thinking` (Anthropic's own object) | `thinking` | forwarded as is, preferred over `reasoning_effort` |
//! | `response_format` json_schema / json_object | a forced tool (see below) | |
//! | `user` | `metadata.user_id` | |
//! | `cache_control` on parts, messages, tools | `cache_control` on the blocks / tools | a message's goes on its last block |
//! | `stream` | `stream: true` | Anthropic always reports usage |
//!
//! | Anthropic | OpenAI (unified) |
//! |---|---|
//! | `text` blocks | `message.content` (joined) |
//! | `tool_use` blocks | `message.tool_calls` (`arguments` = the input as a JSON string) |
//! | `thinking` / `redacted_thinking` | `message.reasoning` + `message.reasoning_details` (with signatures) |
//! | `stop_reason` end_turn, stop_sequence, pause_turn / max_tokens / tool_use / refusal | `finish_reason` stop / length / tool_calls / content_filter |
//! | `usage` | `usage` (see `usage.rs`: prompt = input + cache read + cache write; `cached_tokens`, `cache_write_tokens`) |
//! | `id`, `model` | `id`, `model`; `created` from the call's clock |
//!
//! Structured output: `response_format` becomes a tool named `switchyard_json_response` whose
//! `input_schema` is the client's schema, forced with `tool_choice: tool` (`any` when the client
//! has tools of its own, so they stay callable; `auto` with extended thinking, which refuses
//! forced tools). The tool's input comes back as `message.content` with `finish_reason: stop`,
//! streamed as content deltas. It works on every tool-capable Claude model, unlike the newer
//! native `output_config.format`.
//!
//! # Not supported (refused with a 400 naming the field)
//! `n > 1` (one choice per request), audio in or out, `file_id` references (OpenAI uploads),
//! non-PDF files, non-function tools, the legacy `function` role, a client tool named
//! `switchyard_json_response`, unknown `reasoning_effort` / `tool_choice` / `response_format`
//! values, `reasoning_effort` with a token limit of 1024 or less.
//!
//! # Dropped (no Anthropic equivalent)
//! `seed`, `frequency_penalty`, `presence_penalty`, `logit_bias`, `logprobs` / `top_logprobs`
//! (responses carry `logprobs: null`), `store`, `metadata`, `service_tier`, `prediction`,
//! `web_search_options`, `stream_options`, and any unknown field (the API refuses unknown fields).
//!
//! # Where the translation is lossy
//! - System messages in the middle of a conversation move to the top-level `system`.
//! - Consecutive same-role messages become one turn (the boundary between them is gone).
//! - `image_url.detail`, tool `strict`, JSON-schema `strict` and `name` (the name goes into the
//!   tool description) have no counterpart.
//! - Thinking disables `temperature` / `top_p` / `top_k`; `reasoning_effort` maps to a budget,
//!   not to an effort. `temperature` is forwarded as written: OpenAI allows 0–2, Anthropic 0–1,
//!   and the API's own refusal of a value above 1 reaches the client.
//! - Anthropic does not report thinking tokens apart from output tokens: `reasoning_tokens` is
//!   not claimed. `stop_sequence` (which sequence matched) is not reported.
//! - Server-tool blocks (web search, code execution) and citations are not translated.
//! - Reasoning from another provider (unsigned) cannot be replayed to Anthropic and is dropped;
//!   in streams the signature arrives as its own `reasoning_details` delta beside the
//!   `reasoning` text, so a client that wants to hand signed thinking back joins the two.
//! - Messages with nothing in them (empty or null content) are dropped: the API refuses empty
//!   turns.
//! - A named `tool_choice` wins over `response_format` (the named tool is forced, no response
//!   tool is added). With extended thinking the response tool is offered, not forced, so the
//!   model may still answer in plain text.
//! - `tool_choice: required` or a named tool together with thinking is passed on as `any` /
//!   `tool`; the API refuses that combination and its message reaches the client.

mod chat;
mod error;
mod messages;
mod request;
mod response;
mod setup;
mod stream;
mod usage;

use setup::Endpoint;
use switchyard_plugin_api::sdk::{Context, Out, Provider, ProviderError, ProviderSetup, StreamDecoder};

/// One configured Anthropic provider.
pub struct AnthropicCodec {
    endpoint: Endpoint,
}

impl Provider for AnthropicCodec {
    fn create(setup: ProviderSetup) -> Result<Self, String> {
        Ok(AnthropicCodec {
            endpoint: Endpoint::from_setup(&setup)?,
        })
    }

    fn encode_request(&self, ctx: &Context<'_>, request: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        request::encode(&self.endpoint, ctx, request, out)
    }

    fn decode_response(
        &self,
        ctx: &Context<'_>,
        _status: u16,
        body: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), ProviderError> {
        response::decode(ctx, body, out)
    }

    fn decode_error(&self, _ctx: &Context<'_>, status: u16, body: &[u8]) -> ProviderError {
        error::from_status(status, body)
    }

    fn open_stream(&self, _ctx: &Context<'_>) -> Option<Box<dyn StreamDecoder>> {
        Some(Box::new(stream::open()))
    }
}

switchyard_plugin_api::export_provider!(AnthropicCodec, name = "anthropic", version = env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;
