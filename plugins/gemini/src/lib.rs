//! The `gemini` provider plugin: a codec between the unified schema (OpenAI chat completions)
//! and Google's Gemini API (`models.generateContent` and `models.streamGenerateContent` with
//! `alt=sse`), both directions, streaming included.
//!
//! - [`setup`]: `base_url` (default `https://generativelanguage.googleapis.com`) and options
//!   (`api_version`, default `v1beta`);
//! - [`request`]: the OpenAI request → `GenerateContentRequest` (and [`schema`] for JSON Schemas);
//! - [`response`]: `GenerateContentResponse` → `chat.completion`;
//! - [`stream`]: the SSE stream → `chat.completion.chunk`s;
//! - [`error`]: Google error bodies → unified errors.
//!
//! Each module's documentation has its translation table; the crate's README sums them up
//! with what is lossy.

mod error;
mod gemini;
mod openai;
mod request;
mod response;
mod schema;
mod setup;
mod stream;
mod text;

use setup::Endpoint;
use switchyard_plugin_api::sdk::{Context, Out, Provider, ProviderError, ProviderSetup, StreamDecoder};

/// One configured Gemini provider.
pub struct GeminiCodec {
    endpoint: Endpoint,
}

impl Provider for GeminiCodec {
    fn create(setup: ProviderSetup) -> Result<Self, String> {
        Ok(GeminiCodec {
            endpoint: Endpoint::from_setup(&setup)?,
        })
    }

    fn encode_request(&self, ctx: &Context<'_>, request: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        request::encode(&self.endpoint, ctx, request, out)
    }

    fn decode_response(
        &self,
        ctx: &Context<'_>,
        _status: u16,
        body: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), ProviderError> {
        response::decode(ctx, body, out)
    }

    fn decode_error(&self, _ctx: &Context<'_>, status: u16, body: &[u8]) -> ProviderError {
        error::from_status(status, body)
    }

    fn open_stream(&self, _ctx: &Context<'_>) -> Option<Box<dyn StreamDecoder>> {
        Some(Box::new(stream::open()))
    }
}

switchyard_plugin_api::export_provider!(GeminiCodec, name = "gemini", version = env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests;
