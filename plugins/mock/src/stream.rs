//! The streaming answer: `chat.completion.chunk` objects in OpenAI's order.
//!
//! For each choice: a role chunk, then content (or tool-call argument) chunks of
//! `words_per_chunk` words, then an empty-delta chunk with `finish_reason`; then, when the
//! request asked for it with `stream_options.include_usage`, a usage chunk with empty
//! `choices`; then DONE. The pieces keep their whitespace, so the concatenated deltas equal
//! the non-streaming text.

use crate::Sink;
use crate::answer::{Answer, Reply, SYSTEM_FINGERPRINT, TOOL_CALL_ID, USAGE_PARTS, word_spans};
use crate::options::MockOptions;
use switchyard_plugin_api::sdk::ProviderError;
use switchyard_plugin_api::sdk::unified::{ChunkHead, ChunkWriter, Delta, ToolCall};

/// Streams `answer`. With `cut` (the `fault-mid-stream` model) the stream stops after its
/// first content chunks and the error is returned, so it becomes the stream's last item.
pub fn send(
    answer: &Answer<'_>,
    options: &MockOptions,
    include_usage: bool,
    mut cut: Option<ProviderError>,
    sink: &mut impl Sink,
) -> Result<(), ProviderError> {
    let mut chunks = ChunkWriter::new();
    chunks.start(&ChunkHead {
        id: &answer.id,
        created: answer.created,
        model: answer.model,
        system_fingerprint: Some(SYSTEM_FINGERPRINT),
        // OpenAI sends `"usage": null` on every chunk only when usage was asked for.
        usage_null: include_usage,
    });
    let body = match answer.reply {
        Reply::Text { text, .. } => text,
        Reply::ToolCall { arguments, .. } => arguments,
    };
    let opening = |delta: &mut Delta<'_>| {
        delta.role();
        match answer.reply {
            Reply::Text { .. } => delta.content(""),
            Reply::ToolCall { name, .. } => {
                delta.null_content();
                let call = ToolCall {
                    index: Some(0),
                    ..ToolCall::new(TOOL_CALL_ID, name, "")
                };
                delta.tool_calls(std::slice::from_ref(&call));
            }
        }
    };

    sink.delay(options.latency_ms);
    for index in 0..answer.choices {
        send_choice(&mut chunks, sink, index, None, opening);
    }
    for (n, piece) in pieces(body, options.words_per_chunk).into_iter().enumerate() {
        // Choices advance together: one delay per step, not per choice.
        sink.delay(options.chunk_delay_ms);
        let delta = |delta: &mut Delta<'_>| match answer.reply {
            Reply::Text { .. } => delta.content(piece),
            Reply::ToolCall { .. } => delta.tool_calls(&[ToolCall::arguments_delta(0, piece)]),
        };
        for index in 0..answer.choices {
            send_choice(&mut chunks, sink, index, None, delta);
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
        send_choice(&mut chunks, sink, index, Some(answer.reply.finish_reason()), |_| {});
    }
    if include_usage {
        let chunk = chunks.end_usage(&answer.usage, USAGE_PARTS);
        sink.chunk(chunk.json, chunk.model, &chunk.info);
    }
    sink.done();
    Ok(())
}

/// One chunk holding one choice.
fn send_choice(
    chunks: &mut ChunkWriter,
    sink: &mut impl Sink,
    index: usize,
    finish_reason: Option<&str>,
    delta: impl FnOnce(&mut Delta<'_>),
) {
    // `index` < MAX_CHOICES (checked by the request parser).
    chunks.choice(u32::try_from(index).unwrap_or(u32::MAX), finish_reason, None, delta);
    let chunk = chunks.end();
    sink.chunk(chunk.json, chunk.model, &chunk.info);
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
