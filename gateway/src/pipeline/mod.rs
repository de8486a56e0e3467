//! The request pipeline: parse → route → per target (encode → upstream → decode) → answer.
//! Reads only snapshots; reports to actors through the per-worker outbox.

mod attempt;
mod context;
pub mod extra_fields;
mod relay;
pub mod request;

pub use relay::Relay;
pub use request::ChatRequest;

use crate::actors::cost_tracker::CostTrackerHandle;
use crate::actors::outbox;
use crate::actors::provider_pool::AttemptRecord;
use crate::error::GatewayError;
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

/// Answers a chat request: the primary target, then fallbacks in order while the failure is
/// one a fallback may fix (see [`GatewayError::moves_to_fallback`]).
pub async fn chat(
    table: Arc<RouteTable>,
    cost: &CostTrackerHandle,
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
        cost,
    };
    for target in &plan {
        let body = request.encode_for(&target.model);
        let began = Instant::now();
        let result = attempt::run(&shared, target, &body).await;
        let latency_ms = began.elapsed().as_millis() as u64;
        match result {
            Ok(answer) => {
                outbox::record_attempt(
                    &target.provider.pool.stats.addr,
                    AttemptRecord {
                        ok: true,
                        status: 200,
                        latency_ms,
                    },
                );
                return Ok(answer);
            }
            Err(error) => {
                let status = error.status().as_u16();
                outbox::record_attempt(
                    &target.provider.pool.stats.addr,
                    AttemptRecord {
                        ok: false,
                        status,
                        latency_ms,
                    },
                );
                tracing::warn!(request_id = %req.request_id, provider = %target.provider.name, model = %target.model, %error, "attempt failed");
                attempts.push(AttemptSummary {
                    provider: target.provider.name.to_string(),
                    model: target.model.to_string(),
                    status,
                    code: error.code().map(str::to_string),
                    message: error.client_message(),
                });
                let moves_on = error.moves_to_fallback();
                if first.is_none() {
                    first = Some((error, Arc::clone(&target.provider.name)));
                }
                if !moves_on {
                    break;
                }
            }
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
