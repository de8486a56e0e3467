//! Request errors: one type for everything a client can be told, mapped to an HTTP status and
//! the OpenAI error body (`type` in OpenAI's words, `code` a stable machine word).

use crate::resilience::FailureAction;
use actix_web::http::StatusCode;
use std::time::Duration;
use switchyard_plugin_api::abi::error_kind;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("{message}")]
    BadRequest {
        message: String,
        code: &'static str,
        param: Option<String>,
    },
    #[error("the request body is larger than the limit of {limit} bytes (server.max_body_size)")]
    BodyTooLarge { limit: u64 },
    #[error("the request body was not received within {secs} s")]
    BodyTimeout { secs: u64 },
    #[error(
        "the model `{model}` does not exist: it is neither an alias under models: nor provider/model with a configured provider"
    )]
    ModelNotFound { model: String },
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// An upstream's own error, passed through (secrets already redacted).
    #[error("{}", .0.message)]
    Upstream(Box<UpstreamError>),
    #[error("upstream `{provider}` did not answer within {secs} s ({phase})")]
    UpstreamTimeout {
        provider: String,
        phase: &'static str,
        secs: f64,
    },
    #[error("could not reach upstream `{provider}`: {reason}")]
    UpstreamUnreachable { provider: String, reason: String },
    #[error("upstream `{provider}` answered with something that could not be read: {reason}")]
    UpstreamMalformed { provider: String, reason: String },
    #[error("the provider plugin for `{provider}` failed: {reason}")]
    PluginFault { provider: String, reason: String },
    /// The upstream refused the operator's credentials (401/403). Never the client's auth
    /// error: clients never choose upstream credentials, so this is a gateway-side fault.
    #[error("upstream `{provider}` rejected the gateway's credentials (HTTP {status}): {message}")]
    UpstreamAuthFailed {
        provider: String,
        status: u16,
        message: String,
    },
    #[error("provider `{provider}` has no usable key for model `{model}` (keys whose env var is unset are disabled)")]
    NoUsableKey { provider: String, model: String },
    #[error("provider `{provider}` is at its concurrency limit; retry shortly")]
    ProviderBusy { provider: String },
    /// The process-wide body budget (`server.max_in_flight_body`) has no room for an
    /// upstream's answer: the gateway, not the provider, is out of room for now.
    #[error("the gateway is holding too many bodies in memory to read `{provider}`'s answer; retry shortly")]
    ServerBusy { provider: String },
    #[error(
        "provider `{provider}` is unavailable for model `{model}`: its circuit breaker is open after repeated failures"
    )]
    CircuitOpen {
        provider: String,
        model: String,
        retry_in: Duration,
    },
    /// A hook with `on_error: fail_closed` failed (an error, a panic, or an answer the
    /// gateway could not use).
    #[error("hook `{hook}` failed: {reason}")]
    HookFailed { hook: String, reason: String },
    /// A hook's deliberate refusal: the client gets the hook's status, body and headers as
    /// they are.
    #[error("hook `{hook}` rejected the request with HTTP {}", .rejection.status)]
    HookRejected {
        hook: String,
        rejection: Box<switchyard_plugin_api::host::Rejection>,
    },
}

/// An error an upstream (or its codec) reported. Boxed: it is the rare path, and keeping
/// `GatewayError` small keeps every `Result` on the hot path small.
#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub provider: String,
    pub status: u16,
    pub message: String,
    pub error_type: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
    pub kind: u64,
    pub retryable: bool,
    /// The upstream's `Retry-After` (or `retry-after-ms`), when it sent one.
    pub retry_after: Option<Duration>,
}

impl GatewayError {
    pub fn bad_request(message: impl Into<String>, code: &'static str, param: Option<&str>) -> Self {
        GatewayError::BadRequest {
            message: message.into(),
            code,
            param: param.map(str::to_string),
        }
    }

    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            BadRequest { .. } => StatusCode::BAD_REQUEST,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ModelNotFound { .. } | RouteNotFound { .. } => StatusCode::NOT_FOUND,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            // 4xx are the client's business and pass through; anything else from upstream is
            // the gateway's upstream failing: 502.
            Upstream(u) => match StatusCode::from_u16(u.status) {
                Ok(s) if s.is_client_error() => s,
                _ => StatusCode::BAD_GATEWAY,
            },
            UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamUnreachable { .. } | UpstreamMalformed { .. } | PluginFault { .. } | UpstreamAuthFailed { .. } => {
                StatusCode::BAD_GATEWAY
            }
            NoUsableKey { .. } | ProviderBusy { .. } | ServerBusy { .. } | CircuitOpen { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HookFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            HookRejected { rejection, .. } => {
                StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// OpenAI's `type` word.
    pub fn error_type(&self) -> &str {
        use GatewayError::*;
        match self {
            BadRequest { .. } | BodyTooLarge { .. } | BodyTimeout { .. } | MethodNotAllowed { .. } => {
                "invalid_request_error"
            }
            ModelNotFound { .. } | RouteNotFound { .. } => "not_found_error",
            Upstream(u) if u.error_type.is_some() => u.error_type.as_deref().unwrap_or("server_error"),
            Upstream(u) => match u.status {
                401 | 403 => "authentication_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                400..=499 => "invalid_request_error",
                _ => "server_error",
            },
            UpstreamTimeout { .. }
            | UpstreamUnreachable { .. }
            | UpstreamMalformed { .. }
            | PluginFault { .. }
            | UpstreamAuthFailed { .. } => "server_error",
            NoUsableKey { .. } | ProviderBusy { .. } | ServerBusy { .. } | CircuitOpen { .. } => "server_error",
            HookFailed { .. } | HookRejected { .. } => "server_error",
        }
    }

    /// A stable machine word.
    pub fn code(&self) -> Option<&str> {
        use GatewayError::*;
        Some(match self {
            BadRequest { code, .. } => code,
            BodyTooLarge { .. } => "body_too_large",
            BodyTimeout { .. } => "body_timeout",
            ModelNotFound { .. } => "model_not_found",
            RouteNotFound { .. } => "route_not_found",
            MethodNotAllowed { .. } => "method_not_allowed",
            Upstream(u) if u.code.is_some() => return u.code.as_deref(),
            Upstream(u) if u.status >= 500 => "upstream_error",
            Upstream(_) => return None,
            UpstreamTimeout { .. } => "upstream_timeout",
            UpstreamUnreachable { .. } => "upstream_unreachable",
            UpstreamMalformed { .. } => "upstream_malformed",
            PluginFault { .. } => "plugin_fault",
            UpstreamAuthFailed { .. } => "upstream_auth_failed",
            NoUsableKey { .. } => "no_usable_key",
            ProviderBusy { .. } => "provider_busy",
            ServerBusy { .. } => "server_busy",
            CircuitOpen { .. } => "circuit_open",
            HookFailed { .. } => "hook_failed",
            HookRejected { .. } => "hook_rejected",
        })
    }

    pub fn param(&self) -> Option<&str> {
        match self {
            GatewayError::BadRequest { param, .. } => param.as_deref(),
            GatewayError::Upstream(u) => u.param.as_deref(),
            _ => None,
        }
    }

    /// The client-facing message. Upstream 5xx messages say which provider failed.
    pub fn client_message(&self) -> String {
        match self {
            GatewayError::Upstream(u) if u.status >= 500 || u.status < 400 => {
                format!("upstream `{}` failed with HTTP {}: {}", u.provider, u.status, u.message)
            }
            other => other.to_string(),
        }
    }

    /// What the pipeline does after an attempt failed with this error (DESIGN §4):
    /// - retry on the same target, then fall back: 429, 500, 502, 503, 504 (and 529, and
    ///   whatever the codec marks retryable), connection refused or reset, connect timeout;
    /// - fall back at once: a silent upstream (no headers within `first_byte_timeout`, no
    ///   token within `first_token_timeout`, the whole-request `timeout`), a context-length
    ///   400 (never resent unchanged; a larger fallback model may take it), an unreadable
    ///   answer, a plugin fault, no usable key, a full queue, an open circuit;
    /// - stop: a content-filter refusal (routing around a safety decision is not ours to
    ///   do) and every other 4xx, which would fail the same way anywhere.
    pub fn on_failure(&self) -> FailureAction {
        use GatewayError::*;
        match self {
            Upstream(u) => match u.status {
                429 | 500 | 502 | 503 | 504 | 529 => FailureAction::Retry,
                _ if u.kind == error_kind::CONTENT_FILTER => FailureAction::Stop,
                _ if u.kind == error_kind::CONTEXT_LENGTH => FailureAction::NextTarget,
                // A redirect is never followed (it would carry the key elsewhere) nor retried.
                300..=399 => FailureAction::NextTarget,
                // Otherwise the codec's reading decides (e.g. an error event at a stream's start).
                _ if u.retryable
                    || matches!(
                        u.kind,
                        error_kind::RATE_LIMIT | error_kind::OVERLOADED | error_kind::SERVER
                    ) =>
                {
                    FailureAction::Retry
                }
                // Other 5xx (501, 505…) and stray 1xx: this target is broken.
                s if !(400..500).contains(&s) => FailureAction::NextTarget,
                _ => FailureAction::Stop,
            },
            // Another key may be good; with none left, the next target.
            UpstreamAuthFailed { .. } => FailureAction::NextKey,
            UpstreamTimeout { phase, .. } if *phase == "connect_timeout" => FailureAction::Retry,
            UpstreamUnreachable { .. } => FailureAction::Retry,
            UpstreamTimeout { .. }
            | UpstreamMalformed { .. }
            | PluginFault { .. }
            | NoUsableKey { .. }
            | ProviderBusy { .. }
            | ServerBusy { .. }
            | CircuitOpen { .. } => FailureAction::NextTarget,
            _ => FailureAction::Stop,
        }
    }

    /// Whether this failure says something about the provider key's health (and so counts
    /// towards opening its circuit). The client's own errors, refusals, plugin bugs and
    /// the gateway's own limits do not.
    pub fn counts_against_circuit(&self) -> bool {
        use GatewayError::*;
        match self {
            Upstream(u) => {
                u.status == 429
                    || u.status >= 500
                    || matches!(
                        u.kind,
                        error_kind::RATE_LIMIT | error_kind::OVERLOADED | error_kind::SERVER
                    )
            }
            UpstreamTimeout { .. } | UpstreamUnreachable { .. } | UpstreamMalformed { .. } => true,
            _ => false,
        }
    }

    /// The upstream rejected the key this attempt used: the key is out of service (its circuit
    /// opens for `auth_failure_cooldown`), not merely unhealthy.
    pub fn is_key_rejected(&self) -> bool {
        matches!(self, GatewayError::UpstreamAuthFailed { .. })
    }

    /// The `Retry-After` the upstream asked for, when it did.
    pub fn upstream_retry_after(&self) -> Option<Duration> {
        match self {
            GatewayError::Upstream(u) => u.retry_after,
            _ => None,
        }
    }

    /// `Retry-After` seconds to send with this error, if any.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::ProviderBusy { .. } | GatewayError::ServerBusy { .. } | GatewayError::NoUsableKey { .. } => {
                Some(1)
            }
            GatewayError::CircuitOpen { retry_in, .. } => Some(retry_in.as_secs_f64().ceil().max(1.0) as u64),
            GatewayError::Upstream(u) if u.status == 429 || u.status == 503 => {
                u.retry_after.map(|d| d.as_secs_f64().ceil() as u64)
            }
            _ => None,
        }
    }

    /// The OpenAI error object (`{"message","type","code","param"}`).
    pub fn to_error_object(&self) -> serde_json::Value {
        serde_json::json!({
            "message": self.client_message(),
            "type": self.error_type(),
            "code": self.code(),
            "param": self.param(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16, kind: u64) -> GatewayError {
        GatewayError::Upstream(Box::new(UpstreamError {
            provider: "p".into(),
            status,
            message: "m".into(),
            error_type: None,
            code: None,
            param: None,
            kind,
            retryable: false,
            retry_after: None,
        }))
    }

    #[test]
    fn statuses() {
        assert_eq!(
            upstream(429, error_kind::RATE_LIMIT).status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(upstream(500, error_kind::SERVER).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            upstream(400, error_kind::INVALID_REQUEST).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            GatewayError::BodyTooLarge { limit: 1 }.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let t = GatewayError::UpstreamTimeout {
            provider: "p".into(),
            phase: "x",
            secs: 1.0,
        };
        assert_eq!(t.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(t.code(), Some("upstream_timeout"));
    }

    #[test]
    fn failure_policy() {
        use FailureAction::*;
        assert_eq!(upstream(500, error_kind::SERVER).on_failure(), Retry);
        assert_eq!(upstream(429, error_kind::RATE_LIMIT).on_failure(), Retry);
        assert_eq!(upstream(503, 0).on_failure(), Retry);
        assert_eq!(upstream(501, 0).on_failure(), NextTarget);
        assert_eq!(upstream(400, error_kind::CONTEXT_LENGTH).on_failure(), NextTarget);
        assert_eq!(upstream(400, error_kind::CONTENT_FILTER).on_failure(), Stop);
        assert_eq!(upstream(400, error_kind::INVALID_REQUEST).on_failure(), Stop);
        assert_eq!(upstream(401, 0).on_failure(), Stop);
        let rejected = GatewayError::UpstreamAuthFailed {
            provider: "p".into(),
            status: 401,
            message: "m".into(),
        };
        assert_eq!(rejected.on_failure(), NextKey);
        assert_eq!(rejected.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(rejected.code(), Some("upstream_auth_failed"));
        assert!(rejected.is_key_rejected());
        assert_eq!(GatewayError::bad_request("x", "invalid_json", None).on_failure(), Stop);
        let timeout = |phase| GatewayError::UpstreamTimeout {
            provider: "p".into(),
            phase,
            secs: 1.0,
        };
        assert_eq!(timeout("connect_timeout").on_failure(), Retry);
        assert_eq!(timeout("first_byte_timeout").on_failure(), NextTarget);
        assert_eq!(timeout("first_token_timeout").on_failure(), NextTarget);
        let reset = GatewayError::UpstreamUnreachable {
            provider: "p".into(),
            reason: "connection reset".into(),
        };
        assert_eq!(reset.on_failure(), Retry);
        assert!(reset.counts_against_circuit());
        assert!(!upstream(400, error_kind::CONTEXT_LENGTH).counts_against_circuit());
        assert!(upstream(429, error_kind::RATE_LIMIT).counts_against_circuit());
    }
}
