//! Reading the few members the guardrail looks at, and editing a body by splicing: only the edited
//! strings are re-encoded; every other byte (member order, number spelling, whitespace) stays as it came.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};
use serde_json::value::RawValue;

use crate::Malformed;

/// A JSON string, borrowed when it holds no escapes.
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Whether a raw value is a JSON string (the only shape the guardrail edits).
pub(crate) fn is_string(raw: &RawValue) -> bool {
    raw.get().starts_with('"')
}

/// One change to a body: bytes `start..end` of the original become `prefix`, `text` as a JSON string,
/// then `suffix` (an insertion has `start == end`).
pub(crate) struct Edit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) prefix: &'static str,
    pub(crate) text: String,
    pub(crate) suffix: &'static str,
}

impl Edit {
    /// Replaces the string `raw` (borrowed from `body`) with `text`.
    pub(crate) fn replace(body: &[u8], raw: &RawValue, text: String) -> Result<Edit, Malformed> {
        let (start, end) = span(body, raw)?;
        Ok(Edit {
            start,
            end,
            prefix: "",
            text,
            suffix: "",
        })
    }

    /// Adds a `content` member holding `text` to the object `raw` (borrowed from `body`).
    pub(crate) fn insert_content(body: &[u8], raw: &RawValue, text: String) -> Result<Edit, Malformed> {
        let (start, _) = span(body, raw)?;
        let empty = raw.get()[1..].trim_start().starts_with('}');
        let at = start + 1;
        Ok(Edit {
            start: at,
            end: at,
            prefix: "\"content\":",
            text,
            suffix: if empty { "" } else { "," },
        })
    }
}

/// Where `raw` sits in `body`. Every raw value the guardrail reads is borrowed from the body it parsed,
/// so this is pointer arithmetic; anything else is refused rather than trusted.
fn span(body: &[u8], raw: &RawValue) -> Result<(usize, usize), Malformed> {
    let len = raw.get().len();
    (raw.get().as_ptr() as usize)
        .checked_sub(body.as_ptr() as usize)
        .filter(|start| start + len <= body.len())
        .map(|start| (start, start + len))
        .ok_or_else(|| Malformed(serde::de::Error::custom("value not borrowed from the body")))
}

/// `body` with `edits` (in body order, not overlapping) applied.
pub(crate) fn splice(body: &[u8], edits: &[Edit]) -> Result<Vec<u8>, Malformed> {
    let extra: usize = edits.iter().map(|e| e.text.len() + 16).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut pos = 0;
    for e in edits {
        out.extend_from_slice(&body[pos..e.start]);
        out.extend_from_slice(e.prefix.as_bytes());
        serde_json::to_writer(&mut out, &e.text)?;
        out.extend_from_slice(e.suffix.as_bytes());
        pos = e.end;
    }
    out.extend_from_slice(&body[pos..]);
    Ok(out)
}
