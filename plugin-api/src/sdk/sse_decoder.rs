//! A [`StreamDecoder`] for upstreams that stream server-sent events: the [`sse`](super::sse)
//! parser plus everything around it that does not depend on the provider, so a provider writes
//! only what one event means ([`SseHandler`]).
//!
//! [`SseDecoder`] feeds the upstream's fragments to the parser and, for each event:
//! - ignores it once the stream has ended (DONE or an error was written);
//! - reports an oversized event as a warning and skips it;
//! - skips an event whose data is blank (a `data:` line with nothing after it carries nothing);
//! - with [`SseHandler::DONE_MARKER`], ends the stream at `data: [DONE]` (OpenAI's end marker);
//! - turns an `event: error` event into the error its data describes
//!   ([`SseHandler::error_event`]), which ends the stream;
//! - hands every other event to [`SseHandler::on_event`].
//!
//! When the upstream closes the stream, the events still buffered are dispatched, then
//! [`SseHandler::on_close`] says how the answer ends. A handler's [`Flow::End`] makes the decoder
//! write DONE, an `Err` makes it write the error item; either way nothing more is written.
//!
//! ```
//! use switchyard_plugin_api::sdk::sse_decoder::{Flow, SseDecoder, SseHandler, skip_malformed};
//! use switchyard_plugin_api::sdk::{Context, Out, ProviderError, StreamDecoder, errors};
//!
//! /// Events are `{"text": "..."}`, then `{"end": true}`.
//! #[derive(Default)]
//! struct Events;
//!
//! impl SseHandler for Events {
//!     fn on_event(&mut self, _ctx: &Context<'_>, _event_type: &[u8], data: &[u8], out: &mut Out<'_>)
//!         -> Result<Flow, ProviderError> {
//!         let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) else {
//!             skip_malformed(out, "not JSON");
//!             return Ok(Flow::Continue);
//!         };
//!         if event["end"] == true {
//!             return Ok(Flow::End);
//!         }
//!         // … write a chunk for `event["text"]` (see `unified::ChunkWriter`) …
//!         Ok(Flow::Continue)
//!     }
//!
//!     fn error_event(&mut self, data: &[u8]) -> ProviderError {
//!         errors::unreadable_error(data)
//!     }
//! }
//!
//! fn open_stream() -> Box<dyn StreamDecoder> {
//!     Box::new(SseDecoder::new(Events))
//! }
//! ```

use super::sse::{DEFAULT_MAX_EVENT_BYTES, SseEvent, SseParser};
use super::{Context, Out, ProviderError, StreamDecoder};
use std::fmt::Display;

/// What a handler says after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// More may follow.
    Continue,
    /// The answer is complete: the decoder writes DONE and ignores the rest of the stream.
    End,
}

/// What one upstream event means: the provider-specific half of an [`SseDecoder`].
pub trait SseHandler: Send {
    /// Whether `data: [DONE]` ends the stream (OpenAI's marker, which its imitators copy).
    /// Off by default: for other dialects `[DONE]` is an event like any other.
    const DONE_MARKER: bool = false;

    /// One event (not blank, not an `error` event, not the DONE marker). Write what it means
    /// to `out` (chunks, warnings); `Ok(Flow::End)` ends the answer with DONE, `Err` ends it
    /// with that error.
    fn on_event(
        &mut self,
        ctx: &Context<'_>,
        event_type: &[u8],
        data: &[u8],
        out: &mut Out<'_>,
    ) -> Result<Flow, ProviderError>;

    /// The error an `event: error` event stands for; `data` is the event's data (usually the
    /// upstream's error object, as it sends in error bodies).
    fn error_event(&mut self, data: &[u8]) -> ProviderError;

    /// The upstream closed the stream before it ended. The default writes nothing more: the
    /// host ends the answer there. A dialect that knows when an answer is complete says here
    /// whether it is (`Ok(Flow::End)`, after writing any last chunk) or was cut (`Err`).
    fn on_close(&mut self, _ctx: &Context<'_>, _out: &mut Out<'_>) -> Result<Flow, ProviderError> {
        Ok(Flow::Continue)
    }
}

/// A [`StreamDecoder`] made of an SSE parser and a provider's [`SseHandler`].
#[derive(Debug)]
pub struct SseDecoder<H> {
    events: SseParser,
    /// DONE or an error was written: the rest of the stream is not part of this answer.
    ended: bool,
    handler: H,
}

impl<H: SseHandler> SseDecoder<H> {
    pub fn new(handler: H) -> SseDecoder<H> {
        SseDecoder {
            events: SseParser::new(),
            ended: false,
            handler,
        }
    }
}

impl<H: SseHandler> StreamDecoder for SseDecoder<H> {
    fn feed(&mut self, ctx: &Context<'_>, bytes: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        let (handler, ended) = (&mut self.handler, &mut self.ended);
        self.events
            .feed(bytes, &mut |event| dispatch(handler, ended, event, ctx, out));
        Ok(())
    }

    fn finish(&mut self, ctx: &Context<'_>, out: &mut Out<'_>) -> Result<(), ProviderError> {
        let (handler, ended) = (&mut self.handler, &mut self.ended);
        self.events
            .finish(&mut |event| dispatch(handler, ended, event, ctx, out));
        if !std::mem::replace(ended, true) {
            end_with(handler.on_close(ctx, out), out);
        }
        Ok(())
    }
}

/// Every event of every stream passes here before its handler: inlined into the parser's
/// callback, so the checks cost no call of their own.
#[inline(always)]
fn dispatch<H: SseHandler>(
    handler: &mut H,
    ended: &mut bool,
    event: SseEvent<'_>,
    ctx: &Context<'_>,
    out: &mut Out<'_>,
) {
    if *ended {
        return;
    }
    let (event_type, data) = match event {
        SseEvent::Message { event_type, data } => (event_type, data),
        SseEvent::Oversized => {
            return out.warn(&format!(
                "skipped oversized stream event (over {} MiB)",
                DEFAULT_MAX_EVENT_BYTES >> 20
            ));
        }
    };
    let trimmed = data.trim_ascii();
    if trimmed.is_empty() {
        return;
    }
    let flow = if H::DONE_MARKER && trimmed == b"[DONE]" {
        Ok(Flow::End)
    } else if event_type == b"error" {
        Err(handler.error_event(data))
    } else {
        match handler.on_event(ctx, event_type, data, out) {
            Ok(Flow::Continue) => return,
            other => other,
        }
    };
    *ended = end_with(flow, out);
}

/// Writes how the answer ends, if it does; whether it did.
fn end_with(flow: Result<Flow, ProviderError>, out: &mut Out<'_>) -> bool {
    match flow {
        Ok(Flow::Continue) => false,
        Ok(Flow::End) => {
            out.done();
            true
        }
        Err(error) => {
            out.error(&error);
            true
        }
    }
}

/// The warning for an event the decoder skips because it cannot read it.
pub fn skip_malformed(out: &mut Out<'_>, reason: impl Display) {
    out.warn(&format!("skipped malformed stream event: {reason}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::ChunkInfo;
    use crate::sdk::recorder::record;

    /// Each event's data becomes a chunk; `end` ends the answer, `fail` fails it.
    #[derive(Default)]
    struct Echo<const DONE: bool> {
        /// What `on_close` answers.
        close: Option<Result<Flow, ProviderError>>,
    }

    impl<const DONE: bool> SseHandler for Echo<DONE> {
        const DONE_MARKER: bool = DONE;

        fn on_event(
            &mut self,
            _ctx: &Context<'_>,
            event_type: &[u8],
            data: &[u8],
            out: &mut Out<'_>,
        ) -> Result<Flow, ProviderError> {
            match data {
                b"end" => Ok(Flow::End),
                b"fail" => Err(ProviderError::malformed("failed")),
                b"bad" => {
                    skip_malformed(out, "bad data");
                    Ok(Flow::Continue)
                }
                _ => {
                    let mut json = event_type.to_vec();
                    json.push(b' ');
                    json.extend_from_slice(data);
                    out.chunk(&json, "m", &ChunkInfo::default());
                    Ok(Flow::Continue)
                }
            }
        }

        fn error_event(&mut self, data: &[u8]) -> ProviderError {
            crate::sdk::errors::unreadable_error(data)
        }

        fn on_close(&mut self, _ctx: &Context<'_>, out: &mut Out<'_>) -> Result<Flow, ProviderError> {
            out.warn("closed");
            self.close.take().unwrap_or(Ok(Flow::Continue))
        }
    }

    const CTX: Context<'static> = Context {
        stream: true,
        unix_time_ms: 0,
        model: "m",
        api_key: "",
        request_id: "r",
        operation: "chat",
    };

    fn run<H: SseHandler>(handler: H, fragments: &[&[u8]]) -> Vec<String> {
        record(|out| {
            let mut decoder = SseDecoder::new(handler);
            for fragment in fragments {
                decoder.feed(&CTX, fragment, out).expect("fed");
            }
            decoder.finish(&CTX, out).expect("finished");
        })
    }

    #[test]
    fn events_reach_the_handler_until_the_done_marker() {
        let lines = run(
            Echo::<true>::default(),
            &[
                b": keep-alive\n\ndata: one\n\ndata:\n\ndata: \r\n\r\nevent: delta\nda",
                b"ta: two\n\ndata: bad\n\ndata: [DONE]\n\ndata: after\n\n",
            ],
        );
        assert_eq!(
            lines,
            [
                "CHUNK message one flags=0",
                "CHUNK delta two flags=0",
                "WARN skipped malformed stream event: bad data",
                "DONE",
            ]
        );
    }

    #[test]
    fn without_the_marker_done_is_an_event_and_close_decides() {
        let lines = run(Echo::<false>::default(), &[b"data: [DONE]\n\ndata: x"]);
        assert_eq!(
            lines,
            ["CHUNK message [DONE] flags=0", "CHUNK message x flags=0", "WARN closed"]
        );
        let ended = Echo::<false> {
            close: Some(Ok(Flow::End)),
        };
        assert_eq!(
            run(ended, &[b"data: x\n\n"]),
            ["CHUNK message x flags=0", "WARN closed", "DONE"]
        );
        let cut = Echo::<false> {
            close: Some(Err(ProviderError::malformed("cut short"))),
        };
        assert_eq!(run(cut, &[]), ["WARN closed", "ERROR 502 cut short"]);
    }

    #[test]
    fn an_end_or_an_error_ends_the_stream_once() {
        assert_eq!(
            run(Echo::<false>::default(), &[b"data: end\n\ndata: x\n\n"]),
            ["DONE"],
            "nothing after the end, and no close"
        );
        assert_eq!(
            run(Echo::<false>::default(), &[b"data: fail\n\ndata: end\n\n"]),
            ["ERROR 502 failed"]
        );
        assert_eq!(
            run(
                Echo::<true>::default(),
                &[b"event: error\ndata: {\"oops\":1}\n\ndata: x\n\n"]
            ),
            ["ERROR 502 upstream reported an error: {\"oops\":1}"]
        );
    }

    #[test]
    fn oversized_events_are_skipped_with_a_warning() {
        let big = format!(
            "data: {}\n\ndata: fine\n\n",
            "x".repeat(crate::sdk::sse::DEFAULT_MAX_EVENT_BYTES)
        );
        assert_eq!(
            run(Echo::<true>::default(), &[big.as_bytes()]),
            [
                "WARN skipped oversized stream event (over 16 MiB)",
                "CHUNK message fine flags=0",
                "WARN closed"
            ]
        );
    }
}
