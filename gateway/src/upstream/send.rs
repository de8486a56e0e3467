use super::conn_pool::{Conn, ConnPool, SendFailure};
use crate::body_budget::{self, BodyBudget, Lease};
use crate::error::GatewayError;
use bytes::Bytes;
use futures_util::Stream;
use http::header::{ACCEPT, HOST, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHORIZATION};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use switchyard_plugin_api::host::HttpRequestParts;

/// An upstream's response whose headers have arrived; the body is still to be read.
pub struct UpstreamReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: UpstreamBody,
}

/// The body of an upstream response, read either whole or as a stream of byte chunks.
/// Dropping it before the end closes the upstream connection (hyper never returns a
/// connection with an unread body to the pool), which is how a client that goes away cancels
/// the upstream request.
pub struct UpstreamBody {
    body: Incoming,
    /// The connection, kept for the next request once the body has been read to its end.
    conn: Option<(Arc<ConnPool>, Conn)>,
}

impl UpstreamBody {
    fn finished(&mut self) {
        if let Some((pool, conn)) = self.conn.take() {
            pool.put_back(conn);
        }
    }
}

/// A body dropped before its end was polled may still have been received whole (a stream
/// read up to `[DONE]`): then the connection is idle and kept. Otherwise dropping it here
/// closes the connection, which is how the upstream request is cancelled.
impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some((pool, conn)) = self.conn.take() {
            pool.keep_if_idle(conn);
        }
    }
}

/// A failure while reading an upstream body, described without the URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(String);

/// An upstream body as a stream of byte chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>>>>;

/// An upstream body read whole, with its bytes in the process-wide body budget until dropped.
#[derive(Debug)]
pub struct ReadBody {
    bytes: Bytes,
    _lease: Lease<'static>,
}

impl std::ops::Deref for ReadBody {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Largest upstream body the gateway buffers; past it the upstream is treated as broken
/// rather than allowed to exhaust memory.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

impl UpstreamBody {
    /// The data frames as they arrive; trailers (which no provider sends) are skipped.
    pub fn into_stream(self) -> ByteStream {
        Box::pin(self)
    }

    /// Reads the whole body within `limit`, refusing one larger than [`MAX_UPSTREAM_BODY`] or
    /// than what is left of the body budget.
    pub async fn read_all(self, limit: Duration, provider: &str) -> Result<ReadBody, GatewayError> {
        self.read_all_within(&body_budget::IN_FLIGHT, limit, provider).await
    }

    pub(super) async fn read_all_within(
        mut self,
        budget: &'static BodyBudget,
        limit: Duration,
        provider: &str,
    ) -> Result<ReadBody, GatewayError> {
        let too_large = || GatewayError::UpstreamMalformed {
            provider: provider.to_string(),
            reason: format!("the response body is larger than {MAX_UPSTREAM_BODY} bytes"),
        };
        // With a Content-Length the lower bound is the exact size: refuse before reading.
        if self.body.size_hint().lower() > MAX_UPSTREAM_BODY as u64 {
            return Err(too_large());
        }
        // The gateway, not the upstream, is out of room: 503 `server_busy`, the next target,
        // and no mark against the upstream's circuit.
        let busy = || GatewayError::ServerBusy {
            provider: provider.to_string(),
        };
        let read_all = async {
            let mut lease = budget.lease();
            let mut parts: Vec<Bytes> = Vec::new();
            let mut total = 0;
            while let Some(frame) = self.body.frame().await {
                let frame = frame.map_err(|e| GatewayError::UpstreamUnreachable {
                    provider: provider.to_string(),
                    reason: error_chain(&e),
                })?;
                let Ok(chunk) = frame.into_data() else {
                    continue; // trailers
                };
                total += chunk.len();
                if total > MAX_UPSTREAM_BODY {
                    return Err(too_large());
                }
                lease.grow(chunk.len() as u64).map_err(|_| busy())?;
                parts.push(chunk);
            }
            // One part (the common case) is returned without a copy.
            self.finished();
            let bytes = match parts.len() {
                1 => parts.pop().unwrap_or_default(),
                _ => parts.concat().into(),
            };
            Ok(ReadBody { bytes, _lease: lease })
        };
        match tokio::time::timeout(limit, read_all).await {
            Err(_) => Err(GatewayError::UpstreamTimeout {
                provider: provider.to_string(),
                phase: "timeout",
                secs: limit.as_secs_f64(),
            }),
            Ok(result) => result,
        }
    }
}

impl Stream for UpstreamBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => return Poll::Ready(Some(Ok(data))),
                    Err(_) => continue, // trailers
                },
                Some(Err(e)) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(BodyError(error_chain(&e)))));
                }
                None => {
                    this.finished();
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// Sends a codec-built request and waits for the response headers (`first_byte_timeout`).
/// Headers: the codec's, then the provider's configured ones, then the client's `x-bf-eh-*`
/// that the provider's `forward_headers` allowlist names.
pub async fn send(
    pool: &super::Egress,
    parts: HttpRequestParts,
    forwarded: &[(HeaderName, HeaderValue)],
    first_byte: Duration,
    provider: &str,
) -> Result<UpstreamReply, GatewayError> {
    let fault = |reason: String| GatewayError::PluginFault {
        provider: provider.to_string(),
        reason,
    };
    let method = Method::from_bytes(parts.method.as_bytes())
        .map_err(|_| fault(format!("invalid HTTP method `{}`", parts.method)))?;
    let target = pool
        .target(&parts.url)
        .map_err(|e| fault(format!("invalid upstream URL: {e}")))?;
    let configured = &pool.headers;
    // +3: host, accept and, through an http proxy, proxy-authorization.
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + configured.len() + forwarded.len() + 3);
    for (k, v) in &parts.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| fault(format!("invalid header name `{k}`")))?;
        let value = HeaderValue::from_str(v).map_err(|_| fault(format!("invalid value for header `{k}`")))?;
        headers.insert(name, value);
    }
    for (k, v) in configured {
        headers.insert(k.clone(), v.clone());
    }
    // Client-supplied headers pass the provider's allowlist, and then only fill gaps: they
    // can never replace the codec's (auth among them, whatever its name) or the operator's.
    for (k, v) in forwarded.iter().filter(|(k, _)| pool.forward.allows(k)) {
        headers.entry(k.clone()).or_insert_with(|| v.clone());
    }
    // What reqwest sent by default; some servers answer differently without an Accept.
    headers.entry(ACCEPT).or_insert_with(|| HeaderValue::from_static("*/*"));
    if let Some(auth) = target.proxy_auth {
        headers.insert(PROXY_AUTHORIZATION, auth);
    }
    // A Host set by the codec or the operator is kept, as hyper-util would; otherwise the
    // URI's, pre-built. Content-Length comes from the body's exact size.
    headers.entry(HOST).or_insert(target.host);
    let mut request = Request::new(Full::new(Bytes::from(parts.body)));
    *request.method_mut() = method;
    *request.uri_mut() = target.uri;
    *request.headers_mut() = headers;
    let connections = &pool.client.connections;
    let sent = connections.send(&target.destination, request, &target.origin_form);
    match tokio::time::timeout(first_byte, sent).await {
        Err(_) => Err(GatewayError::UpstreamTimeout {
            provider: provider.to_string(),
            phase: "first_byte_timeout",
            secs: first_byte.as_secs_f64(),
        }),
        Ok(Err(e)) => Err(send_error(provider, &e, pool.client.connect_timeout)),
        Ok(Ok((response, conn))) => {
            let (head, body) = response.into_parts();
            Ok(UpstreamReply {
                status: head.status.as_u16(),
                headers: head.headers,
                body: UpstreamBody {
                    body,
                    conn: Some((Arc::clone(connections), conn)),
                },
            })
        }
    }
}

/// A failure to send or to get response headers, described without the URL (it may carry
/// credentials for some providers) but with the underlying cause.
fn send_error(provider: &str, e: &SendFailure, connect_timeout: Duration) -> GatewayError {
    let reason = match e {
        SendFailure::Connect(cause) if caused_by_timeout(&**cause) => {
            return GatewayError::UpstreamTimeout {
                provider: provider.to_string(),
                phase: "connect_timeout",
                secs: connect_timeout.as_secs_f64(),
            };
        }
        SendFailure::Connect(cause) => error_chain(&**cause),
        SendFailure::Http(cause) => error_chain(cause),
    };
    GatewayError::UpstreamUnreachable {
        provider: provider.to_string(),
        reason,
    }
}

/// Whether an I/O timeout is among the causes (the connector's connect timeout surfaces as one).
pub(super) fn caused_by_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// An error and its causes, joined with ": ", skipping a cause whose text its parent already
/// shows. None of hyper's, hyper-util's or rustls's messages include the URL.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !reason.ends_with(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = s.source();
    }
    reason
}
