//! Keep-alive connections to one provider's upstreams, kept per worker thread.
//!
//! Each HTTP worker is a single-threaded runtime, and a connection's hyper task runs on the
//! worker that opened it; so each worker keeps its own idle connections and only ever reuses
//! those. No lock, no hash of the destination, and no cross-thread wake-up per request (the
//! shared pool of hyper-util's client cost all three, plus a spawned task per request to put
//! the connection back).

use super::connect::UpstreamConnector;
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::Connection;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thread_local::ThreadLocal;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Sender = http1::SendRequest<Full<Bytes>>;

/// An idle connection is closed (never reused) after this long; servers close theirs too,
/// and a connection idle longer than the server allows fails on first use.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per worker and provider; more are closed as they come back.
const MAX_IDLE: usize = 512;
/// How long a connection that has delivered its response may take to become ready again.
const READY_WAIT: Duration = Duration::from_secs(1);

/// Where a connection goes: the scheme decides TLS, the authority the host and port.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Destination {
    https: bool,
    authority: Authority,
}

impl Destination {
    pub(super) fn of(uri: &Uri) -> Option<Destination> {
        Some(Destination {
            https: uri.scheme() == Some(&Scheme::HTTPS),
            authority: uri.authority()?.clone(),
        })
    }
}

/// A connection checked out for one request.
pub(super) struct Conn {
    sender: Sender,
    destination: Destination,
    /// Through an HTTP proxy (not a tunnel): the request line needs the absolute form.
    pub(super) proxied: bool,
    /// It served a request before, so a failure to even start sending may be a close the
    /// server decided while it sat idle, and another connection may do better.
    reused: bool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Why a request got no response.
#[derive(Debug)]
pub(super) enum SendFailure {
    /// Opening the connection failed (TCP, proxy, TLS).
    Connect(BoxError),
    /// The connection opened but the request or the response head failed.
    Http(hyper::Error),
}

pub(super) struct ConnPool {
    connector: UpstreamConnector,
    idle: ThreadLocal<RefCell<VecDeque<Idle>>>,
}

impl ConnPool {
    pub(super) fn new(connector: UpstreamConnector) -> ConnPool {
        ConnPool {
            connector,
            idle: ThreadLocal::new(),
        }
    }

    /// Sends `request` (absolute URI) on an idle connection to its destination or a new one.
    /// `origin_form` is the URI as written on a direct connection. Returns the connection
    /// with the response; [`ConnPool::put_back`] it once the body has been read to the end.
    pub(super) async fn send(
        &self,
        destination: &Destination,
        mut request: Request<Full<Bytes>>,
        origin_form: &Uri,
    ) -> Result<(Response<Incoming>, Conn), SendFailure> {
        let absolute = request.uri().clone();
        loop {
            let mut conn = match self.take_idle(destination) {
                Some(conn) => conn,
                // Boxed: connecting (TCP, proxy, TLS, handshake) is a large future, and
                // inline it would make every request's future (moved whole into actix's
                // box) several kilobytes bigger.
                None => Box::pin(self.connect(destination, &absolute)).await?,
            };
            *request.uri_mut() = if conn.proxied {
                absolute.clone()
            } else {
                origin_form.clone()
            };
            match conn.sender.try_send_request(request).await {
                Ok(response) => return Ok((response, conn)),
                Err(mut e) => match e.take_message() {
                    // Not a byte was written: the idle connection had been closed under us.
                    Some(unsent) if conn.reused => request = unsent,
                    _ => return Err(SendFailure::Http(e.into_error())),
                },
            }
        }
    }

    /// Keeps `conn` for the next request on this worker, once its last response has been
    /// read whole (hyper closes a connection whose response body was left unread).
    pub(super) fn put_back(self: &Arc<Self>, mut conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        conn.reused = true;
        if conn.sender.is_ready() {
            self.keep(conn);
            return;
        }
        // The connection's task has not yet seen the end of the response; it is ready as soon
        // as it does. Rare: the end of a body usually comes from that task with the
        // connection already idle. The wait runs on this worker (a single-threaded runtime),
        // whose list the connection joins.
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, conn.sender.ready()).await {
                pool.keep(conn);
            }
        });
    }

    /// Keeps `conn` if it is idle now, without waiting; otherwise drops (closes) it.
    pub(super) fn keep_if_idle(&self, mut conn: Conn) {
        if conn.sender.is_ready() {
            conn.reused = true;
            self.keep(conn);
        }
    }

    fn keep(&self, conn: Conn) {
        let mut idle = self.idle.get_or_default().borrow_mut();
        let now = Instant::now();
        // The oldest are at the front; drop those past their time first.
        while idle.front().is_some_and(|i| now.duration_since(i.since) > IDLE_TIMEOUT) {
            idle.pop_front();
        }
        if idle.len() >= MAX_IDLE {
            return;
        }
        idle.push_back(Idle { conn, since: now });
    }

    /// The most recently used idle connection to `destination` that is still open and ready.
    fn take_idle(&self, destination: &Destination) -> Option<Conn> {
        let mut idle = self.idle.get()?.borrow_mut();
        let now = Instant::now();
        while let Some(at) = idle.iter().rposition(|i| i.conn.destination == *destination) {
            let Some(candidate) = idle.remove(at) else {
                break;
            };
            let fresh = now.duration_since(candidate.since) <= IDLE_TIMEOUT;
            if fresh && candidate.conn.sender.is_ready() {
                return Some(candidate.conn);
            }
            // Closed, expired or busy: dropped here, which closes it.
        }
        None
    }

    async fn connect(&self, destination: &Destination, uri: &Uri) -> Result<Conn, SendFailure> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(SendFailure::Connect)?;
        let io = connector.call(uri.clone()).await.map_err(SendFailure::Connect)?;
        let proxied = io.connected().is_proxied();
        let (sender, connection) = http1::handshake(io).await.map_err(SendFailure::Http)?;
        // The connection's I/O runs as its own task on this worker until either side closes.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("upstream connection ended: {e}");
            }
        });
        Ok(Conn {
            sender,
            destination: destination.clone(),
            proxied,
            reused: false,
        })
    }
}
