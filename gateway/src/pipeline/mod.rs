//! The request pipeline. A chat request goes through these phases, in this order, each one
//! module with one entry point, over one owned [`Exchange`]:
//!
//! 1. [`admit`]        — who may ask and how much (virtual keys, limits, budgets: next issues)
//! 2. [`pre_hooks`]    — hooks' `pre_request`: continue, replace, short-circuit or reject
//! 3. [`cache_lookup`] — an exact or semantic cache hit answers here; a miss is stored once answered
//! 4. [`route`]        — the plan (primary, fallbacks) and its [`attempt`]s: encode → upstream → decode
//! 5. [`post_hooks`]   — hooks' `post_response` on a plain answer; a stream gets its chunk hooks
//! 6. [`finish`]       — the one [`finish::Finisher`]: `extra_fields`, usage, framing
//! 7. [`settle`]       — the hooks' `on_done` summary (usage already reached the ledger)
//!
//! A phase that ends the request early (a short-circuit, a rejection, later a cache hit)
//! hands its answer to the same post-hook, finish and settle phases as an upstream's. The
//! hook phases run after `route` but before `finish` frames anything, so hooks see the unified
//! answer without `extra_fields` and a dropped chunk leaves no gap in `chunk_index`. A phase
//! that is not configured costs nothing: no hook means no chain is built, and the no-op phases
//! are empty inline functions.
//!
//! Reads only snapshots; reports to actors through the per-worker outbox.

mod admit;
mod attempt;
mod cache_lookup;
mod chunk_hooks;
mod context;
mod embed;
pub mod extra_fields;
mod finish;
pub mod hook_chain;
mod post_hooks;
mod pre_hooks;
mod raw_object;
mod relay;
pub mod request;
mod route;
mod settle;

pub use relay::Relay;
pub use request::ChatRequest;

use crate::actors::usage_ledger::UsageLedgerHandle;
use crate::body_budget::Lease;
use crate::cache::{CacheHeaders, CacheTicket};
use crate::error::GatewayError;
use crate::routing::RouteTable;
use actix_web::http::header::{HeaderName, HeaderValue};
use finish::Finisher;
use hook_chain::HookChain;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use switchyard_plugin_api::host::Payload;

/// Per-request facts from the HTTP layer.
pub struct RequestContext {
    pub request_id: Arc<str>,
    pub started: Instant,
    /// The client's `x-bf-eh-*` headers, renamed and filtered, to send upstream.
    pub forwarded_headers: Vec<(http::header::HeaderName, http::header::HeaderValue)>,
    /// `x-bf-send-back-raw-response: true`: the answer carries `raw_request` / `raw_response`.
    pub send_back_raw: bool,
    /// The `x-bf-cache-*` headers (read only when the cache is on).
    pub cache: CacheHeaders,
}

/// One request, owned, from admission to settlement: what the client asked (possibly
/// replaced by a hook), the HTTP layer's facts, and the request's hooks.
pub struct Exchange {
    pub request: ChatRequest,
    pub ctx: RequestContext,
    /// `None` when no hook is configured.
    pub hooks: Option<HookChain>,
    /// The client body's share of the in-flight body budget, held as long as the request is.
    pub _body_lease: Option<Lease<'static>>,
    /// The client's `model` as sent (a hook may replace the request's).
    pub alias: Arc<str>,
    /// Set by the cache phase on a miss the answer may be stored for.
    pub cache: Option<CacheTicket>,
}

impl Exchange {
    /// The context of an answer no provider was paid for this time (a hook's, a cache hit's):
    /// `provider` and `model_deployment` name what produced it; no usage reaches the ledger
    /// and no price applies.
    pub(crate) fn unpaid_context(
        &self,
        table: &RouteTable,
        provider: Arc<str>,
        model_deployment: Arc<str>,
    ) -> context::StreamContext {
        context::StreamContext {
            provider,
            model_requested: Arc::clone(&self.alias),
            model_deployment,
            include_usage: self.request.include_usage,
            stream: self.request.stream,
            started: self.ctx.started,
            request_id: Arc::clone(&self.ctx.request_id),
            api_key: Arc::from(""),
            redactor: Arc::clone(&table.redactor),
            ledger: None,
            prompt_bytes: self.request.body().len(),
            price: None,
        }
    }
}

/// An answer before it is finished: a plain unified response with its Finisher, or a stream
/// whose relay finishes each chunk.
pub enum Served {
    Plain {
        answer: Payload,
        /// Boxed: the answer moves from phase to phase, and copying the Finisher's few
        /// hundred bytes at each move cost more than one allocation (measured).
        finish: Box<Finisher>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    Stream {
        relay: Box<Relay>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

/// A finished answer, ready for the client.
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

/// The request failed: the error, the provider it came from, and the attempts.
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

/// Answers a chat request: the phases in order (see the module docs), then settlement.
pub async fn chat(table: Arc<RouteTable>, ledger: &UsageLedgerHandle, mut ex: Exchange) -> Result<Answer, Failure> {
    let result = phases(&table, ledger, &mut ex).await;
    settle::run(ex, &result);
    result
}

async fn phases(table: &Arc<RouteTable>, ledger: &UsageLedgerHandle, ex: &mut Exchange) -> Result<Answer, Failure> {
    admit::run(table, ex)?;
    let served = match pre_hooks::run(table, ex)? {
        Some(short_circuit) => short_circuit,
        None => match cache_lookup::run(table, ledger, ex).await {
            Some(hit) => hit,
            None => cache_lookup::store_when_answered(ex, route::run(table, ledger, ex).await?),
        },
    };
    let served = post_hooks::run(ex, served)?;
    Ok(finish::answer(ex, served))
}

#[cfg(test)]
#[path = "attempt_tests.rs"]
mod attempt_tests;
