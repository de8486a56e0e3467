//! A 2xx upstream embeddings body → the unified embeddings list (OpenAI's own shape, forwarded
//! as is once it has been checked).
//!
//! The check reads without building values: `data` must be a non-empty array of objects whose
//! `embedding` is either an array of numbers (all of one length, at least one number) or, for
//! a client that asked for `encoding_format: "base64"`, a base64 string of whole `f32`s. The
//! codec never sees the request at decode time, so it accepts either form; what it refuses is
//! anything a client could not read as vectors. Usage is `usage.prompt_tokens` and
//! `total_tokens` (zeros when the upstream sent none).

use crate::error;
use crate::views::{Present, UsageView, lossy_text, without_extra_fields};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use switchyard_plugin_api::sdk::{Context, Out, ProviderError, Usage};

pub(crate) fn decode(ctx: &Context<'_>, body: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
    let view = match ListView::parse(body) {
        Ok(view) => view,
        // Bytes that are not UTF-8 are repaired, then read again (once: the repair is text).
        Err(_) if let Some(text) = lossy_text(body) => return decode(ctx, &text, out),
        Err(reason) => {
            return Err(ProviderError::malformed(format!(
                "upstream response is not an embeddings list: {reason}"
            )));
        }
    };
    if view.data.is_none() {
        // Some servers answer 200 with an error object instead of an error status.
        if view.error.is_some() {
            return Err(error::embedded(body));
        }
        return Err(ProviderError::malformed(
            "upstream response has no `data` array of embeddings",
        ));
    }
    let usage = view
        .usage
        .as_ref()
        .map_or_else(Usage::default, UsageView::to_embeddings_usage);
    let model = view.model.as_deref().unwrap_or(ctx.model);
    if view.extra_fields.0 {
        let json = without_extra_fields(body).map_err(ProviderError::malformed)?;
        out.response(&json, model, Some(&usage));
    } else {
        out.response(body, model, Some(&usage));
    }
    Ok(())
}

/// An embeddings `list`: the members the host needs, and `data` checked in place.
#[derive(Deserialize)]
struct ListView<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    usage: Option<UsageView>,
    /// Non-null when the body is an error object in a success envelope.
    #[serde(default)]
    error: Option<IgnoredAny>,
    /// Present (even as null) when the upstream sent its own `extra_fields`.
    #[serde(default)]
    extra_fields: Present,
}

impl<'a> ListView<'a> {
    /// Parses `json` if it is a JSON object of UTF-8 text (the bytes are forwarded, so text
    /// that is not UTF-8 is refused; the caller repairs and reads again).
    fn parse(json: &'a [u8]) -> Result<ListView<'a>, String> {
        match json.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => switchyard_plugin_api::json::from_text_bytes(json).map_err(|e| e.to_string()),
            Some(_) => Err("not a JSON object".into()),
            None => Err("empty body".into()),
        }
    }
}

/// `data`, checked: at least one entry, float vectors all of one length.
struct Data;

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DataVisitor;
        impl<'de> Visitor<'de> for DataVisitor {
            type Value = Data;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of embeddings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data, A::Error> {
                let mut entries = 0usize;
                let mut length: Option<usize> = None;
                while let Some(entry) = seq.next_element::<Entry>()? {
                    if let Vector::Floats(n) = entry.embedding {
                        match length {
                            Some(first) if first != n => {
                                return Err(de::Error::custom(format_args!(
                                    "embeddings of different lengths ({first} and {n})"
                                )));
                            }
                            _ => length = Some(n),
                        }
                    }
                    entries += 1;
                }
                if entries == 0 {
                    return Err(de::Error::custom("`data` holds no embeddings"));
                }
                Ok(Data)
            }
        }
        deserializer.deserialize_seq(DataVisitor)
    }
}

/// One entry of `data`; `index` and `object` are not needed to forward it.
#[derive(Deserialize)]
struct Entry {
    embedding: Vector,
}

/// An `embedding`: how many numbers, or a checked base64 string.
enum Vector {
    Floats(usize),
    Base64,
}

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VectorVisitor;
        impl<'de> Visitor<'de> for VectorVisitor {
            type Value = Vector;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of numbers or a base64 string")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vector, A::Error> {
                // Counted, not kept: the bytes are forwarded as they are.
                let mut n = 0usize;
                while seq.next_element::<f64>()?.is_some() {
                    n += 1;
                }
                if n == 0 {
                    return Err(de::Error::custom("an empty embedding"));
                }
                Ok(Vector::Floats(n))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vector, E> {
                if is_base64_of_f32s(v) {
                    Ok(Vector::Base64)
                } else {
                    Err(E::custom("an embedding string that is not base64 of whole f32 values"))
                }
            }
        }
        deserializer.deserialize_any(VectorVisitor)
    }
}

/// Standard, padded base64 of a whole, non-zero number of 4-byte values.
fn is_base64_of_f32s(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return false;
    }
    let body = &bytes[..bytes.len() - padding];
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    // Every 4 characters are 3 bytes, less one per padding character (len ≥ 4 > padding).
    let decoded = bytes.len() / 4 * 3 - padding;
    body.iter().all(alphabet) && decoded.is_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_must_hold_whole_f32s() {
        // [1.0] and [1.0, -2.0] as little-endian f32s.
        assert!(is_base64_of_f32s("AACAPw=="));
        assert!(is_base64_of_f32s("AACAPwAAAMA="));
        for bad in ["", "AACA", "AACAPw=", "AACAPw==A", "AAC*Pw==", "A=======", "AACAPwAA"] {
            assert!(!is_base64_of_f32s(bad), "{bad}");
        }
    }

    #[test]
    fn data_is_checked_in_place() {
        let data = |json: &str| {
            serde_json::from_str::<Data>(json)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(data(r#"[{"object":"embedding","index":0,"embedding":[0.1,-2,3e-5]}]"#).is_ok());
        assert!(data(r#"[{"embedding":"AACAPw=="},{"embedding":"AACAPw=="}]"#).is_ok());
        for (bad, why) in [
            ("[]", "no embeddings"),
            (r#"[{"embedding":[]}]"#, "empty embedding"),
            (r#"[{"embedding":[1,2]},{"embedding":[1]}]"#, "different lengths"),
            (r#"[{"embedding":[1,"2"]}]"#, "invalid type"),
            (r#"[{"embedding":[1,null]}]"#, "invalid type"),
            (r#"[{"embedding":"not base64!"}]"#, "base64"),
            (r#"[{"index":0}]"#, "missing field `embedding`"),
            (r#"[null]"#, "invalid type"),
            (r#"{"embedding":[1]}"#, "invalid type"),
        ] {
            let e = data(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
