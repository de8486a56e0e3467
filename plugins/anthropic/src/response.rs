//! A 2xx `message` → the unified `chat.completion`.
//!
//! Text blocks become `content` (joined as they are: Anthropic splits one answer into several
//! blocks around citations), `tool_use` blocks `tool_calls`, thinking `reasoning` plus the
//! signed `reasoning_details` a client hands back on its next turn. An answer through the
//! response-format tool becomes `content`.

use crate::error;
use crate::messages::{BlockView, MessageView};
use crate::request::RESPONSE_TOOL;
use crate::usage::{TokenCounts, finish_reason};
use std::borrow::Cow;
use switchyard_plugin_api::sdk::unified::{self, Choice, Completion, Message, ReasoningDetail, ToolCall};
use switchyard_plugin_api::sdk::{Context, Out, ProviderError};

pub(crate) fn decode(ctx: &Context<'_>, body: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
    let view = MessageView::parse(body).map_err(|reason| {
        ProviderError::malformed(format!("upstream response is not an Anthropic message: {reason}"))
    })?;
    if view.error.is_some() || view.kind.as_deref() == Some("error") {
        return Err(error::embedded(body));
    }
    let blocks = view
        .content
        .ok_or_else(|| ProviderError::malformed("upstream response has no `content` array"))?;

    let mut text: Option<Cow<'_, str>> = None;
    let mut reasoning: Option<Cow<'_, str>> = None;
    let mut details = Vec::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        let BlockView {
            kind,
            text: block_text,
            thinking,
            signature,
            data,
            id,
            name,
            input,
        } = block;
        match kind.as_ref() {
            "text" => append(&mut text, block_text.unwrap_or_default(), ""),
            "thinking" => {
                let thinking = thinking.unwrap_or_default();
                append(&mut reasoning, thinking.clone(), "\n");
                details.push(ReasoningDetail::Text {
                    text: Some(thinking.into()),
                    signature: signature.filter(|s| !s.is_empty()).map(Into::into),
                });
            }
            "redacted_thinking" => {
                if let Some(data) = data {
                    details.push(ReasoningDetail::Encrypted { data: data.into() });
                }
            }
            "tool_use" => {
                let arguments = input.map_or("{}", |raw| raw.get());
                let name = name.unwrap_or_default();
                if name == RESPONSE_TOOL {
                    append(&mut text, Cow::Borrowed(arguments), "");
                } else {
                    tool_calls.push(ToolCall::new(id.unwrap_or_default(), name, arguments));
                }
            }
            // Server tools (web search, code execution) and their results have no OpenAI
            // counterpart; their findings reach the client through the text blocks.
            _ => {}
        }
    }

    let counts = view.usage.as_ref().map(TokenCounts::from_view);
    let model = view.model.as_deref().filter(|m| !m.is_empty()).unwrap_or(ctx.model);
    let finish = finish_reason(view.stop_reason.as_deref(), !tool_calls.is_empty());
    // OpenAI sends `content: null` beside tool calls, and a string otherwise.
    let content = match text {
        None if !tool_calls.is_empty() => None,
        None => Some(Cow::Borrowed("")),
        some => some,
    };
    let message = Message {
        content: content.map(Into::into),
        reasoning: reasoning.map(Into::into),
        reasoning_details: details,
        tool_calls,
    };
    let completion = Completion {
        id: view.id.as_deref().unwrap_or_default(),
        created: unified::created(ctx),
        model,
        system_fingerprint: None,
        choices: [Choice::new(0, message, finish)],
        usage: counts.map(TokenCounts::to_openai),
    };
    out.response(
        &completion.to_json()?,
        model,
        counts.map(TokenCounts::to_usage).as_ref(),
    );
    Ok(())
}

fn append<'a>(slot: &mut Option<Cow<'a, str>>, more: Cow<'a, str>, separator: &str) {
    match slot {
        None => *slot = Some(more),
        Some(existing) => {
            let existing = existing.to_mut();
            if !existing.is_empty() && !more.is_empty() {
                existing.push_str(separator);
            }
            existing.push_str(&more);
        }
    }
}
