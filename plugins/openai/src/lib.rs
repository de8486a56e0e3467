//! The `openai` provider plugin: a codec for OpenAI's chat completions API and every server
//! that speaks it (Azure OpenAI, Groq, Mistral, DeepSeek, OpenRouter, vLLM, Ollama…), chosen
//! by `base_url`.
//!
//! The unified schema *is* OpenAI's, so requests and responses are forwarded byte for byte;
//! the codec only reads what the host needs (model, usage, chunk facts, error class).
//!
//! Operations: chat (`POST {base_url}/chat/completions`) and embeddings (`POST
//! {base_url}/embeddings`, the paths set by the `chat_path` and `embeddings_path` options; see
//! [`setup`]). Every call branches on the operation, so that an embeddings body never reaches
//! the chat decoder and the other way round; errors are OpenAI's for both.

mod embeddings;
mod error;
mod request;
mod response;
mod setup;
mod stream;
mod tail_template;
mod views;

use setup::Endpoint;
use switchyard_plugin_api::sdk::{Context, Out, Provider, ProviderError, ProviderSetup, StreamDecoder, operation};

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
        request::encode(&self.endpoint, ctx, request, out)
    }

    fn decode_response(
        &self,
        ctx: &Context<'_>,
        _status: u16,
        body: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), ProviderError> {
        if ctx.is_embeddings() {
            embeddings::decode(ctx, body, out)
        } else if ctx.is_chat() {
            response::decode(ctx, body, out)
        } else {
            Err(ProviderError::unsupported_operation(ctx.operation))
        }
    }

    fn decode_error(&self, _ctx: &Context<'_>, status: u16, body: &[u8]) -> ProviderError {
        error::from_status(status, body)
    }

    fn open_stream(&self, ctx: &Context<'_>) -> Option<Box<dyn StreamDecoder>> {
        // Only chat streams; embeddings answers are whole bodies.
        ctx.is_chat()
            .then(|| Box::new(stream::open()) as Box<dyn StreamDecoder>)
    }
}

switchyard_plugin_api::export_provider!(
    OpenAiCodec,
    name = "openai",
    version = env!("CARGO_PKG_VERSION"),
    operations = operation::CHAT | operation::EMBEDDINGS
);

#[cfg(test)]
mod tests;
