//! Relays one stream to the client as SSE: decodes upstream bytes (or a local provider's
//! items), numbers every chunk, places usage where the client expects it, and ends with
//! `[DONE]` — or, after a failure, with an error event and no `[DONE]`, so a cut stream is
//! never mistaken for a complete one.

use super::chunk_hooks::StreamHooks;
use super::context::{StreamContext, plugin_error};
use super::extra_fields;
use super::finish::{FRAME_EXTRA, Finisher};
use super::hook_chain::HookChain;
use crate::cache::{CacheTicket, CachedBody};
use crate::error::GatewayError;
use crate::observability::escaped;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::collections::VecDeque;
use std::time::Duration;
use switchyard_plugin_api::host::{Item, Payload, StreamDecoder};
use tokio::sync::OwnedSemaphorePermit;

use crate::upstream::ByteStream;

// One per stream and never moved once built: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Source {
    Upstream {
        body: ByteStream,
        decoder: StreamDecoder,
        /// Holds the provider's concurrency slot for the stream's life.
        _permit: OwnedSemaphorePermit,
        eof: bool,
    },
    Local {
        items: VecDeque<Item>,
    },
}

pub struct Relay {
    source: Source,
    /// Frames every chunk (`extra_fields`) and settles the stream's usage.
    finish: Finisher,
    pending: VecDeque<Item>,
    /// Reused for each decoder call's items before they join `pending`.
    decoded: Vec<Item>,
    /// A `finish_reason` chunk waiting for usage (clients that did not ask for the usage chunk).
    held: Option<Payload>,
    first_chunk_seen: bool,
    ended: bool,
    /// Until the first chunk: a deadline from the stream's start (keep-alive comments do
    /// not extend it).
    first_token_deadline: Option<tokio::time::Instant>,
    idle_timeout: Option<Duration>,
    /// The request's hooks (chunk phase, `on_done` at the end); `None` without hooks.
    hooks: Option<Box<StreamHooks>>,
    /// A hook ended the stream: delivered after the chunks already pending.
    hook_error: Option<GatewayError>,
    /// The status of the error that ended the stream, if one did (for `on_done`).
    failed_status: Option<u16>,
    /// The chunks kept for the cache, as decoded (before hooks); stored only if the stream
    /// ends with `[DONE]` and no error.
    recorder: Option<Box<StreamRecorder>>,
}

struct StreamRecorder {
    ticket: CacheTicket,
    chunks: Vec<Payload>,
}

/// The status a stream's summary carries when its client left before the end.
const CLIENT_GONE: u16 = 499;

/// A stream's end, however it came (done, failed, or the client gone), frees its buffers;
/// its Finisher settles its usage (an estimate if the upstream's never came).
impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(hooks) = self.hooks.take() {
            // A stream that never reached its end had its client leave: 499, as proxies log it.
            let status = self.failed_status.unwrap_or(if self.ended { 200 } else { CLIENT_GONE });
            hooks.settle(self.finish.outcome(status, None));
        }
        crate::memory::note_activity();
    }
}

impl Relay {
    pub fn upstream(
        body: ByteStream,
        decoder: StreamDecoder,
        permit: OwnedSemaphorePermit,
        ctx: StreamContext,
        first_token_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Relay {
        Relay::new(
            Source::Upstream {
                body,
                decoder,
                _permit: permit,
                eof: false,
            },
            Finisher::new(ctx),
            first_token_timeout,
            idle_timeout,
        )
    }

    pub fn local(items: Vec<Item>, ctx: StreamContext) -> Relay {
        Relay::local_finished_by(items, Finisher::new(ctx))
    }

    /// A local stream whose Finisher is already set up (a cache hit's).
    pub fn local_finished_by(items: Vec<Item>, finish: Finisher) -> Relay {
        Relay::new(Source::Local { items: items.into() }, finish, None, None)
    }

    fn new(
        source: Source,
        finish: Finisher,
        first_token_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Relay {
        Relay {
            source,
            finish,
            pending: VecDeque::new(),
            decoded: Vec::new(),
            held: None,
            first_chunk_seen: false,
            ended: false,
            first_token_deadline: first_token_timeout.map(|t| tokio::time::Instant::now() + t),
            idle_timeout,
            hooks: None,
            hook_error: None,
            failed_status: None,
            recorder: None,
        }
    }

    /// Keeps the stream's chunks for the cache: what is decoded already (the primed first
    /// chunk; a local provider's whole answer) now, the rest as it comes. Stored when the
    /// stream ends whole; `cache_debug` on every chunk names the entry.
    pub fn store_in_cache(&mut self, ticket: CacheTicket) {
        self.finish.cache_miss(ticket.miss_debug());
        if !ticket.store {
            return;
        }
        let mut chunks: Vec<Payload> = self.pending.iter().filter_map(chunk_of).collect();
        if let Source::Local { items } = &self.source {
            chunks.extend(items.iter().filter_map(chunk_of));
        }
        self.recorder = Some(Box::new(StreamRecorder { ticket, chunks }));
    }

    /// A stream that ended with `[DONE]` and no error goes into the cache.
    fn commit_to_cache(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            let StreamRecorder { ticket, chunks } = *recorder;
            ticket.store(
                CachedBody::Stream(chunks),
                &self.finish.ctx.provider,
                &self.finish.ctx.model_deployment,
            );
        }
    }

    /// The stream's chunks carry `raw_request` and `raw_response` (asked for by the provider's
    /// `send_back_raw_response` or the request's header).
    pub fn send_back_raw(&mut self, request: Vec<u8>) {
        self.finish.send_back_raw_stream(request);
    }

    /// The post-hook phase hands the stream the request's hooks: what is already decoded
    /// (the primed first chunk) goes through their chunk phase now, the rest as it comes.
    pub fn attach_hooks(&mut self, chain: HookChain) {
        let mut hooks = Box::new(StreamHooks::new(chain));
        let mut items: Vec<Item> = self.pending.drain(..).collect();
        self.hook_error = hooks.apply(&mut items, false);
        self.pending.extend(items);
        self.hooks = Some(hooks);
    }

    /// Reads until the first chunk. Failing here (an error event, a cut, silence) fails the
    /// attempt, so the caller can still fall back: nothing has reached the client yet.
    pub async fn prime(&mut self) -> Result<(), GatewayError> {
        loop {
            match self.next_item().await? {
                Some(Item::Delay(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Some(Item::Error(e)) => return Err(self.finish.ctx.upstream_error(e)),
                Some(Item::Response(_)) => continue,
                Some(item @ Item::Chunk(_)) => {
                    self.pending.push_front(item);
                    return Ok(());
                }
                // A stream that ends before its first chunk has answered nothing: a failed
                // attempt (so a fallback may serve), never an empty success.
                Some(Item::Done) | None => {
                    return Err(GatewayError::UpstreamMalformed {
                        provider: self.finish.ctx.provider.to_string(),
                        reason: "the stream ended before its first chunk".into(),
                    });
                }
            }
        }
    }

    /// The SSE byte stream for the response body.
    pub fn into_body(self: Box<Self>) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        futures_util::stream::unfold(self, |mut relay| async move {
            let frame = relay.next_frame().await?;
            Some((Ok(Bytes::from(frame)), relay))
        })
    }

    async fn next_item(&mut self) -> Result<Option<Item>, GatewayError> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if let Some(e) = self.hook_error.take() {
                return Err(e);
            }
            let wait = match (self.first_chunk_seen, self.first_token_deadline) {
                (false, Some(deadline)) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    Some(self.idle_timeout.map_or(left, |idle| idle.min(left)))
                }
                _ => self.idle_timeout,
            };
            let (body, decoder, eof) = match &mut self.source {
                Source::Local { items } => {
                    let Some(hooks) = self.hooks.as_mut() else {
                        return Ok(items.pop_front());
                    };
                    let item = items.pop_front();
                    let end = item.is_none();
                    self.decoded.extend(item);
                    self.hook_error = hooks.apply(&mut self.decoded, end);
                    self.pending.extend(self.decoded.drain(..));
                    if end && self.pending.is_empty() && self.hook_error.is_none() {
                        return Ok(None);
                    }
                    continue;
                }
                Source::Upstream { body, decoder, eof, .. } => (body, decoder, eof),
            };
            if *eof {
                return Ok(None);
            }
            let next = match wait {
                Some(limit) => {
                    tokio::time::timeout(limit, body.next())
                        .await
                        .map_err(|_| GatewayError::UpstreamTimeout {
                            provider: self.finish.ctx.provider.to_string(),
                            phase: if self.first_chunk_seen {
                                "stream_idle_timeout"
                            } else {
                                "first_token_timeout"
                            },
                            secs: limit.as_secs_f64(),
                        })?
                }
                None => body.next().await,
            };
            if let Some(Ok(bytes)) = &next {
                self.finish.upstream_bytes(bytes);
            }
            let items = &mut self.decoded;
            let call = self.finish.ctx.call_info();
            match next {
                Some(Ok(bytes)) => decoder.feed(&call, &bytes, items),
                Some(Err(e)) => {
                    return Err(GatewayError::UpstreamUnreachable {
                        provider: self.finish.ctx.provider.to_string(),
                        reason: format!("the stream was cut: {}", e),
                    });
                }
                None => {
                    *eof = true;
                    decoder.finish(&call, items)
                }
            }
            .map_err(|e| plugin_error(&self.finish.ctx.provider, e, &self.finish.ctx.redactor))?;
            if let Some(recorder) = self.recorder.as_mut() {
                if items.iter().any(|i| matches!(i, Item::Error(_))) {
                    // A stream with an error event is never stored.
                    self.recorder = None;
                } else {
                    recorder.chunks.extend(items.iter().filter_map(chunk_of));
                }
            }
            for warning in decoder.take_warnings() {
                tracing::warn!(provider = %self.finish.ctx.provider, request_id = %self.finish.ctx.request_id, warning = %escaped(&warning), "the provider plugin skipped part of the stream");
            }
            if let Some(hooks) = self.hooks.as_mut() {
                self.hook_error = hooks.apply(items, *eof);
            }
            self.pending.extend(items.drain(..));
        }
    }

    /// The next bytes for the client, `None` when the stream is over. Every item already
    /// decoded goes into one frame: an upstream read usually carries many events, and one
    /// write per read (instead of one per event) is most of the relay's cost saved. Nothing
    /// waits for more once a frame has bytes, so batching adds no latency.
    async fn next_frame(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        while !self.ended {
            let item = if out.is_empty() {
                self.next_item().await
            } else {
                match self.ready_item() {
                    Some(item) => Ok(Some(item)),
                    None => break,
                }
            };
            if out.is_empty() {
                self.finish.begin_frame();
                // Sized once for everything already decoded: an upstream read can carry
                // hundreds of events, and growing the frame chunk by chunk copied it over and over.
                let ready: usize = self.pending.iter().map(frame_len).sum();
                out.reserve(item.as_ref().map_or(0, |i| i.as_ref().map_or(0, frame_len)) + ready);
            }
            match item {
                Ok(Some(Item::Chunk(p))) => {
                    self.first_chunk_seen = true;
                    self.on_chunk(p, &mut out);
                }
                Ok(Some(Item::Delay(ms))) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Ok(Some(Item::Response(_))) => {}
                Ok(Some(Item::Done)) => {
                    self.ended = true;
                    self.flush_held(true, &mut out);
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    self.commit_to_cache();
                }
                // The source ended without `[DONE]`: finalised for the client, but not
                // trusted as whole enough to cache.
                Ok(None) => {
                    self.ended = true;
                    self.recorder = None;
                    self.flush_held(true, &mut out);
                    out.extend_from_slice(b"data: [DONE]\n\n");
                }
                Ok(Some(Item::Error(e))) => {
                    let err = self.finish.ctx.upstream_error(e);
                    self.fail(err, &mut out);
                }
                Err(err) => self.fail(err, &mut out),
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// An item that needs no waiting: one already decoded, or a local provider's next item
    /// unless it is a delay.
    fn ready_item(&mut self) -> Option<Item> {
        if let Some(item) = self.pending.pop_front() {
            return Some(item);
        }
        match &mut self.source {
            // With hooks, a local item goes through `next_item` (and the chunk phase).
            Source::Local { items } if self.hooks.is_none() && !matches!(items.front(), Some(Item::Delay(_))) => {
                items.pop_front()
            }
            _ => None,
        }
    }

    fn fail(&mut self, err: GatewayError, out: &mut Vec<u8>) {
        self.ended = true;
        self.recorder = None;
        self.failed_status = Some(err.status().as_u16());
        match &err {
            GatewayError::HookRejected { hook, .. } | GatewayError::HookFailed { hook, .. } => {
                tracing::info!(hook = %hook, request_id = %self.finish.ctx.request_id, error = %escaped(&err), "stream ended by a hook");
            }
            _ => {
                tracing::warn!(provider = %self.finish.ctx.provider, request_id = %self.finish.ctx.request_id, error = %escaped(&err), "stream ended by an upstream failure");
            }
        }
        self.flush_held(true, out);
        if let GatewayError::HookRejected { rejection, .. } = &err {
            // The hook's own error event, as it wrote it, on one line.
            out.extend_from_slice(b"data: ");
            let start = out.len();
            out.extend_from_slice(&rejection.body);
            super::finish::one_line(&mut out[start..]);
            out.extend_from_slice(b"\n\n");
            return;
        }
        let event = serde_json::json!({ "error": {
            "message": err.client_message(),
            "type": err.error_type(),
            "code": err.code(),
        }});
        out.extend_from_slice(b"data: ");
        let _ = serde_json::to_writer(&mut *out, &event);
        out.extend_from_slice(b"\n\n");
    }

    fn on_chunk(&mut self, p: Payload, out: &mut Vec<u8>) {
        if let Some(u) = &p.usage {
            self.finish.usage(u);
        }
        if p.has_empty_choices() {
            if self.finish.ctx.include_usage {
                self.flush_held(false, out);
                self.emit(&p.json, true, out);
            } else if let Some(held) = self.held.take() {
                // Usage rides on the finish_reason chunk; the usage-only chunk is not sent.
                let json = extra_fields::move_usage(&held.json, &p.json).unwrap_or(held.json);
                self.emit(&json, true, out);
            }
            return;
        }
        // Another chunk follows (n > 1): the held one is not the last.
        self.flush_held(false, out);
        if p.has_finish_reason() && !self.finish.ctx.include_usage {
            self.held = Some(p);
        } else {
            self.emit(&p.json, false, out);
        }
    }

    fn flush_held(&mut self, last: bool, out: &mut Vec<u8>) {
        if let Some(held) = self.held.take() {
            self.emit(&held.json, last, out);
        }
    }

    fn emit(&mut self, json: &[u8], last: bool, out: &mut Vec<u8>) {
        self.finish.chunk(json, last, out);
    }
}

/// A copy of `item`'s payload when it is a chunk (for the cache).
fn chunk_of(item: &Item) -> Option<Payload> {
    match item {
        Item::Chunk(p) => Some(p.clone()),
        _ => None,
    }
}

/// The bytes `item` is expected to take in a client frame.
fn frame_len(item: &Item) -> usize {
    match item {
        Item::Chunk(p) => p.json.len() + FRAME_EXTRA,
        _ => 0,
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
