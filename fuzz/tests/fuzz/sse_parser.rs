//! Target `sse`: the SDK's push-based event-stream parser, fed an upstream's bytes split
//! anywhere, against a plain whole-input reading of the same rules.

use crate::harness::{Corpus, FuzzCase, Outcome, Target, fail};
use crate::mutate;
use proptest::prelude::*;
use std::sync::Arc;
use switchyard_plugin_api::sdk::sse::{SseEvent, SseParser};

/// A stream and how it arrives.
#[derive(Debug, Clone)]
pub struct Case {
    input: Vec<u8>,
    fragments: Vec<usize>,
}

impl FuzzCase for Case {
    fn corpus_bytes(&self) -> Vec<u8> {
        self.input.clone()
    }

    fn with_bytes(&self, input: Vec<u8>) -> Self {
        Case {
            input,
            fragments: self.fragments.clone(),
        }
    }

    fn describe(&self) -> String {
        format!(", fed in fragments of {:?} bytes then the rest", self.fragments)
    }
}

/// A limit small enough for generated events to cross it.
const SMALL_LIMIT: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Message { event_type: Vec<u8>, data: Vec<u8> },
    Oversized,
}

#[test]
fn sse() {
    let corpus = Corpus::load("sse");
    let seeds = Arc::new(corpus.seeds());
    let strategy = (mutate::bytes(seeds, mutate::dictionary(&[], true)), mutate::fragments())
        .prop_map(|(input, fragments)| Case { input, fragments });
    let from_file = |_: &str, bytes: &[u8]| {
        [vec![], vec![1; bytes.len()], vec![7; bytes.len() / 7 + 1]]
            .into_iter()
            .map(|fragments| Case {
                input: bytes.to_vec(),
                fragments,
            })
            .collect()
    };
    Target::new("sse", 1.0, from_file, strategy, check).run(&corpus);
}

fn check(case: &Case) -> Outcome {
    let expected = reference(&case.input);
    let whole = parse(SseParser::new(), &[&case.input]);
    if whole != expected {
        return fail(
            "sse.rules",
            format!("parsed whole: {whole:?}\nthe rules give: {expected:?}"),
        );
    }
    let pieces = mutate::split(&case.input, &case.fragments);
    let split = parse(SseParser::new(), &pieces);
    if split != expected {
        return fail("sse.split", format!("split: {split:?}\nwhole: {expected:?}"));
    }
    // With a small limit: nothing over it gets through, and what is dropped does not depend
    // on how the stream was split.
    let small_whole = parse(SseParser::with_limit(SMALL_LIMIT), &[&case.input]);
    let small_split = parse(SseParser::with_limit(SMALL_LIMIT), &pieces);
    for seen in small_whole.iter().chain(&small_split) {
        if let Seen::Message { event_type, data } = seen
            && (data.len() > SMALL_LIMIT || event_type.len() > SMALL_LIMIT)
        {
            return fail(
                "sse.limit",
                format!(
                    "an event of {} data bytes (type {} bytes) passed a {SMALL_LIMIT}-byte limit",
                    data.len(),
                    event_type.len()
                ),
            );
        }
    }
    if small_split != small_whole {
        return fail(
            "sse.limit_split",
            format!("with a {SMALL_LIMIT}-byte limit, split: {small_split:?}\nwhole: {small_whole:?}"),
        );
    }
    Ok(())
}

fn parse(mut parser: SseParser, fragments: &[&[u8]]) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut on_event = |event: SseEvent<'_>| {
        seen.push(match event {
            SseEvent::Message { event_type, data } => Seen::Message {
                event_type: event_type.to_vec(),
                data: data.to_vec(),
            },
            SseEvent::Oversized => Seen::Oversized,
        });
    };
    for fragment in fragments {
        parser.feed(fragment, &mut on_event);
    }
    parser.finish(&mut on_event);
    seen
}

/// The event-stream rules the parser documents, read off the whole input at once: lines end
/// with CRLF, LF or CR; a BOM at the start is skipped; a blank line dispatches; `:` starts a
/// comment; `data` lines join with LF; `event` names the event; one space after the colon
/// is dropped; an event without data is none; the end of input ends the last line and event.
fn reference(input: &[u8]) -> Vec<Seen> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' if input.get(i + 1) == Some(&b'\n') => {
                lines.push(&input[start..i]);
                i += 2;
                start = i;
            }
            b'\r' | b'\n' => {
                lines.push(&input[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < input.len() {
        lines.push(&input[start..]);
    }

    let mut events = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let mut event_type: Vec<u8> = Vec::new();
    let mut dispatch = |data: &mut Vec<u8>, event_type: &mut Vec<u8>| {
        if !data.is_empty() {
            data.pop();
            events.push(Seen::Message {
                event_type: if event_type.is_empty() {
                    b"message".to_vec()
                } else {
                    event_type.clone()
                },
                data: data.clone(),
            });
        }
        data.clear();
        event_type.clear();
    };
    for line in lines {
        if line.is_empty() {
            dispatch(&mut data, &mut event_type);
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                data.extend_from_slice(value);
                data.push(b'\n');
            }
            b"event" => event_type = value.to_vec(),
            _ => {}
        }
    }
    dispatch(&mut data, &mut event_type);
    events
}
