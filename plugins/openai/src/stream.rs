//! Streaming: OpenAI's SSE stream of `chat.completion.chunk` objects → unified chunks.

use crate::error;
use crate::tail_template::TailTemplate;
use crate::views::{ChoicesSummary, CompletionView, lossy_text, without_extra_fields};
use std::borrow::Cow;
use switchyard_plugin_api::sdk::sse_decoder::{Flow, SseDecoder, SseHandler, skip_malformed};
use switchyard_plugin_api::sdk::{ChunkInfo, Context, ErrorKind, Out, ProviderError, Usage};

/// One upstream stream's decoder.
pub(crate) type ChatStream = SseDecoder<State>;

pub(crate) fn open() -> ChatStream {
    SseDecoder::new(State {
        head: None,
        head_tries: 0,
        scratch: Vec::new(),
        template: None,
        template_tries: 0,
        opened: false,
        finished: false,
    })
}

/// What the decoder learns from a stream's chunks, to read the next ones with less work.
pub(crate) struct State {
    /// The members OpenAI repeats verbatim before `choices` in every chunk of a stream.
    head: Option<SharedHead>,
    /// Chunks a head was learnt from so far.
    head_tries: u8,
    /// Reused for the part of a chunk after its head.
    scratch: Vec<u8>,
    /// The last plain content chunk's tail, to recognise the next ones without a parse.
    template: Option<TailTemplate>,
    /// Tails a template was learnt from so far.
    template_tries: u8,
    /// A chunk has been read: the next one is not the stream's opening chunk.
    opened: bool,
    /// A chunk carried a `finish_reason`: the answer is complete, `[DONE]` or not.
    finished: bool,
}

/// A chunk's leading members (`id`, `object`, `created`, `model`, `system_fingerprint`), the
/// same bytes in every chunk of an OpenAI stream, parsed once: a chunk that starts with them
/// needs only its `choices` and what follows parsed (about half the bytes and keys).
struct SharedHead {
    /// Up to and including the comma before `"choices":`.
    bytes: Vec<u8>,
    model: Option<String>,
}

impl SseHandler for State {
    const DONE_MARKER: bool = true;

    fn on_event(
        &mut self,
        ctx: &Context<'_>,
        _event_type: &[u8],
        data: &[u8],
        out: &mut Out<'_>,
    ) -> Result<Flow, ProviderError> {
        // Learnt from the first chunk, and again (a few times at most) when a chunk does not
        // start with it: some servers send more members in the first chunk than in the rest.
        let matches = self.head.as_ref().is_some_and(|h| data.starts_with(&h.bytes));
        if !matches && self.head_tries < HEAD_TRIES {
            self.head_tries += 1;
            self.head = SharedHead::learn(data);
        }
        let tail = Tail {
            scratch: &mut self.scratch,
            template: &mut self.template,
            tries: &mut self.template_tries,
            first: !std::mem::replace(&mut self.opened, true),
        };
        let view = match self.head.as_ref().and_then(|h| h.read_tail(data, tail)) {
            Some(facts) => facts,
            None => match CompletionView::parse(data) {
                Ok(view) => ChunkFacts::from(view),
                // Bytes that are not UTF-8 are repaired, then read again (once: the repair is
                // text, so it never comes back here).
                Err(_) if let Some(text) = lossy_text(data) => {
                    return self.on_event(ctx, _event_type, &text, out);
                }
                Err(reason) => {
                    skip_malformed(out, reason);
                    return Ok(Flow::Continue);
                }
            },
        };
        if view.error {
            return Err(error::embedded(data));
        }
        if view.choices.is_none() && view.usage.is_none() {
            skip_malformed(out, "neither `choices` nor `usage`");
            return Ok(Flow::Continue);
        }
        let choices = view.choices.unwrap_or_default();
        self.finished |= choices.finish_reason;
        let info = ChunkInfo {
            finish_reason: choices.finish_reason,
            // A usage-only chunk may also come without `choices` at all.
            empty_choices: choices.len == 0,
            usage: view.usage,
        };
        let model = view.model.as_deref().unwrap_or(ctx.model);
        if !view.extra_fields {
            out.chunk(data, model, &info);
            return Ok(Flow::Continue);
        }
        match without_extra_fields(data) {
            Ok(json) => out.chunk(&json, model, &info),
            Err(reason) => skip_malformed(out, reason),
        }
        Ok(Flow::Continue)
    }

    fn error_event(&mut self, data: &[u8]) -> ProviderError {
        error::embedded(data)
    }

    /// The upstream closed without `[DONE]`. After a `finish_reason` the answer is whole and
    /// the stream is finalised; before one, the answer was cut, and passing it on as complete
    /// would present a truncated answer as a success.
    fn on_close(&mut self, _ctx: &Context<'_>, _out: &mut Out<'_>) -> Result<Flow, ProviderError> {
        if self.finished {
            return Ok(Flow::End);
        }
        Err(ProviderError::new(
            502,
            ErrorKind::Server,
            "the upstream closed the stream before the answer finished (no finish_reason, no [DONE])",
        )
        .with_type("server_error")
        .retryable(true))
    }
}

/// How many chunks of a stream may teach its [`SharedHead`].
const HEAD_TRIES: u8 = 3;
/// How many chunk tails of a stream may teach its [`TailTemplate`] (each unmatched plain
/// chunk does, until then: the role chunk, then the content ones, then a tool call's).
const TEMPLATE_TRIES: u8 = 8;

/// The decoder state [`SharedHead::read_tail`] uses and updates.
struct Tail<'a> {
    scratch: &'a mut Vec<u8>,
    template: &'a mut Option<TailTemplate>,
    tries: &'a mut u8,
    /// The stream's first chunk.
    first: bool,
}

/// What the decoder needs from one chunk.
struct ChunkFacts<'a> {
    model: Option<Cow<'a, str>>,
    choices: Option<ChoicesSummary>,
    usage: Option<Usage>,
    error: bool,
    extra_fields: bool,
}

impl<'a> From<CompletionView<'a>> for ChunkFacts<'a> {
    fn from(view: CompletionView<'a>) -> ChunkFacts<'a> {
        ChunkFacts {
            model: view.model,
            choices: view.choices,
            usage: view.usage.as_ref().map(|u| u.to_usage()),
            error: view.error.is_some(),
            extra_fields: view.extra_fields.0,
        }
    }
}

const CHOICES_KEY: &[u8] = b",\"choices\":";

/// Whether a plain chunk's tail is worth learning as a template: one the chunks after it are
/// likely to repeat. Not a `finish_reason` chunk (its choice is over: later chunks of a stream
/// never match it), nor the opening chunk when it carries the `role` (OpenAI's, whose delta no
/// later chunk repeats; a server that sends the role in every chunk is learnt from its
/// second). Learning one costs about as much as parsing a tail, so each skipped one is a
/// saving on every stream. In valid JSON `"role":` can only be a key, never string content.
fn teaches_template(rest: &[u8], choices: ChoicesSummary, first: bool) -> bool {
    const ROLE_KEY: &[u8] = b"\"role\":";
    if choices.finish_reason {
        return false;
    }
    let opening_role = first && rest.windows(ROLE_KEY.len()).any(|w| w == ROLE_KEY);
    !opening_role
}

impl SharedHead {
    /// The head of `chunk`, when its members before `"choices":` form an object of their own
    /// that holds nothing but (at most) the model. In valid JSON an unescaped `,"choices":` is
    /// a member boundary; closing the head with `}` parses only if it is at the top level.
    fn learn(chunk: &[u8]) -> Option<SharedHead> {
        let at = chunk.windows(CHOICES_KEY.len()).position(|w| w == CHOICES_KEY)?;
        // `{,"choices":…` is not JSON, yet its head closed with `}` (`{}`) would parse: a head
        // must hold a member.
        let members = chunk[..at].iter().skip_while(|b| b.is_ascii_whitespace()).skip(1);
        if members.clone().all(u8::is_ascii_whitespace) {
            return None;
        }
        let mut object = Vec::with_capacity(at + 1);
        object.extend_from_slice(&chunk[..at]);
        object.push(b'}');
        let view = CompletionView::parse(&object).ok()?;
        let only_model = view.choices.is_none() && view.usage.is_none() && view.error.is_none() && !view.extra_fields.0;
        only_model.then(|| SharedHead {
            bytes: chunk[..=at].to_vec(),
            model: view.model.map(Cow::into_owned),
        })
    }

    /// The facts of `chunk` from its members after the head, when it starts with the head
    /// and none of those members repeats one the head holds; `None` means "parse it whole".
    /// A tail that matches the last plain one's template is not parsed at all.
    fn read_tail<'s>(&'s self, chunk: &[u8], tail: Tail<'_>) -> Option<ChunkFacts<'s>> {
        let rest = chunk.strip_prefix(self.bytes.as_slice())?;
        if let Some(template) = tail.template.as_ref().filter(|t| t.matches(rest)) {
            return Some(ChunkFacts {
                model: self.model.as_deref().map(Cow::Borrowed),
                choices: Some(template.choices),
                usage: None,
                error: false,
                extra_fields: false,
            });
        }
        let scratch = tail.scratch;
        scratch.clear();
        scratch.push(b'{');
        scratch.extend_from_slice(rest);
        let view = CompletionView::parse(scratch).ok()?;
        if view.model.is_some() {
            return None;
        }
        // A plain content chunk (choices, nothing else of interest) teaches the template
        // the next ones are matched against.
        let plain = view.usage.is_none() && view.error.is_none() && !view.extra_fields.0;
        if let (true, Some(choices)) = (plain && *tail.tries < TEMPLATE_TRIES, view.choices)
            && teaches_template(rest, choices, tail.first)
        {
            *tail.tries += 1;
            *tail.template = TailTemplate::learn(rest, choices);
        }
        Some(ChunkFacts {
            model: self.model.as_deref().map(Cow::Borrowed),
            ..ChunkFacts::from(view)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","#;

    fn chunk(delta: &str, finish: &str) -> Vec<u8> {
        format!(
            r#"{HEAD}"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#
        )
        .into_bytes()
    }

    /// Reads `chunks` as one stream's tails; the template learnt after each (whether one is
    /// held, and how many were learnt so far).
    fn templates_after(chunks: &[Vec<u8>]) -> Vec<(bool, u8)> {
        let head = SharedHead::learn(&chunks[0]).expect("a head");
        let (mut scratch, mut template, mut tries) = (Vec::new(), None, 0);
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let tail = Tail {
                    scratch: &mut scratch,
                    template: &mut template,
                    tries: &mut tries,
                    first: i == 0,
                };
                assert!(head.read_tail(c, tail).is_some(), "chunk {i} read");
                (template.is_some(), tries)
            })
            .collect()
    }

    #[test]
    fn neither_the_opening_role_chunk_nor_a_finish_chunk_teaches_the_template() {
        let role = chunk(r#"{"role":"assistant","content":""}"#, "null");
        let content = chunk(r#"{"content":" hi"}"#, "null");
        let finish = chunk("{}", r#""stop""#);
        assert_eq!(
            templates_after(&[role, content.clone(), content, finish]),
            [(false, 0), (true, 1), (true, 1), (true, 1)],
            "learnt once, from the first content chunk, and kept past the finish chunk"
        );
    }

    #[test]
    fn a_role_in_every_chunk_is_learnt_from_the_second() {
        let role = chunk(r#"{"role":"assistant","content":" hi"}"#, "null");
        assert_eq!(
            templates_after(&[role.clone(), role.clone(), role]),
            [(false, 0), (true, 1), (true, 1)]
        );
        let content = chunk(r#"{"content":" hi"}"#, "null");
        assert_eq!(templates_after(&[content.clone(), content]), [(true, 1), (true, 1)]);
    }
}
