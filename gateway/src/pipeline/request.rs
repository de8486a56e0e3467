//! The client's chat request: parsed once, validated, normalised for upstreams.
//!
//! The body is split into its top-level fields, each kept as the client's raw JSON text
//! (`RawValue`): nothing is re-built as a value tree, and the upstream body is re-assembled
//! from the original bytes with only `model` (resolved), `fallbacks` (removed) and, for
//! streams, `stream_options.include_usage` changed. Unknown fields pass through as sent. The
//! known OpenAI fields get a type check from their first byte, so a wrong type is a clear 400
//! naming the field.

use super::raw_object::{Key, Members};
use crate::error::GatewayError;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use std::ops::Range;

/// A validated chat completion request. It owns the client's body (a cheap `Bytes` handle on
/// the buffer the HTTP layer read) and keeps each top-level member as a span of it, so the
/// request can travel through the pipeline's phases, and a hook can replace it, without
/// copying or borrowing from the handler.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    body: Bytes,
    fields: Vec<Field>,
    /// What the client asked for (alias or `provider/model`).
    pub model: String,
    pub stream: bool,
    /// The client set `stream_options.include_usage: true` (decides where usage goes).
    pub include_usage: bool,
    /// Request-level fallbacks (Bifrost's field).
    pub fallbacks: Vec<String>,
    /// For streams: the client's `stream_options` with `include_usage` forced on.
    stream_options: Option<Vec<u8>>,
}

/// One top-level member: its name and its value's span in the body.
#[derive(Debug, Clone)]
struct Field {
    name: Name,
    value: Range<usize>,
}

/// A member name: a span of the body when it had no escapes (nearly always), else unescaped.
#[derive(Debug, Clone)]
enum Name {
    At(Range<usize>),
    Unescaped(String),
}

/// The `stream_options` the gateway sends upstream when the client gave none.
const INCLUDE_USAGE: &[u8] = b"{\"include_usage\":true}";

#[derive(Clone, Copy)]
enum Kind {
    String,
    Bool,
    Integer,
    Number,
    Object,
    Array,
    StringOrArray,
    StringOrObject,
}

/// The JSON type of a raw value, from its first byte (serde_json already checked the syntax).
fn json_type(raw: &RawValue) -> &'static str {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        _ if text.contains(['.', 'e', 'E']) => "a number",
        _ => "an integer",
    }
}

impl Kind {
    fn accepts(self, found: &str) -> bool {
        match self {
            Kind::String => found == "a string",
            Kind::Bool => found == "a boolean",
            Kind::Integer => found == "an integer",
            Kind::Number => found == "a number" || found == "an integer",
            Kind::Object => found == "an object",
            Kind::Array => found == "an array",
            Kind::StringOrArray => found == "a string" || found == "an array",
            Kind::StringOrObject => found == "a string" || found == "an object",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Bool => "a boolean",
            Kind::Integer => "an integer",
            Kind::Number => "a number",
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::StringOrArray => "a string or an array",
            Kind::StringOrObject => "a string or an object",
        }
    }
}

/// The JSON type of a known optional field of OpenAI's CreateChatCompletionRequest. `null` is
/// accepted for all of them (the schema marks most nullable).
fn field_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "stream" => Kind::Bool,
        "stream_options" => Kind::Object,
        "temperature" => Kind::Number,
        "top_p" => Kind::Number,
        "n" => Kind::Integer,
        "max_tokens" => Kind::Integer,
        "max_completion_tokens" => Kind::Integer,
        "seed" => Kind::Integer,
        "frequency_penalty" => Kind::Number,
        "presence_penalty" => Kind::Number,
        "logprobs" => Kind::Bool,
        "top_logprobs" => Kind::Integer,
        "logit_bias" => Kind::Object,
        "stop" => Kind::StringOrArray,
        "tools" => Kind::Array,
        "tool_choice" => Kind::StringOrObject,
        "parallel_tool_calls" => Kind::Bool,
        "response_format" => Kind::Object,
        "user" => Kind::String,
        "metadata" => Kind::Object,
        "store" => Kind::Bool,
        "modalities" => Kind::Array,
        "audio" => Kind::Object,
        "prediction" => Kind::Object,
        "reasoning_effort" => Kind::String,
        "service_tier" => Kind::String,
        "web_search_options" => Kind::Object,
        "fallbacks" => Kind::Array,
        _ => return None,
    })
}

fn type_error(field: &str, expected: &str, found: &str) -> GatewayError {
    GatewayError::BadRequest {
        message: format!("Invalid type for '{field}': expected {expected}, but got {found}."),
        code: "invalid_type",
        param: Some(field.to_string()),
    }
}

fn missing(field: &str) -> GatewayError {
    GatewayError::BadRequest {
        message: format!("Missing required parameter: '{field}'."),
        code: "missing_field",
        param: Some(field.to_string()),
    }
}

impl ChatRequest {
    /// Parses and validates a copy of `bytes` (tests and tools; the daemon hands over its
    /// buffer with [`ChatRequest::parse`]).
    pub fn parse_slice(bytes: &[u8]) -> Result<ChatRequest, GatewayError> {
        ChatRequest::parse(Bytes::copy_from_slice(bytes))
    }

    /// The body as the client (or a hook that replaced it) sent it.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Parses and validates a request body.
    pub fn parse(body: Bytes) -> Result<ChatRequest, GatewayError> {
        let bytes: &[u8] = &body;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(GatewayError::bad_request(
                "The request body is empty; send a JSON chat completion request.",
                "invalid_json",
                None,
            ));
        }
        let members = Members::parse(bytes).map_err(|e| {
            let message = if e.is_data() {
                "The request body must be a JSON object.".to_string()
            } else {
                format!("The request body is not valid JSON: {e}.")
            };
            GatewayError::bad_request(message, "invalid_json", None)
        })?;
        let get = |name: &str| members.get(name);

        let model = match get("model") {
            None => return Err(missing("model")),
            Some(raw) => match json_type(raw) {
                "null" => return Err(missing("model")),
                "a string" => {
                    let m: String = serde_json::from_str(raw.get()).map_err(|e| {
                        GatewayError::bad_request(format!("Invalid 'model': {e}."), "invalid_value", Some("model"))
                    })?;
                    if m.trim().is_empty() {
                        return Err(GatewayError::bad_request(
                            "'model' must not be empty.",
                            "invalid_value",
                            Some("model"),
                        ));
                    }
                    m
                }
                found => return Err(type_error("model", "a string", found)),
            },
        };
        validate_messages(get("messages"))?;

        // One pass over the members; a name's last occurrence is the one checked.
        for (i, (key, raw)) in members.0.iter().enumerate() {
            let field = key.as_str();
            let Some(kind) = field_kind(field) else {
                continue;
            };
            if members.0[i + 1..].iter().any(|(k, _)| k.as_str() == field) {
                continue;
            }
            let found = json_type(raw);
            if found != "null" && !kind.accepts(found) {
                return Err(type_error(field, kind.describe(), found));
            }
        }

        let stream = get("stream").is_some_and(|raw| raw.get() == "true");
        let mut include_usage = false;
        let mut options = serde_json::Map::new();
        if let Some(raw) = get("stream_options").filter(|r| json_type(r) == "an object") {
            options = serde_json::from_str(raw.get()).map_err(|e| {
                GatewayError::bad_request(
                    format!("Invalid 'stream_options': {e}."),
                    "invalid_value",
                    Some("stream_options"),
                )
            })?;
            match options.get("include_usage") {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::Bool(b)) => include_usage = *b,
                Some(other) => {
                    let found = if other.is_number() { "a number" } else { "another type" };
                    return Err(type_error("stream_options.include_usage", "a boolean", found));
                }
            }
        }
        // The gateway always asks for usage on streams; where the client sees it is decided later.
        let stream_options = stream.then(|| {
            // Most clients send no options: no map to build and serialise then.
            if options.is_empty() {
                return INCLUDE_USAGE.to_vec();
            }
            options.insert("include_usage".into(), serde_json::Value::Bool(true));
            serde_json::to_vec(&options).unwrap_or_else(|_| INCLUDE_USAGE.to_vec())
        });

        let fallbacks = match get("fallbacks").filter(|r| json_type(r) == "an array") {
            Some(raw) => serde_json::from_str::<Vec<String>>(raw.get())
                .map_err(|_| type_error("fallbacks", "an array of strings", "another array"))?,
            None => Vec::new(),
        };

        let span = |text: &str| {
            let start = text.as_ptr() as usize - bytes.as_ptr() as usize;
            start..start + text.len()
        };
        let fields = members
            .0
            .iter()
            .map(|(key, raw)| Field {
                name: match key {
                    Key::Borrowed(k) => Name::At(span(k)),
                    Key::Owned(k) => Name::Unescaped(k.clone()),
                },
                value: span(raw.get()),
            })
            .collect();
        drop(members);
        Ok(ChatRequest {
            body,
            fields,
            model,
            stream,
            include_usage,
            fallbacks,
            stream_options,
        })
    }

    /// The upstream body for one attempt: the client's fields, as sent, with `model` resolved,
    /// `fallbacks` removed and (streams) usage requested.
    pub fn encode_for(&self, upstream_model: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.push(b'{');
        let mut first = true;
        let mut wrote_options = false;
        for field in &self.fields {
            let key = self.name(field);
            if key == b"fallbacks" {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            match &field.name {
                // A name without escapes is its own JSON string text.
                Name::At(at) => {
                    out.push(b'"');
                    out.extend_from_slice(&self.body[at.clone()]);
                    out.push(b'"');
                }
                // Writing a &str into a Vec cannot fail.
                Name::Unescaped(k) => {
                    let _ = serde_json::to_writer(&mut out, k);
                }
            }
            out.push(b':');
            match (key, &self.stream_options) {
                (b"model", _) => {
                    let _ = serde_json::to_writer(&mut out, upstream_model);
                }
                (b"stream_options", Some(opts)) => {
                    out.extend_from_slice(opts);
                    wrote_options = true;
                }
                _ => out.extend_from_slice(&self.body[field.value.clone()]),
            }
        }
        if let (Some(opts), false) = (&self.stream_options, wrote_options) {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(b"\"stream_options\":");
            out.extend_from_slice(opts);
        }
        out.push(b'}');
        out
    }
}

impl ChatRequest {
    /// A member's name, compared as bytes (no UTF-8 check per field and request).
    fn name<'s>(&'s self, field: &'s Field) -> &'s [u8] {
        match &field.name {
            Name::At(at) => &self.body[at.clone()],
            Name::Unescaped(k) => k.as_bytes(),
        }
    }
}

/// Each message must be an object with a string `role`; the rest is the upstream's to judge.
fn validate_messages(messages: Option<&RawValue>) -> Result<(), GatewayError> {
    let Some(raw) = messages else {
        return Err(missing("messages"));
    };
    match json_type(raw) {
        "an array" => {}
        "null" => return Err(missing("messages")),
        found => return Err(type_error("messages", "an array", found)),
    }
    // One pass over the array, reading only each message's `role`.
    let check: MessagesCheck =
        serde_json::from_str(raw.get()).map_err(|_| type_error("messages", "an array", "something else"))?;
    match check.0 {
        None => Ok(()),
        Some(MessageProblem::Empty) => Err(GatewayError::bad_request(
            "'messages' must contain at least one message.",
            "invalid_value",
            Some("messages"),
        )),
        Some(MessageProblem::NotObject(i, found)) => Err(type_error(&format!("messages[{i}]"), "an object", found)),
        Some(MessageProblem::Role(i, None)) => Err(missing(&format!("messages[{i}].role"))),
        Some(MessageProblem::Role(i, Some(found))) => {
            Err(type_error(&format!("messages[{i}].role"), "a string", found))
        }
    }
}

/// The first thing wrong with `messages`, if any.
struct MessagesCheck(Option<MessageProblem>);

enum MessageProblem {
    Empty,
    /// The message at this index is not an object but this type.
    NotObject(usize, &'static str),
    /// The message at this index has no `role` (`None`, or null) or one of this type.
    Role(usize, Option<&'static str>),
}

impl<'de> Deserialize<'de> for MessagesCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MessagesCheck;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MessagesCheck, A::Error> {
                let mut problem = None;
                let mut i = 0;
                while let Some(message) = seq.next_element::<MessageShape<'de>>()? {
                    if problem.is_none() {
                        problem = match message {
                            MessageShape::Other(found) => Some(MessageProblem::NotObject(i, found)),
                            MessageShape::Object(role) => match role.map(json_type) {
                                Some("a string") => None,
                                None | Some("null") => Some(MessageProblem::Role(i, None)),
                                Some(found) => Some(MessageProblem::Role(i, Some(found))),
                            },
                        };
                    }
                    i += 1;
                }
                if i == 0 {
                    problem = Some(MessageProblem::Empty);
                }
                Ok(MessagesCheck(problem))
            }
        }
        d.deserialize_seq(V)
    }
}

/// One message: an object (with its last `role`, unparsed) or the JSON type it is instead.
enum MessageShape<'a> {
    Object(Option<&'a RawValue>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for MessageShape<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MessageShape<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a message")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MessageShape<'de>, A::Error> {
                let mut role = None;
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    if key.as_str() == "role" {
                        role = Some(map.next_value::<&'de RawValue>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(MessageShape::Object(role))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MessageShape<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MessageShape::Other("an array"))
            }
            fn visit_str<E>(self, _: &str) -> Result<MessageShape<'de>, E> {
                Ok(MessageShape::Other("a string"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<MessageShape<'de>, E> {
                Ok(MessageShape::Other("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<MessageShape<'de>, E> {
                Ok(MessageShape::Other("an integer"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<MessageShape<'de>, E> {
                Ok(MessageShape::Other("an integer"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<MessageShape<'de>, E> {
                Ok(MessageShape::Other("a number"))
            }
            fn visit_unit<E>(self) -> Result<MessageShape<'de>, E> {
                Ok(MessageShape::Other("null"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn err(body: &str) -> GatewayError {
        ChatRequest::parse_slice(body.as_bytes()).expect_err("should be refused")
    }

    #[test]
    fn keeps_unknown_fields_and_drops_fallbacks() {
        let r = ChatRequest::parse_slice(
            br#"{"model":"a","messages":[{"role":"user","content":"hi"}],"seed":7,"x_custom":{"k":[1]},"fallbacks":["p/m"]}"#,
        )
        .expect("valid");
        assert_eq!(r.fallbacks, ["p/m"]);
        let out: Value = serde_json::from_slice(&r.encode_for("up-model")).expect("json");
        assert_eq!(out["model"], "up-model");
        assert_eq!(out["seed"], 7);
        assert_eq!(out["x_custom"]["k"][0], 1);
        assert!(out.get("fallbacks").is_none());
        assert!(out.get("stream_options").is_none());
    }

    #[test]
    fn streams_always_ask_for_usage_and_remember_what_the_client_asked() {
        let r = ChatRequest::parse_slice(br#"{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true}"#)
            .expect("valid");
        assert!(r.stream && !r.include_usage);
        let out: Value = serde_json::from_slice(&r.encode_for("m")).expect("json");
        assert_eq!(out["stream_options"]["include_usage"], true);

        let r = ChatRequest::parse_slice(
            br#"{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .expect("valid");
        assert!(r.include_usage);
    }

    #[test]
    fn field_order_is_preserved() {
        let r =
            ChatRequest::parse_slice(br#"{"messages":[{"role":"user","content":"x"}],"zeta":1,"model":"a","alpha":2}"#)
                .expect("valid");
        let out = String::from_utf8(r.encode_for("m")).expect("utf8");
        assert_eq!(
            out,
            r#"{"messages":[{"role":"user","content":"x"}],"zeta":1,"model":"m","alpha":2}"#
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let e = err(r#"{"model":"a","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#);
        assert_eq!((e.code(), e.param()), (Some("invalid_type"), Some("temperature")));
        let e = err(r#"{"messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!((e.code(), e.param()), (Some("missing_field"), Some("model")));
        let e = err(r#"{"model":"a"}"#);
        assert_eq!((e.code(), e.param()), (Some("missing_field"), Some("messages")));
        let e = err(r#"{"model":"a","messages":[{"content":"x"}]}"#);
        assert_eq!(e.param(), Some("messages[0].role"));
        let e = err(r#"{"model":"a","messages":"hi"}"#);
        assert_eq!(e.param(), Some("messages"));
        let e = err(r#"{"model":5,"messages":[]}"#);
        assert_eq!(e.param(), Some("model"));
        let e = err(r#"{"model":"a","messages":[{"role":"user"}],"n":1.5}"#);
        assert_eq!(e.param(), Some("n"));
        let e = err(r#"{"model":"a","messages":[{"role":"user"}],"fallbacks":[1]}"#);
        assert_eq!(e.param(), Some("fallbacks"));
    }

    #[test]
    fn each_message_is_checked_in_one_pass() {
        let body = |messages: &str| format!(r#"{{"model":"a","messages":{messages}}}"#);
        let cases = [
            ("[]", "messages", "'messages' must contain at least one message."),
            ("[1]", "messages[0]", "expected an object, but got an integer"),
            (
                r#"[{"role":"user"},[1,[2]]]"#,
                "messages[1]",
                "expected an object, but got an array",
            ),
            (
                r#"[{"role":"user"},"hi",{"role":1}]"#,
                "messages[1]",
                "but got a string",
            ),
            (
                r#"[{"content":"x","role":null}]"#,
                "messages[0].role",
                "Missing required parameter",
            ),
            (
                r#"[{"role":"user"},{"role":{"x":1}}]"#,
                "messages[1].role",
                "expected a string, but got an object",
            ),
            (r#"[{"role":1.5}]"#, "messages[0].role", "but got a number"),
        ];
        for (messages, param, text) in cases {
            let e = err(&body(messages));
            assert_eq!(e.param(), Some(param), "{messages}");
            assert!(e.client_message().contains(text), "{messages}: {}", e.client_message());
        }
        // The last `role` of a message wins, as for top-level fields; the rest is not read.
        assert!(ChatRequest::parse_slice(body(r#"[{"role":5,"x":{"y":[]},"role":"user"}]"#).as_bytes()).is_ok());
    }

    #[test]
    fn malformed_bodies() {
        assert_eq!(err("").code(), Some("invalid_json"));
        assert_eq!(err("{not json").code(), Some("invalid_json"));
        assert_eq!(err("[1,2]").code(), Some("invalid_json"));
        assert_eq!(
            ChatRequest::parse_slice(b"{\"model\":\"\xff\"}")
                .expect_err("utf8")
                .code(),
            Some("invalid_json")
        );
    }
}
