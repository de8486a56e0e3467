use crate::error::GatewayError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::pin::Pin;
use std::time::Duration;
use switchyard_plugin_api::host::HttpRequestParts;

/// An upstream's response whose headers have arrived; the body is still to be read.
pub struct UpstreamReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: UpstreamBody,
}

/// The body of an upstream response, read either whole or as a stream of byte chunks.
pub struct UpstreamBody {
    response: reqwest::Response,
}

/// A failure while reading an upstream body, described without the URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(String);

/// An upstream body as a stream of byte chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>>>>;

/// Largest upstream body the gateway buffers; past it the upstream is treated as broken
/// rather than allowed to exhaust memory.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

impl UpstreamBody {
    pub fn into_stream(self) -> ByteStream {
        Box::pin(
            self.response
                .bytes_stream()
                .map(|r| r.map_err(|e| BodyError(error_chain(&e)))),
        )
    }

    /// Reads the whole body within `limit`, refusing one larger than [`MAX_UPSTREAM_BODY`].
    pub async fn read_all(mut self, limit: Duration, provider: &str) -> Result<Bytes, GatewayError> {
        let too_large = || GatewayError::UpstreamMalformed {
            provider: provider.to_string(),
            reason: format!("the response body is larger than {MAX_UPSTREAM_BODY} bytes"),
        };
        if self
            .response
            .content_length()
            .is_some_and(|n| n > MAX_UPSTREAM_BODY as u64)
        {
            return Err(too_large());
        }
        let read_all = async {
            let mut parts: Vec<Bytes> = Vec::new();
            let mut total = 0;
            while let Some(chunk) = self.response.chunk().await.map_err(|e| transport_error(provider, &e))? {
                total += chunk.len();
                if total > MAX_UPSTREAM_BODY {
                    return Err(too_large());
                }
                parts.push(chunk);
            }
            // One part (the common case) is returned without a copy.
            Ok(match parts.len() {
                1 => parts.pop().unwrap_or_default(),
                _ => parts.concat().into(),
            })
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

/// Sends a codec-built request and waits for the response headers (`first_byte_timeout`).
/// Headers: the codec's, then the provider's configured ones, then the client's `x-bf-eh-*`
/// (already filtered against the denylist).
pub async fn send(
    pool: &super::ProviderPool,
    parts: HttpRequestParts,
    forwarded: &[(HeaderName, HeaderValue)],
    first_byte: Duration,
    provider: &str,
) -> Result<UpstreamReply, GatewayError> {
    let fault = |reason: String| GatewayError::PluginFault {
        provider: provider.to_string(),
        reason,
    };
    let method = reqwest::Method::from_bytes(parts.method.as_bytes())
        .map_err(|_| fault(format!("invalid HTTP method `{}`", parts.method)))?;
    let url = pool
        .parse_url(&parts.url)
        .map_err(|e| fault(format!("invalid upstream URL: {e}")))?;
    let configured = &pool.headers;
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + configured.len() + forwarded.len());
    for (k, v) in &parts.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| fault(format!("invalid header name `{k}`")))?;
        let value = HeaderValue::from_str(v).map_err(|_| fault(format!("invalid value for header `{k}`")))?;
        headers.insert(name, value);
    }
    for (k, v) in configured {
        headers.insert(k.clone(), v.clone());
    }
    // Client-supplied headers only fill gaps: they can never replace the codec's (auth among
    // them, whatever its name) or the operator's.
    for (k, v) in forwarded {
        headers.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let request = pool.client.request(method, url).headers(headers).body(parts.body);
    match tokio::time::timeout(first_byte, request.send()).await {
        Err(_) => Err(GatewayError::UpstreamTimeout {
            provider: provider.to_string(),
            phase: "first_byte_timeout",
            secs: first_byte.as_secs_f64(),
        }),
        Ok(Err(e)) => Err(transport_error(provider, &e)),
        Ok(Ok(mut response)) => Ok(UpstreamReply {
            status: response.status().as_u16(),
            headers: std::mem::take(response.headers_mut()),
            body: UpstreamBody { response },
        }),
    }
}

/// A transport failure, described without the URL (it may carry credentials for some
/// providers) but with the underlying cause.
fn transport_error(provider: &str, e: &reqwest::Error) -> GatewayError {
    let reason = error_chain(e);
    if e.is_timeout() {
        let phase = if e.is_connect() { "connect_timeout" } else { "timeout" };
        return GatewayError::UpstreamTimeout {
            provider: provider.to_string(),
            phase,
            secs: 0.0,
        };
    }
    GatewayError::UpstreamUnreachable {
        provider: provider.to_string(),
        reason,
    }
}

/// The causes of a transport error, without reqwest's URL prefix.
fn error_chain(e: &reqwest::Error) -> String {
    let mut reason = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if !reason.is_empty() {
            reason.push_str(": ");
        }
        reason.push_str(&s.to_string());
        source = s.source();
    }
    if reason.is_empty() {
        // reqwest's own text starts with the URL; keep it out of client-facing messages.
        reason = if e.is_body() {
            "error reading the body"
        } else {
            "the request failed"
        }
        .to_string();
    }
    reason
}
