//! Unified request → the upstream HTTP request.

use crate::setup::Endpoint;
use switchyard_plugin_api::sdk::{Context, Out};

/// The host has already normalised the body into OpenAI's own schema, so it is forwarded
/// byte for byte: no parse, no re-serialisation.
pub(crate) fn encode(endpoint: &Endpoint, ctx: &Context<'_>, body: &[u8], out: &mut Out<'_>) {
    out.method("POST");
    out.url(&endpoint.url);
    out.header("content-type", "application/json");
    out.header(
        "accept",
        if ctx.stream {
            "text/event-stream"
        } else {
            "application/json"
        },
    );
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
}
