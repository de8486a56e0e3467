//! The finish phase: the one place an answer gets its `extra_fields`, its cost and its usage
//! settled.
//!
//! Cost: when the upstream's usage arrives and the answering model has a price, `usage.cost`
//! is written into the answer's `usage` object — a plain answer's, or in a stream the chunk
//! that carries the usage (the last one the client gets with usage). A model without a price
//! gets no `cost` (never a silent 0), counted.
//!
//! Plain answers (from an upstream or a local provider) and stream chunks go through the same
//! [`Finisher`]; cached and short-circuited answers will too. Nothing else writes
//! `extra_fields` on a successful answer (errors carry their own, in `http::respond`). Settling
//! means the usage ledger hears of every answer exactly once: the upstream's usage when it
//! came, else, for a stream that produced chunks, an estimate marked as such when the
//! Finisher is dropped (the client gone, the upstream cut, or no usage reported).

use super::context::StreamContext;
use super::extra_fields::{self, CHAT, ExtraFields, StreamExtraFields};
use super::hook_chain::Outcome;
use super::{Answer, Exchange, Served};
use crate::cost::Cost;
use std::sync::Arc;
use std::time::Instant;
use switchyard_plugin_api::host::{Payload, Usage};

pub struct Finisher {
    /// The request's identity and where its usage goes; the relay reads it too.
    pub ctx: StreamContext,
    /// Built on the first chunk: a plain answer never needs it.
    stream: Option<StreamExtraFields>,
    /// Chunks sent so far (the next one's `chunk_index`).
    chunks: u64,
    last_emit: Instant,
    /// The time of the frame being written: every chunk of one upstream read shares it, since
    /// they leave together (a clock read per chunk was a measurable part of its cost).
    frame_time: Option<Instant>,
    usage_recorded: bool,
    /// `raw_request` / `raw_response` to add, when asked for.
    raw: Option<RawExchange>,
    /// The upstream's usage, once reported (for the settle phase's summary).
    pub reported_usage: Option<Usage>,
    /// `usage.cost` for the answer, once its usage is known and priced, until written.
    cost: Option<Cost>,
    /// A cache hit: nothing was paid for, so its usage costs 0.
    free: bool,
    /// `extra_fields.cache_debug`, for a request that asked the cache.
    cache_debug: Option<Box<serde_json::value::RawValue>>,
}

/// The finish phase's entry: a plain answer becomes its body (the settle phase learns what
/// served it); a stream is finished chunk by chunk by its relay.
pub fn answer(ex: &mut Exchange, served: Served) -> Answer {
    match served {
        Served::Plain {
            answer,
            mut finish,
            headers,
        } => {
            if let Some(chain) = ex.hooks.as_mut() {
                chain.outcome = finish.outcome(200, answer.usage);
            }
            Answer::Complete {
                body: finish.complete(&answer),
                headers,
            }
        }
        Served::Stream { relay, headers } => Answer::Stream { relay, headers },
    }
}

/// The bytes of one upstream exchange, for `extra_fields.raw_*`. In a stream, the request
/// goes on the first chunk and `response` collects the upstream's bytes until the next chunk
/// takes them: concatenated, a stream's `raw_response` values are the upstream's body.
struct RawExchange {
    request: Option<Vec<u8>>,
    response: Vec<u8>,
}

impl Finisher {
    pub fn new(ctx: StreamContext) -> Finisher {
        Finisher {
            last_emit: ctx.started,
            ctx,
            stream: None,
            chunks: 0,
            frame_time: None,
            usage_recorded: false,
            raw: None,
            reported_usage: None,
            cost: None,
            free: false,
            cache_debug: None,
        }
    }

    /// The answer comes from the cache: its cost is 0 and `cache_debug` says so.
    pub fn cache_hit(&mut self, debug: String) {
        self.free = true;
        self.cache_debug = raw_value(debug);
    }

    /// The request asked the cache and missed: `cache_debug` says under which id the answer
    /// is stored.
    pub fn cache_miss(&mut self, debug: String) {
        self.cache_debug = raw_value(debug);
    }

    /// What served the answer, for `on_done`: `status` is 200 for an answer that went out
    /// whole, else the status of what ended it. Usage is the upstream's, or for a stream
    /// that never reported it, the estimate settlement records.
    pub fn outcome(&self, status: u16, usage: Option<Usage>) -> Outcome {
        let usage = usage
            .or(self.reported_usage)
            .or_else(|| (self.chunks > 0).then(|| self.ctx.estimated_usage(self.chunks)));
        let cost = if self.free {
            Some(Cost::FREE)
        } else {
            usage
                .as_ref()
                .and_then(|u| self.ctx.price.as_deref().map(|p| Cost::of(u, p)))
        };
        Outcome {
            provider: Some(Arc::clone(&self.ctx.provider)),
            model: Some(Arc::clone(&self.ctx.model_deployment)),
            status,
            usage,
            cost,
            cache_hit: self.free,
        }
    }

    /// Adds `raw_request` and `raw_response` to a plain answer.
    pub fn send_back_raw(&mut self, request: Vec<u8>, response: Vec<u8>) {
        self.raw = Some(RawExchange {
            request: Some(request),
            response,
        });
    }

    /// A stream's chunks carry `raw_request` (the first) and `raw_response` (the upstream
    /// bytes since the previous chunk; see [`Finisher::upstream_bytes`]).
    pub fn send_back_raw_stream(&mut self, request: Vec<u8>) {
        self.raw = Some(RawExchange {
            request: Some(request),
            response: Vec::new(),
        });
    }

    /// What the upstream sent, as read (kept only when the stream sends back raw bytes).
    pub fn upstream_bytes(&mut self, bytes: &[u8]) {
        if let Some(raw) = &mut self.raw {
            raw.response.extend_from_slice(bytes);
        }
    }

    /// The chunk's `raw_*` members: the request on the first, the upstream's bytes since the
    /// last chunk on each one that has some.
    fn raw_tail(&mut self) -> Vec<u8> {
        let Some(raw) = &mut self.raw else {
            return Vec::new();
        };
        let mut tail = Vec::new();
        if let Some(request) = raw.request.take() {
            tail.extend_from_slice(b",\"raw_request\":");
            tail.extend_from_slice(raw_json(&request, &self.ctx).get().as_bytes());
        }
        if !raw.response.is_empty() {
            tail.extend_from_slice(b",\"raw_response\":");
            let text = self.ctx.redactor.redact(&String::from_utf8_lossy(&raw.response));
            let _ = serde_json::to_writer(&mut tail, &text);
            raw.response.clear();
        }
        tail
    }

    /// A new frame (the chunks of one upstream read) starts now.
    pub fn begin_frame(&mut self) {
        self.frame_time = Some(Instant::now());
    }

    /// A plain answer's body: the codec's JSON with `extra_fields`; its usage recorded.
    pub fn complete(&mut self, p: &Payload) -> Vec<u8> {
        if let Some(u) = &p.usage {
            self.usage(u);
        }
        let ctx = &self.ctx;
        // Redacted of configured secrets like every upstream text, then embedded as JSON (or,
        // when it is not JSON, as a string).
        let raw = self.raw.as_ref().map(|r| {
            (
                raw_json(r.request.as_deref().unwrap_or_default(), ctx),
                raw_json(&r.response, ctx),
            )
        });
        let extra = ExtraFields {
            request_type: CHAT,
            provider: &ctx.provider,
            model_requested: &ctx.model_requested,
            model_deployment: &ctx.model_deployment,
            latency: ctx.started.elapsed().as_millis() as u64,
            chunk_index: 0,
            raw_request: raw.as_ref().map(|(q, _)| &**q),
            raw_response: raw.as_ref().map(|(_, a)| &**a),
            cache_debug: self.cache_debug.as_deref(),
        };
        let mut out = Vec::with_capacity(p.json.len() + 300);
        let spliced = match self.cost.take() {
            Some(cost) => extra_fields::append_with_cost(&mut out, &p.json, |o| cost.write_json(o), &extra),
            None => extra_fields::append_to(&mut out, &p.json, &extra),
        };
        if !spliced {
            tracing::warn!(provider = %ctx.provider, "provider response is not a JSON object; extra_fields not added");
        }
        out
    }

    /// The upstream's own usage for this answer, and so its cost.
    pub fn usage(&mut self, u: &Usage) {
        self.cost = self.ctx.record_usage(u, false).or(self.free.then_some(Cost::FREE));
        self.usage_recorded = true;
        self.reported_usage = Some(*u);
    }

    /// One chunk as one SSE event (`data: <one line of JSON>\n\n`) appended to `out`, with
    /// `extra_fields` (`chunk_index`; `latency` since the previous chunk, or since the start
    /// on the `last`).
    pub fn chunk(&mut self, json: &[u8], last: bool, out: &mut Vec<u8>) {
        // The chunk that carries the usage carries its cost (only looked for once it is known).
        let priced = match &self.cost {
            Some(cost) => extra_fields::add_cost_to_usage(json, &cost.to_json()),
            None => None,
        };
        if priced.is_some() {
            self.cost = None;
        }
        let json = priced.as_deref().unwrap_or(json);
        let mut tail = if self.raw.is_some() {
            self.raw_tail()
        } else {
            Vec::new()
        };
        if let Some(debug) = &self.cache_debug {
            tail.extend_from_slice(b",\"cache_debug\":");
            tail.extend_from_slice(debug.get().as_bytes());
        }
        let ctx = &self.ctx;
        let extra = self
            .stream
            .get_or_insert_with(|| StreamExtraFields::new(&ctx.provider, &ctx.model_requested, &ctx.model_deployment));
        let now = self.frame_time.unwrap_or_else(Instant::now);
        let since = if last { self.ctx.started } else { self.last_emit };
        self.last_emit = now;
        let latency = now.duration_since(since).as_millis() as u64;
        out.reserve(json.len() + FRAME_EXTRA);
        out.extend_from_slice(b"data: ");
        let start = out.len();
        // Only the codec's JSON is scanned: `extra_fields` is the gateway's own, serialised
        // (and escaped) by serde_json, so it holds no raw line break.
        let multi_line = memchr::memchr2(b'\n', b'\r', json).is_some();
        extra.append_with(out, json, latency, self.chunks, &tail);
        if multi_line {
            one_line(&mut out[start..]);
        }
        self.chunks += 1;
        out.extend_from_slice(b"\n\n");
    }
}

/// The gateway's own JSON (always valid) as an embeddable value.
fn raw_value(json: String) -> Option<Box<serde_json::value::RawValue>> {
    serde_json::value::RawValue::from_string(json).ok()
}

/// `bytes` as embeddable JSON: itself when it is JSON, else a JSON string; secrets redacted.
fn raw_json(bytes: &[u8], ctx: &StreamContext) -> Box<serde_json::value::RawValue> {
    let text = ctx.redactor.redact(&String::from_utf8_lossy(bytes));
    match serde_json::from_str::<Box<serde_json::value::RawValue>>(&text) {
        Ok(json) => json,
        Err(_) => serde_json::value::to_raw_value(&text).unwrap_or_default(),
    }
}

/// However the answer ended, its usage is settled once.
impl Drop for Finisher {
    fn drop(&mut self) {
        if !self.usage_recorded && self.chunks > 0 {
            self.ctx.record_estimated_usage(self.chunks);
        }
    }
}

/// What one chunk adds to a frame besides its JSON: `data: `, `extra_fields`, `\n\n`.
pub const FRAME_EXTRA: usize = 224;

/// Keeps an event's JSON on its one `data:` line. A codec may pass an upstream's bytes
/// through, and an upstream may split an event over several `data:` lines (which SSE joins
/// with newlines): forwarded as is, the client would see a broken event, and an upstream
/// could inject events of its own. In valid JSON a raw CR or LF can only be whitespace
/// between tokens (inside strings they must be escaped), so blanking them changes nothing a
/// JSON reader sees. A scan, not a parse (the caller's memchr runs on every chunk; this only
/// on the rare chunk that has a line break).
pub fn one_line(json: &mut [u8]) {
    for b in json.iter_mut() {
        if matches!(*b, b'\n' | b'\r') {
            *b = b' ';
        }
    }
}
