//! Building responses: the OpenAI error body with `extra_fields`, request ids, and the
//! client headers that may go upstream.

use super::error::ClientError;
use crate::pipeline::AttemptSummary;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

/// Built once: a header name from a `&str` is parsed (and validated) on every use.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's `x-request-id` if it is sane (visible ASCII, ≤ 128 bytes), else a new one.
pub fn request_id(req: &HttpRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(new_request_id)
}

pub fn with_request_id(resp: &mut actix_web::HttpResponseBuilder, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.insert_header((REQUEST_ID.clone(), v));
    }
}

/// A 200 JSON answer with the request's id.
pub fn ok_json(req: &HttpRequest, body: serde_json::Value) -> HttpResponse {
    let mut resp = HttpResponse::Ok();
    with_request_id(&mut resp, &request_id(req));
    resp.json(body)
}

/// 128 random bits as 32 lowercase hex digits (written directly: `format!` costs more than
/// the rest of the request's header handling).
fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = fastrand::u128(..);
    (0..32)
        .rev()
        .map(|i| char::from(HEX[((bits >> (i * 4)) & 0xf) as usize]))
        .collect()
}

/// The client's `x-bf-eh-*` headers that may go upstream (each provider's allowlist decides
/// at send time; see [`crate::upstream::forward`]).
pub fn forwarded_headers(req: &HttpRequest) -> Vec<(http::header::HeaderName, http::header::HeaderValue)> {
    crate::upstream::forward::client_extra_headers(
        req.headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    )
}

#[derive(Serialize)]
struct ErrorExtra<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    request_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_requested: Option<&'a str>,
    latency: u64,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    attempts: &'a [AttemptSummary],
}

pub struct ErrorDetails<'a> {
    pub request_type: Option<&'static str>,
    pub provider: Option<&'a str>,
    pub model_requested: Option<&'a str>,
    pub latency_ms: u64,
    pub attempts: &'a [AttemptSummary],
}

impl ErrorDetails<'_> {
    pub fn none() -> ErrorDetails<'static> {
        ErrorDetails {
            request_type: None,
            provider: None,
            model_requested: None,
            latency_ms: 0,
            attempts: &[],
        }
    }
}

pub fn error_response(err: &dyn ClientError, request_id: &str, details: &ErrorDetails<'_>) -> HttpResponse {
    let body = serde_json::json!({
        "error": err.error_object(),
        "extra_fields": ErrorExtra {
            request_type: details.request_type,
            provider: details.provider,
            model_requested: details.model_requested,
            latency: details.latency_ms,
            attempts: details.attempts,
        },
    });
    let mut resp = HttpResponse::build(err.status());
    resp.content_type("application/json");
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.insert_header((REQUEST_ID.clone(), v));
    }
    if let Some(secs) = err.retry_after() {
        resp.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    resp.body(body.to_string())
}

/// A hook's refusal, as the hook wrote it: its status, its error body and its headers (a
/// header that is not valid HTTP is skipped), plus the request id.
pub fn hook_rejection(rejection: &switchyard_plugin_api::host::Rejection, request_id: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(rejection.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = HttpResponse::build(status);
    resp.content_type("application/json");
    for (name, value) in &rejection.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            resp.insert_header((n, v));
        }
    }
    with_request_id(&mut resp, request_id);
    resp.body(rejection.body.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn new_request_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (super::new_request_id(), super::new_request_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
