//! The `openai` provider plugin: a codec for OpenAI's chat completions API and every server
//! that speaks it (Azure OpenAI, Groq, Mistral, DeepSeek, OpenRouter, vLLM, Ollama…), chosen
//! by `base_url`.
//!
//! The unified schema *is* OpenAI's, so requests and responses are forwarded byte for byte;
//! the codec only reads what the host needs (model, usage, chunk facts, error class).

mod error;
mod request;
mod response;
mod setup;
mod stream;
mod tail_template;
mod views;

use setup::Endpoint;
use switchyard_plugin_api::sdk::{Context, Out, Provider, ProviderError, ProviderSetup, StreamDecoder};

/// One configured OpenAI-compatible provider.
pub struct OpenAiCodec {
    endpoint: Endpoint,
}

impl Provider for OpenAiCodec {
    fn create(setup: ProviderSetup) -> Result<Self, String> {
        Ok(OpenAiCodec {
            endpoint: Endpoint::from_setup(&setup)?,
        })
    }

    fn encode_request(&self, ctx: &Context<'_>, request: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        request::encode(&self.endpoint, ctx, request, out);
        Ok(())
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

switchyard_plugin_api::export_provider!(OpenAiCodec, name = "openai", version = env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests;
