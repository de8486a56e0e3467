//! Redaction of streamed `chat.completion.chunk`s, matches split across chunks included.
//!
//! Per choice index, text that could still be the beginning of a match is held back and released with
//! a later chunk of that choice, with the chunk carrying its `finish_reason`, or by [`StreamRedactor::finish`].
//! How much is held:
//! - `email`, `credit_card`, `api_key`: matches are made of a known set of ASCII characters and have a
//!   bounded length, so only the trailing run of such characters is held (for ordinary prose, the last
//!   word or so), plus a preceding "Bearer " for tokens; never more than the kind's longest match.
//! - `regex:`: the last `regex_max_match` bytes (default 256) are held; a custom match longer than that
//!   is still redacted inside one chunk but may be missed when a stream splits it (0 holds nothing).
//!
//! Text is never reordered and no member other than `choices[].delta.content` changes. A chunk whose
//! text is entirely held back is kept, with `"content": ""`, so its other members (role, tool calls,
//! ids) reach the client unchanged. Chunks with no text to change are passed through byte for byte.

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::json::{Edit, Text, is_string, splice};
use crate::scan::{Hit, scan, write_redacted};
use crate::{Guardrail, Malformed, wire};

/// Redaction state for one stream.
pub struct StreamRedactor {
    guard: Arc<Guardrail>,
    choices: Vec<ChoiceText>,
    hits: Vec<Hit>,
    released: String,
    /// `id`, `object`, `created`, `model` of the first chunk, for the chunk `finish` may have to make.
    header: Option<Header>,
}

struct Header {
    id: Option<Box<RawValue>>,
    created: Option<Box<RawValue>>,
    model: Option<Box<RawValue>>,
}

/// One choice's unreleased text: `buf[..ctx]` is already released (kept as context for the next scan),
/// `buf[ctx..]` is held back.
struct ChoiceText {
    index: u64,
    buf: String,
    ctx: usize,
}

impl StreamRedactor {
    pub fn new(guard: Arc<Guardrail>) -> Self {
        StreamRedactor {
            guard,
            choices: Vec::new(),
            hits: Vec::new(),
            released: String::new(),
            header: None,
        }
    }

    /// Takes one chunk and returns the chunks to send in its place (today always exactly one).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, Malformed> {
        Ok(vec![self.redact_chunk(chunk)?.unwrap_or_else(|| chunk.to_vec())])
    }

    /// The chunk to send instead of `chunk`, or `None` to send `chunk` unchanged: [`Self::push`] without
    /// copying chunks that stay as they are (the form a hook's `on_chunk` keep/replace wants).
    pub fn redact_chunk(&mut self, chunk: &[u8]) -> Result<Option<Vec<u8>>, Malformed> {
        if !self.guard.redacts() {
            return Ok(None);
        }
        let parsed: wire::Chunk = serde_json::from_slice(chunk)?;
        if self.header.is_none() {
            let own = |v: Option<&RawValue>| v.map(RawValue::to_owned);
            self.header = Some(Header {
                id: own(parsed.id),
                created: own(parsed.created),
                model: own(parsed.model),
            });
        }
        let mut edits = Vec::new();
        for (pos, choice) in parsed.choices.iter().enumerate() {
            let Some(raw_delta) = choice.delta else { continue };
            if !raw_delta.get().starts_with('{') {
                continue;
            }
            let delta: wire::Delta = serde_json::from_str(raw_delta.get())?;
            let content = delta.content.filter(|c| is_string(c));
            let text = match content {
                Some(c) => serde_json::from_str::<Text>(c.get())?.0,
                None => "".into(),
            };
            let slot = self.slot(choice.index.unwrap_or(pos as u64));
            let state = &mut self.choices[slot];
            let held_before = state.buf.len() > state.ctx;
            if !held_before && text.is_empty() {
                continue;
            }
            state.buf.push_str(&text);
            let finished = choice.finish_reason.is_some();
            state.release(&self.guard, finished, &mut self.hits, &mut self.released);
            match content {
                Some(c) if self.released != text => {
                    edits.push(Edit::replace(chunk, c, std::mem::take(&mut self.released))?)
                }
                None if !self.released.is_empty() => edits.push(Edit::insert_content(
                    chunk,
                    raw_delta,
                    std::mem::take(&mut self.released),
                )?),
                _ => {}
            }
        }
        if edits.is_empty() {
            return Ok(None);
        }
        Ok(Some(splice(chunk, &edits)?))
    }

    /// Releases all text still held back (the stream ended without a `finish_reason` for some choice):
    /// at most one chunk, carrying every such choice's remaining text.
    pub fn finish(&mut self) -> Result<Vec<Vec<u8>>, Malformed> {
        let mut out = Vec::new();
        for state in &mut self.choices {
            if state.buf.len() == state.ctx {
                continue;
            }
            state.release(&self.guard, true, &mut self.hits, &mut self.released);
            out.push(FinalChoice {
                index: state.index,
                delta: FinalDelta {
                    content: std::mem::take(&mut self.released),
                },
                finish_reason: None,
            });
        }
        if out.is_empty() {
            return Ok(Vec::new());
        }
        let header = self.header.as_ref();
        let chunk = FinalChunk {
            id: header.and_then(|h| h.id.as_deref()),
            object: "chat.completion.chunk",
            created: header.and_then(|h| h.created.as_deref()),
            model: header.and_then(|h| h.model.as_deref()),
            choices: out,
        };
        Ok(vec![serde_json::to_vec(&chunk)?])
    }

    fn slot(&mut self, index: u64) -> usize {
        match self.choices.iter().position(|c| c.index == index) {
            Some(i) => i,
            None => {
                self.choices.push(ChoiceText {
                    index,
                    buf: String::new(),
                    ctx: 0,
                });
                self.choices.len() - 1
            }
        }
    }
}

impl ChoiceText {
    /// Writes into `out` the text that can no longer be part of an unfinished match (all of it when
    /// `at_end`), redacted, and keeps the rest held back.
    fn release(&mut self, guard: &Guardrail, at_end: bool, hits: &mut Vec<Hit>, out: &mut String) {
        out.clear();
        scan(&guard.redactors, &self.buf, self.ctx, hits);
        let mut end = if at_end {
            self.buf.len()
        } else {
            guard
                .holds
                .iter()
                .map(|h| h.start(&self.buf, self.ctx))
                .min()
                .unwrap_or(self.buf.len())
        };
        // A match that starts before the hold cannot grow any more: release it whole.
        if let Some(h) = hits.iter().find(|h| h.start < end && h.end > end) {
            end = h.end;
        }
        write_redacted(&self.buf, self.ctx, end, hits, out);
        if end > self.ctx {
            // Keep the last released character: the next scan needs to know what precedes it.
            let keep = self.buf[..end].char_indices().next_back().map_or(end, |(i, _)| i);
            self.buf.drain(..keep);
            self.ctx = end - keep;
        }
    }
}

#[derive(Serialize)]
struct FinalChunk<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    object: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a RawValue>,
    choices: Vec<FinalChoice>,
}

#[derive(Serialize)]
struct FinalChoice {
    index: u64,
    delta: FinalDelta,
    finish_reason: Option<()>,
}

#[derive(Serialize)]
struct FinalDelta {
    content: String,
}
