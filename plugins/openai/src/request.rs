//! Unified request → the upstream HTTP request.

use crate::setup::Endpoint;
use switchyard_plugin_api::sdk::{Context, Out, ProviderError};

/// The host has already normalised the body into OpenAI's own schema (chat completions or
/// embeddings, by operation), so it is forwarded byte for byte: no parse, no re-serialisation.
/// Only the URL and the `accept` header depend on the operation.
pub(crate) fn encode(
    endpoint: &Endpoint,
    ctx: &Context<'_>,
    body: &[u8],
    out: &mut Out<'_>,
) -> Result<(), ProviderError> {
    let (url, accept) = if ctx.is_embeddings() {
        // Embeddings never stream.
        (&endpoint.embeddings_url, "application/json")
    } else if ctx.is_chat() {
        let accept = if ctx.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        (&endpoint.url, accept)
    } else {
        return Err(ProviderError::unsupported_operation(ctx.operation));
    };
    out.method("POST");
    out.url(url);
    out.header("content-type", "application/json");
    out.header("accept", accept);
    // Local servers (Ollama, vLLM) often run keyless; an empty `Bearer ` would be noise.
    if !ctx.api_key.is_empty() {
        if endpoint.bearer {
            // Built by hand: `format!` costs more than the rest of the request's headers.
            let mut value = String::with_capacity(7 + ctx.api_key.len());
            value.push_str("Bearer ");
            value.push_str(ctx.api_key);
            out.header(&endpoint.auth_header, &value);
        } else {
            out.header(&endpoint.auth_header, ctx.api_key);
        }
    }
    out.body(body);
    Ok(())
}
