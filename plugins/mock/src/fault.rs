//! Fault models: `fault-*` model names that make the mock fail the way real upstreams do,
//! so the gateway's retry, fallback, circuit-breaking and panic handling can be tested
//! without a network. Only with the provider's `fault_models: true` option (off by default, so
//! no client can make a shared mock fail); the list is documented on the crate.

use switchyard_plugin_api::sdk::{ErrorKind, ProviderError};

/// Every model name starting with this is a fault model.
pub const PREFIX: &str = "fault-";

/// What a fault model does instead of answering.
#[derive(Debug)]
pub enum Fault {
    /// Answer with this error before any output.
    Error(ProviderError),
    /// `panic!` inside the plugin.
    Panic,
    /// Streams: start answering, then fail with this error. Not streaming: just the error.
    MidStream(ProviderError),
}

/// The fault for `model`, or `None` for a model that answers normally.
pub fn for_model(model: &str) -> Option<Fault> {
    let name = model.strip_prefix(PREFIX)?;
    let fault = match name {
        "429" => Fault::Error(
            ProviderError::new(
                429,
                ErrorKind::RateLimit,
                "Rate limit reached for requests (simulated by the mock provider). Please try again later.",
            )
            .with_type("rate_limit_error")
            .with_code("rate_limit_exceeded")
            .retryable(true),
        ),
        "500" => Fault::Error(server_error()),
        "503" => Fault::Error(
            ProviderError::new(
                503,
                ErrorKind::Overloaded,
                "The server is overloaded (simulated by the mock provider). Please try again later.",
            )
            .with_type("server_error")
            .with_code("service_unavailable")
            .retryable(true),
        ),
        "400" => Fault::Error(
            ProviderError::invalid_request("Invalid request (simulated by the mock provider).")
                .with_code("invalid_value"),
        ),
        "context-length" => Fault::Error(
            ProviderError::new(
                400,
                ErrorKind::ContextLength,
                "This model's maximum context length was exceeded by your messages \
                 (simulated by the mock provider). Please reduce the length of the messages.",
            )
            .with_type("invalid_request_error")
            .with_code("context_length_exceeded")
            .with_param("messages"),
        ),
        "content-filter" => Fault::Error(
            ProviderError::new(
                400,
                ErrorKind::ContentFilter,
                "The request was rejected by the content policy (simulated by the mock provider).",
            )
            .with_type("invalid_request_error")
            .with_code("content_filter"),
        ),
        "panic" => Fault::Panic,
        "mid-stream" => Fault::MidStream(server_error()),
        // A typo in a fault test should fail loudly, not quietly answer with text.
        _ => Fault::Error(
            ProviderError::new(
                404,
                ErrorKind::NotFound,
                format!("The mock provider has no fault model `{model}`."),
            )
            .with_type("not_found_error")
            .with_code("model_not_found")
            .with_param("model"),
        ),
    };
    Some(fault)
}

fn server_error() -> ProviderError {
    ProviderError::new(
        500,
        ErrorKind::Server,
        "The server had an error while processing your request (simulated by the mock provider).",
    )
    .with_type("server_error")
    .with_code("internal_error")
    .retryable(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(model: &str) -> ProviderError {
        match for_model(model) {
            Some(Fault::Error(e)) => e,
            other => panic!("{model}: expected an error fault, got {other:?}"),
        }
    }

    #[test]
    fn plain_models_have_no_fault() {
        assert!(for_model("echo").is_none());
        assert!(for_model("gpt-4o").is_none());
        assert!(for_model("my-fault-429").is_none());
    }

    #[test]
    fn each_error_fault_has_status_kind_type_and_retry_flag() {
        let table = [
            (
                "fault-429",
                429,
                ErrorKind::RateLimit,
                true,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            (
                "fault-500",
                500,
                ErrorKind::Server,
                true,
                "server_error",
                "internal_error",
            ),
            (
                "fault-503",
                503,
                ErrorKind::Overloaded,
                true,
                "server_error",
                "service_unavailable",
            ),
            (
                "fault-400",
                400,
                ErrorKind::InvalidRequest,
                false,
                "invalid_request_error",
                "invalid_value",
            ),
            (
                "fault-context-length",
                400,
                ErrorKind::ContextLength,
                false,
                "invalid_request_error",
                "context_length_exceeded",
            ),
            (
                "fault-content-filter",
                400,
                ErrorKind::ContentFilter,
                false,
                "invalid_request_error",
                "content_filter",
            ),
            (
                "fault-nope",
                404,
                ErrorKind::NotFound,
                false,
                "not_found_error",
                "model_not_found",
            ),
        ];
        for (model, status, kind, retryable, error_type, code) in table {
            let e = error(model);
            assert_eq!((e.status, e.kind, e.retryable), (status, kind, retryable), "{model}");
            assert_eq!(e.error_type.as_deref(), Some(error_type), "{model}");
            assert_eq!(e.code.as_deref(), Some(code), "{model}");
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn panic_and_mid_stream_are_their_own_faults() {
        assert!(matches!(for_model("fault-panic"), Some(Fault::Panic)));
        assert!(matches!(for_model("fault-mid-stream"), Some(Fault::MidStream(e)) if e.status == 500));
    }
}
