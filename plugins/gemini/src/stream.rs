//! Streaming: `streamGenerateContent?alt=sse` → unified `chat.completion.chunk`s.
//!
//! Every SSE event is a whole `GenerateContentResponse` holding the next fragment of each
//! candidate. Per event the decoder writes at most two chunks: one with the new content of
//! every candidate (text, thoughts as `reasoning`, function calls as complete `tool_calls`
//! with their `index`), then one with the `finish_reason` of every candidate that finished.
//! A choice's first chunk carries `role: "assistant"`.
//!
//! Gemini sends no `[DONE]`: the stream is over when the upstream closes it. Then, if every
//! candidate finished, the decoder writes the usage chunk (`choices: []`, usage from the last
//! `usageMetadata`, which Gemini repeats with running totals) and DONE. A stream that closes
//! before its candidates finished was cut: that is an error, never a short answer passed off
//! as complete. An error object in the stream ends it with the unified error; a malformed
//! event is skipped with a warning.

use crate::error;
use crate::gemini::GenerateContentResponse;
use crate::openai::{Chunk, ChunkChoice, Delta, UsageOut};
use crate::response::{self, Pieces, candidate_index, finish_reason, tool_call_id};
use switchyard_plugin_api::sdk::sse::{DEFAULT_MAX_EVENT_BYTES, SseEvent, SseParser};
use switchyard_plugin_api::sdk::{ChunkInfo, Context, ErrorKind, Out, ProviderError, StreamDecoder, Usage};

/// One upstream stream's decoder state.
pub(crate) struct GeminiStream {
    events: SseParser,
    state: State,
}

#[derive(Default)]
struct State {
    /// Fixed by the first event, so every chunk carries the same id, model and time.
    id: String,
    model: String,
    created: u64,
    started: bool,
    /// Per candidate index, in order of appearance (a handful at most).
    choices: Vec<(u32, ChoiceState)>,
    usage: Option<Usage>,
    /// An error ended the stream, or the end was written: nothing more belongs to it.
    ended: bool,
}

#[derive(Default, Clone, Copy)]
struct ChoiceState {
    role_sent: bool,
    calls: usize,
    finished: bool,
}

impl GeminiStream {
    pub(crate) fn new() -> GeminiStream {
        GeminiStream {
            events: SseParser::new(),
            state: State::default(),
        }
    }
}

impl StreamDecoder for GeminiStream {
    fn feed(&mut self, ctx: &Context<'_>, bytes: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        let state = &mut self.state;
        self.events.feed(bytes, &mut |event| state.on_event(event, ctx, out));
        Ok(())
    }

    fn finish(&mut self, ctx: &Context<'_>, out: &mut Out<'_>) -> Result<(), ProviderError> {
        let state = &mut self.state;
        self.events.finish(&mut |event| state.on_event(event, ctx, out));
        state.on_close(out);
        Ok(())
    }
}

fn choice_state(choices: &mut Vec<(u32, ChoiceState)>, index: u32) -> &mut ChoiceState {
    let at = match choices.iter().position(|(i, _)| *i == index) {
        Some(at) => at,
        None => {
            choices.push((index, ChoiceState::default()));
            choices.len() - 1
        }
    };
    &mut choices[at].1
}

impl State {
    fn on_event(&mut self, event: SseEvent<'_>, ctx: &Context<'_>, out: &mut Out<'_>) {
        if self.ended {
            return;
        }
        let data = match event {
            // Gemini sends no event types: every event is a `GenerateContentResponse`.
            SseEvent::Message { data, .. } => data,
            SseEvent::Oversized => {
                return out.warn(&format!(
                    "skipped oversized stream event (over {} MiB)",
                    DEFAULT_MAX_EVENT_BYTES >> 20
                ));
            }
        };
        if data.trim_ascii().is_empty() {
            return;
        }
        let view = match GenerateContentResponse::parse(data) {
            Ok(view) => view,
            Err(reason) => return out.warn(&format!("skipped malformed stream event: {reason}")),
        };
        if view.error.is_some() {
            self.ended = true;
            return out.error(&error::embedded(data));
        }
        let candidates = view.candidates();
        if candidates.is_empty()
            && let Some(feedback) = view.block_reason()
        {
            self.ended = true;
            return out.error(&error::prompt_blocked(feedback));
        }
        if !self.started {
            self.started = true;
            self.id = response::response_id(view.response_id.as_deref(), ctx);
            self.model = view.model_version.as_deref().unwrap_or(ctx.model).to_string();
            self.created = ctx.unix_time_ms / 1000;
        }
        if let Some(meta) = &view.usage_metadata {
            self.usage = Some(response::usage(meta));
        }

        let mut content = Vec::new();
        let mut finishes = Vec::new();
        for (position, candidate) in candidates.iter().enumerate() {
            let index = candidate_index(candidate, position);
            let id = &self.id;
            let state = choice_state(&mut self.choices, index);
            if state.finished {
                continue; // a candidate says nothing after its finish reason
            }
            let pieces = Pieces::of(candidate);
            if !pieces.is_empty() {
                let first_call = state.calls;
                state.calls += pieces.calls.len();
                let tool_calls = pieces
                    .calls
                    .into_iter()
                    .enumerate()
                    .map(|(k, call)| {
                        let n = first_call + k;
                        call.into_openai(tool_call_id(id, index, n), u32::try_from(n).ok())
                    })
                    .collect();
                content.push(ChunkChoice {
                    index,
                    delta: Delta {
                        role: (!std::mem::replace(&mut state.role_sent, true)).then_some("assistant"),
                        content: pieces.content,
                        reasoning: pieces.reasoning,
                        tool_calls,
                    },
                    logprobs: candidate.logprobs_result.as_ref().and_then(response::logprobs),
                    finish_reason: None,
                });
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                state.finished = true;
                finishes.push(ChunkChoice {
                    index,
                    delta: Delta {
                        role: (!std::mem::replace(&mut state.role_sent, true)).then_some("assistant"),
                        ..Delta::default()
                    },
                    logprobs: None,
                    finish_reason: Some(finish_reason(reason, state.calls > 0)),
                });
            }
        }
        if !content.is_empty() {
            self.emit(content, None, ChunkInfo::default(), out);
        }
        if !finishes.is_empty() {
            let info = ChunkInfo {
                finish_reason: true,
                ..ChunkInfo::default()
            };
            self.emit(finishes, None, info, out);
        }
    }

    /// The upstream closed the stream.
    fn on_close(&mut self, out: &mut Out<'_>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let unfinished = self.choices.iter().any(|(_, c)| !c.finished);
        if self.choices.is_empty() || unfinished {
            let what = if self.choices.is_empty() {
                "before any candidate"
            } else {
                "before every candidate had a finishReason"
            };
            let message = format!("the Gemini stream ended {what}: the answer is incomplete");
            return out.error(
                &ProviderError::new(502, ErrorKind::Server, message)
                    .retryable(true)
                    .with_type("server_error")
                    .with_code("stream_truncated"),
            );
        }
        if let Some(usage) = self.usage {
            let info = ChunkInfo {
                empty_choices: true,
                usage: Some(usage),
                ..ChunkInfo::default()
            };
            self.emit(Vec::new(), Some(&usage), info, out);
        }
        out.done();
    }

    fn emit(&self, choices: Vec<ChunkChoice<'_>>, usage: Option<&Usage>, info: ChunkInfo, out: &mut Out<'_>) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage: usage.map(UsageOut::from_usage),
        };
        match serde_json::to_vec(&chunk) {
            Ok(json) => out.chunk(&json, &self.model, &info),
            Err(e) => out.warn(&format!("a translated chunk could not be written: {e}")),
        }
    }
}
