//! What an attempt carries with it (owned, so a stream can outlive the handler), and the
//! mapping of plugin errors to gateway errors.

use crate::actors::outbox;
use crate::actors::usage_ledger::{UsageLedgerHandle, UsageRecord};
use crate::cost::{Cost, ModelPrice};
use crate::error::{GatewayError, UpstreamError};
use crate::redact::{Redactor, redact_masked_keys};
use std::sync::Arc;
use std::time::Instant;
use switchyard_plugin_api::abi::error_kind;
use switchyard_plugin_api::host::{CallError, CallInfo, PluginError, Usage};

pub struct StreamContext {
    pub provider: Arc<str>,
    pub model_requested: Arc<str>,
    pub model_deployment: Arc<str>,
    /// The client asked for OpenAI's separate usage chunk.
    pub include_usage: bool,
    pub stream: bool,
    pub started: Instant,
    pub request_id: Arc<str>,
    pub api_key: Arc<str>,
    pub redactor: Arc<Redactor>,
    /// Where usage is recorded; `None` for an answer no provider was paid for (a hook's).
    pub ledger: Option<UsageLedgerHandle>,
    /// Bytes of the request sent upstream: the prompt estimate of a stream whose usage never
    /// arrived.
    pub prompt_bytes: usize,
    /// The answering model's price (`None`: the answer carries no cost).
    pub price: Option<Arc<ModelPrice>>,
}

/// Rough bytes per token of English text and JSON, for estimates only (marked as such).
const BYTES_PER_TOKEN: usize = 4;

impl StreamContext {
    /// Records usage the gateway had to estimate: a stream that produced `chunks` chunks and
    /// ended (the client gone, the upstream cut, or no usage reported) without the upstream's
    /// own figures. Counted as one token per chunk, which is how OpenAI-style streams send
    /// them, and the prompt as its bytes over [`BYTES_PER_TOKEN`]; the ledger counts the
    /// record as estimated.
    pub fn record_estimated_usage(&self, chunks: u64) {
        let _ = self.record_usage(&self.estimated_usage(chunks), true);
    }

    /// The estimate [`Self::record_estimated_usage`] records.
    pub fn estimated_usage(&self, chunks: u64) -> Usage {
        let prompt_tokens = (self.prompt_bytes / BYTES_PER_TOKEN) as u64;
        Usage {
            prompt_tokens,
            completion_tokens: chunks,
            total_tokens: prompt_tokens.saturating_add(chunks),
            ..Usage::default()
        }
    }

    pub fn call_info(&self) -> CallInfo<'_> {
        CallInfo {
            stream: self.stream,
            unix_time_ms: unix_time_ms(),
            model: &self.model_deployment,
            api_key: &self.api_key,
            request_id: &self.request_id,
            operation: CHAT_OPERATION,
            alias: &self.model_requested,
        }
    }

    pub fn upstream_error(&self, e: PluginError) -> GatewayError {
        upstream_error(&self.provider, e, &self.redactor)
    }

    /// Records an answer's usage under the provider and the model the request was sent to
    /// (the ledger keys it by configuration, not by what the upstream says it is).
    /// `estimated`: the gateway estimated `u` because the upstream never reported it.
    ///
    /// Returns the answer's cost when its model has a price; an answer that a provider was paid
    /// for without one is counted as unpriced.
    pub fn record_usage(&self, u: &Usage, estimated: bool) -> Option<Cost> {
        let ledger = self.ledger.as_ref()?;
        let cost = self.price.as_deref().map(|price| Cost::of(u, price));
        if cost.is_none() {
            crate::cost::count_unpriced();
        }
        outbox::record_usage(
            ledger,
            UsageRecord {
                provider: Arc::clone(&self.provider),
                model: Arc::clone(&self.model_deployment),
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                cached_tokens: u.cached_tokens,
                cache_write_tokens: u.cache_write_tokens,
                reasoning_tokens: u.reasoning_tokens,
                estimated,
                cost_usd: cost.map(|c| c.total_cost),
            },
        );
        cost
    }
}

/// The only operation routed today (`abi::operation::CHAT`'s name).
pub const CHAT_OPERATION: &str = "chat";

pub fn unix_time_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An error the provider (or its codec) reported, with secrets redacted from its text.
/// A 401/403 is the upstream refusing the operator's key (clients never choose upstream
/// credentials): a key fault, never passed to the client as its own auth error.
pub fn upstream_error(provider: &str, e: PluginError, redactor: &Redactor) -> GatewayError {
    let message = redactor.redact(&e.message);
    let auth = matches!(e.status, 401 | 403) || e.kind == error_kind::AUTHENTICATION;
    if auth && e.kind != error_kind::CONTENT_FILTER {
        return GatewayError::UpstreamAuthFailed {
            provider: provider.to_string(),
            status: e.status,
            message: redact_masked_keys(&message),
        };
    }
    if e.kind == error_kind::MALFORMED {
        return GatewayError::UpstreamMalformed {
            provider: provider.to_string(),
            reason: message,
        };
    }
    GatewayError::Upstream(Box::new(UpstreamError {
        provider: provider.to_string(),
        status: e.status,
        message,
        error_type: e.error_type,
        code: e.code,
        param: e.param,
        kind: e.kind,
        retryable: e.retryable,
        retry_after: None,
    }))
}

/// A failed plugin call: a reported error is the upstream's; anything else is a plugin fault.
pub fn plugin_error(provider: &str, e: CallError, redactor: &Redactor) -> GatewayError {
    match e {
        CallError::Plugin(pe) => upstream_error(provider, pe, redactor),
        other => {
            tracing::error!(provider, error = %crate::observability::escaped(&other), "provider plugin fault");
            GatewayError::PluginFault {
                provider: provider.to_string(),
                reason: other.to_string(),
            }
        }
    }
}
