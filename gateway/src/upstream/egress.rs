use super::conn_pool::{ConnPool, Destination};
use super::connect::{self, TlsSetupError};
use crate::error::GatewayError;
use http::Uri;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::Scheme;
use hyper_util::client::proxy::matcher::Matcher;
use rustls::RootCertStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request may wait for a free slot under the provider's concurrency limit
/// before it is refused with 503.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// One provider's HTTP client: keep-alive connections per worker over the connector, plus
/// what the request path needs to know about how it connects.
#[derive(Clone)]
pub struct UpstreamClient {
    pub(super) connections: Arc<ConnPool>,
    /// Which URLs go through a proxy (read from the environment when the client was built).
    proxies: Arc<Matcher>,
    /// For the message of a connect timeout.
    pub(super) connect_timeout: Duration,
}

/// What the request path needs of a provider's pool, shared without a mailbox.
#[derive(Clone)]
pub struct Egress {
    pub client: UpstreamClient,
    limit: Arc<Semaphore>,
    /// Requests waiting for a slot. The queue holds at most `concurrency` of them: each holds
    /// its request body, so an unbounded queue would be unbounded memory.
    waiting: Arc<AtomicUsize>,
    queue_limit: usize,
    /// Extra headers from `providers.NAME.headers`, parsed once.
    pub headers: HeaderMap,
    /// Which of the client's `x-bf-eh-*` headers this provider receives.
    pub forward: Arc<super::forward::ForwardAllowlist>,
    /// The last upstream URL and what was derived from it. A codec builds the same URL for
    /// almost every request; parsing it each time cost about a microsecond per request.
    last_target: Arc<arc_swap::ArcSwapOption<(String, Target)>>,
}

/// An upstream URL parsed for sending.
#[derive(Clone)]
pub(super) struct Target {
    pub uri: Uri,
    /// `uri` as the request line writes it on a direct connection (path and query).
    pub origin_form: Uri,
    pub destination: Destination,
    /// The Host header for `uri`, built once rather than formatted by hyper-util per request.
    pub host: HeaderValue,
    /// `Proxy-Authorization` for a plain-http URL that goes through a proxy with credentials
    /// (with https the credentials go on the CONNECT instead).
    pub proxy_auth: Option<HeaderValue>,
}

/// Why an upstream URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum BadUrl {
    #[error("{0}")]
    Parse(#[from] http::uri::InvalidUri),
    #[error("the URL must start with http:// or https:// and name a host")]
    NotHttp,
}

impl Egress {
    pub fn new(client: UpstreamClient, concurrency: u32, headers: HeaderMap) -> Egress {
        Egress {
            client,
            limit: Arc::new(Semaphore::new(concurrency as usize)),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue_limit: concurrency as usize,
            headers,
            forward: Arc::new(super::forward::ForwardAllowlist::new(None)),
            last_target: Arc::new(arc_swap::ArcSwapOption::empty()),
        }
    }

    /// Replaces the default forwarding allowlist with the provider's own.
    pub fn with_forward_allowlist(mut self, allow: super::forward::ForwardAllowlist) -> Egress {
        self.forward = Arc::new(allow);
        self
    }

    /// The parsed form of `url`, from the one-entry cache when it is the last one seen.
    pub(super) fn target(&self, url: &str) -> Result<Target, BadUrl> {
        if let Some(hit) = self.last_target.load().as_ref().filter(|c| c.0 == url) {
            return Ok(hit.1.clone());
        }
        let uri: Uri = url.parse()?;
        // hyper needs the absolute form; anything else would fail later with a vaguer message.
        let is_http = uri.scheme() == Some(&Scheme::HTTP);
        let host = match uri.host() {
            Some(h) if !h.is_empty() && (is_http || uri.scheme() == Some(&Scheme::HTTPS)) => h,
            _ => return Err(BadUrl::NotHttp),
        };
        // As hyper-util writes it: the port only when it is not the scheme's default.
        let default_port = if is_http { 80 } else { 443 };
        let host = match uri.port_u16() {
            Some(port) if port != default_port => HeaderValue::from_str(&format!("{host}:{port}")),
            _ => HeaderValue::from_str(host),
        }
        .map_err(|_| BadUrl::NotHttp)?;
        let proxy_auth = if is_http {
            self.client
                .proxies
                .intercept(&uri)
                .and_then(|p| p.basic_auth().cloned())
        } else {
            None
        };
        let origin_form = match uri.path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
        let destination = Destination::of(&uri).ok_or(BadUrl::NotHttp)?;
        let target = Target {
            uri,
            origin_form,
            destination,
            host,
            proxy_auth,
        };
        self.last_target
            .store(Some(Arc::new((url.to_string(), target.clone()))));
        Ok(target)
    }

    /// A slot under the concurrency limit, held until the attempt (or stream) ends.
    pub async fn acquire(&self, provider: &str) -> Result<OwnedSemaphorePermit, GatewayError> {
        let busy = || GatewayError::ProviderBusy {
            provider: provider.to_string(),
        };
        if let Ok(p) = Arc::clone(&self.limit).try_acquire_owned() {
            return Ok(p);
        }
        // Counted out again on drop, also when the client goes away while waiting.
        struct InQueue<'a>(&'a AtomicUsize);
        impl Drop for InQueue<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let queued = InQueue(&self.waiting);
        // Queue full: refuse at once rather than wait.
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
            return Err(busy());
        }
        let waited = tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.limit).acquire_owned()).await;
        drop(queued);
        match waited {
            Ok(Ok(p)) => Ok(p),
            _ => Err(busy()),
        }
    }
}

/// One HTTP client per provider: keep-alive connections per worker (one idle longer than 90 s
/// is not reused),
/// connect timeout, system proxy settings (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`),
/// certificates checked against the system roots. HTTP/1.1 only. Redirects are never followed
/// (hyper has no such feature): a redirect to another host would carry the provider's key (in
/// whatever header its plugin uses) there, so a 3xx reaches the codec as an upstream failure.
pub fn build_client(connect_timeout: Duration) -> Result<UpstreamClient, TlsSetupError> {
    build_client_with(connect_timeout, Matcher::from_env(), connect::system_roots())
}

/// [`build_client`] with the proxy rules and trusted roots given (tests use their own).
pub(super) fn build_client_with(
    connect_timeout: Duration,
    proxies: Matcher,
    roots: Arc<RootCertStore>,
) -> Result<UpstreamClient, TlsSetupError> {
    let proxies = Arc::new(proxies);
    let connector = connect::connector(connect_timeout, Arc::clone(&proxies), roots)?;
    Ok(UpstreamClient {
        connections: Arc::new(ConnPool::new(connector)),
        proxies,
        connect_timeout,
    })
}

/// Parses configured extra headers (validated at load).
pub fn parse_headers(pairs: impl IntoIterator<Item = (String, String)>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("`{k}` is not a valid header name"))?;
        let value = HeaderValue::from_str(&v).map_err(|_| format!("the value of header `{k}` is not valid"))?;
        map.append(name, value);
    }
    Ok(map)
}
