//! OpenAI error bodies → the unified error, classified so the host knows whether to retry,
//! fall back, or answer the client as is.
//!
//! The SDK reads the many shapes OpenAI-compatible servers use (`{"error":{..}}`,
//! `{"error":"text"}`, `{"message":..}`, `{"detail":..}`, a list around the object); what is
//! OpenAI's own here is what its `type` and `code` words mean.

use switchyard_plugin_api::sdk::errors::{
    ErrorFields, body_message, default_error, mentions_context_length, status_class, unreadable_error, upstream_message,
};
use switchyard_plugin_api::sdk::{ErrorKind, ProviderError};

/// A non-2xx upstream answer.
pub(crate) fn from_status(status: u16, body: &[u8]) -> ProviderError {
    match ErrorFields::parse(body) {
        Some(fields) => into_error(fields, status, body),
        None => default_error(status, body).with_default_type(),
    }
}

/// An error object that arrived with HTTP 200: in a response body or as a stream event.
/// No status says what went wrong, so the object's own `code` and `type` decide.
pub(crate) fn embedded(body: &[u8]) -> ProviderError {
    match ErrorFields::parse(body) {
        Some(fields) => {
            let status = implied_status(&fields);
            into_error(fields, status, body)
        }
        None => unreadable_error(body),
    }
}

/// The HTTP status an embedded error stands for.
fn implied_status(fields: &ErrorFields) -> u16 {
    if let Some(status) = fields.numeric_code.and_then(|c| u16::try_from(c).ok())
        && (400..=599).contains(&status)
    {
        return status;
    }
    if is_content_filter(fields) || is_context_length(fields) {
        return 400;
    }
    match (lower(&fields.error_type).as_str(), lower(&fields.code).as_str()) {
        (_, "insufficient_quota" | "rate_limit_exceeded") => 429,
        ("invalid_request_error", _) => 400,
        ("authentication_error", _) => 401,
        ("permission_error", _) => 403,
        ("not_found_error", _) => 404,
        ("rate_limit_error" | "insufficient_quota" | "tokens" | "requests", _) => 429,
        ("overloaded_error", _) => 529,
        ("server_error" | "api_error", _) => 500,
        // The upstream failed without saying how: treat it as a bad gateway.
        _ => 502,
    }
}

fn is_content_filter(fields: &ErrorFields) -> bool {
    let code = lower(&fields.code);
    let kind = lower(&fields.error_type);
    matches!(code.as_str(), "content_filter" | "content_policy_violation")
        || kind.contains("content_filter")
        || kind.contains("content filter")
        || kind.contains("content_policy")
}

fn is_context_length(fields: &ErrorFields) -> bool {
    lower(&fields.code) == "context_length_exceeded" || fields.message.as_deref().is_some_and(mentions_context_length)
}

fn is_insufficient_quota(fields: &ErrorFields) -> bool {
    lower(&fields.code) == "insufficient_quota" || lower(&fields.error_type) == "insufficient_quota"
}

fn classify(fields: &ErrorFields, status: u16) -> (ErrorKind, bool) {
    // A refusal fails the same way on every retry, whatever status the server chose;
    // so does a prompt too long for the model once the server calls it a client error.
    if is_content_filter(fields) {
        return (ErrorKind::ContentFilter, false);
    }
    if (400..=499).contains(&status) && status != 429 && is_context_length(fields) {
        return (ErrorKind::ContextLength, false);
    }
    if is_insufficient_quota(fields) {
        // An exhausted balance stays exhausted: rate-limit class, but never retried.
        return (ErrorKind::RateLimit, false);
    }
    status_class(status)
}

fn into_error(fields: ErrorFields, status: u16, body: &[u8]) -> ProviderError {
    let (kind, retryable) = classify(&fields, status);
    let message = upstream_message(fields.message.as_deref()).unwrap_or_else(|| body_message(Some(status), body));
    let mut error = ProviderError::new(status, kind, message).retryable(retryable);
    error.error_type = fields.error_type;
    error.code = fields.code;
    error.param = fields.param;
    error.with_default_type()
}

fn lower(field: &Option<String>) -> String {
    field.as_deref().unwrap_or_default().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai(message: &str, kind: &str, code: Option<&str>, param: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error": {"message": message, "type": kind, "code": code, "param": param}
        }))
        .expect("json")
    }

    #[track_caller]
    fn check(e: &ProviderError, status: u16, kind: ErrorKind, retryable: bool) {
        assert_eq!((e.status, e.kind, e.retryable), (status, kind, retryable), "{e:?}");
    }

    #[test]
    fn rate_limits_retry_but_exhausted_quota_does_not() {
        let body = openai(
            "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM).",
            "tokens",
            Some("rate_limit_exceeded"),
            None,
        );
        let e = from_status(429, &body);
        check(&e, 429, ErrorKind::RateLimit, true);
        assert_eq!(e.error_type.as_deref(), Some("tokens"));
        assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
        assert!(e.message.starts_with("Rate limit reached"));

        let body = openai(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            Some("insufficient_quota"),
            None,
        );
        check(&from_status(429, &body), 429, ErrorKind::RateLimit, false);
    }

    #[test]
    fn context_length_is_recognised_by_code_or_message() {
        let body = openai(
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens.",
            "invalid_request_error",
            Some("context_length_exceeded"),
            Some("messages"),
        );
        let e = from_status(400, &body);
        check(&e, 400, ErrorKind::ContextLength, false);
        assert_eq!(e.param.as_deref(), Some("messages"));
        // vLLM: no code, only the message (and a numeric code).
        let body = br#"{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}"#;
        let e = from_status(400, body);
        check(&e, 400, ErrorKind::ContextLength, false);
        assert_eq!(e.code.as_deref(), Some("400"));
    }

    #[test]
    fn content_filter_is_final() {
        let azure = br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400}}"#;
        let e = from_status(400, azure);
        check(&e, 400, ErrorKind::ContentFilter, false);
        assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));
        let policy = openai(
            "Your request was rejected by the safety system.",
            "invalid_request_error",
            Some("content_policy_violation"),
            None,
        );
        check(&from_status(400, &policy), 400, ErrorKind::ContentFilter, false);
    }

    #[test]
    fn status_classes() {
        let auth = openai(
            "Incorrect API key provided: sk-abc***.",
            "invalid_request_error",
            Some("invalid_api_key"),
            None,
        );
        check(&from_status(401, &auth), 401, ErrorKind::Authentication, false);
        check(
            &from_status(403, b"{\"error\":\"forbidden\"}"),
            403,
            ErrorKind::Authentication,
            false,
        );
        let missing = openai(
            "The model `gpt-9` does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
            None,
        );
        let e = from_status(404, &missing);
        check(&e, 404, ErrorKind::NotFound, false);
        assert_eq!(e.code.as_deref(), Some("model_not_found"));
        for status in [500, 502, 503, 504] {
            let server = openai(
                "The server had an error while processing your request.",
                "server_error",
                None,
                None,
            );
            check(&from_status(status, &server), status, ErrorKind::Server, true);
        }
        check(
            &from_status(529, b"{\"message\":\"overloaded\"}"),
            529,
            ErrorKind::Overloaded,
            true,
        );
        let bad = openai(
            "Invalid type for 'temperature'.",
            "invalid_request_error",
            Some("invalid_type"),
            Some("temperature"),
        );
        check(&from_status(422, &bad), 422, ErrorKind::InvalidRequest, false);
    }

    #[test]
    fn other_shapes_and_non_json_bodies() {
        let e = from_status(400, br#"{"error":"model is required"}"#);
        assert_eq!(e.message, "model is required");
        let e = from_status(422, br#"{"detail":"Field required"}"#);
        assert_eq!(e.message, "Field required");
        let e = from_status(
            429,
            br#"[{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}]"#,
        );
        check(&e, 429, ErrorKind::RateLimit, true);
        assert_eq!(e.message, "Resource exhausted");
        let e = from_status(502, b"<html>Bad Gateway</html>");
        check(&e, 502, ErrorKind::Server, true);
        assert!(e.message.contains("Bad Gateway"), "{}", e.message);
        assert_eq!(e.error_type.as_deref(), Some("server_error"));
        let e = from_status(500, br#"{"error":{"message":""}}"#);
        assert!(e.message.starts_with("upstream answered HTTP 500"), "{}", e.message);
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(5000));
        let max = switchyard_plugin_api::sdk::errors::MAX_MESSAGE_BYTES;
        assert!(from_status(400, long.as_bytes()).message.len() <= max);
    }

    #[test]
    fn embedded_errors_imply_a_status() {
        let e = embedded(
            br#"{"error":{"message":"The server is overloaded","type":"server_error","param":null,"code":null}}"#,
        );
        check(&e, 500, ErrorKind::Server, true);
        let e = embedded(br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        check(&e, 529, ErrorKind::Overloaded, true);
        let e = embedded(br#"{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min."}}"#);
        check(&e, 429, ErrorKind::RateLimit, true);
        let e = embedded(br#"{"error":{"message":"blocked","code":"content_filter"}}"#);
        check(&e, 400, ErrorKind::ContentFilter, false);
        let e = embedded(br#"{"error":{"message":"something broke"}}"#);
        check(&e, 502, ErrorKind::Server, true);
        let e = embedded(b"upstream went away");
        check(&e, 502, ErrorKind::Server, true);
        assert_eq!(e.message, "upstream reported an error: upstream went away");
    }
}
