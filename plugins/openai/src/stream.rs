//! Streaming: OpenAI's SSE stream of `chat.completion.chunk` objects → unified chunks.

use crate::error;
use crate::views::{CompletionView, without_extra_fields};
use switchyard_plugin_api::sdk::sse::{DEFAULT_MAX_EVENT_BYTES, SseEvent, SseParser};
use switchyard_plugin_api::sdk::{ChunkInfo, Context, Out, ProviderError, StreamDecoder};

/// One upstream stream's decoder state.
pub(crate) struct ChatStream {
    events: SseParser,
    /// `[DONE]` or an error ended the stream; later events are not part of this answer.
    ended: bool,
}

impl ChatStream {
    pub(crate) fn new() -> ChatStream {
        ChatStream {
            events: SseParser::new(),
            ended: false,
        }
    }
}

impl StreamDecoder for ChatStream {
    fn feed(&mut self, ctx: &Context<'_>, bytes: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        let ended = &mut self.ended;
        self.events.feed(bytes, &mut |event| on_event(event, ctx, ended, out));
        Ok(())
    }

    fn finish(&mut self, ctx: &Context<'_>, out: &mut Out<'_>) -> Result<(), ProviderError> {
        let ended = &mut self.ended;
        self.events.finish(&mut |event| on_event(event, ctx, ended, out));
        Ok(())
    }
}

fn on_event(event: SseEvent<'_>, ctx: &Context<'_>, ended: &mut bool, out: &mut Out<'_>) {
    if *ended {
        return;
    }
    let (data, error_event) = match event {
        SseEvent::Message { event_type, data } => (data, event_type == b"error"),
        SseEvent::Oversized => {
            out.warn(&format!(
                "skipped oversized stream event (over {} MiB)",
                DEFAULT_MAX_EVENT_BYTES >> 20
            ));
            return;
        }
    };
    let trimmed = data.trim_ascii();
    if trimmed.is_empty() {
        // `data:` with nothing after it carries nothing to forward.
        return;
    }
    if trimmed == b"[DONE]" {
        *ended = true;
        return out.done();
    }
    if error_event {
        *ended = true;
        return out.error(&error::embedded(data));
    }
    let view = match CompletionView::parse(data) {
        Ok(view) => view,
        Err(reason) => return out.warn(&format!("skipped malformed stream event: {reason}")),
    };
    if view.error.is_some() {
        *ended = true;
        return out.error(&error::embedded(data));
    }
    if view.choices.is_none() && view.usage.is_none() {
        return out.warn("skipped malformed stream event: neither `choices` nor `usage`");
    }
    let choices = view.choices.unwrap_or_default();
    let info = ChunkInfo {
        finish_reason: choices.finish_reason,
        // A usage-only chunk may also come without `choices` at all.
        empty_choices: choices.len == 0,
        usage: view.usage.as_ref().map(|u| u.to_usage()),
    };
    let model = view.model.as_deref().unwrap_or(ctx.model);
    if !view.extra_fields.0 {
        return out.chunk(data, model, &info);
    }
    match without_extra_fields(data) {
        Ok(json) => out.chunk(&json, model, &info),
        Err(reason) => out.warn(&format!("skipped malformed stream event: {reason}")),
    }
}
