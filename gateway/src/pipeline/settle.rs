//! The settle phase: the request's outcome reaches the hooks' `on_done` (usage already went
//! to the ledger from the Finisher). A stream settles when its relay ends instead, since its
//! outcome is not known before. `on_done` runs off the answer's path: the chain is dropped on
//! a task of its own, after the response has been handed to the client.

use super::{Answer, Exchange, Failure};

pub fn run(mut ex: Exchange, result: &Result<Answer, Failure>) {
    let Some(mut chain) = ex.hooks.take() else {
        return;
    };
    if let Err(failure) = result {
        chain.outcome.status = failure.error.status().as_u16();
        chain.outcome.provider = failure.provider.clone();
    }
    if chain.has_on_done() {
        actix_web::rt::spawn(async move { drop(chain) });
    }
}
