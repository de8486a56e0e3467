//! What the mock answers, and the non-streaming `chat.completion` object.

use crate::request::count_words;
use serde::Serialize;
use serde::ser::Serializer;
use switchyard_plugin_api::sdk::unified::{Choice, Completion, Message, ToolCall, UsageJson, UsageParts};
use switchyard_plugin_api::sdk::{ProviderError, Usage};

/// The id of the (single) tool call in a tool-call answer.
pub const TOOL_CALL_ID: &str = "call_mock_0";
/// Mirrors OpenAI's field so clients that log it see something stable.
pub const SYSTEM_FINGERPRINT: &str = "fp_mock";
/// The usage details written, as OpenAI writes them (the mock has no prompt cache and no
/// reasoning, so those counts are 0).
pub const USAGE_PARTS: UsageParts = UsageParts::OPENAI;

/// One choice's content; every choice of a request gets the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    Text { text: &'a str, finish_reason: &'static str },
    ToolCall { name: &'a str, arguments: &'a str },
}

impl<'a> Reply<'a> {
    /// `source` is the text to answer with, `user_text` the last user message (which may
    /// ask for a tool call), `limit` the word limit from `max_tokens`.
    pub fn new(source: &'a str, user_text: &'a str, tools: bool, limit: Option<u64>) -> Reply<'a> {
        if tools && let Some(call) = tool_call(user_text) {
            return call;
        }
        match limit.and_then(|limit| truncated(source, limit)) {
            Some(text) => Reply::Text {
                text,
                finish_reason: "length",
            },
            None => Reply::Text {
                text: source,
                finish_reason: "stop",
            },
        }
    }

    pub fn finish_reason(&self) -> &'static str {
        match self {
            Reply::Text { finish_reason, .. } => finish_reason,
            Reply::ToolCall { .. } => "tool_calls",
        }
    }

    /// Completion tokens for one choice.
    pub fn words(&self) -> u64 {
        match self {
            Reply::Text { text, .. } => count_words(text),
            Reply::ToolCall { name, arguments } => count_words(name) + count_words(arguments),
        }
    }
}

/// `call NAME ARGS…` → a call of NAME with ARGS (`{}` when absent) as its arguments.
fn tool_call(user_text: &str) -> Option<Reply<'_>> {
    let rest = user_text.trim_start().strip_prefix("call ")?.trim_start();
    let (name, arguments) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if name.is_empty() {
        return None;
    }
    let arguments = arguments.trim();
    Some(Reply::ToolCall {
        name,
        arguments: if arguments.is_empty() { "{}" } else { arguments },
    })
}

/// `text` cut after its `limit`-th word, or `None` when it has no more words than that.
fn truncated(text: &str, limit: u64) -> Option<&str> {
    let mut words = word_spans(text);
    let skip = usize::try_from(limit.checked_sub(1)?).ok()?;
    let (_, end) = words.nth(skip)?;
    words.next().map(|_| &text[..end])
}

/// Byte ranges of the whitespace-separated words of `text` (the `split_whitespace` words).
pub fn word_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        let start = from + text[from..].find(|c: char| !c.is_whitespace())?;
        let end = text[start..]
            .find(char::is_whitespace)
            .map_or(text.len(), |i| start + i);
        from = end;
        Some((start, end))
    })
}

/// Everything both the response and the stream chunks are built from.
#[derive(Debug)]
pub struct Answer<'a> {
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    pub model: &'a str,
    pub reply: Reply<'a>,
    pub choices: usize,
    pub usage: Usage,
}

impl Answer<'_> {
    /// The `chat.completion` object.
    pub fn completion_json(&self) -> Result<Vec<u8>, ProviderError> {
        Completion {
            id: &self.id,
            created: self.created,
            model: self.model,
            system_fingerprint: Some(SYSTEM_FINGERPRINT),
            choices: Choices {
                count: self.choices,
                reply: self.reply,
            },
            usage: Some(UsageJson::new(self.usage, USAGE_PARTS)),
        }
        .to_json()
    }
}

/// `count` identical choices, written without building a Vec of them.
struct Choices<'a> {
    count: usize,
    reply: Reply<'a>,
}

impl Serialize for Choices<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let reply = self.reply;
        let message = || match reply {
            Reply::Text { text, .. } => Message::text(text),
            Reply::ToolCall { name, arguments } => Message {
                content: None,
                tool_calls: vec![ToolCall::new(TOOL_CALL_ID, name, arguments)],
                ..Message::default()
            },
        };
        // `count` ≤ MAX_CHOICES (checked by the request parser), which fits any u32.
        serializer.collect_seq((0..self.count).map(|index| {
            Choice::new(
                u32::try_from(index).unwrap_or(u32::MAX),
                message(),
                reply.finish_reason(),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_spans_match_split_whitespace() {
        for text in [
            "",
            "   ",
            "one",
            "  two words ",
            "tabs\tand\nnewlines",
            "ünï cödé  wörds",
        ] {
            let spans: Vec<&str> = word_spans(text).map(|(s, e)| &text[s..e]).collect();
            assert_eq!(spans, text.split_whitespace().collect::<Vec<_>>(), "{text:?}");
        }
    }

    #[test]
    fn truncation_keeps_the_first_words_and_says_length() {
        let r = |limit| Reply::new("one two  three ", "", false, limit);
        assert_eq!(
            r(None),
            Reply::Text {
                text: "one two  three ",
                finish_reason: "stop"
            }
        );
        assert_eq!(
            r(Some(2)),
            Reply::Text {
                text: "one two",
                finish_reason: "length"
            }
        );
        assert_eq!(
            r(Some(3)),
            Reply::Text {
                text: "one two  three ",
                finish_reason: "stop"
            }
        );
        assert_eq!(r(Some(50)).words(), 3);
    }

    #[test]
    fn call_prompts_become_tool_calls_only_when_tools_are_offered() {
        let user = r#"call get_weather {"city": "Paris"}"#;
        let call = Reply::new(user, user, true, Some(1));
        assert_eq!(
            call,
            Reply::ToolCall {
                name: "get_weather",
                arguments: r#"{"city": "Paris"}"#
            }
        );
        assert_eq!((call.finish_reason(), call.words()), ("tool_calls", 3));
        assert_eq!(
            Reply::new("x", "call now", true, None),
            Reply::ToolCall {
                name: "now",
                arguments: "{}"
            }
        );
        assert!(matches!(Reply::new(user, user, false, None), Reply::Text { .. }));
        assert!(matches!(Reply::new("x", "call ", true, None), Reply::Text { .. }));
        assert!(matches!(Reply::new("x", "recall this", true, None), Reply::Text { .. }));
    }
}
