//! Errors of the HTTP layer itself (admission and admin access), beside the request errors
//! of [`GatewayError`], and what any error must give to become an OpenAI error body.

use crate::error::GatewayError;
use actix_web::http::StatusCode;

/// What an error response needs of an error.
pub trait ClientError {
    fn status(&self) -> StatusCode;
    /// The OpenAI error object (`{"message","type","code","param"}`).
    fn error_object(&self) -> serde_json::Value;
    /// `Retry-After` seconds to send, if any.
    fn retry_after(&self) -> Option<u64>;
}

impl ClientError for GatewayError {
    fn status(&self) -> StatusCode {
        GatewayError::status(self)
    }
    fn error_object(&self) -> serde_json::Value {
        self.to_error_object()
    }
    fn retry_after(&self) -> Option<u64> {
        GatewayError::retry_after(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Request(#[from] GatewayError),
    /// The process-wide body budget (`server.max_in_flight_body`) is spent.
    #[error(
        "the gateway is holding as many request and response bytes as it may (server.max_in_flight_body); retry shortly"
    )]
    ServerBusy,
    /// Same message for a missing and a wrong key: nothing to learn by guessing.
    #[error("this admin endpoint needs the admin key: send `Authorization: Bearer <admin.key>`")]
    AdminKeyRequired,
    #[error("admin endpoints answer loopback clients only while no admin.key is configured")]
    AdminLoopbackOnly,
    #[error("{0} did not answer in time; retry shortly")]
    Unavailable(&'static str),
    /// A reload refused the config file: the message `switchyard check` prints.
    #[error("the config file was refused; the running config stays: {0}")]
    InvalidConfig(String),
    #[error("the cache is off (cache.enabled: false): there is nothing to delete")]
    CacheDisabled,
    /// An admin request that names nothing there is.
    #[error("{0}")]
    NotFound(String),
    /// An admin request that is malformed.
    #[error("{0}")]
    BadRequest(String),
}

impl ClientError for HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::Request(e) => e.status(),
            HttpError::ServerBusy | HttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::AdminKeyRequired => StatusCode::UNAUTHORIZED,
            HttpError::AdminLoopbackOnly => StatusCode::FORBIDDEN,
            HttpError::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            HttpError::CacheDisabled | HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_object(&self) -> serde_json::Value {
        let (error_type, code) = match self {
            HttpError::Request(e) => return e.to_error_object(),
            HttpError::ServerBusy => ("server_error", "server_busy"),
            HttpError::Unavailable(_) => ("server_error", "unavailable"),
            HttpError::AdminKeyRequired => ("authentication_error", "invalid_admin_key"),
            HttpError::AdminLoopbackOnly => ("permission_error", "admin_loopback_only"),
            HttpError::InvalidConfig(_) => ("invalid_request_error", "invalid_config"),
            HttpError::CacheDisabled => ("invalid_request_error", "cache_disabled"),
            HttpError::NotFound(_) => ("invalid_request_error", "not_found"),
            HttpError::BadRequest(_) => ("invalid_request_error", "invalid_request"),
        };
        serde_json::json!({
            "message": self.to_string(),
            "type": error_type,
            "code": code,
            "param": null,
        })
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            HttpError::Request(e) => e.retry_after(),
            HttpError::ServerBusy | HttpError::Unavailable(_) => Some(1),
            HttpError::AdminKeyRequired
            | HttpError::AdminLoopbackOnly
            | HttpError::InvalidConfig(_)
            | HttpError::CacheDisabled
            | HttpError::NotFound(_)
            | HttpError::BadRequest(_) => None,
        }
    }
}
