//! The request pipeline: parse → route → per target (encode → upstream → decode) → answer.
//! Reads only snapshots; reports to actors through the per-worker outbox.

mod attempt;
mod context;
pub mod extra_fields;
mod finish;
mod raw_object;
mod relay;
pub mod request;

pub use relay::Relay;
pub use request::ChatRequest;

use crate::actors::outbox;
use crate::actors::provider_health::AttemptRecord;
use crate::actors::usage_ledger::UsageLedgerHandle;
use crate::error::GatewayError;
use crate::observability::escaped;
use crate::resilience::FailureAction;
use crate::routing::RouteTable;
use actix_web::http::header::{HeaderName, HeaderValue};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// Per-request facts from the HTTP layer.
pub struct RequestContext {
    pub request_id: Arc<str>,
    pub started: Instant,
    /// The client's `x-bf-eh-*` headers, renamed and filtered, to send upstream.
    pub forwarded_headers: Vec<(http::header::HeaderName, http::header::HeaderValue)>,
    /// `x-bf-send-back-raw-response: true`: the answer carries `raw_request` / `raw_response`.
    pub send_back_raw: bool,
}

/// A successful answer.
pub enum Answer {
    Complete {
        body: Vec<u8>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    Stream {
        relay: Box<Relay>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

/// One failed attempt, as listed in an error's `extra_fields.attempts`.
#[derive(Debug, Serialize)]
pub struct AttemptSummary {
    pub provider: String,
    pub model: String,
    pub status: u16,
    pub code: Option<String>,
    pub message: String,
}

/// Every attempt failed: the primary's error, the provider it came from, and the attempts.
pub struct Failure {
    pub error: GatewayError,
    pub provider: Option<Arc<str>>,
    pub attempts: Vec<AttemptSummary>,
}

impl From<GatewayError> for Failure {
    fn from(error: GatewayError) -> Failure {
        Failure {
            error,
            provider: None,
            attempts: Vec::new(),
        }
    }
}

/// Answers a chat request: the primary target, retried while its failures are transient
/// (backoff, `Retry-After`, within the provider's retry budget), then the fallbacks in order,
/// each retried the same way, for as long as the failure is one another target may fix
/// (see [`GatewayError::on_failure`]).
pub async fn chat(
    table: Arc<RouteTable>,
    ledger: &UsageLedgerHandle,
    request: ChatRequest<'_>,
    req: &RequestContext,
) -> Result<Answer, Failure> {
    let plan = table.plan(&request.model, &request.fallbacks)?;
    let model_requested: Arc<str> = Arc::from(request.model.as_str());
    let mut first: Option<(GatewayError, Arc<str>)> = None;
    let mut attempts = Vec::new();
    let shared = attempt::Shared {
        table: &table,
        model_requested: &model_requested,
        stream: request.stream,
        include_usage: request.include_usage,
        req,
        ledger,
    };
    'targets: for target in &plan {
        let provider = &target.provider;
        let body = request.encode_for(&target.model);
        let _in_flight = provider.budget.enter();
        let mut retry_share = None;
        let mut rejected_keys = 0;
        for retry in 0.. {
            let began = Instant::now();
            let result = attempt::run(&shared, target, &body).await;
            drop(retry_share.take());
            let latency_ms = began.elapsed().as_millis() as u64;
            let error = match result {
                Ok(answer) => {
                    outbox::record_attempt(
                        &provider.health.addr,
                        AttemptRecord {
                            ok: true,
                            status: 200,
                            latency_ms,
                        },
                    );
                    return Ok(answer);
                }
                Err(error) => error,
            };
            let status = error.status().as_u16();
            outbox::record_attempt(
                &provider.health.addr,
                AttemptRecord {
                    ok: false,
                    status,
                    latency_ms,
                },
            );
            tracing::warn!(request_id = %req.request_id, provider = %provider.name, model = %escaped(&target.model), retry, error = %escaped(&error), "attempt failed");
            attempts.push(AttemptSummary {
                provider: provider.name.to_string(),
                model: target.model.to_string(),
                status,
                code: error.code().map(str::to_string),
                message: error.client_message(),
            });
            let action = error.on_failure();
            let delay = match action {
                FailureAction::Retry => provider.retry.delay(retry, error.upstream_retry_after()),
                _ => None,
            };
            if first.is_none() {
                first = Some((error, Arc::clone(&provider.name)));
            }
            match action {
                FailureAction::Stop => break 'targets,
                FailureAction::NextTarget => continue 'targets,
                // The rejected key's circuit is open now, so the next pick skips it; at most
                // one try per key, whatever the cooldown (a zero one reopens at once).
                FailureAction::NextKey => {
                    rejected_keys += 1;
                    if rejected_keys < provider.keys.len() && provider.is_available(&target.model) {
                        continue;
                    }
                    continue 'targets;
                }
                FailureAction::Retry => {}
            }
            let Some(delay) = delay else {
                continue 'targets;
            };
            let Some(share) = provider.budget.try_retry() else {
                tracing::warn!(request_id = %req.request_id, provider = %provider.name, "retry budget spent; moving on without retrying");
                continue 'targets;
            };
            retry_share = Some(share);
            tokio::time::sleep(delay).await;
        }
    }
    let (error, provider) = first.ok_or_else(|| {
        Failure::from(GatewayError::ModelNotFound {
            model: request.model.clone(),
        })
    })?;
    Err(Failure {
        error,
        provider: Some(provider),
        attempts,
    })
}

#[cfg(test)]
#[path = "attempt_tests.rs"]
mod attempt_tests;
