//! `shout`: an example of a Switchyard plugin written outside the Switchyard repository.
//!
//! It is a *local* provider: instead of describing an HTTP request for the gateway to send,
//! it answers by itself, here with the last user message in capitals. A plugin gets the
//! request as OpenAI chat-completion JSON and writes OpenAI-shaped answers through `Out`,
//! with the SDK's writers (`sdk::unified`) building the JSON; the export macro turns it into
//! the C ABI the gateway loads.
//!
//! A provider that calls an HTTP upstream implements `encode_request` and `decode_response`
//! instead, and `open_stream` with the SDK's `sse_decoder::SseDecoder` around a handler that
//! maps one upstream event to chunks; `sdk::errors` reads and classifies its error bodies.

use serde_json::Value;
use switchyard_plugin_api::sdk::unified::{
    Choice, ChunkHead, ChunkWriter, Completion, Message, UsageJson, UsageParts, created,
};
use switchyard_plugin_api::sdk::{Context, Out, Provider, ProviderError, ProviderSetup, Usage};

struct Shout;

impl Provider for Shout {
    /// Called once per provider configured with this plugin; `setup.options` holds its
    /// `options:` from YAML. Shout has none to read.
    fn create(_setup: ProviderSetup) -> Result<Self, String> {
        Ok(Shout)
    }

    fn respond_local(&self, ctx: &Context<'_>, request: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
        // Client input can be anything: answer a bad request with a 400, never a panic.
        let request: Value = serde_json::from_slice(request)
            .map_err(|e| ProviderError::invalid_request(format!("invalid chat request: {e}")))?;
        let Some(messages) = request["messages"].as_array() else {
            return Err(ProviderError::invalid_request("`messages` must be an array").with_param("messages"));
        };
        let prompt = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(text)
            .unwrap_or_default();
        let answer = prompt.to_uppercase();
        // Shout counts words as tokens; a real provider reports what its upstream counted.
        let (prompt_tokens, completion_tokens) = (words(&prompt), words(&answer));
        let usage = Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Usage::default()
        };
        let id = format!("chatcmpl-shout-{}", ctx.request_id);

        // The SDK writes the unified (OpenAI) JSON; a plugin says what goes in it.
        if !ctx.stream {
            let completion = Completion {
                id: &id,
                created: created(ctx),
                model: ctx.model,
                system_fingerprint: None,
                choices: [Choice::new(0, Message::text(&answer), "stop")],
                usage: Some(UsageJson::new(usage, UsageParts::TOTALS)),
            };
            // Usage goes to the gateway next to the JSON, so it never parses the body again.
            out.response(&completion.to_json()?, ctx.model, Some(&usage));
            return Ok(());
        }

        // A stream: a role chunk, one chunk per word, a finish chunk, a usage chunk, DONE.
        // (The gateway always asks for usage, and decides itself what the client sees.)
        let mut chunks = ChunkWriter::new();
        chunks.start(&ChunkHead {
            id: &id,
            created: created(ctx),
            model: ctx.model,
            ..ChunkHead::default()
        });
        chunks.choice(0, None, None, |delta| {
            delta.role();
            delta.content("");
        });
        chunks.send(out);
        // `split_inclusive` keeps the spaces, so the pieces add up to the whole answer.
        for piece in answer.split_inclusive(' ') {
            chunks.choice(0, None, None, |delta| delta.content(piece));
            chunks.send(out);
        }
        chunks.choice(0, Some("stop"), None, |_| {});
        chunks.send(out);
        chunks.send_usage(out, &usage, UsageParts::TOTALS);
        out.done();
        Ok(())
    }
}

/// A message's text: its content string, or the text parts of a content array.
fn text(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

// The one line that makes this crate a plugin: the entry symbol the gateway looks for.
switchyard_plugin_api::export_provider!(Shout, name = "shout", version = env!("CARGO_PKG_VERSION"), local = true);
