//! The pre-hook phase: the configured hooks' `pre_request`, in config order, once per client
//! request (never per attempt). A hook may replace the request, answer it (a short-circuit,
//! which then goes through the post-hook, finish and settle phases like any answer), or
//! reject it.

use super::hook_chain::ShortCircuit;
use super::{Exchange, Failure, Finisher, Relay, Served};
use crate::routing::RouteTable;
use std::sync::Arc;
use switchyard_plugin_api::host::{Item, Payload};

pub fn run(table: &RouteTable, ex: &mut Exchange) -> Result<Option<Served>, Failure> {
    let Some(chain) = ex.hooks.as_mut() else {
        return Ok(None);
    };
    let short = chain.pre_request(&table.hooks, &mut ex.request)?;
    Ok(short.map(|s| short_circuit(s, table, ex)))
}

/// A hook's own answer, served like a provider's: `provider` in `extra_fields` is the hook's
/// name, and no usage is recorded against any provider (no upstream was paid).
fn short_circuit(short: ShortCircuit, table: &RouteTable, ex: &Exchange) -> Served {
    // No provider was paid: a hook's answer records no usage and carries no cost.
    let context = |hook: &Arc<str>, model: &Arc<str>| {
        let model = if model.is_empty() { &ex.alias } else { model };
        ex.unpaid_context(table, Arc::clone(hook), Arc::clone(model))
    };
    match short {
        ShortCircuit::Plain { hook, answer } => Served::Plain {
            finish: Box::new(Finisher::new(context(&hook, &answer.model))),
            answer,
            headers: Vec::new(),
        },
        ShortCircuit::Chunks { hook, chunks } => {
            let model = chunks
                .first()
                .map(|c: &Payload| Arc::clone(&c.model))
                .unwrap_or_default();
            let mut items: Vec<Item> = chunks.into_iter().map(Item::Chunk).collect();
            items.push(Item::Done);
            Served::Stream {
                relay: Box::new(Relay::local(items, context(&hook, &model))),
                headers: Vec::new(),
            }
        }
    }
}
