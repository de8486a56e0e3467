//! The unified (OpenAI chat completions) side: borrowed views of the request the host hands
//! the codec. (The response and chunk shapes it writes back are the SDK's `unified` ones.)
//!
//! Views read only what has a Gemini counterpart; unknown fields are skipped by serde without
//! building values. Every optional field tolerates `null`.

use crate::text::Str;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

// ------------------------------------------------------------------------------ request views

#[derive(Deserialize)]
pub(crate) struct ChatRequest<'a> {
    #[serde(borrow)]
    pub messages: Vec<Message<'a>>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Not OpenAI's, but common in OpenAI-compatible clients; Gemini has it.
    #[serde(default)]
    pub top_k: Option<u32>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, borrow)]
    pub stop: Option<Stop<'a>>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    #[serde(default, borrow)]
    pub tools: Option<Vec<Tool<'a>>>,
    /// `"auto" | "none" | "required" | {"type":"function","function":{"name"}}`: small, so a Value.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub response_format: Option<Value>,
    #[serde(default, borrow)]
    pub reasoning_effort: Option<Str<'a>>,
    /// Bifrost's `reasoning: {effort, max_tokens}`.
    #[serde(default, borrow)]
    pub reasoning: Option<Reasoning<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct Reasoning<'a> {
    #[serde(default, borrow)]
    pub effort: Option<Str<'a>>,
    #[serde(default)]
    pub max_tokens: Option<i64>,
}

#[derive(Deserialize)]
pub(crate) struct Message<'a> {
    #[serde(borrow)]
    pub role: Str<'a>,
    #[serde(default, borrow)]
    pub content: Option<Content<'a>>,
    #[serde(default, borrow)]
    pub name: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(default, borrow)]
    pub tool_call_id: Option<Str<'a>>,
    /// The legacy single function call of an assistant message.
    #[serde(default, borrow)]
    pub function_call: Option<FunctionCall<'a>>,
}

/// A message's `content`: a string or a list of typed parts.
pub(crate) enum Content<'a> {
    Text(Str<'a>),
    Parts(Vec<Part<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Content<'de>, E> {
                Ok(Content::Text(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Content<'de>, E> {
                Ok(Content::Text(Str(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Content<'de>, E> {
                Ok(Content::Text(Str(Cow::Owned(v))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content<'de>, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
        }
        deserializer.deserialize_any(ContentVisitor)
    }
}

/// One content part. A flat struct rather than a tagged enum: serde would buffer a tagged
/// enum's fields and lose the borrowing.
#[derive(Deserialize)]
pub(crate) struct Part<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(default, borrow)]
    pub text: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub refusal: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub image_url: Option<ImageUrl<'a>>,
    #[serde(default, borrow)]
    pub input_audio: Option<InputAudio<'a>>,
    #[serde(default, borrow)]
    pub file: Option<FilePart<'a>>,
}

/// `image_url`: `{"url", "detail"}`, or (from lax clients) the URL string itself.
pub(crate) struct ImageUrl<'a> {
    pub url: Str<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ImageUrl<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object<'a> {
            #[serde(borrow)]
            url: Str<'a>,
        }
        struct ImageUrlVisitor;
        impl<'de> Visitor<'de> for ImageUrlVisitor {
            type Value = ImageUrl<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with `url`, or a URL string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<ImageUrl<'de>, E> {
                Ok(ImageUrl {
                    url: Str(Cow::Borrowed(v)),
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ImageUrl<'de>, E> {
                Ok(ImageUrl {
                    url: Str(Cow::Owned(v.to_string())),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ImageUrl<'de>, A::Error> {
                let object = Object::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ImageUrl { url: object.url })
            }
        }
        deserializer.deserialize_any(ImageUrlVisitor)
    }
}

#[derive(Deserialize)]
pub(crate) struct InputAudio<'a> {
    #[serde(borrow)]
    pub data: Str<'a>,
    #[serde(default, borrow)]
    pub format: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct FilePart<'a> {
    /// A data URL (`data:application/pdf;base64,...`).
    #[serde(default, borrow)]
    pub file_data: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub file_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ToolCall<'a> {
    #[serde(default, borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow)]
    pub function: FunctionCall<'a>,
    /// Where the Gemini signature of a call travels through OpenAI clients (the convention of
    /// Google's own OpenAI-compatible endpoint): `{"google": {"thought_signature": "…"}}`.
    #[serde(default, borrow)]
    pub extra_content: Option<ExtraContent<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ExtraContent<'a> {
    #[serde(default, borrow)]
    pub google: Option<GoogleExtra<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct GoogleExtra<'a> {
    #[serde(default, borrow)]
    pub thought_signature: Option<Str<'a>>,
}

impl<'a> ToolCall<'a> {
    pub(crate) fn thought_signature(&self) -> Option<&Str<'a>> {
        self.extra_content.as_ref()?.google.as_ref()?.thought_signature.as_ref()
    }
}

#[derive(Deserialize)]
pub(crate) struct FunctionCall<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(default, borrow)]
    pub arguments: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct Tool<'a> {
    #[serde(rename = "type", default, borrow)]
    pub kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub function: Option<FunctionDef<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionDef<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(default, borrow)]
    pub description: Option<Str<'a>>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// `stop`: one string or a list.
pub(crate) enum Stop<'a> {
    One(Str<'a>),
    Many(Vec<Str<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Stop<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StopVisitor;
        impl<'de> Visitor<'de> for StopVisitor {
            type Value = Stop<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Stop<'de>, E> {
                Ok(Stop::One(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Stop<'de>, E> {
                Ok(Stop::One(Str(Cow::Owned(v.to_string()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Stop<'de>, A::Error> {
                let mut all = Vec::new();
                while let Some(s) = seq.next_element()? {
                    all.push(s);
                }
                Ok(Stop::Many(all))
            }
        }
        deserializer.deserialize_any(StopVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_shapes_and_borrowing() {
        let body = br#"{"messages":[
            {"role":"user","content":"plain"},
            {"role":"user","content":[{"type":"text","text":"t"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}},{"type":"image_url","image_url":"https://x.test/a.png"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"},"extra_content":{"google":{"thought_signature":"sig"}}}]}
        ],"stop":"END","tool_choice":"auto"}"#;
        let r: ChatRequest<'_> = serde_json::from_slice(body).expect("parsed");
        assert!(matches!(
            &r.messages[0].content,
            Some(Content::Text(Str(Cow::Borrowed("plain"))))
        ));
        let Some(Content::Parts(parts)) = &r.messages[1].content else {
            panic!("parts")
        };
        assert_eq!(parts.len(), 3);
        let url = &parts[1].image_url.as_ref().expect("image").url;
        assert!(matches!(url.0, Cow::Borrowed(_)), "data URLs are read in place");
        assert_eq!(
            &*parts[2].image_url.as_ref().expect("image").url,
            "https://x.test/a.png"
        );
        assert!(r.messages[2].content.is_none());
        let call = &r.messages[2].tool_calls.as_ref().expect("calls")[0];
        assert_eq!(call.thought_signature().map(|s| &**s), Some("sig"));
        assert!(matches!(r.stop, Some(Stop::One(_))));
    }

    #[test]
    fn wrong_shapes_are_errors() {
        assert!(serde_json::from_slice::<ChatRequest<'_>>(br#"{"messages":[{"role":"user","content":5}]}"#).is_err());
        assert!(serde_json::from_slice::<ChatRequest<'_>>(br#"{"messages":{}}"#).is_err());
        assert!(serde_json::from_slice::<ChatRequest<'_>>(br#"{}"#).is_err());
    }
}
