//! Switchyard: an LLM gateway. OpenAI-format requests in; routed, translated by provider
//! plugins, and answered in the same dialect with `extra_fields`.
//!
//! `main.rs` is a thin shell over [`cli::run`]; tests use [`app::build`] and
//! [`http::configure`] directly.

pub mod actors;
pub mod app;
pub mod body_budget;
pub mod cache;
pub mod cli;
pub mod config;
pub mod cost;
pub mod error;
pub mod hooks;
pub mod http;
pub mod json_scan;
pub mod memory;
pub mod observability;
pub mod pipeline;
pub mod plugins;
pub mod redact;
pub mod reload;
pub mod resilience;
pub mod routing;
pub mod upstream;
