//! The semantic cache's embeddings, through a provider plugin's `embeddings` operation
//! (`cache.semantic.embedding: provider/model`): one call per cacheable request, bounded by
//! the provider's timeouts, through its keys, circuit and connection pool like a chat
//! attempt. A failure is a semantic miss, never the request's error.

use super::context::{plugin_error, unix_time_ms};
use crate::error::GatewayError;
use crate::routing::ProviderRuntime;
use crate::upstream;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Duration;
use switchyard_plugin_api::abi::operation;
use switchyard_plugin_api::host::{CallInfo, Item, Payload};

/// The longest a request waits for its embedding when the provider sets no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the embedding model made of the conversation.
#[derive(Debug)]
pub struct Embedding {
    pub vector: Vec<f32>,
    pub input_tokens: u64,
}

/// Embeds `text` with `model` of `provider`.
pub async fn embed(
    provider: &ProviderRuntime,
    model: &str,
    text: &str,
    request_id: &str,
    redactor: &crate::redact::Redactor,
) -> Result<Embedding, GatewayError> {
    let name = &*provider.name;
    let body = serde_json::to_vec(&serde_json::json!({
        "model": model,
        "input": text,
        "encoding_format": "float",
    }))
    .map_err(|e| fault(name, format!("embeddings request: {e}")))?;
    let pick = provider.pick_key(model)?;
    let api_key = pick.key.map(|k| &*k.secret).unwrap_or("");
    let info = CallInfo {
        stream: false,
        unix_time_ms: unix_time_ms(),
        model,
        api_key,
        request_id,
        operation: operation::name(operation::EMBEDDINGS),
        alias: model,
    };
    let payload = if provider.codec.is_local() {
        let items = provider
            .codec
            .respond_local(&info, &body)
            .map_err(|e| plugin_error(name, e, redactor))?;
        local_payload(items, name, redactor)?
    } else {
        let timeout = provider.timeouts.timeout.min(DEFAULT_TIMEOUT);
        let _permit = provider.egress.acquire(name).await?;
        let parts = provider
            .codec
            .encode_request(&info, &body)
            .map_err(|e| plugin_error(name, e, redactor))?;
        let started = std::time::Instant::now();
        let reply = upstream::send(
            &provider.egress,
            parts,
            &[],
            provider.timeouts.first_byte.min(timeout),
            name,
        )
        .await?;
        let status = reply.status;
        let bytes = reply
            .body
            .read_all(timeout.saturating_sub(started.elapsed()), name)
            .await?;
        if !(200..300).contains(&status) {
            let e = provider
                .codec
                .decode_error(&info, status, &bytes)
                .map_err(|e| plugin_error(name, e, redactor))?;
            return Err(super::context::upstream_error(name, e, redactor));
        }
        provider
            .codec
            .decode_response(&info, status, &bytes)
            .map_err(|e| plugin_error(name, e, redactor))?
    };
    let vector =
        first_vector(&payload.json).ok_or_else(|| fault(name, "the embeddings answer has no vector".into()))?;
    Ok(Embedding {
        vector,
        input_tokens: payload.usage.map_or(0, |u| u.prompt_tokens),
    })
}

fn local_payload(items: Vec<Item>, name: &str, redactor: &crate::redact::Redactor) -> Result<Payload, GatewayError> {
    for item in items {
        match item {
            Item::Response(p) => return Ok(p),
            Item::Error(e) => return Err(super::context::upstream_error(name, e, redactor)),
            // An embedding is wanted now: a local provider's delays are not applied here.
            Item::Delay(_) | Item::Chunk(_) | Item::Done => {}
        }
    }
    Err(fault(name, "the local provider produced no embeddings".into()))
}

fn fault(provider: &str, reason: String) -> GatewayError {
    GatewayError::PluginFault {
        provider: provider.to_string(),
        reason,
    }
}

/// `data[0].embedding` of an OpenAI-shaped embeddings answer.
fn first_vector(json: &[u8]) -> Option<Vec<f32>> {
    #[derive(Deserialize)]
    struct List {
        data: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        embedding: Vec<f32>,
    }
    let list: List = serde_json::from_slice(json).ok()?;
    let v = list.data.into_iter().next()?.embedding;
    (!v.is_empty()).then_some(v)
}

/// The whole conversation as the text to embed: each message's role and content, in order,
/// one per line (no cap on turns; tool calls and names included, so two conversations that
/// differ only there do not look alike).
pub fn conversation_text(request: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Request<'a> {
        #[serde(borrow)]
        messages: Vec<Message<'a>>,
    }
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        role: Option<&'a RawValue>,
        #[serde(borrow, default)]
        name: Option<&'a RawValue>,
        #[serde(borrow, default)]
        content: Option<&'a RawValue>,
        #[serde(borrow, default)]
        tool_calls: Option<&'a RawValue>,
        #[serde(borrow, default)]
        tool_call_id: Option<&'a RawValue>,
    }
    let request: Request<'_> = serde_json::from_slice(request).ok()?;
    let mut text = String::new();
    for m in &request.messages {
        text.push_str(&plain(m.role).unwrap_or_default());
        if let Some(name) = plain(m.name) {
            text.push('(');
            text.push_str(&name);
            text.push(')');
        }
        text.push_str(": ");
        if let Some(content) = m.content {
            text.push_str(&content_text(content));
        }
        for extra in [m.tool_calls, m.tool_call_id].into_iter().flatten() {
            text.push(' ');
            text.push_str(extra.get());
        }
        text.push('\n');
    }
    Some(text)
}

/// A JSON string's text, or the raw JSON of anything else.
fn plain(v: Option<&RawValue>) -> Option<String> {
    let v = v?;
    Some(serde_json::from_str::<String>(v.get()).unwrap_or_else(|_| v.get().to_string()))
}

/// A content string, or the `text` parts of a content array (other parts as their JSON).
fn content_text(content: &RawValue) -> String {
    if let Ok(s) = serde_json::from_str::<String>(content.get()) {
        return s;
    }
    #[derive(Deserialize)]
    struct Part {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        text: Option<String>,
    }
    match serde_json::from_str::<Vec<&RawValue>>(content.get()) {
        Ok(parts) => parts
            .iter()
            .map(|p| match serde_json::from_str::<Part>(p.get()) {
                Ok(Part {
                    kind: Some(kind),
                    text: Some(t),
                }) if kind == "text" => t,
                _ => p.get().to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => content.get().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_conversation_is_the_text() {
        let text = conversation_text(
            br#"{"model":"m","messages":[
                {"role":"system","content":"Be brief."},
                {"role":"user","name":"ann","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"u"}}]},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1"}]},
                {"role":"tool","tool_call_id":"c1","content":"42"},
                {"role":"user","content":"Thanks"}]}"#,
        )
        .expect("text");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0], "system: Be brief.");
        assert!(
            lines[1].starts_with("user(ann): Hi {\"type\":\"image_url\""),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains("\"id\":\"c1\""), "{}", lines[2]);
        assert_eq!(lines[3], "tool: 42 \"c1\"");
        assert_eq!(lines[4], "user: Thanks");
        assert!(conversation_text(br#"{"model":"m"}"#).is_none());
    }

    #[test]
    fn the_first_vector_is_read() {
        assert_eq!(
            first_vector(br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1,2e-1]}]}"#),
            Some(vec![0.5, -1.0, 0.2])
        );
        for bad in [
            &br#"{"data":[]}"#[..],
            br#"{"data":[{"embedding":[]}]}"#,
            br#"{"data":[{"embedding":"AAAA"}]}"#,
            b"[]",
        ] {
            assert!(first_vector(bad).is_none());
        }
    }
}
