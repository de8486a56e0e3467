//! Anthropic error bodies (`{"type":"error","error":{"type","message"}}`) → the unified error,
//! classified so the host knows whether to retry, fall back, or answer the client as is.
//!
//! | Anthropic `error.type` | HTTP | kind | retried | OpenAI `type` | `code` |
//! |---|---|---|---|---|---|
//! | `invalid_request_error` (prompt too long) | 400 | context length | no (fallback) | `invalid_request_error` | `context_length_exceeded` |
//! | `invalid_request_error` | 400 | invalid request | no | `invalid_request_error` | `invalid_request_error` |
//! | `authentication_error` | 401 | authentication | no | `authentication_error` | same |
//! | `billing_error` | 402 | rate limit | no (fallback) | `insufficient_quota` | same |
//! | `permission_error` | 403 | authentication | no | `permission_error` | same |
//! | `not_found_error` | 404 | not found | no | `not_found_error` | same |
//! | `request_too_large` | 413 | invalid request | no | `invalid_request_error` | same |
//! | `rate_limit_error` | 429 | rate limit | yes | `rate_limit_error` | same |
//! | `api_error` | 500 | server | yes | `server_error` | same |
//! | `timeout_error` | 504 | server | yes | `server_error` | same |
//! | `overloaded_error` | 529 | overloaded | yes | `server_error` | same |
//!
//! The SDK reads the body's fields; what is Anthropic's own here is what its `type` words mean.

use switchyard_plugin_api::sdk::errors::{
    ErrorFields, default_error, mentions_context_length, status_class, unreadable_error, upstream_message,
};
use switchyard_plugin_api::sdk::{ErrorKind, ProviderError};

/// A non-2xx upstream answer.
pub(crate) fn from_status(status: u16, body: &[u8]) -> ProviderError {
    match ErrorFields::parse(body) {
        Some(fields) => into_error(fields, Some(status)),
        None => default_error(status, body).with_default_type(),
    }
}

/// An error that arrived without an error status: a 200 body or a stream `error` event. Its
/// `error.type` says what the status would have been.
pub(crate) fn embedded(body: &[u8]) -> ProviderError {
    match ErrorFields::parse(body) {
        Some(fields) => into_error(fields, None),
        None => unreadable_error(body),
    }
}

/// `status` is the HTTP status when there was one; embedded errors get the one their type
/// stands for.
fn into_error(fields: ErrorFields, status: Option<u16>) -> ProviderError {
    let known = fields.error_type.as_deref().and_then(class_of);
    let (status, kind, retryable, openai_type) = match (known, status) {
        (Some(class), status) => (
            status.unwrap_or(class.status),
            class.kind,
            class.retryable,
            class.openai_type,
        ),
        (None, Some(status)) => {
            let (kind, retryable) = status_class(status);
            (status, kind, retryable, kind.openai_type())
        }
        (None, None) => (500, ErrorKind::Server, true, "server_error"),
    };
    let context_length = kind == ErrorKind::InvalidRequest
        && (400..=499).contains(&status)
        && fields.message.as_deref().is_some_and(mentions_context_length);
    let (kind, code) = if context_length {
        (ErrorKind::ContextLength, Some("context_length_exceeded".to_string()))
    } else {
        (kind, fields.error_type.clone())
    };
    let message = upstream_message(fields.message.as_deref()).unwrap_or_else(|| match &fields.error_type {
        // The type is the upstream's word, of any length: bounded like a message.
        Some(t) => format!(
            "upstream answered HTTP {status} ({})",
            switchyard_plugin_api::sdk::errors::truncate(t, 256)
        ),
        None => format!("upstream answered HTTP {status}"),
    });
    let mut error = ProviderError::new(status, kind, message)
        .retryable(retryable)
        .with_type(openai_type);
    error.code = code;
    error
}

struct Class {
    status: u16,
    kind: ErrorKind,
    retryable: bool,
    openai_type: &'static str,
}

const fn class(status: u16, kind: ErrorKind, retryable: bool, openai_type: &'static str) -> Class {
    Class {
        status,
        kind,
        retryable,
        openai_type,
    }
}

fn class_of(error_type: &str) -> Option<Class> {
    Some(match error_type {
        "invalid_request_error" => class(400, ErrorKind::InvalidRequest, false, "invalid_request_error"),
        "authentication_error" => class(401, ErrorKind::Authentication, false, "authentication_error"),
        // An empty balance stays empty: rate-limit class (another provider may serve), never retried.
        "billing_error" => class(402, ErrorKind::RateLimit, false, "insufficient_quota"),
        "permission_error" => class(403, ErrorKind::Authentication, false, "permission_error"),
        "not_found_error" => class(404, ErrorKind::NotFound, false, "not_found_error"),
        "request_too_large" => class(413, ErrorKind::InvalidRequest, false, "invalid_request_error"),
        "rate_limit_error" => class(429, ErrorKind::RateLimit, true, "rate_limit_error"),
        "api_error" => class(500, ErrorKind::Server, true, "server_error"),
        "timeout_error" => class(504, ErrorKind::Server, true, "server_error"),
        "overloaded_error" => class(529, ErrorKind::Overloaded, true, "server_error"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anthropic(kind: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"
        }))
        .expect("json")
    }

    #[track_caller]
    fn check(e: &ProviderError, status: u16, kind: ErrorKind, retryable: bool, openai_type: &str, code: &str) {
        assert_eq!(
            (
                e.status,
                e.kind,
                e.retryable,
                e.error_type.as_deref(),
                e.code.as_deref()
            ),
            (status, kind, retryable, Some(openai_type), Some(code)),
            "{e:?}"
        );
    }

    #[test]
    fn every_documented_error_type() {
        let cases = [
            (
                400,
                "invalid_request_error",
                ErrorKind::InvalidRequest,
                false,
                "invalid_request_error",
            ),
            (
                401,
                "authentication_error",
                ErrorKind::Authentication,
                false,
                "authentication_error",
            ),
            (402, "billing_error", ErrorKind::RateLimit, false, "insufficient_quota"),
            (
                403,
                "permission_error",
                ErrorKind::Authentication,
                false,
                "permission_error",
            ),
            (404, "not_found_error", ErrorKind::NotFound, false, "not_found_error"),
            (
                413,
                "request_too_large",
                ErrorKind::InvalidRequest,
                false,
                "invalid_request_error",
            ),
            (429, "rate_limit_error", ErrorKind::RateLimit, true, "rate_limit_error"),
            (500, "api_error", ErrorKind::Server, true, "server_error"),
            (504, "timeout_error", ErrorKind::Server, true, "server_error"),
            (529, "overloaded_error", ErrorKind::Overloaded, true, "server_error"),
        ];
        for (status, kind_word, kind, retryable, openai_type) in cases {
            let body = anthropic(kind_word, "something happened");
            let e = from_status(status, &body);
            check(&e, status, kind, retryable, openai_type, kind_word);
            assert_eq!(e.message, "something happened");
            // The same body without a status (a stream error event) implies the status.
            check(&embedded(&body), status, kind, retryable, openai_type, kind_word);
        }
    }

    #[test]
    fn prompt_too_long_is_a_context_length_error() {
        let body = anthropic(
            "invalid_request_error",
            "prompt is too long: 210345 tokens > 200000 maximum",
        );
        let e = from_status(400, &body);
        check(
            &e,
            400,
            ErrorKind::ContextLength,
            false,
            "invalid_request_error",
            "context_length_exceeded",
        );
        let body = anthropic(
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000, decrease input length or `max_tokens` and try again",
        );
        assert_eq!(from_status(400, &body).kind, ErrorKind::ContextLength);
        let body = anthropic("invalid_request_error", "messages: roles must alternate");
        assert_eq!(from_status(400, &body).kind, ErrorKind::InvalidRequest);
    }

    #[test]
    fn unknown_types_and_foreign_bodies_fall_back_to_the_status() {
        let e = from_status(503, &anthropic("brand_new_error", "later"));
        check(&e, 503, ErrorKind::Server, true, "server_error", "brand_new_error");
        let e = from_status(502, b"<html>bad gateway</html>");
        assert_eq!((e.status, e.kind, e.retryable), (502, ErrorKind::Server, true));
        assert_eq!(e.error_type.as_deref(), Some("server_error"));
        assert!(e.message.contains("bad gateway"), "{}", e.message);
        let e = from_status(429, br#"{"error":"slow down"}"#);
        assert_eq!(
            (e.kind, e.retryable, e.message.as_str()),
            (ErrorKind::RateLimit, true, "slow down")
        );
        let e = from_status(401, br#"{"type":"error","error":{"type":"authentication_error"}}"#);
        assert_eq!(e.message, "upstream answered HTTP 401 (authentication_error)");
        let e = embedded(b"not json");
        assert_eq!((e.status, e.kind, e.retryable), (502, ErrorKind::Server, true));
        let long = anthropic("api_error", &"x".repeat(10_000));
        assert!(from_status(500, &long).message.len() <= switchyard_plugin_api::sdk::errors::MAX_MESSAGE_BYTES);
    }
}
