//! Upstream I/O, owned by the host: one pooled HTTP client per provider, a concurrency
//! limit, and the mapping of transport failures to gateway errors.

mod pool;
mod send;

pub use pool::{ProviderPool, build_client, parse_headers};
pub use send::{BodyError, ByteStream, UpstreamBody, UpstreamReply, send};
