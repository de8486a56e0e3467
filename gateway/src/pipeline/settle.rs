//! The settle phase: the request's outcome reaches the hooks' `on_done` (usage already went
//! to the ledger from the Finisher). A stream settles when its relay ends instead, since its
//! outcome is not known before. `on_done` is called inline, once the answer is built: a task
//! per request to defer it cost more than a hook's `on_done` is allowed to (hooks that do
//! real work there, like `request_log`, hand it to a thread of their own).

use super::{Answer, Exchange, Failure};

pub fn run(mut ex: Exchange, result: &Result<Answer, Failure>) {
    let Some(mut chain) = ex.hooks.take() else {
        return;
    };
    if let Err(failure) = result {
        chain.outcome.status = failure.error.status().as_u16();
        chain.outcome.provider = failure.provider.clone();
    }
    // Dropping the chain runs `on_done` and releases every hook's state.
    drop(chain);
}
