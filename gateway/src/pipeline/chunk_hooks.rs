//! The per-chunk hook phase of a stream: the request's [`HookChain`] applied to each upstream
//! read's decoded items, in place — runs of chunks go to the hooks as one batch, everything
//! else (the end, an upstream error, a local provider's delay) keeps its place — and, once,
//! the end-of-stream call that lets a hook release held-back text before `[DONE]`.

use super::hook_chain::{HookChain, Outcome};
use crate::error::GatewayError;
use switchyard_plugin_api::host::{Item, Payload};

pub struct StreamHooks {
    chain: HookChain,
    /// Some hook has a chunk phase (else items pass untouched).
    chunks: bool,
    end_called: bool,
    /// The current run of chunks; reused across reads.
    batch: Vec<Payload>,
    /// A usage-only chunk (empty `choices`), kept until the end so that text a hook releases
    /// at `end_of_stream` still comes before it: the usage chunk is a stream's last.
    usage_chunk: Option<Payload>,
}

impl StreamHooks {
    pub fn new(chain: HookChain) -> StreamHooks {
        StreamHooks {
            chunks: chain.wants_chunks(),
            chain,
            end_called: false,
            batch: Vec::new(),
            usage_chunk: None,
        }
    }

    /// Runs the chunk phase over `items` (`eof`: the source has nothing more). On an error,
    /// `items` holds what the client still gets before the error event, which is returned.
    pub fn apply(&mut self, items: &mut Vec<Item>, eof: bool) -> Option<GatewayError> {
        if !self.chunks {
            return None;
        }
        let input = std::mem::take(items);
        for item in input {
            let failed = match item {
                Item::Chunk(p) => {
                    self.batch.push(p);
                    None
                }
                Item::Done => self.flush(items).or_else(|| self.end(items)).or_else(|| {
                    items.push(Item::Done);
                    None
                }),
                other => self.flush(items).or_else(|| {
                    items.push(other);
                    None
                }),
            };
            if failed.is_some() {
                self.batch.clear();
                return failed;
            }
        }
        let failed = self.flush(items);
        if failed.is_some() || !eof {
            return failed;
        }
        self.end(items)
    }

    fn flush(&mut self, items: &mut Vec<Item>) -> Option<GatewayError> {
        if self.batch.is_empty() {
            return None;
        }
        let result = self.chain.on_chunks(&mut self.batch);
        for chunk in self.batch.drain(..) {
            if chunk.has_empty_choices() && !self.end_called && self.usage_chunk.is_none() {
                self.usage_chunk = Some(chunk);
            } else {
                items.push(Item::Chunk(chunk));
            }
        }
        result.err()
    }

    fn end(&mut self, items: &mut Vec<Item>) -> Option<GatewayError> {
        if std::mem::replace(&mut self.end_called, true) {
            return None;
        }
        let mut released = Vec::new();
        let result = self.chain.end_of_stream(&mut released);
        items.extend(released.into_iter().map(Item::Chunk));
        items.extend(self.usage_chunk.take().map(Item::Chunk));
        result.err()
    }

    /// The stream is over: the chain learns its outcome and, dropped, runs `on_done`.
    pub fn settle(self, outcome: Outcome) {
        let mut chain = self.chain;
        chain.outcome = outcome;
    }
}
