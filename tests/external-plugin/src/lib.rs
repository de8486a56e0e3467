//! `shout`: an example of a Switchyard plugin written outside the Switchyard repository.
//!
//! It is a *local* provider: instead of describing an HTTP request for the gateway to send,
//! it answers by itself, here with the last user message in capitals. A plugin gets the
//! request as OpenAI chat-completion JSON and writes OpenAI-shaped answers through `Out`;
//! the export macro turns it into the C ABI the gateway loads.

use serde_json::{Value, json};
use switchyard_plugin_api::sdk::{
    ChunkInfo, Context, Out, Provider, ProviderError, ProviderSetup, Usage,
};

struct Shout;

impl Provider for Shout {
    /// Called once per provider configured with this plugin; `setup.options` holds its
    /// `options:` from YAML. Shout has none to read.
    fn create(_setup: ProviderSetup) -> Result<Self, String> {
        Ok(Shout)
    }

    fn respond_local(
        &self,
        ctx: &Context<'_>,
        request: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), ProviderError> {
        // Client input can be anything: answer a bad request with a 400, never a panic.
        let request: Value = serde_json::from_slice(request)
            .map_err(|e| ProviderError::invalid_request(format!("invalid chat request: {e}")))?;
        let Some(messages) = request["messages"].as_array() else {
            return Err(
                ProviderError::invalid_request("`messages` must be an array")
                    .with_param("messages"),
            );
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
        let usage_json = json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        });
        let id = format!("chatcmpl-shout-{}", ctx.request_id);
        let created = ctx.unix_time_ms / 1000;

        if !ctx.stream {
            let response = json!({
                "id": id,
                "object": "chat.completion",
                "created": created,
                "model": ctx.model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }],
                "usage": usage_json,
            });
            // Usage goes to the gateway next to the JSON, so it never parses the body again.
            out.response(response.to_string().as_bytes(), ctx.model, Some(&usage));
            return Ok(());
        }

        // A stream: a role chunk, one chunk per word, a finish chunk, a usage chunk, DONE.
        // (The gateway always asks for usage, and decides itself what the client sees.)
        let mut chunk = |choices: Value, usage: Value, info: ChunkInfo| {
            let chunk = json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": ctx.model,
                "choices": choices,
                "usage": usage,
            });
            out.chunk(chunk.to_string().as_bytes(), ctx.model, &info);
        };
        let delta = |delta: Value, finish_reason: Value| json!([{"index": 0, "delta": delta, "finish_reason": finish_reason}]);
        chunk(
            delta(json!({"role": "assistant", "content": ""}), Value::Null),
            Value::Null,
            ChunkInfo::default(),
        );
        // `split_inclusive` keeps the spaces, so the pieces add up to the whole answer.
        for piece in answer.split_inclusive(' ') {
            chunk(
                delta(json!({"content": piece}), Value::Null),
                Value::Null,
                ChunkInfo::default(),
            );
        }
        let finished = ChunkInfo {
            finish_reason: true,
            ..ChunkInfo::default()
        };
        chunk(delta(json!({}), json!("stop")), Value::Null, finished);
        let usage_only = ChunkInfo {
            empty_choices: true,
            usage: Some(usage),
            ..ChunkInfo::default()
        };
        chunk(json!([]), usage_json, usage_only);
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
switchyard_plugin_api::export_provider!(
    Shout,
    name = "shout",
    version = env!("CARGO_PKG_VERSION"),
    local = true
);
