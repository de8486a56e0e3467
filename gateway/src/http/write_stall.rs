//! Cuts streams whose client stopped reading (`server.stream_write_timeout`).
//!
//! A client that keeps its connection open but does not read fills its socket buffers; actix
//! then stops polling the response body, so the relay never runs again, and its provider
//! concurrency slot and upstream connection would be held for as long as the client likes.
//! Nothing inside the relay can notice, since it is not polled: a per-worker sweeper looks
//! at every open stream instead and drops the relay of one that has waited too long for the
//! client to take its last frame. Dropping the relay releases the slot and closes the
//! upstream connection (which cancels the upstream request).
//!
//! Cost: one small allocation and a registry push per stream, one clock read per frame; the
//! sweeper wakes a few times a second per worker and does nothing while no stream is open.

use bytes::Bytes;
use futures_util::Stream;
use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

type Frames = Pin<Box<dyn Stream<Item = Result<Bytes, actix_web::Error>>>>;

/// One stream's state, shared by the response body and the worker's sweeper.
struct Watched {
    /// `None` once the sweeper cut the stream.
    frames: RefCell<Option<Frames>>,
    /// When the body last handed a frame to actix without being polled since: the time the
    /// client has had to take it.
    waiting_since: Cell<Option<Instant>>,
    timeout: Duration,
}

impl Watched {
    /// Drops the stream if its client has not taken a frame within the timeout. Never runs
    /// during a poll of the same stream: both happen on one worker thread, one at a time.
    fn sweep(&self, now: Instant) {
        let Some(since) = self.waiting_since.get() else {
            return;
        };
        if now.saturating_duration_since(since) < self.timeout {
            return;
        }
        if let Ok(mut frames) = self.frames.try_borrow_mut()
            && frames.take().is_some()
        {
            self.waiting_since.set(None);
            tracing::warn!(
                timeout_ms = self.timeout.as_millis() as u64,
                "stream cut: the client stopped reading (server.stream_write_timeout); upstream request cancelled"
            );
        }
    }
}

/// A response body that the worker's sweeper may cut.
pub struct StallGuarded {
    watched: Rc<Watched>,
}

impl StallGuarded {
    /// Wraps `frames`; `timeout` zero means never cut.
    pub fn new(
        frames: impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
        timeout: Duration,
    ) -> StallGuarded {
        let watched = Rc::new(Watched {
            frames: RefCell::new(Some(Box::pin(frames))),
            waiting_since: Cell::new(None),
            timeout,
        });
        if !timeout.is_zero() {
            register(&watched);
        }
        StallGuarded { watched }
    }
}

impl Stream for StallGuarded {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let w = &self.watched;
        w.waiting_since.set(None);
        let mut slot = w.frames.borrow_mut();
        let Some(frames) = slot.as_mut() else {
            // Cut: end the body with an error, so actix closes the connection instead of
            // ending the chunked body as if the answer were complete.
            return Poll::Ready(Some(Err(actix_web::error::ErrorRequestTimeout(
                "the client stopped reading the stream",
            ))));
        };
        let polled = frames.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if !w.timeout.is_zero() => w.waiting_since.set(Some(Instant::now())),
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => *slot = None,
            _ => {}
        }
        polled
    }
}

#[derive(Default)]
struct Registry {
    streams: Vec<Weak<Watched>>,
    sweeper_running: bool,
}

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

fn register(watched: &Rc<Watched>) {
    let start = REGISTRY.with_borrow_mut(|r| {
        r.streams.push(Rc::downgrade(watched));
        !std::mem::replace(&mut r.sweeper_running, true)
    });
    if start {
        tokio::task::spawn_local(sweep_until_idle(sweep_interval(watched.timeout)));
    }
}

/// Often enough that a stream is cut at most a quarter of its timeout late.
fn sweep_interval(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Sweeps this worker's open streams until none is left, then stops (the next stream starts
/// it again), so an idle worker has no timer.
async fn sweep_until_idle(every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let now = Instant::now();
        let open: Vec<Rc<Watched>> = REGISTRY.with_borrow_mut(|r| {
            r.streams.retain(|w| w.strong_count() > 0);
            if r.streams.is_empty() {
                r.sweeper_running = false;
            }
            r.streams.iter().filter_map(Weak::upgrade).collect()
        });
        if open.is_empty() {
            return;
        }
        // Outside the registry borrow: dropping a relay may end other work on this thread.
        for w in &open {
            w.sweep(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn frames(n: usize) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        futures_util::stream::iter((0..n).map(|i| Ok(Bytes::from(format!("data: {i}\n\n")))))
    }

    #[actix_rt::test]
    async fn a_stream_not_polled_after_a_frame_is_cut_after_the_timeout() {
        let dropped = Rc::new(Cell::new(false));
        struct OnDrop(Rc<Cell<bool>>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let guard = OnDrop(Rc::clone(&dropped));
        let inner = frames(10).map(move |f| {
            let _ = &guard;
            f
        });
        let mut body = StallGuarded::new(inner, Duration::from_millis(200));
        assert!(body.next().await.is_some_and(|f| f.is_ok()));
        // The "client" stops reading: nobody polls the body.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(dropped.get(), "the inner stream (the relay) was dropped");
        assert!(
            matches!(body.next().await, Some(Err(_))),
            "a cut body ends with an error"
        );
    }

    #[actix_rt::test]
    async fn a_stream_read_slowly_but_steadily_is_not_cut() {
        let mut body = StallGuarded::new(frames(6), Duration::from_millis(300));
        let mut got = 0;
        while let Some(frame) = body.next().await {
            assert!(frame.is_ok());
            got += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(got, 6);
    }

    #[actix_rt::test]
    async fn a_zero_timeout_never_cuts() {
        let mut body = StallGuarded::new(frames(2), Duration::ZERO);
        assert!(body.next().await.is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(body.next().await.is_some_and(|f| f.is_ok()));
        assert!(REGISTRY.with_borrow(|r| r.streams.is_empty()));
    }
}
