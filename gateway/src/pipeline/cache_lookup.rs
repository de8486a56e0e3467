//! The cache lookup phase: an exact cache hit answers the request here, through the same
//! post-hook, finish and settle phases as an upstream's answer (DESIGN §4 cache); a miss
//! leaves a ticket with which the route phase's answer is stored.
//!
//! Without a cache (`cache.enabled` off), or for a request that does not ask for one (no
//! `x-bf-cache-key`, an alias without `cache: true`), the phase is one branch and nothing else.

use super::{Exchange, Finisher, Relay, Served};
use crate::cache::{CacheId, CacheTicket, CachedAnswer, CachedBody, debug_json};
use crate::routing::RouteTable;
use std::sync::Arc;
use switchyard_plugin_api::host::Item;

pub fn run(table: &RouteTable, ex: &mut Exchange) -> Option<Served> {
    let cache = table.cache.as_ref()?;
    let asks = &ex.ctx.cache;
    if asks.semantic_only {
        // The semantic tier is not built yet: such a request skips the cache.
        return None;
    }
    let namespace: Arc<str> = match &asks.namespace {
        Some(ns) => Arc::from(ns.as_str()),
        None if table.aliases.get(&*ex.alias).is_some_and(|a| a.cache) => Arc::from(""),
        None => return None,
    };
    // The request as routed: a hook's replacement, if one replaced it.
    let id = CacheId::of(&namespace, ex.request.body())?;
    if let Some(hit) = cache.get(id, ex.request.stream) {
        return Some(serve(table, ex, id, &hit));
    }
    ex.cache = Some(CacheTicket {
        cache: Arc::clone(cache),
        id,
        namespace,
        ttl: asks.ttl.unwrap_or(cache.default_ttl),
        store: !asks.no_store,
    });
    None
}

/// A hit, served like a provider's answer: `extra_fields.provider` and `model_deployment`
/// are the ones that produced it, the cost is 0, and no provider's usage is recorded.
fn serve(table: &RouteTable, ex: &Exchange, id: CacheId, hit: &CachedAnswer) -> Served {
    let ctx = ex.unpaid_context(table, Arc::clone(&hit.provider), Arc::clone(&hit.model_deployment));
    let mut finish = Finisher::new(ctx);
    finish.cache_hit(debug_json(true, id));
    match &hit.body {
        CachedBody::Plain(answer) => Served::Plain {
            answer: answer.clone(),
            finish: Box::new(finish),
            headers: Vec::new(),
        },
        CachedBody::Stream(chunks) => {
            let mut items: Vec<Item> = chunks.iter().cloned().map(Item::Chunk).collect();
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
