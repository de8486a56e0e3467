//! A 2xx `message` → the unified `chat.completion`.
//!
//! Text blocks become `content` (joined as they are: Anthropic splits one answer into several
//! blocks around citations), `tool_use` blocks `tool_calls`, thinking `reasoning` plus the
//! signed `reasoning_details` a client hands back on its next turn. An answer through the
//! response-format tool becomes `content`.

use crate::error;
use crate::messages::{BlockView, MessageView};
use crate::request::RESPONSE_TOOL;
use crate::usage::{OpenAiUsage, TokenCounts, finish_reason};
use serde::Serialize;
use std::borrow::Cow;
use switchyard_plugin_api::sdk::{Context, Out, ProviderError};

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OpenAiUsage>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<Cow<'a, str>>,
    refusal: (),
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasoning_details: Vec<ReasoningDetail<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

/// OpenRouter's `reasoning_details` shape, which clients already pass back unchanged.
#[derive(Serialize)]
#[serde(tag = "type")]
pub(crate) enum ReasoningDetail<'a> {
    #[serde(rename = "reasoning.text")]
    Text {
        text: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        signature: Option<Cow<'a, str>>,
    },
    #[serde(rename = "reasoning.encrypted")]
    Encrypted { data: Cow<'a, str> },
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: Cow<'a, str>,
    arguments: &'a str,
}

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
                    text: thinking,
                    signature: signature.filter(|s| !s.is_empty()),
                });
            }
            "redacted_thinking" => {
                if let Some(data) = data {
                    details.push(ReasoningDetail::Encrypted { data });
                }
            }
            "tool_use" => {
                let arguments = input.map_or("{}", |raw| raw.get());
                let name = name.unwrap_or_default();
                if name == RESPONSE_TOOL {
                    append(&mut text, Cow::Borrowed(arguments), "");
                } else {
                    tool_calls.push(ToolCall {
                        id: id.unwrap_or_default(),
                        kind: "function",
                        function: Function { name, arguments },
                    });
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
    let completion = Completion {
        id: view.id.as_deref().unwrap_or_default(),
        object: "chat.completion",
        created: ctx.unix_time_ms / 1000,
        model,
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content,
                refusal: (),
                reasoning,
                reasoning_details: details,
                tool_calls,
            },
            logprobs: (),
            finish_reason: finish,
        }],
        usage: counts.map(TokenCounts::to_openai),
    };
    let json = serde_json::to_vec(&completion)
        .map_err(|e| ProviderError::malformed(format!("could not write the translated response: {e}")))?;
    out.response(&json, model, counts.map(TokenCounts::to_usage).as_ref());
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
