//! `GenerateContentResponse` → the unified `chat.completion`, and the pieces the stream decoder
//! shares with it (candidate contents, finish reasons, usage, logprobs, ids).
//!
//! | Gemini | OpenAI |
//! |---|---|
//! | `candidates[i]` (`index`) | `choices[i]` (`index`) |
//! | text parts | `message.content` (joined) |
//! | parts with `thought: true` | `message.reasoning` (joined) |
//! | `functionCall {name, args}` | `tool_calls[] {id (generated), function {name, arguments (JSON text)}}`; a `thoughtSignature` rides in `extra_content.google.thought_signature` |
//! | `finishReason` | `finish_reason` (see [`finish_reason`]) |
//! | `usageMetadata` | `usage` (see [`usage`]) |
//! | `logprobsResult` | `logprobs.content` |
//! | `responseId` | `id` (generated when absent) |
//! | `modelVersion` | `model` (the requested model when absent) |
//! | `promptFeedback.blockReason` without candidates | a 400 `content_filter` error ([`crate::error::prompt_blocked`]) |
//!
//! Dropped: `safetyRatings`, `citationMetadata`, `groundingMetadata`, `urlContextMetadata`,
//! `avgLogprobs`, `finishMessage`, and non-text output parts (images, executable code).

use crate::error;
use crate::gemini::{Candidate, GenerateContentResponse, LogprobsResult, UsageMetadata};
use crate::text::fnv1a;
use std::borrow::Cow;
use switchyard_plugin_api::sdk::TokenCount;
use switchyard_plugin_api::sdk::unified::{
    self, Choice, Completion, Logprobs, Message, TokenLogprob, ToolCall, TopLogprob, UsageJson, UsageParts,
};
use switchyard_plugin_api::sdk::{Context, Out, ProviderError, Usage};

/// What `usageMetadata` reports beside the counts: cached content and thoughts.
pub(crate) const USAGE_PARTS: UsageParts = UsageParts::OPENAI;

pub(crate) fn decode(ctx: &Context<'_>, body: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
    let view = GenerateContentResponse::parse(body)
        .map_err(|reason| ProviderError::malformed(format!("upstream response is not a Gemini response: {reason}")))?;
    if view.error.is_some() {
        return Err(error::embedded(body));
    }
    let candidates = view.candidates();
    if candidates.is_empty() {
        if let Some(feedback) = view.block_reason() {
            return Err(error::prompt_blocked(feedback));
        }
        return Err(ProviderError::malformed("upstream response has no candidates"));
    }
    let id = response_id(view.response_id.as_deref(), ctx);
    let model = view.model_version.as_deref().unwrap_or(ctx.model);
    let choices = candidates
        .iter()
        .enumerate()
        .map(|(position, candidate)| choice(candidate, position, &id));
    let usage = view.usage_metadata.as_ref().map(usage);
    let completion = Completion {
        id: &id,
        created: unified::created(ctx),
        model,
        system_fingerprint: None,
        choices: choices.collect::<Vec<_>>(),
        usage: usage.map(|u| UsageJson::new(u, USAGE_PARTS)),
    };
    out.response(&completion.to_json()?, model, usage.as_ref());
    Ok(())
}

fn choice<'v>(candidate: &'v Candidate<'_>, position: usize, id: &str) -> Choice<'v> {
    let index = candidate_index(candidate, position);
    let pieces = Pieces::of(candidate);
    let has_calls = !pieces.calls.is_empty();
    let tool_calls = pieces
        .calls
        .into_iter()
        .enumerate()
        .map(|(k, call)| call.into_openai(tool_call_id(id, index, k), None))
        .collect();
    let message = Message {
        content: pieces.content.map(Into::into),
        reasoning: pieces.reasoning.map(Into::into),
        reasoning_details: Vec::new(),
        tool_calls,
    };
    Choice {
        logprobs: candidate.logprobs_result.as_ref().and_then(logprobs),
        // A whole (non-streamed) answer has ended even if the reason is missing.
        ..Choice::new(
            index,
            message,
            finish_reason(candidate.finish_reason.as_deref().unwrap_or("STOP"), has_calls),
        )
    }
}

/// `index`, which proto3 JSON leaves out for the first candidate.
pub(crate) fn candidate_index(candidate: &Candidate<'_>, position: usize) -> u32 {
    candidate
        .index
        .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX))
}

/// What one candidate (or one stream fragment of it) says, in OpenAI's terms.
pub(crate) struct Pieces<'v> {
    pub content: Option<Cow<'v, str>>,
    pub reasoning: Option<Cow<'v, str>>,
    pub calls: Vec<Call<'v>>,
}

pub(crate) struct Call<'v> {
    pub name: &'v str,
    pub arguments: &'v str,
    pub signature: Option<&'v str>,
}

impl<'v> Call<'v> {
    pub(crate) fn into_openai(self, id: String, index: Option<u32>) -> ToolCall<'v> {
        ToolCall {
            index,
            thought_signature: self.signature.map(Into::into),
            ..ToolCall::new(id, self.name, self.arguments)
        }
    }
}

impl<'v> Pieces<'v> {
    pub(crate) fn of(candidate: &'v Candidate<'_>) -> Pieces<'v> {
        let parts = candidate.parts();
        let texts = |thought: bool| {
            join(
                parts
                    .iter()
                    .filter(move |p| p.is_thought() == thought && p.function_call.is_none())
                    .filter_map(|p| p.text.as_deref()),
            )
        };
        let calls = parts
            .iter()
            .filter_map(|p| {
                let call = p.function_call.as_ref()?;
                Some(Call {
                    name: &call.name,
                    arguments: call.args.map_or("{}", |a| a.get()),
                    signature: p.thought_signature.as_deref(),
                })
            })
            .collect();
        Pieces {
            content: texts(false),
            reasoning: texts(true),
            calls,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.content.as_deref().is_none_or(str::is_empty)
            && self.reasoning.as_deref().is_none_or(str::is_empty)
            && self.calls.is_empty()
    }
}

/// Text pieces joined; borrowed when there is just one, `None` when there are none.
fn join<'v>(mut pieces: impl Iterator<Item = &'v str>) -> Option<Cow<'v, str>> {
    let first = pieces.next()?;
    match pieces.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut all = String::with_capacity(first.len() + second.len());
            all.push_str(first);
            all.push_str(second);
            pieces.for_each(|p| all.push_str(p));
            Some(Cow::Owned(all))
        }
    }
}

/// Gemini's `finishReason` in OpenAI's words. OpenAI's set is smaller, so several Gemini
/// reasons share one: everything that is a safety or policy stop is `content_filter`;
/// `LANGUAGE`, `OTHER`, `MALFORMED_FUNCTION_CALL`, `UNEXPECTED_TOOL_CALL` and other reasons
/// with no OpenAI counterpart are `stop` (or `tool_calls` when the candidate called a function).
pub(crate) fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` → OpenAI usage. Thoughts are output the client pays for, so completion
/// tokens are candidates + thoughts (with the thoughts also reported as reasoning tokens);
/// tool-use prompt tokens (search results and the like) count as prompt. Cached content is
/// part of the prompt count, as OpenAI's `cached_tokens` is. The total is the sum, so it
/// always equals prompt + completion.
pub(crate) fn usage(m: &UsageMetadata) -> Usage {
    let n = |c: Option<TokenCount>| c.map_or(0, |c| c.0);
    let prompt_tokens = n(m.prompt_token_count).saturating_add(n(m.tool_use_prompt_token_count));
    let completion_tokens = n(m.candidates_token_count).saturating_add(n(m.thoughts_token_count));
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens.saturating_add(completion_tokens),
        cached_tokens: n(m.cached_content_token_count),
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        reasoning_tokens: n(m.thoughts_token_count),
    }
}

/// `logprobsResult` → OpenAI's per-token `logprobs.content`.
pub(crate) fn logprobs(result: &LogprobsResult<'_>) -> Option<Logprobs> {
    let chosen = result.chosen_candidates.as_deref()?;
    let tops = result.top_candidates.as_deref().unwrap_or_default();
    let content = chosen
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let token = c.token.as_deref().unwrap_or_default().to_string();
            let top_logprobs = tops
                .get(i)
                .and_then(|t| t.candidates.as_deref())
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    let token = t.token.as_deref().unwrap_or_default().to_string();
                    TopLogprob {
                        bytes: token.as_bytes().to_vec(),
                        token,
                        logprob: t.log_probability.unwrap_or(0.0),
                    }
                })
                .collect();
            TokenLogprob {
                bytes: token.as_bytes().to_vec(),
                token,
                logprob: c.log_probability.unwrap_or(0.0),
                top_logprobs,
            }
        })
        .collect();
    Some(Logprobs::new(content))
}

/// The completion id: Gemini's `responseId`, or one made from the request id and the time.
pub(crate) fn response_id(upstream: Option<&str>, ctx: &Context<'_>) -> String {
    match upstream {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!(
            "chatcmpl-{:016x}",
            fnv1a(&[
                ctx.request_id.as_bytes(),
                &ctx.unix_time_ms.to_le_bytes(),
                ctx.model.as_bytes()
            ])
        ),
    }
}

/// Gemini calls carry no id; OpenAI clients need one to answer with. Derived from the
/// response id, the choice and the call's position, so it is unique per conversation and
/// the same on every read of one response.
pub(crate) fn tool_call_id(response_id: &str, choice: u32, call: usize) -> String {
    let hash = fnv1a(&[
        response_id.as_bytes(),
        &choice.to_le_bytes(),
        &(call as u64).to_le_bytes(),
    ]);
    format!("call_{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason("STOP", false), "stop");
        assert_eq!(finish_reason("STOP", true), "tool_calls");
        assert_eq!(finish_reason("MAX_TOKENS", true), "length");
        for r in ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"] {
            assert_eq!(finish_reason(r, false), "content_filter", "{r}");
        }
        assert_eq!(finish_reason("MALFORMED_FUNCTION_CALL", false), "stop");
        assert_eq!(finish_reason("OTHER", false), "stop");
    }

    #[test]
    fn usage_adds_thoughts_to_completion() {
        let m: UsageMetadata = serde_json::from_str(
            r#"{"promptTokenCount":100,"cachedContentTokenCount":60,"candidatesTokenCount":20,"thoughtsTokenCount":30,"toolUsePromptTokenCount":5,"totalTokenCount":155}"#,
        )
        .expect("usage");
        let u = usage(&m);
        assert_eq!(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.total_tokens,
                u.cached_tokens,
                u.reasoning_tokens
            ),
            (105, 50, 155, 60, 30)
        );
        assert_eq!(usage(&UsageMetadata::default()), Usage::default());
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(tool_call_id("r", 0, 0), tool_call_id("r", 0, 0));
        assert_ne!(tool_call_id("r", 0, 0), tool_call_id("r", 0, 1));
        assert_ne!(tool_call_id("r", 0, 1), tool_call_id("r", 1, 0));
        assert!(tool_call_id("r", 0, 0).starts_with("call_"));
    }
}
