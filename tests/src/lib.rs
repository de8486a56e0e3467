//! Harness for Switchyard's end-to-end tests.
//!
//! The tests in `tests/tests/` start the real `switchyard` binary (built by `cargo build --workspace`)
//! with a temporary YAML config, load the real plugin libraries, and talk to it over loopback. The
//! upstream side is [`MockUpstream`], a small OpenAI-compatible server with first-class fault modes.
//!
//! - [`paths`]: where the binary, the plugins and the target folder are.
//! - [`gateway`]: start / stop the daemon, run its CLI.
//! - [`upstream`]: the mock OpenAI upstream (records every request it receives).
//! - [`client`]: HTTP helpers for talking to the daemon, SSE parsing, assertions.
//! - [`config`]: config documents as JSON values, rendered to block YAML.
//! - [`external`]: building the plugins that live outside the workspace (`tests/external-*`).
//! - [`redis_server`]: a real `redis-server` on a free port, for the tests of shared state.

pub mod anthropic_upstream;
pub mod client;
pub mod config;
pub mod external;
pub mod gateway;
pub mod gemini_upstream;
pub mod paths;
pub mod python;
pub mod redis_server;
pub mod upstream;
pub mod wire;

pub use client::{Reply, Sse, SseEvent};
pub use config::{UPSTREAM_KEY, standard_config, to_yaml};
pub use gateway::{CliOutput, Gateway};
pub use redis_server::RedisServer;
pub use upstream::{MockUpstream, RecordedRequest};
