use crate::actors::provider_pool::PoolStatsHandle;
use crate::error::GatewayError;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request may wait for a free slot under the provider's concurrency limit
/// before it is refused with 503 (a bounded queue, never unbounded memory).
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// What the request path needs of a provider's pool, shared without a mailbox.
#[derive(Clone)]
pub struct ProviderPool {
    pub client: reqwest::Client,
    limit: Arc<Semaphore>,
    /// Extra headers from `providers.NAME.headers`, parsed once.
    pub headers: HeaderMap,
    pub stats: PoolStatsHandle,
    /// The last upstream URL and its parsed form. A codec builds the same URL for almost
    /// every request; parsing it each time (IDNA, host, path) cost a few µs per request.
    last_url: Arc<arc_swap::ArcSwapOption<(String, reqwest::Url)>>,
}

impl ProviderPool {
    pub fn new(client: reqwest::Client, concurrency: u32, headers: HeaderMap, stats: PoolStatsHandle) -> ProviderPool {
        ProviderPool {
            client,
            limit: Arc::new(Semaphore::new(concurrency as usize)),
            headers,
            stats,
            last_url: Arc::new(arc_swap::ArcSwapOption::empty()),
        }
    }

    /// The parsed form of `url`, from the one-entry cache when it is the last one seen.
    pub fn parse_url(&self, url: &str) -> Result<reqwest::Url, url::ParseError> {
        if let Some(hit) = self.last_url.load().as_ref().filter(|c| c.0 == url) {
            return Ok(hit.1.clone());
        }
        let parsed = reqwest::Url::parse(url)?;
        self.last_url.store(Some(Arc::new((url.to_string(), parsed.clone()))));
        Ok(parsed)
    }

    /// A slot under the concurrency limit, held until the attempt (or stream) ends.
    pub async fn acquire(&self, provider: &str) -> Result<OwnedSemaphorePermit, GatewayError> {
        let busy = || GatewayError::ProviderBusy {
            provider: provider.to_string(),
        };
        if let Ok(p) = Arc::clone(&self.limit).try_acquire_owned() {
            return Ok(p);
        }
        match tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.limit).acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(busy()),
        }
    }
}

/// One HTTP client per provider: pooled keep-alive connections, connect timeout, system
/// proxy settings (`HTTPS_PROXY`), certificates checked against the system roots.
pub fn build_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        // Never follow redirects: a redirect to another host would carry the provider's key
        // (in whatever header its plugin uses) there. A 3xx is an upstream failure.
        .redirect(reqwest::redirect::Policy::none())
        .build()
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
