//! The streaming answer: `chat.completion.chunk` objects in OpenAI's order.
//!
//! For each choice: a role chunk, then content (or tool-call argument) chunks of
//! `words_per_chunk` words, then an empty-delta chunk with `finish_reason`; then, when the
//! request asked for it with `stream_options.include_usage`, a usage chunk with empty
//! `choices`; then DONE. The pieces keep their whitespace, so the concatenated deltas equal
//! the non-streaming text.

use crate::Sink;
use crate::answer::{Answer, Reply, SYSTEM_FINGERPRINT, TOOL_CALL_ID, UsageJson, to_json, word_spans};
use crate::options::MockOptions;
use serde::Serialize;
use switchyard_plugin_api::sdk::{ChunkInfo, ProviderError};

/// Streams `answer`. With `cut` (the `fault-mid-stream` model) the stream stops after its
/// first content chunks and the error is returned, so it becomes the stream's last item.
pub fn send(
    answer: &Answer<'_>,
    options: &MockOptions,
    include_usage: bool,
    mut cut: Option<ProviderError>,
    sink: &mut impl Sink,
) -> Result<(), ProviderError> {
    let mut chunks = ChunkWriter {
        answer,
        include_usage,
        sink,
    };
    let (opening, body) = match answer.reply {
        Reply::Text { text, .. } => (
            Delta {
                role: Some("assistant"),
                content: Some(Some("")),
                tool_calls: None,
            },
            text,
        ),
        Reply::ToolCall { name, arguments } => (
            Delta {
                role: Some("assistant"),
                content: Some(None),
                tool_calls: Some([ToolCallDelta {
                    index: 0,
                    id: Some(TOOL_CALL_ID),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(name),
                        arguments: "",
                    },
                }]),
            },
            arguments,
        ),
    };

    chunks.sink.delay(options.latency_ms);
    for index in 0..answer.choices {
        chunks.choice(index, &opening, None)?;
    }
    for (n, piece) in pieces(body, options.words_per_chunk).into_iter().enumerate() {
        // Choices advance together: one delay per step, not per choice.
        chunks.sink.delay(options.chunk_delay_ms);
        let delta = match answer.reply {
            Reply::Text { .. } => Delta {
                role: None,
                content: Some(Some(piece)),
                tool_calls: None,
            },
            Reply::ToolCall { .. } => Delta {
                role: None,
                content: None,
                tool_calls: Some([ToolCallDelta {
                    index: 0,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: piece,
                    },
                }]),
            },
        };
        for index in 0..answer.choices {
            chunks.choice(index, &delta, None)?;
        }
        if n == 0
            && let Some(error) = cut.take()
        {
            return Err(error);
        }
    }
    // An empty answer has no content chunk to cut after; fail right after the opening.
    if let Some(error) = cut {
        return Err(error);
    }
    for index in 0..answer.choices {
        chunks.choice(index, &Delta::default(), Some(answer.reply.finish_reason()))?;
    }
    if include_usage {
        chunks.usage()?;
    }
    chunks.sink.done();
    Ok(())
}

/// Splits `text` into pieces of `per` words, each with the whitespace before it; the last
/// piece also takes any trailing whitespace. Concatenated, the pieces are `text`.
pub fn pieces(text: &str, per: usize) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let per = per.max(1);
    let mut cuts: Vec<usize> = word_spans(text)
        .map(|(_, end)| end)
        .skip(per - 1)
        .step_by(per)
        .collect();
    match cuts.last_mut() {
        // Only whitespace after the last full group: it belongs to that group's piece.
        Some(last) if text[*last..].trim().is_empty() => *last = text.len(),
        // A partial group (or a text without words) makes one more piece.
        _ => cuts.push(text.len()),
    }
    let mut start = 0;
    cuts.into_iter()
        .map(|end| {
            let piece = &text[start..end];
            start = end;
            piece
        })
        .collect()
}

struct ChunkWriter<'w, 'a, S> {
    answer: &'w Answer<'a>,
    include_usage: bool,
    sink: &'w mut S,
}

impl<S: Sink> ChunkWriter<'_, '_, S> {
    fn choice(
        &mut self,
        index: usize,
        delta: &Delta<'_>,
        finish_reason: Option<&'static str>,
    ) -> Result<(), ProviderError> {
        let choice = ChunkChoice {
            index,
            delta,
            logprobs: (),
            finish_reason,
        };
        let info = ChunkInfo {
            finish_reason: finish_reason.is_some(),
            ..ChunkInfo::default()
        };
        // OpenAI sends `"usage": null` on every chunk only when usage was asked for.
        let usage = self.include_usage.then_some(None);
        self.write(std::slice::from_ref(&choice), usage, &info)
    }

    fn usage(&mut self) -> Result<(), ProviderError> {
        let usage = self.answer.usage;
        let info = ChunkInfo {
            finish_reason: false,
            empty_choices: true,
            usage: Some(usage),
        };
        self.write(&[], Some(Some(UsageJson::from(&usage))), &info)
    }

    fn write(
        &mut self,
        choices: &[ChunkChoice<'_>],
        usage: Option<Option<UsageJson>>,
        info: &ChunkInfo,
    ) -> Result<(), ProviderError> {
        let chunk = Chunk {
            id: &self.answer.id,
            object: "chat.completion.chunk",
            created: self.answer.created,
            model: self.answer.model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage,
        };
        self.sink.chunk(&to_json(&chunk)?, self.answer.model, info);
        Ok(())
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent, `null`, or the usage object.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageJson>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: usize,
    delta: &'a Delta<'a>,
    logprobs: (),
    finish_reason: Option<&'static str>,
}

/// A choice's delta. `Option<Option<_>>` fields are absent, `null`, or a value.
#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'static str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_concatenate_back_to_the_text() {
        for text in ["", " ", "one", "one two three", "  lead and trail  ", "a\nb\tc d e f g"] {
            for per in 1..5 {
                assert_eq!(pieces(text, per).concat(), text, "{text:?} per {per}");
            }
        }
    }

    #[test]
    fn pieces_hold_the_asked_number_of_words() {
        assert_eq!(pieces("one two three", 1), ["one", " two", " three"]);
        assert_eq!(pieces("one two three ", 2), ["one two", " three "]);
        assert_eq!(pieces("one two three four ", 2), ["one two", " three four "]);
        assert_eq!(pieces("  ", 3), ["  "]);
        assert!(pieces("", 1).is_empty());
    }
}
