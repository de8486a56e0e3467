//! Upstream I/O, owned by the host: one HTTP/1.1 client per provider (hyper connections kept
//! alive per worker thread, over TCP, the environment's proxy and rustls), a concurrency limit,
//! and the mapping of transport failures to gateway errors.

mod conn_pool;
mod connect;
mod egress;
pub mod forward;
mod send;

pub use connect::TlsSetupError;
pub use egress::{Egress, UpstreamClient, build_client, parse_headers};
pub use send::{BodyError, ByteStream, ReadBody, UpstreamBody, UpstreamReply, send};

#[cfg(test)]
mod tests;
