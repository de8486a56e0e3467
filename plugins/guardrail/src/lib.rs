//! `guardrail`: a hook plugin that blocks requests matching `deny` rules and redacts emails, card
//! numbers, API keys and custom patterns in requests, answers and streams.
//!
//! # Configuration (a `hooks:` entry of the gateway's YAML)
//! ```yaml
//! hooks:
//!   - plugin: guardrail          # libswitchyard_guardrail.so in plugins.dir
//!     config:
//!       deny: ["(?i)ignore (all|previous) instructions"]   # regexes; optional
//!       redact: [email, credit_card, api_key, "regex:ACME-[0-9]{6}"]   # optional
//!       regex_max_match: 256     # optional; see [`StreamRedactor`]
//! ```
//! - `deny` (list of regexes in the `regex` crate's syntax, default none): a request with a message text matching one is refused
//!   with 400 `{"error":{"message":"request blocked by guardrail rule <index> (<pattern>): …",
//!   "type":"invalid_request_error","code":"guardrail_blocked","param":null}}`. The rule is named by
//!   its index and pattern; the matched text is never echoed.
//! - `redact` (list, default none): `email`, `credit_card` (Luhn-checked), `api_key`, or
//!   `regex:<pattern>`. A match becomes `[REDACTED:<kind>]` (`[REDACTED:regex]` for custom patterns)
//!   in the request sent upstream, in the answer and in every stream chunk.
//! - `regex_max_match` (integer, default 256): how many trailing bytes a stream holds back so a
//!   `regex:` match split across chunks is still redacted.
//!
//! Unknown keys, unknown kinds, invalid or empty-matching regexes and duplicates make the hook's
//! creation (so the gateway's start) fail with a message naming the entry. No `config:` at all is a
//! guardrail that does nothing.
//!
//! # Behaviour
//! Choices made here:
//! - Only message text is read and changed: string `content` and the `text` of content parts, every
//!   role. Every other member keeps its original bytes and order; nothing is re-encoded when nothing
//!   matched.
//! - Answers: `choices[].message.content` only. Tool call arguments are left alone, in answers and in
//!   streams alike: they are JSON the client's code executes, and a marker there would change what a
//!   tool does rather than what a person reads.
//! - `deny` rules apply to requests only, to each message text (or text part) as the client sent it,
//!   before redaction; the first message that matches any rule decides, reporting the lowest such rule.
//! - A `regex:` match is replaced by `[REDACTED:regex]` (the pattern itself is never echoed). Where
//!   kinds overlap, the match that starts first wins.
//! - `api_key` covers OpenAI (`sk-`, `sk-proj-`…), Anthropic (`sk-ant-api03-`…), Google (`AIza`, 39
//!   chars), AWS (`AKIA`, 20 chars), GitHub (`ghp_`… and `github_pat_`), Slack (`xoxb-`/`xoxp-`), JWTs
//!   and the token after `Bearer `. A key must stand alone (not glued to a longer word) and contain a
//!   digit, so hyphenated words like `sk-learn-compatible-estimators` are left alone; bare hex strings
//!   are not redacted (commit hashes and checksums look the same).
//! - A body that is not the JSON expected is an error ([`Malformed`]), never passed unchecked: the
//!   hook fails and the entry's `on_error` policy decides.
//! - Streams: see [`StreamRedactor`].

mod config;
mod hook;
mod json;
mod kinds;
mod meta;
mod scan;
mod stream;
mod wire;

use std::borrow::Cow;

use regex::Regex;
use serde_json::value::RawValue;

pub use config::{ConfigError, DEFAULT_REGEX_MAX_MATCH};
pub use hook::{GuardrailHook, rejection};
pub use stream::StreamRedactor;

use config::RawConfig;
use json::{Edit, Text, is_string, splice};
use kinds::{Hold, Kind, Redactor};
use scan::{Hit, scan, write_redacted};

/// A request a `deny` rule matched: the gateway answers 400 `guardrail_blocked` naming the rule, never
/// the matched text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blocked by guardrail deny rule {rule_index} `{rule}`")]
pub struct Denied {
    pub rule_index: usize,
    pub rule: String,
}

/// A body the guardrail could not read: it fails the hook (the `on_error` policy decides), because an
/// unread body could not have been checked.
#[derive(Debug, thiserror::Error)]
#[error("guardrail: unreadable JSON body: {0}")]
pub struct Malformed(#[from] serde_json::Error);

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Malformed(#[from] Malformed),
}

impl From<serde_json::Error> for CheckError {
    fn from(e: serde_json::Error) -> Self {
        CheckError::Malformed(Malformed(e))
    }
}

pub struct Guardrail {
    deny: Vec<(Regex, String)>,
    redactors: Vec<Redactor>,
    /// One hold per configured kind (custom regexes share one).
    holds: Vec<Hold>,
}

impl Guardrail {
    /// Builds the guardrail from the hook's `config:` JSON; every error names the entry at fault.
    pub fn from_config(config: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_json::from_slice(config)?;
        let mut deny = Vec::with_capacity(raw.deny.len());
        for (index, rule) in raw.deny.into_iter().enumerate() {
            match Regex::new(&rule) {
                Ok(re) => deny.push((re, rule)),
                Err(e) => {
                    return Err(ConfigError::BadDeny {
                        index,
                        rule,
                        source: Box::new(e),
                    });
                }
            }
        }
        let mut redactors = Vec::with_capacity(raw.redact.len());
        let mut holds = Vec::new();
        for (index, entry) in raw.redact.iter().enumerate() {
            let Some((kind, pattern)) = Kind::parse(entry) else {
                return Err(ConfigError::UnknownKind {
                    index,
                    entry: entry.clone(),
                });
            };
            if raw.redact[..index].contains(entry) {
                return Err(ConfigError::Duplicate {
                    index,
                    entry: entry.clone(),
                });
            }
            let re = Regex::new(pattern).map_err(|e| ConfigError::BadRedactRegex {
                index,
                entry: entry.clone(),
                source: Box::new(e),
            })?;
            if re.is_match("") {
                return Err(ConfigError::EmptyMatch {
                    index,
                    entry: entry.clone(),
                });
            }
            if !redactors.iter().any(|r: &Redactor| r.kind == kind) {
                holds.push(kind.hold(raw.regex_max_match));
            }
            redactors.push(Redactor { kind, re });
        }
        Ok(Guardrail { deny, redactors, holds })
    }

    /// Whether any redaction kind is configured (a stream needs no redactor otherwise).
    pub fn redacts(&self) -> bool {
        !self.redactors.is_empty()
    }

    /// Checks a unified chat request: `Err(Denied)` when a deny rule matches any message's text;
    /// otherwise the request with message text redacted, or `None` when nothing changed.
    pub fn check_request(&self, body: &[u8]) -> Result<Option<Vec<u8>>, CheckError> {
        if self.deny.is_empty() && self.redactors.is_empty() {
            return Ok(None);
        }
        let request: wire::Request = serde_json::from_slice(body)?;
        let deny = |text: &str| self.check_deny(text).map_err(CheckError::Denied);
        let mut edits = Vec::new();
        let mut hits = Vec::new();
        for content in request.messages.iter().filter_map(|m| m.content) {
            self.edit_content(body, content, &mut hits, &deny, &mut edits)?;
        }
        if edits.is_empty() {
            return Ok(None);
        }
        Ok(Some(splice(body, &edits)?))
    }

    /// Redacts `choices[].message.content` of a `chat.completion`; `None` when nothing changed.
    pub fn redact_response(&self, body: &[u8]) -> Result<Option<Vec<u8>>, Malformed> {
        if self.redactors.is_empty() {
            return Ok(None);
        }
        let completion: wire::Completion = serde_json::from_slice(body)?;
        let no_deny = |_: &str| Ok::<(), Malformed>(());
        let mut edits = Vec::new();
        let mut hits = Vec::new();
        for content in completion.choices.iter().filter_map(|c| c.message.as_ref()?.content) {
            self.edit_content(body, content, &mut hits, &no_deny, &mut edits)?;
        }
        if edits.is_empty() {
            return Ok(None);
        }
        Ok(Some(splice(body, &edits)?))
    }

    /// `text` with every redaction applied (borrowed when nothing matched).
    pub fn redact_text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut hits = Vec::new();
        match self.redact_with(text, &mut hits) {
            Some(s) => Cow::Owned(s),
            None => Cow::Borrowed(text),
        }
    }

    fn redact_with(&self, text: &str, hits: &mut Vec<Hit>) -> Option<String> {
        scan(&self.redactors, text, 0, hits);
        if hits.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len() + 16);
        write_redacted(text, 0, text.len(), hits, &mut out);
        Some(out)
    }

    fn check_deny(&self, text: &str) -> Result<(), Denied> {
        match self.deny.iter().position(|(re, _)| re.is_match(text)) {
            Some(rule_index) => Err(Denied {
                rule_index,
                rule: self.deny[rule_index].1.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Checks (with `deny`, before redaction) and redacts a message `content` borrowed from `body`: a
    /// string, or an array of parts whose `text` members are strings. Changes go to `edits`.
    fn edit_content<E: From<serde_json::Error> + From<Malformed>>(
        &self,
        body: &[u8],
        content: &RawValue,
        hits: &mut Vec<Hit>,
        deny: &impl Fn(&str) -> Result<(), E>,
        edits: &mut Vec<Edit>,
    ) -> Result<(), E> {
        if is_string(content) {
            return self.edit_text(body, content, hits, deny, edits);
        }
        if content.get().starts_with('[') {
            let parts: Vec<wire::Part> = serde_json::from_str(content.get())?;
            for text in parts.iter().filter_map(|p| p.text).filter(|t| is_string(t)) {
                self.edit_text(body, text, hits, deny, edits)?;
            }
        }
        Ok(())
    }

    fn edit_text<E: From<serde_json::Error> + From<Malformed>>(
        &self,
        body: &[u8],
        raw: &RawValue,
        hits: &mut Vec<Hit>,
        deny: &impl Fn(&str) -> Result<(), E>,
        edits: &mut Vec<Edit>,
    ) -> Result<(), E> {
        let Text(text) = serde_json::from_str(raw.get())?;
        deny(&text)?;
        if let Some(new) = self.redact_with(&text, hits) {
            edits.push(Edit::replace(body, raw, new)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod hook_tests;
#[cfg(test)]
mod tests;
