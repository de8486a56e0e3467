//! The upstream client against small blocking servers on loopback: TLS with certificate
//! checks, a CONNECT proxy, an HTTP proxy, `NO_PROXY`, cancellation and error messages.
//! Proxies are configured through `build_client_with` rather than the environment, which is
//! process-wide and shared by parallel tests.

use super::egress::build_client_with;
use super::{Egress, UpstreamReply, send};
use crate::error::GatewayError;
use futures_util::StreamExt;
use hyper_util::client::proxy::matcher::Matcher;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use switchyard_plugin_api::host::HttpRequestParts;

const CA: &[u8] = include_bytes!("testdata/ca.pem");
const CERT: &[u8] = include_bytes!("testdata/localhost.pem");
const KEY: &[u8] = include_bytes!("testdata/localhost.key");
const WAIT: Duration = Duration::from_secs(5);

fn pool(proxies: Matcher, roots: RootCertStore) -> Egress {
    pool_with_timeout(proxies, roots, Duration::from_secs(2))
}

fn pool_with_timeout(proxies: Matcher, roots: RootCertStore, connect_timeout: Duration) -> Egress {
    pool_of(build_client_with(connect_timeout, proxies, Arc::new(roots)).expect("client"))
}

fn pool_of(client: super::UpstreamClient) -> Egress {
    Egress::new(client, 8, Default::default())
}

fn test_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(CA) {
        roots.add(cert.expect("CA pem")).expect("CA cert");
    }
    roots
}

fn no_proxies() -> Matcher {
    Matcher::builder().build()
}

fn post(url: &str) -> HttpRequestParts {
    HttpRequestParts {
        method: "POST".into(),
        url: url.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{\"q\":1}".to_vec(),
    }
}

async fn call(pool: &Egress, url: &str) -> Result<UpstreamReply, GatewayError> {
    send(pool, post(url), &[], WAIT, "up").await
}

/// Reads one request head and its Content-Length body; returns the head.
fn read_request(s: &mut impl Read) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    s.read_exact(&mut vec![0; len])?;
    Ok(head)
}

/// A listener on a free loopback port, and the port.
fn loopback() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    (listener, port)
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// A plain-http server answering one request with `OK`; yields the request head.
fn http_server() -> (u16, mpsc::Receiver<String>) {
    let (listener, port) = loopback();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || -> io::Result<()> {
        let (mut s, _) = listener.accept()?;
        let head = read_request(&mut s)?;
        s.write_all(OK)?;
        let _ = tx.send(head);
        Ok(())
    });
    (port, rx)
}

/// An https server (certificate for 127.0.0.1 from the test CA) answering one request.
fn tls_server() -> (u16, mpsc::Receiver<String>) {
    let certs = CertificateDer::pem_slice_iter(CERT)
        .collect::<Result<Vec<_>, _>>()
        .expect("cert pem");
    let key = PrivateKeyDer::from_pem_slice(KEY).expect("key pem");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let config = Arc::new(config);
    let (listener, port) = loopback();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || -> io::Result<()> {
        let (tcp, _) = listener.accept()?;
        let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let head = read_request(&mut tls)?;
        tls.write_all(OK)?;
        tls.conn.send_close_notify();
        tls.flush()?;
        let _ = tx.send(head);
        Ok(())
    });
    (port, rx)
}

/// A CONNECT proxy for one tunnel; yields the CONNECT request head.
fn connect_proxy() -> (u16, mpsc::Receiver<String>) {
    let (listener, port) = loopback();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || -> io::Result<()> {
        let (mut client, _) = listener.accept()?;
        let head = read_request(&mut client)?;
        let target = head
            .strip_prefix("connect ")
            .and_then(|r| r.split(' ').next())
            .unwrap_or_default()
            .to_string();
        let _ = tx.send(head);
        let mut upstream = TcpStream::connect(target)?;
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        let (mut c2, mut u2) = (client.try_clone()?, upstream.try_clone()?);
        std::thread::spawn(move || io::copy(&mut c2, &mut u2));
        io::copy(&mut upstream, &mut client)?;
        // The upstream is done: close the client side too, which ends the other copy.
        client.shutdown(Shutdown::Both)
    });
    (port, rx)
}

/// Waits for a server thread's report while letting this thread's tasks run.
async fn recv<T>(rx: &mpsc::Receiver<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Ok(v) = rx.try_recv() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

async fn body_text(reply: UpstreamReply) -> String {
    let body = reply.body.read_all(WAIT, "up").await.expect("body");
    String::from_utf8_lossy(&body).into_owned()
}

#[actix_rt::test]
async fn https_upstream_with_a_trusted_certificate() {
    let (port, heads) = tls_server();
    let pool = pool(no_proxies(), test_roots());
    let reply = call(&pool, &format!("https://127.0.0.1:{port}/v1/chat"))
        .await
        .expect("reply");
    assert_eq!(reply.status, 200);
    assert_eq!(body_text(reply).await, "ok");
    let head = heads.recv_timeout(WAIT).expect("request");
    assert!(head.starts_with("post /v1/chat http/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("host: 127.0.0.1:{port}\r\n")), "{head}");
    assert!(head.contains("content-length: 7\r\n"), "{head}");
}

#[actix_rt::test]
async fn https_upstream_with_an_untrusted_certificate_is_refused() {
    let (port, _heads) = tls_server();
    let pool = pool(no_proxies(), RootCertStore::empty());
    let err = call(&pool, &format!("https://127.0.0.1:{port}/v1/chat"))
        .await
        .err()
        .expect("an untrusted certificate must fail");
    match err {
        GatewayError::UpstreamUnreachable { reason, .. } => {
            assert!(reason.contains("certificate"), "{reason}");
            assert!(!reason.contains("/v1/chat"), "no URL in messages: {reason}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
}

#[actix_rt::test]
async fn https_goes_through_a_connect_proxy_with_credentials() {
    let (up_port, heads) = tls_server();
    let (proxy_port, connects) = connect_proxy();
    let proxies = Matcher::builder()
        .https(format!("http://user:secret@127.0.0.1:{proxy_port}"))
        .build();
    let pool = pool(proxies, test_roots());
    let reply = call(&pool, &format!("https://127.0.0.1:{up_port}/v1/chat"))
        .await
        .expect("reply");
    assert_eq!(reply.status, 200);
    assert_eq!(body_text(reply).await, "ok");
    let connect = connects.recv_timeout(WAIT).expect("CONNECT");
    assert!(
        connect.starts_with(&format!("connect 127.0.0.1:{up_port} http/1.1\r\n")),
        "{connect}"
    );
    // base64("user:secret")
    assert!(
        connect.contains("proxy-authorization: basic dxnlcjpzzwnyzxq=\r\n"),
        "{connect}"
    );
    let head = heads.recv_timeout(WAIT).expect("request");
    assert!(head.starts_with("post /v1/chat http/1.1\r\n"), "{head}");
    assert!(
        !head.contains("proxy-authorization"),
        "the upstream never sees proxy credentials: {head}"
    );
}

#[actix_rt::test]
async fn plain_http_goes_to_the_proxy_in_absolute_form() {
    let (proxy_port, heads) = http_server();
    let proxies = Matcher::builder()
        .http(format!("http://user:secret@127.0.0.1:{proxy_port}"))
        .build();
    let pool = pool(proxies, test_roots());
    // The host does not resolve: only the proxy is ever connected to.
    let reply = call(&pool, "http://upstream.invalid:8080/v1/chat")
        .await
        .expect("reply");
    assert_eq!(reply.status, 200);
    assert_eq!(body_text(reply).await, "ok");
    let head = heads.recv_timeout(WAIT).expect("request");
    assert!(
        head.starts_with("post http://upstream.invalid:8080/v1/chat http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("host: upstream.invalid:8080\r\n"), "{head}");
    assert!(
        head.contains("proxy-authorization: basic dxnlcjpzzwnyzxq=\r\n"),
        "{head}"
    );
}

#[actix_rt::test]
async fn no_proxy_hosts_are_reached_directly() {
    let (port, heads) = http_server();
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let proxies = Matcher::builder()
        .all(format!("http://127.0.0.1:{closed}"))
        .no("127.0.0.1")
        .build();
    let pool = pool(proxies, test_roots());
    let reply = call(&pool, &format!("http://127.0.0.1:{port}/v1/chat"))
        .await
        .expect("reply");
    assert_eq!(reply.status, 200);
    let head = heads.recv_timeout(WAIT).expect("request");
    assert!(head.starts_with("post /v1/chat http/1.1\r\n"), "{head}");
    assert!(head.contains("accept: */*\r\n"), "{head}");
}

#[actix_rt::test]
async fn dropping_the_body_closes_the_upstream_connection() {
    let (listener, port) = loopback();
    let (tx, closed) = mpsc::channel();
    std::thread::spawn(move || -> io::Result<()> {
        // First connection: a body that never completes, then wait for the client to leave.
        let (mut s, _) = listener.accept()?;
        read_request(&mut s)?;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")?;
        s.set_read_timeout(Some(WAIT))?;
        let eof = matches!(s.read(&mut [0u8; 64]), Ok(0));
        let _ = tx.send(eof);
        // Second connection: a whole answer. A request on the first one would have failed
        // the read above.
        let (mut s, _) = listener.accept()?;
        read_request(&mut s)?;
        s.write_all(OK)
    });
    let pool = pool(no_proxies(), test_roots());
    let url = format!("http://127.0.0.1:{port}/v1/chat");
    let reply = call(&pool, &url).await.expect("reply");
    let mut stream = reply.body.into_stream();
    let first = stream.next().await.expect("a chunk").expect("data");
    assert_eq!(&first[..], b"abc");
    drop(stream);
    // Waited for without blocking the thread: the connection's task runs on it.
    assert_eq!(recv(&closed).await, Some(true), "the upstream connection was closed");
    let reply = call(&pool, &url).await.expect("second reply");
    assert_eq!(body_text(reply).await, "ok");
}

#[actix_rt::test]
async fn connections_are_kept_alive_after_a_body_read_to_its_end() {
    let (listener, port) = loopback();
    let (tx, served) = mpsc::channel();
    std::thread::spawn(move || -> io::Result<()> {
        // One connection serves every request; a second would never be accepted.
        let (mut s, _) = listener.accept()?;
        for n in 0..3 {
            read_request(&mut s)?;
            s.write_all(OK)?;
            let _ = tx.send(n);
        }
        Ok(())
    });
    let pool = pool(no_proxies(), test_roots());
    let url = format!("http://127.0.0.1:{port}/v1/chat");
    // Read whole, read as a stream, read whole again: all on the one connection.
    let reply = call(&pool, &url).await.expect("first");
    assert_eq!(body_text(reply).await, "ok");
    let reply = call(&pool, &url).await.expect("second");
    let chunks: Vec<_> = reply.body.into_stream().collect().await;
    assert_eq!(chunks.len(), 1);
    let reply = call(&pool, &url).await.expect("third");
    assert_eq!(body_text(reply).await, "ok");
    assert_eq!(recv(&served).await, Some(0));
    assert_eq!(recv(&served).await, Some(1));
    assert_eq!(recv(&served).await, Some(2));
}

#[actix_rt::test]
async fn a_keep_alive_connection_the_server_closed_is_replaced() {
    let (listener, port) = loopback();
    let (tx, closed) = mpsc::channel();
    std::thread::spawn(move || -> io::Result<()> {
        // A keep-alive answer, then the server drops the idle connection (its keep-alive
        // timeout); the next request must come on a new connection and succeed.
        let (mut s, _) = listener.accept()?;
        read_request(&mut s)?;
        s.write_all(OK)?;
        s.shutdown(Shutdown::Both)?;
        drop(s);
        let _ = tx.send(());
        let (mut s, _) = listener.accept()?;
        read_request(&mut s)?;
        s.write_all(OK)
    });
    let pool = pool(no_proxies(), test_roots());
    let url = format!("http://127.0.0.1:{port}/v1/chat");
    let reply = call(&pool, &url).await.expect("first");
    assert_eq!(body_text(reply).await, "ok");
    assert_eq!(recv(&closed).await, Some(()));
    // Let the connection's task see the close.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reply = call(&pool, &url).await.expect("second, on a new connection");
    assert_eq!(body_text(reply).await, "ok");
}

#[actix_rt::test]
async fn a_truncated_body_is_an_error_without_the_url() {
    let (listener, port) = loopback();
    std::thread::spawn(move || -> io::Result<()> {
        let (mut s, _) = listener.accept()?;
        read_request(&mut s)?;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
    });
    let pool = pool(no_proxies(), test_roots());
    let reply = call(&pool, &format!("http://127.0.0.1:{port}/v1/chat"))
        .await
        .expect("reply");
    match reply.body.read_all(WAIT, "up").await {
        Err(GatewayError::UpstreamUnreachable { reason, .. }) => {
            assert!(!reason.contains("127.0.0.1"), "{reason}");
        }
        other => panic!("unexpected: {other:?}"),
    }
}

#[actix_rt::test]
async fn refused_connections_are_unreachable_without_the_url() {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let pool = pool(no_proxies(), test_roots());
    match call(&pool, &format!("http://127.0.0.1:{port}/v1/chat?key=secret")).await {
        Err(GatewayError::UpstreamUnreachable { reason, .. }) => {
            assert!(reason.to_ascii_lowercase().contains("refused"), "{reason}");
            assert!(!reason.contains("127.0.0.1") && !reason.contains("secret"), "{reason}");
        }
        Err(other) => panic!("unexpected error: {other:?}"),
        Ok(_) => panic!("nothing listens there"),
    }
}

#[actix_rt::test]
async fn urls_hyper_cannot_send_are_plugin_faults() {
    let pool = pool(no_proxies(), test_roots());
    for url in ["/v1/chat", "ftp://example.com/x", "http://exa mple.com/"] {
        match call(&pool, url).await {
            Err(GatewayError::PluginFault { reason, .. }) => {
                assert!(reason.starts_with("invalid upstream URL"), "{url}: {reason}")
            }
            Err(other) => panic!("{url}: unexpected error: {other:?}"),
            Ok(_) => panic!("{url}: sent"),
        }
    }
}

/// Linux drops SYNs to a listener whose accept queue is full, so a connect there hangs: the
/// connect timeout, not the first-byte one, must end it.
#[cfg(target_os = "linux")]
#[actix_rt::test]
async fn a_connect_that_hangs_is_a_connect_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = socket.local_addr().expect("addr");
    let _listener = socket.listen(0).expect("listen");
    let mut queued = Vec::new();
    while let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        queued.push(s);
        assert!(queued.len() < 64, "the accept queue never filled");
    }
    let pool = pool_with_timeout(no_proxies(), test_roots(), Duration::from_millis(300));
    match call(&pool, &format!("http://{addr}/v1/chat")).await {
        Err(GatewayError::UpstreamTimeout { phase, secs, .. }) => {
            assert_eq!(phase, "connect_timeout");
            assert_eq!(secs, 0.3);
        }
        Err(other) => panic!("unexpected error: {other:?}"),
        Ok(_) => panic!("the connect cannot succeed"),
    }
}

#[test]
fn a_connect_timeout_is_recognised_among_the_causes() {
    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error")]
    struct Wrapper(#[source] io::Error);
    let timed_out = Wrapper(io::Error::new(io::ErrorKind::TimedOut, "deadline has elapsed"));
    assert!(super::send::caused_by_timeout(&timed_out));
    let refused = Wrapper(io::ErrorKind::ConnectionRefused.into());
    assert!(!super::send::caused_by_timeout(&refused));
}

#[actix_rt::test]
async fn an_upstream_body_holds_body_budget_until_dropped_and_is_refused_without_it() {
    static BUDGET: crate::body_budget::BodyBudget = crate::body_budget::BodyBudget::new(2);
    let pool = pool(no_proxies(), test_roots());
    let (port, _heads) = http_server();
    let reply = call(&pool, &format!("http://127.0.0.1:{port}/a")).await.expect("reply");
    let body = reply
        .body
        .read_all_within(&BUDGET, WAIT, "up")
        .await
        .expect("2 bytes fit");
    assert_eq!(&*body, b"ok");
    assert_eq!(BUDGET.in_use(), 2, "held while the body lives");

    let (port, _heads) = http_server();
    let reply = call(&pool, &format!("http://127.0.0.1:{port}/b")).await.expect("reply");
    match reply.body.read_all_within(&BUDGET, WAIT, "up").await {
        Err(GatewayError::ServerBusy { provider }) => assert_eq!(provider, "up"),
        other => panic!("the budget is spent: {other:?}"),
    }
    drop(body);
    assert_eq!(BUDGET.in_use(), 0, "given back on drop");
}

/// The client the daemon builds (system roots, proxy settings from the environment) sends a
/// real request and reads the answer.
#[actix_rt::test]
async fn the_system_client_sends_a_request() {
    let (port, heads) = http_server();
    let pool = pool_of(super::build_client(Duration::from_secs(2)).expect("the system client"));
    let reply = call(&pool, &format!("http://127.0.0.1:{port}/v1/chat"))
        .await
        .expect("reply");
    assert_eq!(reply.status, 200);
    assert_eq!(body_text(reply).await, "ok");
    let head = heads.recv_timeout(WAIT).expect("the server saw the request");
    assert!(head.starts_with("post /v1/chat http/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("host: 127.0.0.1:{port}\r\n")), "{head}");
}
