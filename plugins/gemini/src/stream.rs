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
use crate::response::{self, Pieces, USAGE_PARTS, candidate_index, finish_reason, tool_call_id};
use switchyard_plugin_api::sdk::sse_decoder::{Flow, SseDecoder, SseHandler, skip_malformed};
use switchyard_plugin_api::sdk::unified::{self, ChunkHead, ChunkWriter, ToolCall};
use switchyard_plugin_api::sdk::{Context, ErrorKind, Out, ProviderError, Usage};

/// One upstream stream's decoder.
pub(crate) fn open() -> SseDecoder<State> {
    SseDecoder::new(State::default())
}

#[derive(Default)]
pub(crate) struct State {
    /// The chunks, behind a head fixed by the first event, so every chunk carries the same
    /// id, model and time.
    chunks: ChunkWriter,
    /// The completion id, which the tool call ids are derived from.
    id: String,
    /// Per candidate index, in order of appearance (a handful at most).
    choices: Vec<(u32, ChoiceState)>,
    usage: Option<Usage>,
    /// The finish reasons of the event being read (reused): index, role still to send, reason.
    finishes: Vec<(u32, bool, &'static str)>,
}

#[derive(Default, Clone, Copy)]
struct ChoiceState {
    role_sent: bool,
    calls: usize,
    finished: bool,
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

impl SseHandler for State {
    /// Gemini sends no event types: every event is a `GenerateContentResponse`.
    fn on_event(
        &mut self,
        ctx: &Context<'_>,
        _event_type: &[u8],
        data: &[u8],
        out: &mut Out<'_>,
    ) -> Result<Flow, ProviderError> {
        let view = match GenerateContentResponse::parse(data) {
            Ok(view) => view,
            Err(reason) => {
                skip_malformed(out, reason);
                return Ok(Flow::Continue);
            }
        };
        if view.error.is_some() {
            return Err(error::embedded(data));
        }
        let candidates = view.candidates();
        if candidates.is_empty()
            && let Some(feedback) = view.block_reason()
        {
            return Err(error::prompt_blocked(feedback));
        }
        if !self.chunks.is_started() {
            self.id = response::response_id(view.response_id.as_deref(), ctx);
            self.chunks.start(&ChunkHead {
                id: &self.id,
                created: unified::created(ctx),
                model: view.model_version.as_deref().unwrap_or(ctx.model),
                ..ChunkHead::default()
            });
        }
        if let Some(meta) = &view.usage_metadata {
            self.usage = Some(response::usage(meta));
        }

        // One chunk with the new content of every candidate, then one with the finishes.
        let mut finishes = std::mem::take(&mut self.finishes);
        finishes.clear();
        let mut content = false;
        for (position, candidate) in candidates.iter().enumerate() {
            let index = candidate_index(candidate, position);
            let state = choice_state(&mut self.choices, index);
            if state.finished {
                continue; // a candidate says nothing after its finish reason
            }
            let pieces = Pieces::of(candidate);
            if !pieces.is_empty() {
                let first_call = state.calls;
                state.calls += pieces.calls.len();
                let tool_calls: Vec<ToolCall<'_>> = pieces
                    .calls
                    .into_iter()
                    .enumerate()
                    .map(|(k, call)| {
                        let n = first_call + k;
                        call.into_openai(tool_call_id(&self.id, index, n), u32::try_from(n).ok())
                    })
                    .collect();
                let role = !std::mem::replace(&mut state.role_sent, true);
                let logprobs = candidate.logprobs_result.as_ref().and_then(response::logprobs);
                self.chunks.choice(index, None, logprobs.as_ref(), |delta| {
                    if role {
                        delta.role();
                    }
                    if let Some(text) = pieces.content {
                        delta.content(text);
                    }
                    if let Some(reasoning) = pieces.reasoning {
                        delta.reasoning(reasoning);
                    }
                    if !tool_calls.is_empty() {
                        delta.tool_calls(&tool_calls);
                    }
                });
                content = true;
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                state.finished = true;
                let role = !std::mem::replace(&mut state.role_sent, true);
                finishes.push((index, role, finish_reason(reason, state.calls > 0)));
            }
        }
        if content {
            self.chunks.send(out);
        }
        if !finishes.is_empty() {
            for &(index, role, reason) in &finishes {
                self.chunks.choice(index, Some(reason), None, |delta| {
                    if role {
                        delta.role();
                    }
                });
            }
            self.chunks.send(out);
        }
        self.finishes = finishes;
        Ok(Flow::Continue)
    }

    fn error_event(&mut self, data: &[u8]) -> ProviderError {
        error::embedded(data)
    }

    /// Gemini ends a stream by closing it: the answer is complete only if every candidate
    /// finished.
    fn on_close(&mut self, _ctx: &Context<'_>, out: &mut Out<'_>) -> Result<Flow, ProviderError> {
        let unfinished = self.choices.iter().any(|(_, c)| !c.finished);
        if self.choices.is_empty() || unfinished {
            let what = if self.choices.is_empty() {
                "before any candidate"
            } else {
                "before every candidate had a finishReason"
            };
            let message = format!("the Gemini stream ended {what}: the answer is incomplete");
            return Err(ProviderError::new(502, ErrorKind::Server, message)
                .retryable(true)
                .with_type("server_error")
                .with_code("stream_truncated"));
        }
        if let Some(usage) = self.usage {
            self.chunks.send_usage(out, &usage, USAGE_PARTS);
        }
        Ok(Flow::End)
    }
}
