//! The `gemini` provider plugin: a codec between the unified schema (OpenAI chat completions)
//! and Google's Gemini API (`models.generateContent` and `models.streamGenerateContent` with
//! `alt=sse`), both directions, streaming included.
//!
//! - [`setup`]: `base_url` (default `https://generativelanguage.googleapis.com`) and options
//!   (`api_version`, default `v1beta`);
//! - [`request`]: the OpenAI request → `GenerateContentRequest` (and [`schema`] for JSON Schemas);
//! - [`response`]: `GenerateContentResponse` → `chat.completion`;
//! - [`stream`]: the SSE stream → `chat.completion.chunk`s;
//! - [`embeddings`]: the `embeddings` operation, OpenAI's embeddings request →
//!   `models.batchEmbedContents` and back;
//! - [`error`]: Google error bodies → unified errors (chat and embeddings alike).
//!
//! Every call branches on the operation (chat or embeddings), so a chat translation is never
//! handed an embeddings body, nor the other way round.
//!
//! Each module's documentation has its translation table; the crate's README sums them up
//! with what is lossy.

mod embeddings;
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
use switchyard_plugin_api::sdk::{Context, Out, Provider, ProviderError, ProviderSetup, StreamDecoder, operation};

/// One configured Gemini provider.
pub struct GeminiCodec {
    endpoint: Endpoint,
    /// What each embeddings answer needs from its request (see [`embeddings::Pending`]).
    pending: embeddings::Pending,
}

impl Provider for GeminiCodec {
    fn create(setup: ProviderSetup) -> Result<Self, String> {
        Ok(GeminiCodec {
            endpoint: Endpoint::from_setup(&setup)?,
            pending: embeddings::Pending::default(),
        })
    }

    fn encode_request(&self, ctx: &Context<'_>, request: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        if ctx.is_embeddings() {
            embeddings::encode(&self.endpoint, &self.pending, ctx, request, out)
        } else if ctx.is_chat() {
            request::encode(&self.endpoint, ctx, request, out)
        } else {
            Err(ProviderError::unsupported_operation(ctx.operation))
        }
    }

    fn decode_response(
        &self,
        ctx: &Context<'_>,
        _status: u16,
        body: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), ProviderError> {
        if ctx.is_embeddings() {
            embeddings::decode(&self.pending, ctx, body, out)
        } else if ctx.is_chat() {
            response::decode(ctx, body, out)
        } else {
            Err(ProviderError::unsupported_operation(ctx.operation))
        }
    }

    fn decode_error(&self, ctx: &Context<'_>, status: u16, body: &[u8]) -> ProviderError {
        if ctx.is_embeddings() {
            // This attempt will not be decoded: forget what its answer would have needed.
            self.pending.take(ctx.request_id);
        }
        error::from_status(status, body)
    }

    fn open_stream(&self, ctx: &Context<'_>) -> Option<Box<dyn StreamDecoder>> {
        // Only chat streams; embeddings answers are whole bodies.
        ctx.is_chat()
            .then(|| Box::new(stream::open()) as Box<dyn StreamDecoder>)
    }
}

switchyard_plugin_api::export_provider!(
    GeminiCodec,
    name = "gemini",
    version = env!("CARGO_PKG_VERSION"),
    operations = operation::CHAT | operation::EMBEDDINGS
);

#[cfg(test)]
mod tests;
