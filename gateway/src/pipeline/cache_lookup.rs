//! The cache lookup phase: a cache hit answers the request here, through the same
//! post-hook, finish and settle phases as an upstream's answer (DESIGN §4 cache); a miss
//! leaves a ticket with which the route phase's answer is stored.
//!
//! Order: the exact tier (one hash, one lookup), then, if the semantic tier is on and the
//! request did not ask for `x-bf-cache-type: direct`, the conversation's embedding against
//! the stored ones of the same partition. Without a cache (`cache.enabled` off), or for a
//! request that does not ask for one (no `x-bf-cache-key`, an alias without `cache: true`),
//! the phase is one branch and nothing else.

use super::embed::{Embedding, conversation_text, embed};
use super::{Exchange, Finisher, Relay, Served};
use crate::actors::outbox;
use crate::actors::usage_ledger::{UsageLedgerHandle, UsageRecord};
use crate::cache::{
    CacheId, CacheTicket, CachedAnswer, CachedBody, ResponseCache, SemanticDebug, SemanticTicket, Tier, debug_json,
};
use crate::cost::Cost;
use crate::routing::{ProviderRuntime, RouteTable};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use switchyard_plugin_api::host::{Item, Usage};

pub async fn run(table: &RouteTable, ledger: &UsageLedgerHandle, ex: &mut Exchange) -> Option<Served> {
    let cache = table.cache.as_ref()?;
    let asks = &ex.ctx.cache;
    let namespace: Arc<str> = match &asks.namespace {
        Some(ns) => Arc::from(ns.as_str()),
        None if table.aliases.get(&*ex.alias).is_some_and(|a| a.cache) => Arc::from(""),
        None => return None,
    };
    // The request as routed: a hook's replacement, if one replaced it.
    let id = CacheId::of(&namespace, ex.request.body())?;
    let stream = ex.request.stream;
    if asks.only != Some(Tier::Semantic)
        && let Some(hit) = cache.get(&namespace, id, stream).await
    {
        cache.stats.hits.fetch_add(1, Ordering::Relaxed);
        return Some(serve(table, ex, debug_json(true, id, None), &hit));
    }
    let mut semantic = None;
    let mut debug = None;
    if asks.only != Some(Tier::Direct)
        && let Some(tier) = &cache.semantic
    {
        // A client may ask for a closer match than configured, never a looser one.
        let threshold = asks.threshold.map_or(tier.threshold, |t| t.max(tier.threshold));
        if let Some((partition, embedding)) = embed_request(table, ledger, cache, ex, &namespace).await {
            let mut found = None;
            for m in tier.index.search(partition, &embedding.vector, threshold as f32) {
                if let Some(hit) = cache.get(&namespace, m.id, stream).await {
                    found = Some((m, hit));
                    break;
                }
            }
            let describe = |similarity| SemanticDebug {
                provider: &tier.provider,
                model: &tier.model,
                input_tokens: embedding.input_tokens,
                threshold,
                similarity,
            };
            if let Some((m, hit)) = found {
                cache.stats.semantic_hits.fetch_add(1, Ordering::Relaxed);
                let d = debug_json(true, m.id, Some(&describe(Some(m.similarity))));
                return Some(serve(table, ex, d, &hit));
            }
            debug = Some(debug_json(false, id, Some(&describe(None))));
            semantic = Some(SemanticTicket {
                partition,
                vector: embedding.vector,
            });
        }
    }
    cache.stats.misses.fetch_add(1, Ordering::Relaxed);
    ex.cache = Some(CacheTicket {
        cache: Arc::clone(cache),
        id,
        namespace,
        ttl: asks.ttl.unwrap_or(cache.default_ttl),
        store: !asks.no_store,
        debug: debug.unwrap_or_else(|| debug_json(false, id, None)),
        semantic,
    });
    None
}

/// The request's semantic partition and its conversation's embedding; `None` (a semantic
/// miss, counted and logged) when the embedding could not be made.
async fn embed_request(
    table: &RouteTable,
    ledger: &UsageLedgerHandle,
    cache: &ResponseCache,
    ex: &Exchange,
    namespace: &str,
) -> Option<(CacheId, Embedding)> {
    let tier = cache.semantic.as_ref()?;
    let body = ex.request.body();
    let partition = CacheId::partition(namespace, &tier.embedding, body)?;
    let text = conversation_text(body)?;
    let failed = |reason: &dyn std::fmt::Display| {
        cache.stats.embedding_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            request_id = %ex.ctx.request_id,
            provider = %tier.provider,
            error = %crate::observability::escaped(reason),
            "semantic cache: the embedding failed; exact matches only for this request"
        );
    };
    let Some(provider) = table.providers.get(&*tier.provider) else {
        failed(&"the embedding provider is not configured");
        return None;
    };
    match embed(provider, &tier.model, &text, &ex.ctx.request_id, &table.redactor).await {
        Ok(e) => {
            bill_embedding(table, ledger, provider, &tier.model, e.input_tokens);
            Some((partition, e))
        }
        Err(e) => {
            failed(&e);
            None
        }
    }
}

/// The embedding was paid for: its tokens and cost reach the ledger under the embedding
/// provider and model, like any answer's (unpriced when the table has no price for it).
fn bill_embedding(
    table: &RouteTable,
    ledger: &UsageLedgerHandle,
    provider: &ProviderRuntime,
    model: &str,
    tokens: u64,
) {
    let usage = Usage {
        prompt_tokens: tokens,
        total_tokens: tokens,
        ..Usage::default()
    };
    let price = table.prices.resolve(&provider.name, &provider.plugin_name, model);
    let cost = price.map(|p| Cost::of(&usage, &p).total_cost);
    if cost.is_none() && !provider.codec.is_local() {
        crate::cost::count_unpriced();
    }
    outbox::record_usage(
        ledger,
        UsageRecord {
            provider: Arc::clone(&provider.name),
            model: Arc::from(model),
            prompt_tokens: tokens,
            completion_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            estimated: false,
            cost_usd: cost,
        },
    );
}

/// A hit, served like a provider's answer: `extra_fields.provider` and `model_deployment`
/// are the ones that produced it, the cost is 0, and no provider's usage is recorded.
fn serve(table: &RouteTable, ex: &Exchange, debug: String, hit: &CachedAnswer) -> Served {
    let ctx = ex.unpaid_context(table, Arc::clone(&hit.provider), Arc::clone(&hit.model_deployment));
    let mut finish = Finisher::new(ctx);
    finish.cache_hit(debug);
    match &hit.body {
        CachedBody::Plain(answer) => Served::Plain {
            answer: answer.clone(),
            finish: Box::new(finish),
            headers: Vec::new(),
        },
        CachedBody::Stream(chunks) => {
            let mut items: Vec<Item> = Vec::with_capacity(chunks.len() + 1);
            items.extend(chunks.iter().cloned().map(Item::Chunk));
            items.push(Item::Done);
            Served::Stream {
                relay: Box::new(Relay::local_finished_by(items, finish)),
                headers: Vec::new(),
            }
        }
    }
}

/// The route phase's answer, stored under the request's ticket (if the cache phase left one):
/// a plain answer now, a stream once it has ended whole (its relay keeps the chunks).
pub fn store_when_answered(ex: &mut Exchange, served: Served) -> Served {
    let Some(ticket) = ex.cache.take() else {
        return served;
    };
    match served {
        Served::Plain {
            answer,
            mut finish,
            headers,
        } => {
            finish.cache_miss(ticket.miss_debug());
            ticket.store_plain(&answer, &finish.ctx.provider, &finish.ctx.model_deployment);
            Served::Plain {
                answer,
                finish,
                headers,
            }
        }
        Served::Stream { mut relay, headers } => {
            relay.store_in_cache(ticket);
            Served::Stream { relay, headers }
        }
    }
}
