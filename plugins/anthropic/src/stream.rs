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
use crate::usage::{TokenCounts, finish_reason};
use serde_json::value::RawValue;
use std::io::Write as _;
use switchyard_plugin_api::sdk::sse::{DEFAULT_MAX_EVENT_BYTES, SseEvent, SseParser};
use switchyard_plugin_api::sdk::{ChunkInfo, Context, Out, ProviderError, StreamDecoder};

/// More content blocks than any message has; a bound on what an upstream's `index` can make
/// the decoder allocate.
const MAX_BLOCKS: usize = 4096;

/// One upstream stream's decoder state.
pub(crate) struct MessageStream {
    events: SseParser,
    state: State,
}

#[derive(Default)]
struct State {
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":`, written once.
    head: Vec<u8>,
    model: String,
    role_sent: bool,
    finish_sent: bool,
    /// `message_stop` or an error ended the stream; later events are not part of this answer.
    ended: bool,
    /// What each content block is, by the block's index.
    blocks: Vec<BlockKind>,
    /// Client tool calls so far (OpenAI's `tool_calls[].index`).
    tool_calls: usize,
    counts: TokenCounts,
    /// The chunk being written (reused).
    buf: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BlockKind {
    Text,
    Thinking,
    /// A client tool call, with its OpenAI index.
    Tool(usize),
    /// The response-format tool: its input is the answer's content.
    Response,
    Other,
}

impl MessageStream {
    pub(crate) fn new() -> MessageStream {
        MessageStream {
            events: SseParser::new(),
            state: State::default(),
        }
    }
}

impl StreamDecoder for MessageStream {
    fn feed(&mut self, ctx: &Context<'_>, bytes: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        let state = &mut self.state;
        self.events.feed(bytes, &mut |event| state.on_sse(event, ctx, out));
        Ok(())
    }

    fn finish(&mut self, ctx: &Context<'_>, out: &mut Out<'_>) -> Result<(), ProviderError> {
        let state = &mut self.state;
        self.events.finish(&mut |event| state.on_sse(event, ctx, out));
        state.on_end(ctx, out);
        Ok(())
    }
}

impl State {
    fn on_sse(&mut self, event: SseEvent<'_>, ctx: &Context<'_>, out: &mut Out<'_>) {
        if self.ended {
            return;
        }
        let (data, error_event) = match event {
            // Anthropic repeats the event's name as the data's `type`; only `error` is read
            // from the name, for an error event whose data lacks its type.
            SseEvent::Message { event_type, data } => (data, event_type == b"error"),
            SseEvent::Oversized => {
                return out.warn(&format!(
                    "skipped oversized stream event (over {} MiB)",
                    DEFAULT_MAX_EVENT_BYTES >> 20
                ));
            }
        };
        let event: EventView<'_> = match switchyard_plugin_api::json::from_bytes(data) {
            Ok(event) => event,
            Err(_) if error_event => return self.fail(error::embedded(data), out),
            Err(e) => return out.warn(&format!("skipped malformed stream event: {e}")),
        };
        match event.kind.as_ref() {
            "message_start" => match event.message {
                Some(message) => self.on_message_start(&message, ctx),
                None => out.warn("skipped malformed stream event: message_start without `message`"),
            },
            "content_block_start" => match (event.index, event.content_block) {
                (Some(index), _) if index >= MAX_BLOCKS => {
                    out.warn(&format!("skipped malformed stream event: content block index {index}"));
                }
                (Some(index), Some(block)) => self.on_block_start(index, block, ctx, out),
                _ => out.warn("skipped malformed stream event: content_block_start without `index` or `content_block`"),
            },
            "content_block_delta" => match (event.index, event.delta) {
                (Some(index), Some(delta)) => self.on_block_delta(index, &delta, ctx, out),
                _ => out.warn("skipped malformed stream event: content_block_delta without `index` or `delta`"),
            },
            "message_delta" => {
                if let Some(usage) = &event.usage {
                    self.counts.update(usage);
                }
                let stop_reason = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
                self.send_finish(stop_reason, ctx, out);
            }
            "message_stop" => self.complete(ctx, out),
            "error" => self.fail(error::embedded(data), out),
            // `ping` keeps the connection warm; `content_block_stop` closes nothing OpenAI has;
            // new event types are ignored, as Anthropic asks of its clients.
            _ => {}
        }
    }

    fn on_message_start(&mut self, message: &MessageView<'_>, ctx: &Context<'_>) {
        if let Some(usage) = &message.usage {
            self.counts.update(usage);
        }
        let model = message.model.as_deref().filter(|m| !m.is_empty()).unwrap_or(ctx.model);
        self.write_head(message.id.as_deref().unwrap_or_default(), model, ctx);
    }

    fn write_head(&mut self, id: &str, model: &str, ctx: &Context<'_>) {
        self.model.clear();
        self.model.push_str(model);
        self.head.clear();
        self.head.extend_from_slice(b"{\"id\":");
        write_string(&mut self.head, id);
        self.head
            .extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        let _ = write!(self.head, "{}", ctx.unix_time_ms / 1000);
        self.head.extend_from_slice(b",\"model\":");
        write_string(&mut self.head, model);
        self.head.extend_from_slice(b",\"choices\":");
    }

    fn on_block_start(&mut self, index: usize, block: BlockView<'_>, ctx: &Context<'_>, out: &mut Out<'_>) {
        let kind = match block.kind.as_ref() {
            "text" => {
                if let Some(text) = block.text.as_deref().filter(|t| !t.is_empty()) {
                    self.send(ctx, out, |buf| {
                        buf.extend_from_slice(b"\"content\":");
                        write_string(buf, text);
                    });
                }
                BlockKind::Text
            }
            "thinking" => {
                if let Some(thinking) = block.thinking.as_deref().filter(|t| !t.is_empty()) {
                    self.send(ctx, out, |buf| {
                        buf.extend_from_slice(b"\"reasoning\":");
                        write_string(buf, thinking);
                    });
                }
                BlockKind::Thinking
            }
            "redacted_thinking" => {
                if let Some(data) = block.data.as_deref().filter(|d| !d.is_empty()) {
                    self.send(ctx, out, |buf| {
                        buf.extend_from_slice(b"\"reasoning_details\":[{\"type\":\"reasoning.encrypted\",\"data\":");
                        write_string(buf, data);
                        buf.extend_from_slice(b"}]");
                    });
                }
                BlockKind::Other
            }
            "tool_use" if block.name.as_deref() == Some(RESPONSE_TOOL) => {
                if let Some(input) = non_empty_input(block.input) {
                    self.send(ctx, out, |buf| {
                        buf.extend_from_slice(b"\"content\":");
                        write_string(buf, input);
                    });
                }
                BlockKind::Response
            }
            "tool_use" => {
                let tool = self.tool_calls;
                self.tool_calls += 1;
                let id = block.id.as_deref().unwrap_or_default();
                let name = block.name.as_deref().unwrap_or_default();
                // The input usually streams as deltas after an empty `{}`; a server that sends
                // it whole here gets it passed on whole.
                let arguments = non_empty_input(block.input).unwrap_or_default();
                self.send(ctx, out, |buf| {
                    buf.extend_from_slice(b"\"tool_calls\":[{\"index\":");
                    let _ = write!(buf, "{tool}");
                    buf.extend_from_slice(b",\"id\":");
                    write_string(buf, id);
                    buf.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                    write_string(buf, name);
                    buf.extend_from_slice(b",\"arguments\":");
                    write_string(buf, arguments);
                    buf.extend_from_slice(b"}}]");
                });
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
                self.send_raw(b"\"content\":", delta.text, ctx, out);
            }
            Some("thinking_delta") => self.send_raw(b"\"reasoning\":", delta.thinking, ctx, out),
            Some("signature_delta") => {
                if let Some(signature) = raw_string(delta.signature) {
                    self.send(ctx, out, |buf| {
                        buf.extend_from_slice(b"\"reasoning_details\":[{\"type\":\"reasoning.text\",\"signature\":");
                        buf.extend_from_slice(signature.as_bytes());
                        buf.extend_from_slice(b"}]");
                    });
                }
            }
            Some("input_json_delta") => match block {
                Some(BlockKind::Tool(tool)) => {
                    if let Some(fragment) = raw_string(delta.partial_json) {
                        self.send(ctx, out, |buf| {
                            buf.extend_from_slice(b"\"tool_calls\":[{\"index\":");
                            let _ = write!(buf, "{tool}");
                            buf.extend_from_slice(b",\"function\":{\"arguments\":");
                            buf.extend_from_slice(fragment.as_bytes());
                            buf.extend_from_slice(b"}}]");
                        });
                    }
                }
                Some(BlockKind::Response) => self.send_raw(b"\"content\":", delta.partial_json, ctx, out),
                _ => out.warn("skipped malformed stream event: input_json_delta for a block that is not a tool call"),
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
        self.write_chunk(ctx, Some(finish), |_| {});
        out.chunk(
            &self.buf,
            &self.model,
            &ChunkInfo {
                finish_reason: true,
                ..ChunkInfo::default()
            },
        );
    }

    /// `message_stop`: the usage chunk, then DONE.
    fn complete(&mut self, ctx: &Context<'_>, out: &mut Out<'_>) {
        self.send_finish(None, ctx, out);
        self.ensure_head(ctx);
        let usage = serde_json::to_vec(&self.counts.to_openai()).unwrap_or_default();
        self.buf.clear();
        self.buf.extend_from_slice(&self.head);
        self.buf.extend_from_slice(b"[],\"usage\":");
        self.buf.extend_from_slice(&usage);
        self.buf.push(b'}');
        out.chunk(
            &self.buf,
            &self.model,
            &ChunkInfo {
                empty_choices: true,
                usage: Some(self.counts.to_usage()),
                ..ChunkInfo::default()
            },
        );
        self.ended = true;
        out.done();
    }

    /// The upstream closed the stream.
    fn on_end(&mut self, ctx: &Context<'_>, out: &mut Out<'_>) {
        if self.ended {
            return;
        }
        if self.finish_sent {
            // Only `message_stop` is missing: the answer and its stop reason arrived.
            return self.complete(ctx, out);
        }
        self.fail(
            ProviderError::malformed("the Anthropic stream ended before the message was complete (no message_delta)"),
            out,
        );
    }

    fn fail(&mut self, error: ProviderError, out: &mut Out<'_>) {
        self.ended = true;
        out.error(&error);
    }

    /// A delta whose value is a raw JSON string, skipped when empty.
    fn send_raw(&mut self, key: &[u8], value: Option<&RawValue>, ctx: &Context<'_>, out: &mut Out<'_>) {
        if let Some(value) = raw_string(value) {
            self.send(ctx, out, |buf| {
                buf.extend_from_slice(key);
                buf.extend_from_slice(value.as_bytes());
            });
        }
    }

    fn send(&mut self, ctx: &Context<'_>, out: &mut Out<'_>, delta: impl FnOnce(&mut Vec<u8>)) {
        self.write_chunk(ctx, None, delta);
        out.chunk(&self.buf, &self.model, &ChunkInfo::default());
    }

    /// Writes one chunk with one choice into `buf`.
    fn write_chunk(&mut self, ctx: &Context<'_>, finish: Option<&str>, delta: impl FnOnce(&mut Vec<u8>)) {
        self.ensure_head(ctx);
        let buf = &mut self.buf;
        buf.clear();
        buf.extend_from_slice(&self.head);
        buf.extend_from_slice(b"[{\"index\":0,\"delta\":{");
        let role = !self.role_sent;
        if role {
            self.role_sent = true;
            buf.extend_from_slice(b"\"role\":\"assistant\",");
        }
        let before = buf.len();
        delta(buf);
        if role && buf.len() == before {
            buf.pop(); // the comma: the role is the whole delta
        }
        buf.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(reason) => write_string(buf, reason),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b"}]}");
    }

    /// Events before `message_start` (a malformed stream) still make well-formed chunks.
    fn ensure_head(&mut self, ctx: &Context<'_>) {
        if self.head.is_empty() {
            self.write_head("", ctx.model, ctx);
        }
    }
}

/// A raw JSON string token, unless it is empty (`""`) or not a string at all.
fn raw_string(value: Option<&RawValue>) -> Option<&str> {
    value
        .map(RawValue::get)
        .filter(|raw| raw.len() > 2 && raw.starts_with('"'))
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

/// Appends `s` as a JSON string literal.
fn write_string(buf: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a str is always serialisable.
    let _ = serde_json::to_writer(&mut *buf, s);
}
