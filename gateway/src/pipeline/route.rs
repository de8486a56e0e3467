//! The route phase: the request's plan (its primary target, then the request's or the
//! alias's fallbacks) and the attempts against it, with retries, backoff and circuit breaking.

use super::attempt;
use super::{AttemptSummary, Exchange, Failure, Served};
use crate::actors::outbox;
use crate::actors::provider_health::AttemptRecord;
use crate::actors::usage_ledger::UsageLedgerHandle;
use crate::error::GatewayError;
use crate::observability::escaped;
use crate::resilience::FailureAction;
use crate::routing::RouteTable;
use std::sync::Arc;
use std::time::Instant;

/// Answers a chat request: the primary target, retried while its failures are transient
/// (backoff, `Retry-After`, within the provider's retry budget), then the fallbacks in order,
/// each retried the same way, for as long as the failure is one another target may fix
/// (see [`GatewayError::on_failure`]).
pub async fn run(table: &Arc<RouteTable>, ledger: &UsageLedgerHandle, ex: &Exchange) -> Result<Served, Failure> {
    let request = &ex.request;
    let req = &ex.ctx;
    let plan = table.plan(&request.model, &request.fallbacks)?;
    // What the client asked for, even if a hook replaced the request's model.
    let model_requested: Arc<str> = Arc::clone(&ex.alias);
    let mut first: Option<(GatewayError, Arc<str>)> = None;
    let mut attempts = Vec::new();
    let shared = attempt::Shared {
        table,
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
