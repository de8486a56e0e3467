//! What the host keeps beside a chunk the hook writes anew: the model, the usage and the chunk
//! flags. A rewritten input chunk or answer keeps its own (`ChunkOut::replace`, an empty
//! `Reply::model`); only the chunks released at the end of a stream, which replace no input,
//! need theirs read back from their JSON, or the gateway would lose the stream's usage or its
//! finish chunk.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use switchyard_plugin_api::sdk::{ChunkInfo, TokenCount, Usage};

use crate::Malformed;

/// The members of an answer or chunk that the host's metadata comes from.
pub(crate) struct Meta<'a> {
    pub(crate) model: Option<Cow<'a, str>>,
    pub(crate) info: ChunkInfo,
}

impl<'a> Meta<'a> {
    pub(crate) fn read(body: &'a [u8]) -> Result<Meta<'a>, Malformed> {
        let raw: RawMeta<'a> = serde_json::from_slice(body)?;
        let usage = raw.usage.map(UsageIn::into_usage);
        let choices = raw.choices.unwrap_or_default();
        Ok(Meta {
            model: raw.model,
            info: ChunkInfo {
                finish_reason: choices.iter().any(|c| c.finish_reason.is_some()),
                empty_choices: choices.is_empty(),
                usage,
            },
        })
    }

    /// The model the body names, else `fallback` (the attempt's model from the call context).
    pub(crate) fn model_or<'f>(&'f self, fallback: &'f str) -> &'f str {
        self.model.as_deref().unwrap_or(fallback)
    }
}

#[derive(Deserialize)]
struct RawMeta<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceMeta<'a>>>,
}

#[derive(Deserialize)]
struct ChoiceMeta<'a> {
    /// `null` reads as `None`.
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct UsageIn {
    #[serde(default)]
    prompt_tokens: TokenCount,
    #[serde(default)]
    completion_tokens: TokenCount,
    #[serde(default)]
    total_tokens: TokenCount,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: TokenCount,
    #[serde(default)]
    cache_write_tokens: TokenCount,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: TokenCount,
}

impl UsageIn {
    fn into_usage(self) -> Usage {
        let prompt = self.prompt_tokens_details;
        Usage {
            prompt_tokens: self.prompt_tokens.0,
            completion_tokens: self.completion_tokens.0,
            total_tokens: self.total_tokens.0,
            cached_tokens: prompt.as_ref().map_or(0, |p| p.cached_tokens.0),
            cache_write_tokens: prompt.as_ref().map_or(0, |p| p.cache_write_tokens.0),
            cache_write_1h_tokens: 0,
            reasoning_tokens: self.completion_tokens_details.map_or(0, |c| c.reasoning_tokens.0),
        }
    }
}
