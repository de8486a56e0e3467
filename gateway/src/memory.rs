//! Giving memory back to the system once a worker goes quiet.
//!
//! The allocator (mimalloc) returns a freed page to the system only when the thread that owns
//! it allocates or frees again. A worker that served ten thousand open streams and then went
//! idle would keep all of their memory until its next request. Each worker therefore runs a
//! slow ticker that, after a second without activity, asks the allocator once to release
//! what is free.

use std::cell::Cell;
use std::time::Duration;

/// How long a worker must be quiet before its free memory is released.
const QUIET: Duration = Duration::from_secs(1);

thread_local! {
    /// A request started or a stream ended on this worker since the last tick.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Marks this worker busy (a thread-local write): at the start of each request, and when a
/// stream ends (what it frees is what there is to release).
pub fn note_activity() {
    BUSY.set(true);
}

/// Runs for the worker's life; spawn it once on each worker.
pub async fn release_when_quiet() {
    let mut tick = tokio::time::interval(QUIET);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut released = true;
    loop {
        tick.tick().await;
        if BUSY.replace(false) {
            released = false;
        } else if !released {
            // SAFETY: no preconditions; it only acts on this thread's heap (and shared
            // segments it may reclaim), and returns nothing.
            unsafe { libmimalloc_sys::mi_collect(false) };
            released = true;
        }
    }
}

/// Gives this thread's free memory back to the system now: after building a config (the
/// pricing table's parse leaves megabytes free that the allocator would otherwise keep).
pub fn release_now() {
    // SAFETY: as in `release_when_quiet`.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
