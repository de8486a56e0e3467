//! The unified embeddings schema, OpenAI's (`POST /v1/embeddings`): the request a provider is
//! handed for the `embeddings` operation ([`EmbeddingsRequest`]) and the `list` object it
//! answers with ([`EmbeddingList`]).
//!
//! The request's `model` is already the upstream model (also in [`Context::model`]); its
//! `input` is a string or an array of strings (token-id arrays are refused: providers here
//! embed text); `dimensions` asks for shorter vectors; `encoding_format` is `float` (the
//! default) or `base64` (each vector as the base64 of its little-endian `f32`s, which is what
//! OpenAI's SDKs ask for by default). Embeddings never stream.
//!
//! ```
//! use switchyard_plugin_api::sdk::embeddings::{EmbeddingList, EmbeddingsRequest, Encoding, usage};
//!
//! let request = EmbeddingsRequest::parse(br#"{"model":"m","input":["a b","c"],"dimensions":2}"#).unwrap();
//! assert_eq!((request.inputs.len(), request.dimensions, request.encoding), (2, Some(2), Encoding::Float));
//! let vectors = vec![vec![1.0, 0.0], vec![0.0, -1.0]];
//! let list = EmbeddingList { model: "m", vectors: &vectors, encoding: request.encoding, usage: usage(3) };
//! let json = list.to_json().unwrap();
//! assert_eq!(
//!     json,
//!     br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1.0,0.0]},{"object":"embedding","index":1,"embedding":[0.0,-1.0]}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}"#
//! );
//! ```
//!
//! [`Context::model`]: super::Context::model

use super::{ProviderError, Usage, unified};
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};
use std::borrow::Cow;
use std::fmt;

/// OpenAI's ceiling on the inputs of one request; it also bounds a request's work.
pub const MAX_INPUTS: usize = 2048;

/// How the vectors are written in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// JSON arrays of numbers.
    #[default]
    Float,
    /// A base64 string of the vector's little-endian `f32` bytes.
    Base64,
}

/// The unified embeddings request, read and checked.
#[derive(Debug)]
pub struct EmbeddingsRequest<'a> {
    /// The texts to embed, in order (at least one, at most [`MAX_INPUTS`]); borrowed from
    /// the request unless escaped. A text may be empty: what that means is the provider's.
    pub inputs: Vec<Cow<'a, str>>,
    /// The vector length asked for (≥ 1); `None` is the model's own.
    pub dimensions: Option<u32>,
    pub encoding: Encoding,
}

/// The members read; the rest (`model`, `user`, vendor extras) is skipped unread.
#[derive(serde::Deserialize)]
struct Wire<'a> {
    #[serde(default, borrow)]
    input: Option<Input<'a>>,
    #[serde(default)]
    dimensions: Option<u32>,
    #[serde(default, borrow)]
    encoding_format: Option<Text<'a>>,
}

impl<'a> EmbeddingsRequest<'a> {
    /// Reads the request; every failure is the client's, a 400 naming the member when there
    /// is one to name.
    pub fn parse(body: &'a [u8]) -> Result<EmbeddingsRequest<'a>, ProviderError> {
        // A derived struct would also read an array positionally; no request is one.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ProviderError::invalid_request(
                "invalid embeddings request: the body must be a JSON object",
            ));
        }
        let wire: Wire<'a> = crate::json::from_bytes(body)
            .map_err(|e| ProviderError::invalid_request(format!("invalid embeddings request: {e}")))?;
        let inputs = match wire.input {
            None => return Err(invalid("`input` is required: a string or an array of strings", "input")),
            Some(Input(inputs)) => inputs,
        };
        if inputs.is_empty() {
            return Err(invalid("`input` must not be an empty array", "input"));
        }
        if inputs.len() > MAX_INPUTS {
            return Err(invalid(
                format!("`input` has {} items; at most {MAX_INPUTS} are allowed", inputs.len()),
                "input",
            ));
        }
        if wire.dimensions == Some(0) {
            return Err(invalid("`dimensions` must be at least 1, got 0", "dimensions"));
        }
        let encoding = match wire.encoding_format.as_ref().map(|t| t.0.as_ref()) {
            None | Some("float") => Encoding::Float,
            Some("base64") => Encoding::Base64,
            Some(other) => {
                return Err(invalid(
                    format!("`encoding_format` must be `float` or `base64`, got `{other}`"),
                    "encoding_format",
                ));
            }
        };
        Ok(EmbeddingsRequest {
            inputs,
            dimensions: wire.dimensions,
            encoding,
        })
    }
}

fn invalid(message: impl Into<String>, param: &str) -> ProviderError {
    ProviderError::invalid_request(message).with_param(param)
}

/// `input`: one string, or an array of strings.
struct Input<'a>(Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Input<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InputVisitor;
        impl<'de> Visitor<'de> for InputVisitor {
            type Value = Input<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings for `input`")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Input<'de>, E> {
                Ok(Input(vec![Cow::Borrowed(v)]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Input<'de>, E> {
                Ok(Input(vec![Cow::Owned(v.to_string())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Input<'de>, A::Error> {
                let mut inputs = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(MAX_INPUTS));
                while let Some(Text(text)) = seq.next_element()? {
                    inputs.push(text);
                }
                Ok(Input(inputs))
            }
        }
        deserializer.deserialize_any(InputVisitor)
    }
}

/// A string borrowed from the request unless it has escapes (serde's own `Cow<str>` always
/// copies); anything else, token ids included, is refused by name.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (token-id inputs are not supported)")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The usage of an embeddings answer: prompt tokens only (an embedding completes nothing).
pub fn usage(prompt_tokens: u64) -> Usage {
    Usage {
        prompt_tokens,
        total_tokens: prompt_tokens,
        ..Usage::default()
    }
}

/// The unified answer: OpenAI's `{"object": "list", "data": [{"object": "embedding", "index",
/// "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}`, one entry per input
/// in input order.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingList<'a> {
    pub model: &'a str,
    /// Finite numbers only: JSON has no NaN or infinity (serde would write `null`).
    pub vectors: &'a [Vec<f32>],
    pub encoding: Encoding,
    pub usage: Usage,
}

impl EmbeddingList<'_> {
    pub fn to_json(&self) -> Result<Vec<u8>, ProviderError> {
        unified::to_json(self)
    }
}

impl Serialize for EmbeddingList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("EmbeddingList", 4)?;
        s.serialize_field("object", "list")?;
        s.serialize_field("data", &Data(self))?;
        s.serialize_field("model", self.model)?;
        s.serialize_field(
            "usage",
            &UsageOut {
                prompt_tokens: self.usage.prompt_tokens,
                total_tokens: self.usage.total_tokens,
            },
        )?;
        s.end()
    }
}

#[derive(serde::Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    total_tokens: u64,
}

struct Data<'l, 'a>(&'l EmbeddingList<'a>);

impl Serialize for Data<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let list = self.0;
        let mut seq = serializer.serialize_seq(Some(list.vectors.len()))?;
        for (index, vector) in list.vectors.iter().enumerate() {
            seq.serialize_element(&Entry {
                index,
                vector,
                encoding: list.encoding,
            })?;
        }
        seq.end()
    }
}

struct Entry<'a> {
    index: usize,
    vector: &'a [f32],
    encoding: Encoding,
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Embedding", 3)?;
        s.serialize_field("object", "embedding")?;
        s.serialize_field("index", &self.index)?;
        match self.encoding {
            Encoding::Float => s.serialize_field("embedding", self.vector)?,
            Encoding::Base64 => s.serialize_field("embedding", &base64_f32(self.vector))?,
        }
        s.end()
    }
}

/// The vector's little-endian `f32` bytes in standard, padded base64 (what OpenAI sends for
/// `encoding_format: "base64"`).
pub fn base64_f32(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64(&bytes)
}

/// Standard base64 (RFC 4648 §4) with padding; a few lines, not worth a dependency.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        // A group of k bytes gives k + 1 characters; padding fills the four.
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<EmbeddingsRequest<'_>, ProviderError> {
        EmbeddingsRequest::parse(body.as_bytes())
    }

    #[test]
    fn one_string_or_many_borrowed_when_plain() {
        let r = parse(r#"{"model":"m","input":"hello world","user":"u-1"}"#).expect("valid");
        assert_eq!(r.inputs, ["hello world"]);
        assert!(matches!(r.inputs[0], Cow::Borrowed(_)));
        assert_eq!((r.dimensions, r.encoding), (None, Encoding::Float));
        let r = parse(r#"{"input":["a","caf\u00e9",""],"dimensions":8,"encoding_format":"base64"}"#).expect("valid");
        assert_eq!(r.inputs, ["a", "café", ""]);
        assert_eq!((r.dimensions, r.encoding), (Some(8), Encoding::Base64));
    }

    #[test]
    fn bad_requests_are_400s_naming_the_member() {
        let cases = [
            ("", None),
            ("[]", None),
            (r#"{"model":"m"}"#, Some("input")),
            (r#"{"input":[]}"#, Some("input")),
            (r#"{"input":null}"#, Some("input")),
            (r#"{"input":5}"#, None),
            (r#"{"input":[1,2,3]}"#, None),
            (r#"{"input":[[1,2]]}"#, None),
            (r#"{"input":"x","dimensions":0}"#, Some("dimensions")),
            (r#"{"input":"x","dimensions":-1}"#, None),
            (r#"{"input":"x","dimensions":"8"}"#, None),
            (r#"{"input":"x","encoding_format":"int8"}"#, Some("encoding_format")),
        ];
        for (body, param) in cases {
            let e = parse(body).expect_err(body);
            assert_eq!(
                (e.status, e.error_type.as_deref()),
                (400, Some("invalid_request_error")),
                "{body}"
            );
            assert_eq!(e.param.as_deref(), param, "{body}: {}", e.message);
        }
        let e = parse(r#"{"input":[1]}"#).expect_err("token ids");
        assert!(e.message.contains("token-id inputs are not supported"), "{}", e.message);
        let many = format!(r#"{{"input":[{}]}}"#, vec!["\"x\""; MAX_INPUTS + 1].join(","));
        assert_eq!(parse(&many).expect_err("too many").param.as_deref(), Some("input"));
    }

    #[test]
    fn base64_is_the_little_endian_f32_bytes() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // 1.0f32 is 0x3F800000: bytes 00 00 80 3F.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, -2.0]), "AACAPwAAAMA=");
    }

    #[test]
    fn the_list_in_base64() {
        let vectors = vec![vec![1.0f32]];
        let list = EmbeddingList {
            model: "m",
            vectors: &vectors,
            encoding: Encoding::Base64,
            usage: usage(0),
        };
        let json: serde_json::Value = serde_json::from_slice(&list.to_json().expect("json")).expect("valid");
        assert_eq!(
            json,
            serde_json::json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": "AACAPw=="}],
                "model": "m", "usage": {"prompt_tokens": 0, "total_tokens": 0}})
        );
    }
}
