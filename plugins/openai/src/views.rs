//! Lightweight, borrowed views of OpenAI responses and stream chunks.
//!
//! The codec forwards the upstream's bytes untouched, so it only reads the handful of fields
//! the host needs (model, usage, choice facts); everything else is skipped with `IgnoredAny`
//! without building values. Every field tolerates `null`, which OpenAI-compatible servers
//! send freely.

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use switchyard_plugin_api::sdk::{TokenCount, Usage};

/// A chat completion or a stream chunk: both have the same top-level fields of interest.
#[derive(Deserialize)]
pub(crate) struct CompletionView<'a> {
    /// Borrowed unless the name contains escapes.
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub choices: Option<ChoicesSummary>,
    #[serde(default)]
    pub usage: Option<UsageView>,
    /// Non-null when the body is an error object in a success envelope.
    #[serde(default)]
    pub error: Option<IgnoredAny>,
    /// Present (even as null) when the upstream sent its own `extra_fields`.
    #[serde(default)]
    pub extra_fields: Present,
}

impl<'a> CompletionView<'a> {
    /// Parses `json` if it is a JSON object of UTF-8 text. (A derived struct would also accept
    /// an array positionally, which no OpenAI body ever is.) The codec forwards these bytes,
    /// so bytes that are not UTF-8 are refused even where the view skips them; callers repair
    /// them with [`lossy_text`] and read again.
    pub(crate) fn parse(json: &'a [u8]) -> Result<CompletionView<'a>, String> {
        match json.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => switchyard_plugin_api::json::from_text_bytes(json).map_err(|e| e.to_string()),
            Some(_) => Err("not a JSON object".into()),
            None => Err("empty body".into()),
        }
    }
}

/// `bytes` with every sequence that is not UTF-8 replaced by U+FFFD, when there is one: an
/// upstream's stray Latin-1 byte costs the client one character, not the whole answer, and
/// what reaches the client is always JSON text.
pub(crate) fn lossy_text(bytes: &[u8]) -> Option<Vec<u8>> {
    std::str::from_utf8(bytes)
        .is_err()
        .then(|| String::from_utf8_lossy(bytes).into_owned().into_bytes())
}

/// What the host needs from `choices` without materialising them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ChoicesSummary {
    pub len: usize,
    /// Some choice has a non-null `finish_reason`.
    pub finish_reason: bool,
}

#[derive(Deserialize)]
struct ChoiceView {
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

impl<'de> Deserialize<'de> for ChoicesSummary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChoicesVisitor;
        impl<'de> Visitor<'de> for ChoicesVisitor {
            type Value = ChoicesSummary;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ChoicesSummary, A::Error> {
                // Counting in place avoids allocating a Vec per chunk.
                let mut summary = ChoicesSummary::default();
                while let Some(choice) = seq.next_element::<Option<ChoiceView>>()? {
                    summary.len += 1;
                    summary.finish_reason |= choice.is_some_and(|c| c.finish_reason.is_some());
                }
                Ok(summary)
            }
        }
        deserializer.deserialize_seq(ChoicesVisitor)
    }
}

/// OpenAI's `CompletionUsage`.
#[derive(Deserialize)]
pub(crate) struct UsageView {
    #[serde(default)]
    prompt_tokens: Option<TokenCount>,
    #[serde(default)]
    completion_tokens: Option<TokenCount>,
    #[serde(default)]
    total_tokens: Option<TokenCount>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<TokenCount>,
    #[serde(default)]
    cache_write_tokens: Option<TokenCount>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<TokenCount>,
}

impl UsageView {
    /// An embeddings answer's usage: prompt tokens only (an embedding completes nothing, so a
    /// lax server's `completion_tokens` is not counted as output).
    pub(crate) fn to_embeddings_usage(&self) -> Usage {
        let prompt_tokens = self.prompt_tokens.map_or(0, |c| c.0);
        Usage {
            prompt_tokens,
            total_tokens: self.total_tokens.map_or(prompt_tokens, |c| c.0),
            ..Usage::default()
        }
    }

    pub(crate) fn to_usage(&self) -> Usage {
        let n = |c: Option<TokenCount>| c.map_or(0, |c| c.0);
        let prompt_tokens = n(self.prompt_tokens);
        let completion_tokens = n(self.completion_tokens);
        let prompt = self.prompt_tokens_details.as_ref();
        Usage {
            prompt_tokens,
            completion_tokens,
            // Some compatible servers omit the total; it is the sum by definition.
            total_tokens: self
                .total_tokens
                .map_or(prompt_tokens.saturating_add(completion_tokens), |c| c.0),
            cached_tokens: n(prompt.and_then(|p| p.cached_tokens)),
            cache_write_tokens: n(prompt.and_then(|p| p.cache_write_tokens)),
            cache_write_1h_tokens: 0,
            reasoning_tokens: n(self.completion_tokens_details.as_ref().and_then(|c| c.reasoning_tokens)),
        }
    }
}

/// Whether a key was present at all, whatever its value (null included).
#[derive(Default)]
pub(crate) struct Present(pub bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer)?;
        Ok(Present(true))
    }
}

/// Removes a top-level `extra_fields` key: the host appends its own, and a JSON object with
/// the key twice is ambiguous. Rare, so a full parse and re-serialisation is fine here.
pub(crate) fn without_extra_fields(json: &[u8]) -> Result<Vec<u8>, String> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| e.to_string())?;
    object.remove("extra_fields");
    serde_json::to_vec(&object).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_what_it_needs_and_tolerates_nulls() {
        let body = br#"{"id":"x","model":null,"choices":[null,{"finish_reason":null},{"index":1,"finish_reason":"stop"}],
            "usage":{"prompt_tokens":null,"completion_tokens":5.0,"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":null}},
            "error":null,"system_fingerprint":null}"#;
        let v = CompletionView::parse(body).expect("parsed");
        assert!(v.model.is_none());
        let choices = v.choices.expect("choices");
        assert_eq!(choices.len, 3);
        assert!(choices.finish_reason);
        let usage = v.usage.expect("usage").to_usage();
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
            (0, 5, 5)
        );
        assert!(v.error.is_none());
        assert!(!v.extra_fields.0);
    }

    #[test]
    fn arrays_and_scalars_are_not_completions() {
        assert!(CompletionView::parse(br#"["gpt-4o", [], null]"#).is_err());
        assert!(CompletionView::parse(b"  ").is_err());
        assert!(CompletionView::parse(br#"{"choices":{}}"#).is_err());
    }

    #[test]
    fn extra_fields_is_removed_even_when_null() {
        let v = CompletionView::parse(br#"{"choices":[],"extra_fields":null}"#).expect("parsed");
        assert!(v.extra_fields.0);
        let stripped = without_extra_fields(br#"{"a":1,"extra_fields":{"x":2},"b":[3]}"#).expect("stripped");
        assert_eq!(stripped, br#"{"a":1,"b":[3]}"#);
    }
}
