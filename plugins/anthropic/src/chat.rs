//! Borrowed views of the unified (OpenAI chat completions) request: only the fields the
//! translation reads, strings borrowed from the request bytes where they carry no escapes, and
//! JSON Schemas and Anthropic-native values kept as raw JSON to be forwarded byte for byte.
//! Fields with no Anthropic equivalent are not read at all (see the crate docs for the list).

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

type Str<'a> = Cow<'a, str>;

#[derive(Deserialize)]
pub(crate) struct ChatRequest<'a> {
    #[serde(borrow, default)]
    pub model: Option<Str<'a>>,
    #[serde(borrow)]
    pub messages: Vec<Message<'a>>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Numbers are forwarded as written (no float round trip).
    #[serde(borrow, default)]
    pub temperature: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub top_p: Option<&'a RawValue>,
    /// Not OpenAI's, but a common extension (and Anthropic's own parameter).
    #[serde(borrow, default)]
    pub top_k: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub stop: Option<Stop<'a>>,
    #[serde(default)]
    pub n: Option<u64>,
    #[serde(borrow, default)]
    pub tools: Option<Vec<Tool<'a>>>,
    #[serde(borrow, default)]
    pub tool_choice: Option<ToolChoice<'a>>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(borrow, default)]
    pub reasoning_effort: Option<Str<'a>>,
    /// Anthropic's own `thinking` object, for clients that know they talk to Claude: forwarded
    /// as is and preferred over `reasoning_effort`.
    #[serde(borrow, default)]
    pub thinking: Option<ThinkingView<'a>>,
    #[serde(borrow, default)]
    pub response_format: Option<ResponseFormat<'a>>,
    #[serde(borrow, default)]
    pub user: Option<Str<'a>>,
    /// Only audio output is checked (it cannot be served); the rest is ignored.
    #[serde(borrow, default)]
    pub modalities: Option<Vec<Str<'a>>>,
}

impl<'a> ChatRequest<'a> {
    pub(crate) fn parse(json: &'a [u8]) -> Result<ChatRequest<'a>, String> {
        match json.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => switchyard_plugin_api::json::from_bytes(json).map_err(|e| e.to_string()),
            Some(_) => Err("not a JSON object".into()),
            None => Err("empty body".into()),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Message<'a> {
    #[serde(borrow)]
    pub role: Str<'a>,
    #[serde(borrow, default)]
    pub content: Content<'a>,
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(borrow, default)]
    pub tool_call_id: Option<Str<'a>>,
    /// Anthropic prompt caching on the whole message (applied to its last block).
    #[serde(borrow, default)]
    pub cache_control: Option<&'a RawValue>,
    /// Signed thinking handed back from an earlier answer (see `response.rs`).
    #[serde(borrow, default)]
    pub reasoning_details: Option<Vec<ReasoningDetail<'a>>>,
}

/// A message's `content`: a string, a list of parts, or absent / null.
#[derive(Default)]
pub(crate) enum Content<'a> {
    #[default]
    None,
    Text(Str<'a>),
    Parts(Vec<Part<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ContentVisitor<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a list of content parts, or null")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Content<'a>, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Content<'a>, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Content<'a>, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Content<'a>, E> {
                Ok(Content::None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Content<'a>, E> {
                Ok(Content::None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content<'a>, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
        }
        deserializer.deserialize_any(ContentVisitor(std::marker::PhantomData))
    }
}

/// One content part. A flat struct rather than a tagged enum, so strings stay borrowed.
#[derive(Deserialize)]
pub(crate) struct Part<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub text: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub image_url: Option<ImageUrl<'a>>,
    #[serde(borrow, default)]
    pub file: Option<FilePart<'a>>,
    #[serde(borrow, default)]
    pub cache_control: Option<&'a RawValue>,
}

/// `image_url` is `{"url", "detail"}`; a bare string is accepted too (some clients send it).
pub(crate) struct ImageUrl<'a> {
    pub url: Str<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ImageUrl<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<'a> {
            Bare(#[serde(borrow)] Str<'a>),
            // `detail` has no Anthropic equivalent and is not read.
            Object {
                #[serde(borrow)]
                url: Str<'a>,
            },
        }
        Ok(match Either::deserialize(deserializer)? {
            Either::Bare(url) | Either::Object { url, .. } => ImageUrl { url },
        })
    }
}

/// OpenAI's `file` part: inline `file_data` (a data URL) is what a codec can translate.
#[derive(Deserialize)]
pub(crate) struct FilePart<'a> {
    #[serde(borrow, default)]
    pub file_data: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub filename: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub file_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ToolCall<'a> {
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub function: Option<FunctionCall<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionCall<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    /// A JSON document serialised into a string.
    #[serde(borrow, default)]
    pub arguments: Option<Str<'a>>,
}

/// An entry of `reasoning_details` (OpenRouter's shape, which this codec also emits).
#[derive(Deserialize)]
pub(crate) struct ReasoningDetail<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub text: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub signature: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub data: Option<Str<'a>>,
}

/// `stop`: one string or a list.
pub(crate) struct Stop<'a>(pub Vec<Str<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Stop<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<'a> {
            One(#[serde(borrow)] Str<'a>),
            Many(#[serde(borrow)] Vec<Str<'a>>),
        }
        Ok(match Either::deserialize(deserializer)? {
            Either::One(s) => Stop(vec![s]),
            Either::Many(v) => Stop(v),
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct Tool<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub function: Option<FunctionDef<'a>>,
    /// Anthropic prompt caching on a tool definition, given next to `function`…
    #[serde(borrow, default)]
    pub cache_control: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionDef<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub description: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub parameters: Option<&'a RawValue>,
    /// …or inside it.
    #[serde(borrow, default)]
    pub cache_control: Option<&'a RawValue>,
}

/// `tool_choice`: `"auto" | "none" | "required"` or `{"type":"function","function":{"name"}}`.
pub(crate) enum ToolChoice<'a> {
    Mode(Str<'a>),
    Function(Str<'a>),
}

impl<'de: 'a, 'a> Deserialize<'de> for ToolChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Named<'a> {
            #[serde(borrow)]
            name: Str<'a>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<'a> {
            Mode(#[serde(borrow)] Str<'a>),
            Object {
                #[serde(borrow)]
                function: Named<'a>,
            },
        }
        Ok(match Either::deserialize(deserializer)? {
            Either::Mode(mode) => ToolChoice::Mode(mode),
            Either::Object { function } => ToolChoice::Function(function.name),
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct ResponseFormat<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub json_schema: Option<JsonSchema<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct JsonSchema<'a> {
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub description: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub schema: Option<&'a RawValue>,
}

/// Anthropic's `thinking` as a client may send it: forwarded raw, its budget read to size
/// `max_tokens`.
pub(crate) struct ThinkingView<'a> {
    pub raw: &'a RawValue,
    pub budget_tokens: Option<u64>,
    pub enabled: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for ThinkingView<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields<'a> {
            #[serde(rename = "type", borrow, default)]
            kind: Option<Str<'a>>,
            #[serde(default)]
            budget_tokens: Option<u64>,
        }
        let raw = <&'a RawValue>::deserialize(deserializer)?;
        let fields: Fields<'_> = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
        Ok(ThinkingView {
            raw,
            budget_tokens: fields.budget_tokens,
            enabled: fields.kind.as_deref() != Some("disabled"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shapes_openai_clients_send() {
        let body = br#"{"model":"claude","messages":[
            {"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"hi \"you\"","cache_control":{"type":"ephemeral"}},
                {"type":"image_url","image_url":{"url":"https://x/y.png","detail":"high"}},
                {"type":"image_url","image_url":"https://x/z.png"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}],
            "stop":"END","tool_choice":{"type":"function","function":{"name":"f"}},
            "temperature":0.70,"thinking":{"type":"enabled","budget_tokens":2048},"unknown":[1]}"#;
        let r = ChatRequest::parse(body).expect("parsed");
        assert_eq!(r.messages.len(), 4);
        assert!(matches!(
            &r.messages[0].content,
            Content::Text(Cow::Borrowed("be brief"))
        ));
        let Content::Parts(parts) = &r.messages[1].content else {
            panic!("parts")
        };
        assert_eq!(parts[0].text.as_deref(), Some("hi \"you\""));
        assert!(parts[0].cache_control.is_some());
        assert_eq!(
            parts[2].image_url.as_ref().map(|i| i.url.as_ref()),
            Some("https://x/z.png")
        );
        assert!(matches!(r.messages[2].content, Content::None));
        assert_eq!(r.stop.map(|s| s.0), Some(vec![Cow::Borrowed("END")]));
        assert!(matches!(r.tool_choice, Some(ToolChoice::Function(ref n)) if n == "f"));
        assert_eq!(r.temperature.map(RawValue::get), Some("0.70"));
        let thinking = r.thinking.expect("thinking");
        assert_eq!((thinking.budget_tokens, thinking.enabled), (Some(2048), true));
    }

    #[test]
    fn not_a_request() {
        assert!(ChatRequest::parse(b"[]").is_err());
        assert!(ChatRequest::parse(b" ").is_err());
        assert!(ChatRequest::parse(br#"{"model":"m"}"#).is_err());
        assert!(ChatRequest::parse(br#"{"messages":[{"role":"user","content":5}]}"#).is_err());
    }
}
