//! Upstream error bodies → [`ProviderError`]s: what every provider's `decode_error` shares.
//!
//! - [`status_class`]: the class and retry flag an HTTP status alone implies;
//! - [`ErrorFields::parse`]: the fields of a JSON error body, in the shapes upstreams use;
//! - [`upstream_message`] / [`body_message`]: the message a client sees, cut to
//!   [`MAX_MESSAGE_BYTES`];
//! - [`mentions_context_length`]: the wording upstreams use for a prompt too long for the model;
//! - [`default_error`] / [`unreadable_error`]: the errors for bodies no provider can read.
//!
//! What is left to a provider is its own vocabulary: which `type` or `status` words mean what.
//! Error paths are cold, so bodies are read into a `serde_json::Value`, which tolerates every
//! shape with the least code.
//!
//! ```
//! use switchyard_plugin_api::sdk::errors::{ErrorFields, status_class, upstream_message, body_message};
//! use switchyard_plugin_api::sdk::{ErrorKind, ProviderError};
//!
//! fn decode_error(status: u16, body: &[u8]) -> ProviderError {
//!     let fields = ErrorFields::parse(body).unwrap_or_default();
//!     let (kind, retryable) = match fields.error_type.as_deref() {
//!         Some("quota_exceeded") => (ErrorKind::RateLimit, false),
//!         _ => status_class(status),
//!     };
//!     let message = upstream_message(fields.message.as_deref())
//!         .unwrap_or_else(|| body_message(Some(status), body));
//!     ProviderError::new(status, kind, message).retryable(retryable).with_default_type()
//! }
//!
//! let e = decode_error(429, br#"{"error":{"type":"quota_exceeded","message":"No credit left"}}"#);
//! assert_eq!((e.kind, e.retryable, e.message.as_str()), (ErrorKind::RateLimit, false, "No credit left"));
//! let e = decode_error(503, b"<html>busy</html>");
//! assert_eq!((e.kind, e.retryable), (ErrorKind::Server, true));
//! assert_eq!(e.message, "upstream answered HTTP 503: <html>busy</html>");
//! ```

use super::{ErrorKind, ProviderError};
use serde_json::{Map, Value};

/// The longest upstream text an error message carries to a client: upstream messages are
/// passed on as they are, and a runaway one (or an HTML error page) is cut here.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Classification by HTTP status alone: the error class and whether a retry may succeed.
pub fn status_class(status: u16) -> (ErrorKind, bool) {
    match status {
        429 => (ErrorKind::RateLimit, true),
        401 | 403 => (ErrorKind::Authentication, false),
        404 => (ErrorKind::NotFound, false),
        500 | 502 | 503 | 504 => (ErrorKind::Server, true),
        529 => (ErrorKind::Overloaded, true),
        400..=499 => (ErrorKind::InvalidRequest, false),
        _ => (ErrorKind::Server, false),
    }
}

/// The error a provider reports when it cannot read the upstream's error body: status-based
/// classification ([`status_class`]), the body's text as the message ([`body_message`]).
pub fn default_error(status: u16, body: &[u8]) -> ProviderError {
    let (kind, retryable) = status_class(status);
    ProviderError::new(status, kind, body_message(Some(status), body)).retryable(retryable)
}

/// An error object that arrived without an error status (a 200 body, a stream's error event)
/// and cannot be read: the upstream failed without saying how, a retryable bad gateway.
pub fn unreadable_error(body: &[u8]) -> ProviderError {
    ProviderError::new(502, ErrorKind::Server, body_message(None, body))
        .retryable(true)
        .with_default_type()
}

/// `upstream answered HTTP {status}: {body}` (`upstream reported an error: {body}` without a
/// status), the body's text trimmed and cut to [`MAX_MESSAGE_BYTES`]; no colon for an empty body.
pub fn body_message(status: Option<u16>, body: &[u8]) -> String {
    let head = match status {
        Some(status) => format!("upstream answered HTTP {status}"),
        None => "upstream reported an error".to_string(),
    };
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        head
    } else {
        format!("{head}: {}", truncate(text, MAX_MESSAGE_BYTES))
    }
}

/// The upstream's own message, cut to [`MAX_MESSAGE_BYTES`]; `None` when it has none worth
/// showing (absent or blank), so the caller can fall back to [`body_message`].
pub fn upstream_message(message: Option<&str>) -> Option<String> {
    message
        .filter(|m| !m.trim().is_empty())
        .map(|m| truncate(m, MAX_MESSAGE_BYTES).to_string())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether an upstream's message says the prompt is longer than the model's context: the
/// wordings of OpenAI and the servers that copy it, Anthropic and Gemini. Only meaningful for a
/// client error (4xx other than 429); the caller checks the status.
pub fn mentions_context_length(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    const PHRASES: [&str; 8] = [
        "context_length_exceeded",
        "maximum context",
        "context length",
        "context window",
        "exceed context limit",
        "prompt is too long",
        "token limit",
        "too many tokens",
    ];
    // Gemini: "The input token count (N) exceeds the maximum number of tokens allowed (M)."
    PHRASES.iter().any(|p| m.contains(p))
        || (m.contains("token") && (m.contains("exceeds the maximum") || m.contains("exceeds the limit")))
}

/// The fields of an upstream's JSON error body, wherever it put them. Read by
/// [`ErrorFields::parse`] from the shapes upstreams use:
///
/// - `{"error": {"message", "type", "code", "param", "status", "details"}}` (OpenAI, Anthropic
///   inside its `{"type": "error", …}` envelope, Google);
/// - the same wrapped in a one-element list (Google front ends, Gemini's OpenAI-compatible API);
/// - `{"error": "text", …}` (the message as a string, the other fields beside it);
/// - `{"message": …}` or `{"detail": …}` at the top (OpenAI's stream error data, vLLM, FastAPI).
///
/// Empty strings read as absent; a numeric `code` is kept both as text and as a number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub message: Option<String>,
    /// `type` (never the word `error`, which an envelope's `type` says of itself).
    pub error_type: Option<String>,
    /// `code` as text (a string, or a number written out).
    pub code: Option<String>,
    /// `code` when it is a number (OpenRouter, vLLM and Google put the HTTP status there).
    pub numeric_code: Option<u64>,
    pub param: Option<String>,
    /// `status` when it is a string: Google's google.rpc code name (`RESOURCE_EXHAUSTED`, …).
    pub status: Option<String>,
    /// `reason` of every `details` entry (Google's `ErrorInfo`: `API_KEY_INVALID`, …).
    pub reasons: Vec<String>,
}

impl ErrorFields {
    /// The fields of `body`; `None` when it is not JSON or has none of the shapes above.
    pub fn parse(body: &[u8]) -> Option<ErrorFields> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let value = match value {
            Value::Array(items) => items.into_iter().next()?,
            other => other,
        };
        let top = value.as_object()?;
        let mut fields = match top.get("error") {
            Some(Value::Object(inner)) => ErrorFields::read(inner),
            Some(Value::String(message)) => ErrorFields {
                message: Some(message.clone()).filter(|m| !m.is_empty()),
                ..ErrorFields::read(top)
            },
            _ if top.contains_key("message") || top.contains_key("detail") => ErrorFields::read(top),
            _ => return None,
        };
        if fields.message.is_none() {
            fields.message = text(top.get("detail"));
        }
        Some(fields)
    }

    fn read(object: &Map<String, Value>) -> ErrorFields {
        let code = object.get("code");
        ErrorFields {
            message: text(object.get("message")),
            error_type: text(object.get("type")).filter(|t| t != "error"),
            code: text(code),
            numeric_code: code.and_then(Value::as_u64),
            param: text(object.get("param")),
            status: object.get("status").and_then(Value::as_str).map(str::to_string),
            reasons: object
                .get("details")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|d| d.get("reason").and_then(Value::as_str).map(str::to_string))
                .collect(),
        }
    }
}

/// A string field, or a number written as text (`code` is sometimes numeric).
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("hi", 10), "hi");
        let long = "é".repeat(5000);
        assert!(upstream_message(Some(&long)).is_some_and(|m| m.len() <= MAX_MESSAGE_BYTES));
        assert!(body_message(Some(500), long.as_bytes()).len() <= MAX_MESSAGE_BYTES + 30);
        assert_eq!(upstream_message(Some("  ")), None);
        assert_eq!(upstream_message(None), None);
        assert_eq!(body_message(Some(502), b" \n"), "upstream answered HTTP 502");
        assert_eq!(body_message(None, b"boom"), "upstream reported an error: boom");
    }

    #[test]
    fn default_and_unreadable_errors() {
        let e = default_error(503, b"<html>Service Unavailable</html>");
        assert_eq!((e.status, e.kind, e.retryable), (503, ErrorKind::Server, true));
        assert_eq!(
            e.message,
            "upstream answered HTTP 503: <html>Service Unavailable</html>"
        );
        assert_eq!(e.error_type, None);
        let e = unreadable_error(b"not json");
        assert_eq!((e.status, e.kind, e.retryable), (502, ErrorKind::Server, true));
        assert_eq!(e.error_type.as_deref(), Some("server_error"));
        assert_eq!(e.message, "upstream reported an error: not json");
    }

    #[test]
    fn every_shape_is_read() {
        let parse = |body: &str| ErrorFields::parse(body.as_bytes());
        let openai = parse(
            r#"{"error":{"message":"Bad","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        )
        .expect("openai");
        assert_eq!(openai.message.as_deref(), Some("Bad"));
        assert_eq!(openai.error_type.as_deref(), Some("invalid_request_error"));
        assert_eq!(openai.param.as_deref(), Some("messages"));
        assert_eq!(openai.code.as_deref(), Some("context_length_exceeded"));

        let anthropic =
            parse(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#).expect("anthropic");
        assert_eq!(anthropic.error_type.as_deref(), Some("overloaded_error"));

        let google = parse(
            r#"[{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT",
                "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}]"#,
        )
        .expect("google");
        assert_eq!((google.numeric_code, google.code.as_deref()), (Some(400), Some("400")));
        assert_eq!(google.status.as_deref(), Some("INVALID_ARGUMENT"));
        assert_eq!(google.reasons, ["API_KEY_INVALID"]);

        let string = parse(r#"{"error":"model is required","code":"missing"}"#).expect("string");
        assert_eq!(string.message.as_deref(), Some("model is required"));
        assert_eq!(string.code.as_deref(), Some("missing"));
        let top = parse(r#"{"type":"error","message":"Overloaded"}"#).expect("top-level message");
        assert_eq!((top.message.as_deref(), top.error_type), (Some("Overloaded"), None));
        let detail = parse(r#"{"detail":"Field required"}"#).expect("detail");
        assert_eq!(detail.message.as_deref(), Some("Field required"));
        let empty = parse(r#"{"error":{"message":"","type":""}}"#).expect("empty fields");
        assert_eq!(empty, ErrorFields::default());

        for other in ["", "not json", "[]", "5", r#"{"choices":[]}"#, r#"{"error":5}"#] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn context_length_wordings() {
        for message in [
            "This model's maximum context length is 128000 tokens.",
            "prompt is too long: 210000 tokens > 200000 maximum",
            "input length and `max_tokens` exceed context limit",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            "Error code: context_length_exceeded",
        ] {
            assert!(mentions_context_length(message), "{message}");
        }
        for message in [
            "Invalid value at 'contents[0].role'",
            "max_tokens: must be at least 1",
            "Rate limit reached for requests",
        ] {
            assert!(!mentions_context_length(message), "{message}");
        }
    }
}
