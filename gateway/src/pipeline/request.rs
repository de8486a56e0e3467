//! The client's chat request: parsed once, validated, normalised for upstreams.
//!
//! Every field is kept (unknown ones too) except gateway-only ones; the known OpenAI fields
//! get a type check so a wrong type is a clear 400 naming the field, not an upstream mystery.

use crate::error::GatewayError;
use serde_json::{Map, Value};

/// A validated chat completion request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The body without gateway-only fields; `model` is replaced per attempt.
    body: Map<String, Value>,
    /// What the client asked for (alias or `provider/model`).
    pub model: String,
    pub stream: bool,
    /// The client set `stream_options.include_usage: true` (decides where usage goes).
    pub include_usage: bool,
    /// Request-level fallbacks (Bifrost's field).
    pub fallbacks: Vec<String>,
}

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

impl Kind {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::String => v.is_string(),
            Kind::Bool => v.is_boolean(),
            Kind::Integer => v.is_i64() || v.is_u64(),
            Kind::Number => v.is_number(),
            Kind::Object => v.is_object(),
            Kind::Array => v.is_array(),
            Kind::StringOrArray => v.is_string() || v.is_array(),
            Kind::StringOrObject => v.is_string() || v.is_object(),
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

/// Known optional fields of OpenAI's CreateChatCompletionRequest and their JSON types.
/// `null` is accepted for all of them (the schema marks most nullable).
const FIELD_TYPES: &[(&str, Kind)] = &[
    ("stream", Kind::Bool),
    ("stream_options", Kind::Object),
    ("temperature", Kind::Number),
    ("top_p", Kind::Number),
    ("n", Kind::Integer),
    ("max_tokens", Kind::Integer),
    ("max_completion_tokens", Kind::Integer),
    ("seed", Kind::Integer),
    ("frequency_penalty", Kind::Number),
    ("presence_penalty", Kind::Number),
    ("logprobs", Kind::Bool),
    ("top_logprobs", Kind::Integer),
    ("logit_bias", Kind::Object),
    ("stop", Kind::StringOrArray),
    ("tools", Kind::Array),
    ("tool_choice", Kind::StringOrObject),
    ("parallel_tool_calls", Kind::Bool),
    ("response_format", Kind::Object),
    ("user", Kind::String),
    ("metadata", Kind::Object),
    ("store", Kind::Bool),
    ("modalities", Kind::Array),
    ("audio", Kind::Object),
    ("prediction", Kind::Object),
    ("reasoning_effort", Kind::String),
    ("service_tier", Kind::String),
    ("web_search_options", Kind::Object),
    ("fallbacks", Kind::Array),
];

fn type_error(field: &str, kind: Kind, got: &Value) -> GatewayError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    GatewayError::bad_request(
        format!(
            "Invalid type for '{field}': expected {}, but got {got}.",
            kind.describe()
        ),
        "invalid_type",
        Some(field),
    )
}

impl ChatRequest {
    /// Parses and validates a request body.
    pub fn parse(bytes: &[u8]) -> Result<ChatRequest, GatewayError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(GatewayError::bad_request(
                "The request body is empty; send a JSON chat completion request.",
                "invalid_json",
                None,
            ));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            GatewayError::bad_request(
                format!("The request body is not valid JSON: {e}."),
                "invalid_json",
                None,
            )
        })?;
        let Value::Object(mut body) = value else {
            return Err(GatewayError::bad_request(
                "The request body must be a JSON object.",
                "invalid_json",
                None,
            ));
        };

        let model = match body.get("model") {
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            None | Some(Value::Null) => {
                return Err(GatewayError::bad_request(
                    "Missing required parameter: 'model'.",
                    "missing_field",
                    Some("model"),
                ));
            }
            Some(Value::String(_)) => {
                return Err(GatewayError::bad_request(
                    "'model' must not be empty.",
                    "invalid_value",
                    Some("model"),
                ));
            }
            Some(other) => return Err(type_error("model", Kind::String, other)),
        };
        validate_messages(body.get("messages"))?;

        for (field, kind) in FIELD_TYPES {
            if let Some(v) = body.get(*field)
                && !v.is_null()
                && !kind.accepts(v)
            {
                return Err(type_error(field, *kind, v));
            }
        }

        let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let include_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .map(|v| match v {
                Value::Bool(b) => Ok(*b),
                Value::Null => Ok(false),
                other => Err(type_error("stream_options.include_usage", Kind::Bool, other)),
            })
            .transpose()?
            .unwrap_or(false);

        let fallbacks = match body.shift_remove("fallbacks") {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(type_error("fallbacks", Kind::String, &other)),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };

        if stream {
            // The gateway always asks for usage; where the client sees it is decided later.
            match body.get_mut("stream_options") {
                Some(Value::Object(opts)) => {
                    opts.insert("include_usage".into(), Value::Bool(true));
                }
                _ => {
                    let mut opts = Map::new();
                    opts.insert("include_usage".into(), Value::Bool(true));
                    body.insert("stream_options".into(), Value::Object(opts));
                }
            }
        }

        Ok(ChatRequest {
            body,
            model,
            stream,
            include_usage,
            fallbacks,
        })
    }

    /// The upstream body for one attempt: the client's request with `model` resolved.
    pub fn encode_for(&mut self, upstream_model: &str) -> Vec<u8> {
        if let Some(slot) = self.body.get_mut("model") {
            *slot = Value::String(upstream_model.to_string());
        }
        // Serialising a Map of Values cannot fail (no non-string keys, no custom Serialize).
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

fn validate_messages(messages: Option<&Value>) -> Result<(), GatewayError> {
    let list = match messages {
        None | Some(Value::Null) => {
            return Err(GatewayError::bad_request(
                "Missing required parameter: 'messages'.",
                "missing_field",
                Some("messages"),
            ));
        }
        Some(Value::Array(list)) => list,
        Some(other) => return Err(type_error("messages", Kind::Array, other)),
    };
    if list.is_empty() {
        return Err(GatewayError::bad_request(
            "'messages' must contain at least one message.",
            "invalid_value",
            Some("messages"),
        ));
    }
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Value::Object(obj) = m else {
            return Err(GatewayError::BadRequest {
                message: format!("Invalid type for '{param}': expected an object."),
                code: "invalid_type",
                param: Some(param),
            });
        };
        match obj.get("role") {
            Some(Value::String(_)) => {}
            None => {
                return Err(GatewayError::BadRequest {
                    message: format!("Missing required parameter: '{param}.role'."),
                    code: "missing_field",
                    param: Some(format!("{param}.role")),
                });
            }
            Some(other) => return Err(type_error(&format!("{param}.role"), Kind::String, other)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> GatewayError {
        ChatRequest::parse(body.as_bytes()).expect_err("should be refused")
    }

    #[test]
    fn keeps_unknown_fields_and_drops_fallbacks() {
        let mut r = ChatRequest::parse(
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
        let mut r = ChatRequest::parse(br#"{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true}"#)
            .expect("valid");
        assert!(r.stream && !r.include_usage);
        let out: Value = serde_json::from_slice(&r.encode_for("m")).expect("json");
        assert_eq!(out["stream_options"]["include_usage"], true);

        let r = ChatRequest::parse(
            br#"{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .expect("valid");
        assert!(r.include_usage);
    }

    #[test]
    fn field_order_is_preserved() {
        let mut r =
            ChatRequest::parse(br#"{"messages":[{"role":"user","content":"x"}],"zeta":1,"model":"a","alpha":2}"#)
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
    fn malformed_bodies() {
        assert_eq!(err("").code(), Some("invalid_json"));
        assert_eq!(err("{not json").code(), Some("invalid_json"));
        assert_eq!(err("[1,2]").code(), Some("invalid_json"));
        assert_eq!(
            ChatRequest::parse(b"{\"model\":\"\xff\"}").expect_err("utf8").code(),
            Some("invalid_json")
        );
    }
}
