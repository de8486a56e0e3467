//! The parts of the unified (OpenAI chat) request the mock looks at.
//!
//! Everything else in the body is ignored. Strings are borrowed from the request bytes
//! where JSON allows it (no escapes), so echoing a prompt does not copy it.

use serde::Deserialize;
use serde::de::IgnoredAny;
use std::borrow::Cow;
use switchyard_plugin_api::sdk::ProviderError;

/// OpenAI's own ceiling for `n`; it also keeps a client from asking for a billion choices.
pub const MAX_CHOICES: u64 = 128;

#[derive(Debug, Deserialize)]
pub struct ChatRequest<'a> {
    #[serde(borrow)]
    pub messages: Vec<Message<'a>>,
    #[serde(default)]
    pub n: Option<u64>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Only whether tools were offered matters, not what they are.
    #[serde(default)]
    pub tools: Option<Vec<IgnoredAny>>,
    #[serde(default, borrow)]
    pub tool_choice: Option<ToolChoice<'a>>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    /// Null for an assistant message that only carries tool calls.
    #[serde(default, borrow)]
    pub content: Option<Content<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<Part<'a>>),
}

/// One element of a content array; only `{"type": "text"}` parts have words.
#[derive(Debug, Deserialize)]
pub struct Part<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice<'a> {
    /// `"none"`, `"auto"` or `"required"`.
    Mode(#[serde(borrow)] Cow<'a, str>),
    /// `{"type": "function", "function": {"name": …}}`: the mock calls what the prompt names.
    Named(IgnoredAny),
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

impl<'a> ChatRequest<'a> {
    /// Parses and validates the request. Every failure is the client's: a 400, never a panic.
    pub fn parse(body: &'a [u8]) -> Result<ChatRequest<'a>, ProviderError> {
        let request: ChatRequest<'a> = serde_json::from_slice(body)
            .map_err(|e| ProviderError::invalid_request(format!("invalid chat request: {e}")))?;
        if request.messages.is_empty() {
            return Err(
                ProviderError::invalid_request("`messages` must contain at least one message").with_param("messages"),
            );
        }
        if let Some(n) = request.n
            && !(1..=MAX_CHOICES).contains(&n)
        {
            return Err(
                ProviderError::invalid_request(format!("`n` must be between 1 and {MAX_CHOICES}, got {n}"))
                    .with_param("n"),
            );
        }
        for (name, value) in [
            ("max_tokens", request.max_tokens),
            ("max_completion_tokens", request.max_completion_tokens),
        ] {
            if value == Some(0) {
                return Err(
                    ProviderError::invalid_request(format!("`{name}` must be at least 1, got 0")).with_param(name),
                );
            }
        }
        Ok(request)
    }

    /// Number of choices to answer with.
    pub fn choices(&self) -> usize {
        // `parse` bounded n by MAX_CHOICES, which fits any usize.
        self.n.map_or(1, |n| usize::try_from(n).unwrap_or(1))
    }

    /// The answer's word limit; with both fields set the stricter one wins.
    pub fn word_limit(&self) -> Option<u64> {
        match (self.max_tokens, self.max_completion_tokens) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the model may answer with a tool call.
    pub fn tools_enabled(&self) -> bool {
        let offered = self.tools.as_ref().is_some_and(|t| !t.is_empty());
        let refused = matches!(&self.tool_choice, Some(ToolChoice::Mode(m)) if m == "none");
        offered && !refused
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The text of the last `user` message (empty when there is none).
    pub fn last_user_text(&self) -> Cow<'a, str> {
        // Cloning a borrowed Cow copies a pointer; only an escaped string is copied.
        match self.messages.iter().rev().find(|m| m.role == "user") {
            Some(Message {
                content: Some(content), ..
            }) => content.text(),
            _ => Cow::Borrowed(""),
        }
    }

    /// Prompt tokens: whitespace-separated words in every message's text content.
    pub fn prompt_words(&self) -> u64 {
        self.messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(|c| match c {
                Content::Text(text) => count_words(text),
                Content::Parts(parts) => parts.iter().filter_map(Part::text).map(|t| count_words(t)).sum(),
            })
            .sum()
    }
}

impl<'a> Content<'a> {
    /// The message's text: the string, or its text parts concatenated as they are.
    fn text(&self) -> Cow<'a, str> {
        match self {
            Content::Text(text) => text.clone(),
            Content::Parts(parts) => {
                let mut texts = parts.iter().filter_map(Part::text);
                match (texts.next(), texts.next()) {
                    (None, _) => Cow::Borrowed(""),
                    (Some(only), None) => only.clone(),
                    (Some(first), Some(second)) => {
                        let mut all = String::from(first.as_ref());
                        all.push_str(second);
                        texts.for_each(|t| all.push_str(t));
                        Cow::Owned(all)
                    }
                }
            }
        }
    }
}

impl<'a> Part<'a> {
    fn text(&self) -> Option<&Cow<'a, str>> {
        if self.kind == "text" { self.text.as_ref() } else { None }
    }
}

/// The mock's token count: whitespace-separated words.
pub fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<ChatRequest<'_>, ProviderError> {
        ChatRequest::parse(body.as_bytes())
    }

    #[test]
    fn last_user_message_wins_and_parts_concatenate() {
        let r = parse(
            r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"first"},
            {"role":"assistant","content":null},{"role":"user","content":[
            {"type":"text","text":"Hello "},{"type":"image_url","image_url":{"url":"x"}},
            {"type":"text","text":"world"}]}]}"#,
        )
        .expect("valid");
        assert_eq!(r.last_user_text(), "Hello world");
        assert_eq!(r.prompt_words(), 2 + 1 + 2);
    }

    #[test]
    fn plain_strings_are_borrowed_not_copied() {
        let r = parse(r#"{"messages":[{"role":"user","content":"no escapes here"}]}"#).expect("valid");
        assert!(matches!(r.last_user_text(), Cow::Borrowed("no escapes here")));
    }

    #[test]
    fn limits_choices_and_tools() {
        let r = parse(r#"{"messages":[{"role":"user","content":"x"}],"n":3,"max_tokens":9,"max_completion_tokens":4,"tools":[{}],"stream_options":{"include_usage":true}}"#)
            .expect("valid");
        assert_eq!(
            (r.choices(), r.word_limit(), r.tools_enabled(), r.include_usage()),
            (3, Some(4), true, true)
        );
        let r =
            parse(r#"{"messages":[{"role":"user","content":"x"}],"tools":[{}],"tool_choice":"none"}"#).expect("valid");
        assert!(!r.tools_enabled());
        let r = parse(r#"{"messages":[{"role":"user","content":"x"}],"tools":[]}"#).expect("valid");
        assert!(!r.tools_enabled() && r.choices() == 1 && r.word_limit().is_none() && !r.include_usage());
    }

    #[test]
    fn bad_requests_are_400s() {
        for body in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"messages":"hi"}"#,
            r#"{"messages":[]}"#,
            r#"{"messages":[{"content":"no role"}]}"#,
            r#"{"messages":[{"role":"user","content":42}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"n":0}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"n":1000}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"n":"2"}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":-3}"#,
        ] {
            let err = parse(body).expect_err(body);
            assert_eq!(err.status, 400, "{body}");
            assert_eq!(err.error_type.as_deref(), Some("invalid_request_error"));
        }
    }
}
