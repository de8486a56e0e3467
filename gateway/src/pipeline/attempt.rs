//! One attempt against one target: pick a key, encode, send (or ask a local provider),
//! decode. Streams are primed to their first chunk so a failing start can still fall back.

use super::context::{StreamContext, plugin_error, unix_time_ms};
use super::finish::Finisher;
use super::relay::Relay;
use super::{RequestContext, Served};
use crate::actors::outbox;
use crate::actors::provider_health::CircuitReport;
use crate::actors::usage_ledger::UsageLedgerHandle;
use crate::error::GatewayError;
use crate::resilience::parse_retry_after;
use crate::routing::{ApiKey, RouteTable, Target};
use crate::upstream;
use actix_web::http::header::{HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use switchyard_plugin_api::host::{CallInfo, Item};

/// What every attempt of one request shares.
pub struct Shared<'a> {
    pub table: &'a Arc<RouteTable>,
    pub model_requested: &'a Arc<str>,
    pub stream: bool,
    pub include_usage: bool,
    pub req: &'a RequestContext,
    pub ledger: &'a UsageLedgerHandle,
}

/// One attempt, its outcome reported to the key's circuit breaker: failures that say
/// something about the upstream's health, and the result of a half-open probe.
pub async fn run(shared: &Shared<'_>, target: &Target, body: &[u8]) -> Result<Served, GatewayError> {
    let provider = &target.provider;
    let pick = provider.pick_key(&target.model)?;
    let result = run_with_key(shared, target, body, pick.key).await;
    if let Err(e) = &result
        && e.is_key_rejected()
    {
        // Opened here rather than through the Egress actor: the request's own next
        // attempt must already skip this key, and a revoked key must not fail 1 in N requests.
        let cooldown = provider.breaker.config.auth_cooldown;
        // Zero turns this off: the key stays in rotation (the request still moves on).
        if !cooldown.is_zero() {
            provider
                .breaker
                .open_for(pick.slot, crate::resilience::breaker::now_ms(), cooldown);
        }
        tracing::warn!(
            provider = %provider.name,
            key_slot = pick.slot,
            cooldown_s = cooldown.as_secs(),
            error = %crate::observability::escaped(e),
            "the upstream rejected this key; it is out of service until its cooldown ends"
        );
        return result;
    }
    let healthy = match &result {
        Ok(_) => true,
        Err(e) => !e.counts_against_circuit(),
    };
    if pick.probe || !healthy {
        outbox::report_circuit(
            &provider.health.addr,
            CircuitReport {
                slot: pick.slot,
                probe: pick.probe,
                ok: healthy,
            },
        );
    }
    result
}

async fn run_with_key(
    shared: &Shared<'_>,
    target: &Target,
    body: &[u8],
    key: Option<&ApiKey>,
) -> Result<Served, GatewayError> {
    let Shared {
        table,
        model_requested,
        stream,
        include_usage,
        req,
        ledger,
    } = *shared;
    let provider = &target.provider;
    let ctx = StreamContext {
        provider: Arc::clone(&provider.name),
        model_requested: Arc::clone(model_requested),
        model_deployment: Arc::clone(&target.model),
        include_usage,
        stream,
        started: req.started,
        request_id: Arc::clone(&req.request_id),
        api_key: key.map(|k| Arc::clone(&k.secret)).unwrap_or_else(|| Arc::from("")),
        redactor: Arc::clone(&table.redactor),
        ledger: Some(ledger.clone()),
        prompt_bytes: body.len(),
        price: target.price.clone(),
    };
    let redactor = &table.redactor;
    let name = &*provider.name;

    if provider.codec.is_local() {
        let items = provider
            .codec
            .respond_local(&ctx.call_info(), body)
            .map_err(|e| plugin_error(name, e, redactor))?;
        return if stream {
            let mut relay = Relay::local(items, ctx);
            if provider.send_back_raw || req.send_back_raw {
                relay.send_back_raw(body.to_vec());
            }
            relay.prime().await?;
            Ok(Served::Stream {
                relay: Box::new(relay),
                headers: Vec::new(),
            })
        } else {
            let raw = (provider.send_back_raw || req.send_back_raw).then(|| body.to_vec());
            local_response(items, ctx, raw).await
        };
    }

    let timeouts = provider.timeouts;
    let permit = provider.egress.acquire(name).await?;
    let info = CallInfo {
        stream,
        unix_time_ms: unix_time_ms(),
        model: &target.model,
        api_key: &ctx.api_key,
        request_id: &req.request_id,
        operation: super::context::CHAT_OPERATION,
        alias: &ctx.model_requested,
    };
    let parts = provider
        .codec
        .encode_request(&info, body)
        .map_err(|e| plugin_error(name, e, redactor))?;
    // Kept only when asked for: a copy of the body per request otherwise.
    let raw_request = (provider.send_back_raw || req.send_back_raw).then(|| parts.body.clone());
    let started = Instant::now();
    let first_byte = if stream {
        timeouts.first_byte
    } else {
        timeouts.first_byte.min(timeouts.timeout)
    };
    let reply = upstream::send(&provider.egress, parts, &req.forwarded_headers, first_byte, name).await?;
    let headers = passthrough_headers(&reply.headers);
    let status = reply.status;

    if !(200..300).contains(&status) {
        let remaining = timeouts
            .timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        let bytes = reply.body.read_all(remaining, name).await?;
        let err = provider
            .codec
            .decode_error(&info, status, &bytes)
            .map_err(|e| plugin_error(name, e, redactor))?;
        let mut err = ctx.upstream_error(err);
        if let GatewayError::Upstream(u) = &mut err {
            u.retry_after = parse_retry_after(&reply.headers, SystemTime::now());
        }
        return Err(err);
    }

    if stream {
        let decoder = Arc::clone(&provider.codec)
            .open_stream(&info)
            .map_err(|e| plugin_error(name, e, redactor))?;
        let body = reply.body.into_stream();
        let mut relay = Relay::upstream(body, decoder, permit, ctx, timeouts.first_token, timeouts.stream_idle);
        if let Some(request) = raw_request {
            relay.send_back_raw(request);
        }
        relay.prime().await?;
        return Ok(Served::Stream {
            relay: Box::new(relay),
            headers,
        });
    }

    let remaining = timeouts.timeout.saturating_sub(started.elapsed());
    let bytes = reply.body.read_all(remaining, name).await?;
    drop(permit);
    let payload = provider
        .codec
        .decode_response(&info, status, &bytes)
        .map_err(|e| plugin_error(name, e, redactor))?;
    let mut finish = Box::new(Finisher::new(ctx));
    if let Some(request) = raw_request {
        finish.send_back_raw(request, bytes.to_vec());
    }
    Ok(Served::Plain {
        answer: payload,
        finish,
        headers,
    })
}

/// A local provider's non-streaming answer, after the delays it asked for.
async fn local_response(
    items: Vec<Item>,
    ctx: StreamContext,
    raw_request: Option<Vec<u8>>,
) -> Result<Served, GatewayError> {
    for item in items {
        match item {
            Item::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Item::Response(p) => {
                let mut finish = Box::new(Finisher::new(ctx));
                if let Some(request) = raw_request {
                    // A local provider's "upstream answer" is its own.
                    finish.send_back_raw(request, p.json.clone());
                }
                return Ok(Served::Plain {
                    answer: p,
                    finish,
                    headers: Vec::new(),
                });
            }
            Item::Error(e) => return Err(ctx.upstream_error(e)),
            Item::Chunk(_) | Item::Done => {}
        }
    }
    Err(GatewayError::PluginFault {
        provider: ctx.provider.to_string(),
        reason: "the local provider produced no response".into(),
    })
}

/// Provider headers a client may want back: rate-limit state (OpenAI's and Anthropic's).
fn passthrough_headers(headers: &http::HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            n.starts_with("x-ratelimit-") || n.starts_with("anthropic-ratelimit-")
        })
        .filter_map(|(name, value)| {
            let n = HeaderName::from_bytes(name.as_str().as_bytes()).ok()?;
            let v = HeaderValue::from_bytes(value.as_bytes()).ok()?;
            Some((n, v))
        })
        .collect()
}
