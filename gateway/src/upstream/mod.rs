//! Upstream I/O, owned by the host: one pooled HTTP client per provider (hyper-util's, over
//! TCP, the environment's proxy and rustls), a concurrency limit, and the mapping of transport
//! failures to gateway errors.

mod connect;
mod pool;
mod send;

pub use connect::TlsSetupError;
pub use pool::{ProviderPool, UpstreamClient, build_client, parse_headers};
pub use send::{BodyError, ByteStream, UpstreamBody, UpstreamReply, send};

#[cfg(test)]
mod tests;
