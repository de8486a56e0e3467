//! How connections to upstreams are made: TCP, through the proxy the environment names
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, as curl reads them), then TLS for https URLs.
//!
//! The layering, outermost first: [`HttpsConnector`] (TLS to the upstream when the URL is
//! https) over [`ProxyConnector`] (a direct TCP connection, a CONNECT tunnel through the proxy,
//! or a connection to the proxy for plain-http requests) over [`HttpConnector`] (TCP).

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector the upstream client uses.
pub type UpstreamConnector = HttpsConnector<ProxyConnector>;

/// The certificate store could not be turned into a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[error("TLS setup failed: {0}")]
pub struct TlsSetupError(#[from] rustls::Error);

/// Builds the connector: TCP with `connect_timeout`, `proxies` applied, TLS verified by `roots`.
pub fn connector(
    connect_timeout: Duration,
    proxies: Arc<Matcher>,
    roots: Arc<RootCertStore>,
) -> Result<UpstreamConnector, TlsSetupError> {
    let tls = tls_config(roots)?;
    let mut tcp = HttpConnector::new();
    // The scheme is checked by the TLS layer above; this one must accept https URLs too.
    tcp.enforce_http(false);
    // Requests are written whole; Nagle would only delay the last segment.
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    // The same keepalive probing reqwest did: a silent upstream on a long stream is noticed in
    // about a minute instead of never (the stream idle timeout is optional).
    tcp.set_keepalive(Some(Duration::from_secs(15)));
    tcp.set_keepalive_interval(Some(Duration::from_secs(15)));
    tcp.set_keepalive_retries(Some(3));
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    tcp.set_tcp_user_timeout(Some(Duration::from_secs(30)));
    // Reaching an https:// proxy needs TLS to the proxy itself; an http:// one passes through.
    let to_proxy = HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp.clone());
    let proxy = ProxyConnector(Arc::new(ProxyParts {
        direct: tcp,
        to_proxy,
        proxies,
    }));
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(proxy))
}

/// The system's trusted roots (the distribution's bundle, or `SSL_CERT_FILE`/`SSL_CERT_DIR`),
/// read once per process: reading and parsing them costs milliseconds, and every provider
/// (and every config reload) builds a client.
pub fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!("reading the system's trusted certificates: {e}");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::warn!("{ignored} of the system's trusted certificates could not be parsed and are ignored");
        }
        if added == 0 {
            // Not fatal: plain-http upstreams still work; https ones fail with "unknown issuer".
            tracing::warn!("no trusted root certificates found; https upstreams will fail certificate checks");
        }
        Arc::new(roots)
    }))
}

/// TLS 1.2/1.3 with ring (the provider the rest of the process uses), certificates checked
/// against `roots`. The provider is named here rather than taken from the process default so
/// a client can be built before (or without) `install_crypto_provider`.
fn tls_config(roots: Arc<RootCertStore>) -> Result<ClientConfig, TlsSetupError> {
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Opens the byte stream a request travels on: straight to the upstream, or through the proxy
/// the environment names for the URL's scheme (unless `NO_PROXY` exempts the host).
///
/// One `Arc`: hyper-util clones the connector for every request, even one that is served
/// from the pool, and the parts hold several `Arc`s of their own.
#[derive(Clone)]
pub struct ProxyConnector(Arc<ProxyParts>);

struct ProxyParts {
    direct: HttpConnector,
    to_proxy: HttpsConnector<HttpConnector>,
    proxies: Arc<Matcher>,
}

type Tcp = TokioIo<TcpStream>;
type Connecting = Pin<Box<dyn Future<Output = Result<ProxyStream, BoxError>> + Send>>;

impl Service<http::Uri> for ProxyConnector {
    type Response = ProxyStream;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // HttpConnector with the system resolver is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: http::Uri) -> Connecting {
        // The clones below happen only when a new connection is opened.
        let parts = &*self.0;
        let Some(proxy) = parts.proxies.intercept(&dst) else {
            let connecting = parts.direct.clone().call(dst);
            return Box::pin(async move {
                Ok(ProxyStream {
                    io: MaybeHttpsStream::Http(connecting.await?),
                    proxied: false,
                })
            });
        };
        if dst.scheme() == Some(&http::uri::Scheme::HTTPS) {
            // A CONNECT tunnel: the proxy relays bytes, TLS runs end to end with the upstream
            // (the layer above), so the proxy sees neither the request nor the key.
            let mut tunnel = Tunnel::new(proxy.uri().clone(), parts.to_proxy.clone());
            if let Some(auth) = proxy.basic_auth() {
                tunnel = tunnel.with_auth(auth.clone());
            }
            let connecting = tunnel.call(dst);
            Box::pin(async move {
                Ok(ProxyStream {
                    io: connecting.await?,
                    proxied: false,
                })
            })
        } else {
            // Plain http through a proxy: connect to the proxy and mark the connection proxied,
            // so hyper writes the request line in absolute form (`POST http://host/path`).
            let connecting = parts.to_proxy.clone().call(proxy.uri().clone());
            Box::pin(async move {
                Ok(ProxyStream {
                    io: connecting.await?,
                    proxied: true,
                })
            })
        }
    }
}

/// A connection to the upstream or to a proxy, remembering which (hyper needs to know).
pub struct ProxyStream {
    io: MaybeHttpsStream<Tcp>,
    proxied: bool,
}

impl Connection for ProxyStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for ProxyStream {
    #[inline]
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for ProxyStream {
    #[inline]
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    // Passed through so hyper keeps writing head and body with one writev.
    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
