//! Gemini errors → unified errors the host can route on: retry, fall back, or answer as is.
//!
//! Google APIs answer failures with `{"error": {"code", "message", "status", "details"}}`
//! (sometimes wrapped in a one-element list), which the SDK reads; `status` is the google.rpc
//! code name, and what it means is this module's.
//!
//! | HTTP / `status` | kind | retried |
//! |---|---|---|
//! | 429 `RESOURCE_EXHAUSTED` | rate limit | yes |
//! | 400 `INVALID_ARGUMENT`, token-limit wording | context length | no (a fallback may take it) |
//! | 400 `INVALID_ARGUMENT`, `API_KEY_INVALID` | authentication (reported as 401) | no |
//! | 400 `INVALID_ARGUMENT` / `FAILED_PRECONDITION` | invalid request | no |
//! | 401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED` | authentication | no |
//! | 404 `NOT_FOUND` | not found | no |
//! | 500 `INTERNAL`, 504 `DEADLINE_EXCEEDED` | server | yes |
//! | 503 `UNAVAILABLE` | overloaded | yes |
//! | a prompt blocked by safety (`promptFeedback.blockReason`) | content filter, 400 | no |

use crate::gemini::PromptFeedback;
use switchyard_plugin_api::sdk::errors::{self, ErrorFields, body_message, mentions_context_length, upstream_message};
use switchyard_plugin_api::sdk::{ErrorKind, ProviderError};

/// A non-2xx upstream answer.
pub(crate) fn from_status(status: u16, body: &[u8]) -> ProviderError {
    let fields = ErrorFields::parse(body).unwrap_or_default();
    into_error(&fields, status, body)
}

/// An error object that arrived with HTTP 200: a response body or a stream event. Its own
/// `code` (or `status`) says what went wrong.
pub(crate) fn embedded(body: &[u8]) -> ProviderError {
    let fields = ErrorFields::parse(body).unwrap_or_default();
    into_error(&fields, implied_status(&fields), body)
}

/// The prompt was refused before any candidate was generated. A refusal fails the same way on
/// every retry and every fallback (routing around a safety decision is not the gateway's to
/// do), so it is a final 400 with code `content_filter`, not an empty success.
pub(crate) fn prompt_blocked(feedback: &PromptFeedback<'_>) -> ProviderError {
    let reason = feedback.block_reason.as_deref().unwrap_or("BLOCK_REASON_UNSPECIFIED");
    let mut message = format!("Gemini blocked the prompt (blockReason {reason})");
    let blocked: Vec<String> = feedback
        .safety_ratings
        .iter()
        .flatten()
        .filter(|r| r.blocked == Some(true))
        .filter_map(|r| {
            let category = r.category.as_deref()?;
            Some(match r.probability.as_deref() {
                Some(p) => format!("{category} ({p})"),
                None => category.to_string(),
            })
        })
        .collect();
    if !blocked.is_empty() {
        message.push_str(": ");
        message.push_str(&blocked.join(", "));
    }
    // The reason and categories are the upstream's words, of any length: cut like any
    // upstream message (found by the fuzzer: a 4 KB blockReason).
    let message = errors::truncate(&message, errors::MAX_MESSAGE_BYTES);
    ProviderError::new(400, ErrorKind::ContentFilter, message)
        .with_type("invalid_request_error")
        .with_code("content_filter")
        .with_param("messages")
}

fn status_word(fields: &ErrorFields) -> &str {
    fields.status.as_deref().unwrap_or_default()
}

/// The HTTP status an error without one (an embedded error) stands for.
fn implied_status(fields: &ErrorFields) -> u16 {
    if let Some(code) = fields
        .numeric_code
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..=599).contains(c))
    {
        return code;
    }
    match status_word(fields) {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "RESOURCE_EXHAUSTED" => 429,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        // The upstream failed without saying how: a bad gateway.
        _ => 502,
    }
}

fn is_api_key_invalid(fields: &ErrorFields) -> bool {
    fields.reasons.iter().any(|r| r == "API_KEY_INVALID")
        || fields.message.as_deref().is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            m.contains("api key not valid") || m.contains("api key expired")
        })
}

/// Kind, retryable, and the status to report (only an invalid key changes it).
fn classify(fields: &ErrorFields, status: u16) -> (ErrorKind, bool, u16) {
    if (400..500).contains(&status) && status != 429 {
        if is_api_key_invalid(fields) {
            // Google answers 400 for a bad key; it is the gateway's configuration, not the
            // client's request, that is wrong — say so the way OpenAI clients expect.
            return (ErrorKind::Authentication, false, 401);
        }
        if fields.message.as_deref().is_some_and(mentions_context_length) {
            return (ErrorKind::ContextLength, false, status);
        }
    }
    let by_word = match status_word(fields) {
        "RESOURCE_EXHAUSTED" => Some((ErrorKind::RateLimit, true)),
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => Some((ErrorKind::Authentication, false)),
        "NOT_FOUND" => Some((ErrorKind::NotFound, false)),
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => Some((ErrorKind::InvalidRequest, false)),
        "UNAVAILABLE" => Some((ErrorKind::Overloaded, true)),
        "INTERNAL" | "DEADLINE_EXCEEDED" | "UNKNOWN" => Some((ErrorKind::Server, true)),
        _ => None,
    };
    // The HTTP status decides when it is a server failure: a retry is always worth it then.
    let (kind, retryable) = match (by_word, status) {
        (Some((kind, _)), 500..=599) if kind != ErrorKind::Overloaded => (ErrorKind::Server, true),
        (Some(found), _) => found,
        (None, _) => status_class(status),
    };
    (kind, retryable, status)
}

fn into_error(fields: &ErrorFields, status: u16, body: &[u8]) -> ProviderError {
    let (kind, retryable, status) = classify(fields, status);
    let code = match kind {
        ErrorKind::ContextLength => Some("context_length_exceeded".to_string()),
        ErrorKind::Authentication if is_api_key_invalid(fields) => Some("invalid_api_key".to_string()),
        _ => fields.status.as_deref().map(str::to_ascii_lowercase),
    };
    let message = upstream_message(fields.message.as_deref()).unwrap_or_else(|| body_message(Some(status), body));
    let mut error = ProviderError::new(status, kind, message)
        .retryable(retryable)
        .with_type(kind.openai_type());
    error.code = code;
    error
}

/// Classification by HTTP status alone: the SDK's, except that Google answers 503 for an
/// overloaded model (and has no 529).
fn status_class(status: u16) -> (ErrorKind, bool) {
    match status {
        503 => (ErrorKind::Overloaded, true),
        _ => errors::status_class(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google(code: u16, status: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error": {"code": code, "message": message, "status": status}
        }))
        .expect("json")
    }

    #[track_caller]
    fn check(e: &ProviderError, status: u16, kind: ErrorKind, retryable: bool) {
        assert_eq!((e.status, e.kind, e.retryable), (status, kind, retryable), "{e:?}");
    }

    #[test]
    fn rate_limits_and_server_failures_retry() {
        let e = from_status(
            429,
            &google(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
            ),
        );
        check(&e, 429, ErrorKind::RateLimit, true);
        assert_eq!(e.error_type.as_deref(), Some("rate_limit_error"));
        assert_eq!(e.code.as_deref(), Some("resource_exhausted"));
        check(
            &from_status(500, &google(500, "INTERNAL", "An internal error has occurred.")),
            500,
            ErrorKind::Server,
            true,
        );
        check(
            &from_status(
                503,
                &google(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
            ),
            503,
            ErrorKind::Overloaded,
            true,
        );
        check(
            &from_status(
                504,
                &google(
                    504,
                    "DEADLINE_EXCEEDED",
                    "Deadline expired before operation could complete.",
                ),
            ),
            504,
            ErrorKind::Server,
            true,
        );
    }

    #[test]
    fn client_errors_are_final() {
        let e = from_status(
            400,
            &google(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ),
        );
        check(&e, 400, ErrorKind::ContextLength, false);
        assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));

        let e = from_status(
            400,
            &google(400, "INVALID_ARGUMENT", "Invalid value at 'contents[0].role'"),
        );
        check(&e, 400, ErrorKind::InvalidRequest, false);
        assert_eq!(e.code.as_deref(), Some("invalid_argument"));

        let bad_key = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        let e = from_status(400, bad_key);
        check(&e, 401, ErrorKind::Authentication, false);
        assert_eq!(e.code.as_deref(), Some("invalid_api_key"));

        let e = from_status(
            403,
            &google(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
        );
        check(&e, 403, ErrorKind::Authentication, false);
        check(
            &from_status(
                401,
                &google(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials.",
                ),
            ),
            401,
            ErrorKind::Authentication,
            false,
        );
        let e = from_status(
            404,
            &google(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta."),
        );
        check(&e, 404, ErrorKind::NotFound, false);
        assert_eq!(e.error_type.as_deref(), Some("not_found_error"));
        check(
            &from_status(
                400,
                &google(
                    400,
                    "FAILED_PRECONDITION",
                    "User location is not supported for the API use.",
                ),
            ),
            400,
            ErrorKind::InvalidRequest,
            false,
        );
    }

    #[test]
    fn list_bodies_and_non_json() {
        let e = from_status(
            503,
            br#"[{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}]"#,
        );
        check(&e, 503, ErrorKind::Overloaded, true);
        assert_eq!(e.message, "The service is currently unavailable.");
        let e = from_status(502, b"<html>Bad Gateway</html>");
        check(&e, 502, ErrorKind::Server, true);
        assert!(e.message.contains("Bad Gateway"), "{}", e.message);
        let e = from_status(500, br#"{"error":{"message":"  "}}"#);
        assert!(e.message.starts_with("upstream answered HTTP 500"), "{}", e.message);
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(5000));
        assert!(
            from_status(400, long.as_bytes()).message.len() <= switchyard_plugin_api::sdk::errors::MAX_MESSAGE_BYTES
        );
    }

    #[test]
    fn embedded_errors_imply_a_status() {
        let e = embedded(&google(500, "INTERNAL", "An internal error has occurred."));
        check(&e, 500, ErrorKind::Server, true);
        let e = embedded(br#"{"error":{"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#);
        check(&e, 429, ErrorKind::RateLimit, true);
        let e = embedded(br#"{"error":{"message":"something broke"}}"#);
        check(&e, 502, ErrorKind::Server, true);
    }

    #[test]
    fn blocked_prompts_name_the_reason() {
        let body = br#"{"blockReason":"SAFETY","safetyRatings":[
            {"category":"HARM_CATEGORY_HARASSMENT","probability":"HIGH","blocked":true},
            {"category":"HARM_CATEGORY_HATE_SPEECH","probability":"NEGLIGIBLE"}]}"#;
        let feedback: PromptFeedback<'_> = serde_json::from_slice(body).expect("feedback");
        let e = prompt_blocked(&feedback);
        check(&e, 400, ErrorKind::ContentFilter, false);
        assert_eq!(
            e.message,
            "Gemini blocked the prompt (blockReason SAFETY): HARM_CATEGORY_HARASSMENT (HIGH)"
        );
        assert_eq!(e.code.as_deref(), Some("content_filter"));
    }
}
