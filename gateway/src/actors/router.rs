//! The Router actor owns the routing snapshot. Readers load it lock-free from the shared
//! `ArcSwap`; replacing it (config reload) goes through the actor so swaps are serialised.

use crate::routing::RouteTable;
use actix::prelude::*;
use arc_swap::ArcSwap;
use std::sync::Arc;

pub struct Router {
    table: Arc<ArcSwap<RouteTable>>,
}

impl Actor for Router {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(super::MAILBOX_CAPACITY);
    }
}

impl Supervised for Router {}

/// Replaces the routing table; in-flight requests keep the snapshot they loaded.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReplaceRoutes(pub Arc<RouteTable>);

impl Handler<ReplaceRoutes> for Router {
    type Result = ();
    fn handle(&mut self, msg: ReplaceRoutes, _ctx: &mut Self::Context) {
        tracing::info!(
            aliases = msg.0.alias_count(),
            providers = msg.0.provider_count(),
            "routing table replaced"
        );
        self.table.store(msg.0);
    }
}

/// What the rest of the gateway holds: a lock-free view plus the actor's address.
#[derive(Clone)]
pub struct RouterHandle {
    table: Arc<ArcSwap<RouteTable>>,
    addr: Addr<Router>,
}

impl RouterHandle {
    pub fn start(arbiter: &ArbiterHandle, table: RouteTable) -> RouterHandle {
        let table = Arc::new(ArcSwap::from_pointee(table));
        let shared = Arc::clone(&table);
        let addr = Supervisor::start_in_arbiter(arbiter, move |_| Router { table: shared });
        RouterHandle { table, addr }
    }

    /// The current snapshot (a cheap, lock-free load).
    pub fn current(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Hands the router a new table; the returned future completes once it is live, so a
    /// reload can answer "reloaded" only when the next request sees the new config.
    pub fn replace(&self, table: Arc<RouteTable>) -> impl std::future::Future<Output = ()> + 'static {
        let sent = self.addr.send(ReplaceRoutes(table));
        async move {
            if sent.await.is_err() {
                tracing::error!("the router is gone; routing table not replaced");
            }
        }
    }
}
