//! The hook's `config:` JSON and its errors.

use serde::Deserialize;

/// The default for `regex_max_match`: how many trailing bytes a stream holds back for `regex:` kinds.
pub const DEFAULT_REGEX_MAX_MATCH: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) deny: Vec<String>,
    #[serde(default)]
    pub(crate) redact: Vec<String>,
    /// Longest match a `regex:` kind is guaranteed to be redacted at when a stream splits it.
    #[serde(default = "default_regex_max_match")]
    pub(crate) regex_max_match: usize,
}

fn default_regex_max_match() -> usize {
    DEFAULT_REGEX_MAX_MATCH
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("guardrail config: {0}")]
    Json(#[from] serde_json::Error),
    #[error("guardrail config: deny[{index}] `{rule}` is not a valid regex: {source}")]
    BadDeny {
        index: usize,
        rule: String,
        source: Box<regex::Error>,
    },
    #[error(
        "guardrail config: redact[{index}] `{entry}` is not a known kind (email, credit_card, api_key, regex:<pattern>)"
    )]
    UnknownKind { index: usize, entry: String },
    #[error("guardrail config: redact[{index}] `{entry}` is not a valid regex: {source}")]
    BadRedactRegex {
        index: usize,
        entry: String,
        source: Box<regex::Error>,
    },
    #[error("guardrail config: redact[{index}] `{entry}` matches empty text")]
    EmptyMatch { index: usize, entry: String },
    #[error("guardrail config: redact[{index}] `{entry}` is listed twice")]
    Duplicate { index: usize, entry: String },
}
