//! Streaming: the Messages API event stream → unified `chat.completion.chunk`s.
//!
//! | Anthropic event | chunks |
//! |---|---|
//! | `message_start` | none: its id, model and input usage are kept |
//! | `content_block_start` `tool_use` | a tool call delta with `index`, `id`, `name`, empty `arguments` |
//! | `content_block_start` `redacted_thinking` | `reasoning_details` with the encrypted data |
//! | `content_block_delta` `text_delta` | `content` |
//! | `content_block_delta` `thinking_delta` / `signature_delta` | `reasoning` / `reasoning_details` |
//! | `content_block_delta` `input_json_delta` | the tool call's `arguments` fragment (`content` for the response-format tool) |
//! | `message_delta` | the finish chunk (`finish_reason`), final output usage kept |
//! | `message_stop` | the usage chunk (`choices: []`), then DONE |
//! | `error` | an error item (classified as in `error.rs`) that ends the stream |
//! | `ping`, `content_block_stop`, unknown events and delta types | nothing |
//!
//! The first chunk carries `role: assistant` with the first content, rather than arriving
//! alone at `message_start`: an `error` event right after `message_start` (Anthropic's usual
//! way to report overload mid-request) then fails the attempt before any byte reached the
//! client, so the host can still retry or fall back. Text, thinking and argument fragments
//! are copied into the chunks as the raw JSON strings they arrived as, never unescaped.
//! A stream that ends before `message_delta` is reported as an error, not as a short answer.

use crate::error;
use crate::messages::{BlockView, DeltaView, EventView, MessageView};
use crate::request::RESPONSE_TOOL;
use crate::usage::{TokenCounts, USAGE_PARTS, finish_reason};
use serde_json::value::RawValue;
use switchyard_plugin_api::sdk::sse_decoder::{Flow, SseDecoder, SseHandler, skip_malformed};
use switchyard_plugin_api::sdk::unified::{self, ChunkHead, ChunkWriter, Delta, ReasoningDetail, Text, ToolCall};
use switchyard_plugin_api::sdk::{Context, Out, ProviderError};

/// More content blocks than any message has; a bound on what an upstream's `index` can make
/// the decoder allocate.
const MAX_BLOCKS: usize = 4096;

/// One upstream stream's decoder.
pub(crate) fn open() -> SseDecoder<State> {
    SseDecoder::new(State::default())
}

#[derive(Default)]
pub(crate) struct State {
    /// The chunks, behind the head `message_start` gives.
    chunks: ChunkWriter,
    role_sent: bool,
    finish_sent: bool,
    /// What each content block is, by the block's index.
    blocks: Vec<BlockKind>,
    /// Client tool calls so far (OpenAI's `tool_calls[].index`).
    tool_calls: u32,
    counts: TokenCounts,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BlockKind {
    Text,
    Thinking,
    /// A client tool call, with its OpenAI index.
    Tool(u32),
    /// The response-format tool: its input is the answer's content.
    Response,
    Other,
}

impl SseHandler for State {
    fn on_event(
        &mut self,
        ctx: &Context<'_>,
        _event_type: &[u8],
        data: &[u8],
        out: &mut Out<'_>,
    ) -> Result<Flow, ProviderError> {
        // Anthropic repeats the event's name as the data's `type`, which is what is read.
        let event: EventView<'_> = match switchyard_plugin_api::json::from_bytes(data) {
            Ok(event) => event,
            Err(e) => {
                skip_malformed(out, e);
                return Ok(Flow::Continue);
            }
        };
        match event.kind.as_ref() {
            "message_start" => match event.message {
                Some(message) => self.on_message_start(&message, ctx),
                None => skip_malformed(out, "message_start without `message`"),
            },
            "content_block_start" => match (event.index, event.content_block) {
                (Some(index), _) if index >= MAX_BLOCKS => {
                    skip_malformed(out, format_args!("content block index {index}"));
                }
                (Some(index), Some(block)) => self.on_block_start(index, block, ctx, out),
                _ => skip_malformed(out, "content_block_start without `index` or `content_block`"),
            },
            "content_block_delta" => match (event.index, event.delta) {
                (Some(index), Some(delta)) => self.on_block_delta(index, &delta, ctx, out),
                _ => skip_malformed(out, "content_block_delta without `index` or `delta`"),
            },
            "message_delta" => {
                if let Some(usage) = &event.usage {
                    self.counts.update(usage);
                }
                let stop_reason = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
                self.send_finish(stop_reason, ctx, out);
            }
            "message_stop" => {
                self.complete(ctx, out);
                return Ok(Flow::End);
            }
            "error" => return Err(error::embedded(data)),
            // `ping` keeps the connection warm; `content_block_stop` closes nothing OpenAI has;
            // new event types are ignored, as Anthropic asks of its clients.
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn error_event(&mut self, data: &[u8]) -> ProviderError {
        error::embedded(data)
    }

    fn on_close(&mut self, ctx: &Context<'_>, out: &mut Out<'_>) -> Result<Flow, ProviderError> {
        if !self.finish_sent {
            return Err(ProviderError::malformed(
                "the Anthropic stream ended before the message was complete (no message_delta)",
            ));
        }
        // Only `message_stop` is missing: the answer and its stop reason arrived.
        self.complete(ctx, out);
        Ok(Flow::End)
    }
}

impl State {
    fn on_message_start(&mut self, message: &MessageView<'_>, ctx: &Context<'_>) {
        if let Some(usage) = &message.usage {
            self.counts.update(usage);
        }
        let model = message.model.as_deref().filter(|m| !m.is_empty()).unwrap_or(ctx.model);
        self.chunks.start(&ChunkHead {
            id: message.id.as_deref().unwrap_or_default(),
            created: unified::created(ctx),
            model,
            ..ChunkHead::default()
        });
    }

    fn on_block_start(&mut self, index: usize, block: BlockView<'_>, ctx: &Context<'_>, out: &mut Out<'_>) {
        let kind = match block.kind.as_ref() {
            "text" => {
                if let Some(text) = block.text.as_deref().filter(|t| !t.is_empty()) {
                    self.send(ctx, out, |d| d.content(text));
                }
                BlockKind::Text
            }
            "thinking" => {
                if let Some(thinking) = block.thinking.as_deref().filter(|t| !t.is_empty()) {
                    self.send(ctx, out, |d| d.reasoning(thinking));
                }
                BlockKind::Thinking
            }
            "redacted_thinking" => {
                if let Some(data) = block.data.as_deref().filter(|d| !d.is_empty()) {
                    let details = [ReasoningDetail::Encrypted { data: data.into() }];
                    self.send(ctx, out, |d| d.reasoning_details(&details));
                }
                BlockKind::Other
            }
            "tool_use" if block.name.as_deref() == Some(RESPONSE_TOOL) => {
                if let Some(input) = non_empty_input(block.input) {
                    self.send(ctx, out, |d| d.content(input));
                }
                BlockKind::Response
            }
            "tool_use" => {
                let tool = self.tool_calls;
                self.tool_calls = self.tool_calls.saturating_add(1);
                // The input usually streams as deltas after an empty `{}`; a server that sends
                // it whole here gets it passed on whole.
                let call = ToolCall {
                    index: Some(tool),
                    ..ToolCall::new(
                        block.id.as_deref().unwrap_or_default(),
                        block.name.as_deref().unwrap_or_default(),
                        non_empty_input(block.input).unwrap_or_default(),
                    )
                };
                self.send(ctx, out, |d| d.tool_calls(std::slice::from_ref(&call)));
                BlockKind::Tool(tool)
            }
            // Server tools and their results have no OpenAI counterpart.
            _ => BlockKind::Other,
        };
        if self.blocks.len() <= index {
            self.blocks.resize(index + 1, BlockKind::Other);
        }
        self.blocks[index] = kind;
    }

    fn on_block_delta(&mut self, index: usize, delta: &DeltaView<'_>, ctx: &Context<'_>, out: &mut Out<'_>) {
        let block = self.blocks.get(index).copied();
        match delta.kind.as_deref() {
            // Text for a block that never started is still text: pass it on.
            Some("text_delta") if matches!(block, Some(BlockKind::Text) | None) => {
                if let Some(text) = raw_string(delta.text) {
                    self.send(ctx, out, |d| d.content(text));
                }
            }
            Some("thinking_delta") => {
                if let Some(thinking) = raw_string(delta.thinking) {
                    self.send(ctx, out, |d| d.reasoning(thinking));
                }
            }
            Some("signature_delta") => {
                if let Some(signature) = raw_string(delta.signature) {
                    let details = [ReasoningDetail::Text {
                        text: None,
                        signature: Some(signature),
                    }];
                    self.send(ctx, out, |d| d.reasoning_details(&details));
                }
            }
            Some("input_json_delta") => match block {
                Some(BlockKind::Tool(tool)) => {
                    if let Some(fragment) = raw_string(delta.partial_json) {
                        let call = ToolCall::arguments_delta(tool, fragment);
                        self.send(ctx, out, |d| d.tool_calls(std::slice::from_ref(&call)));
                    }
                }
                Some(BlockKind::Response) => {
                    if let Some(fragment) = raw_string(delta.partial_json) {
                        self.send(ctx, out, |d| d.content(fragment));
                    }
                }
                _ => skip_malformed(out, "input_json_delta for a block that is not a tool call"),
            },
            // citations_delta and whatever comes next: nothing OpenAI clients would read.
            _ => {}
        }
    }

    /// The finish chunk, once (a second `message_delta` only updates usage).
    fn send_finish(&mut self, stop_reason: Option<&str>, ctx: &Context<'_>, out: &mut Out<'_>) {
        if self.finish_sent {
            return;
        }
        self.finish_sent = true;
        let finish = finish_reason(stop_reason, self.tool_calls > 0);
        self.write_choice(ctx, Some(finish), |_| {});
        self.chunks.send(out);
    }

    /// `message_stop`: the finish chunk if it is missing, then the usage chunk (DONE follows).
    fn complete(&mut self, ctx: &Context<'_>, out: &mut Out<'_>) {
        self.send_finish(None, ctx, out);
        self.ensure_head(ctx);
        self.chunks.send_usage(out, &self.counts.to_usage(), USAGE_PARTS);
    }

    fn send(&mut self, ctx: &Context<'_>, out: &mut Out<'_>, delta: impl FnOnce(&mut Delta<'_>)) {
        self.write_choice(ctx, None, delta);
        self.chunks.send(out);
    }

    /// Writes the chunk's one choice: the role with the first delta, then `delta`.
    fn write_choice(&mut self, ctx: &Context<'_>, finish: Option<&str>, delta: impl FnOnce(&mut Delta<'_>)) {
        self.ensure_head(ctx);
        let role = !std::mem::replace(&mut self.role_sent, true);
        self.chunks.choice(0, finish, None, |d| {
            if role {
                d.role();
            }
            delta(d);
        });
    }

    /// Events before `message_start` (a malformed stream) still make well-formed chunks.
    fn ensure_head(&mut self, ctx: &Context<'_>) {
        if !self.chunks.is_started() {
            self.chunks.start(&ChunkHead {
                created: unified::created(ctx),
                model: ctx.model,
                ..ChunkHead::default()
            });
        }
    }
}

/// A raw JSON string token, unless it is empty (`""`) or not a string at all.
fn raw_string(value: Option<&RawValue>) -> Option<Text<'_>> {
    Text::json(value?).filter(|t| !t.is_empty())
}

/// A tool's initial `input`, unless it is the usual empty object.
fn non_empty_input(input: Option<&RawValue>) -> Option<&str> {
    let raw = input?.get();
    let inner = raw.trim().strip_prefix('{').and_then(|r| r.strip_suffix('}'));
    match inner {
        Some(inner) if inner.trim().is_empty() => None,
        _ if raw.trim() == "null" => None,
        _ => Some(raw),
    }
}
