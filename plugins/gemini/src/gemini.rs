//! Gemini's wire shapes: the `GenerateContentRequest` the codec writes, and borrowed views of
//! the `GenerateContentResponse` it reads (one per response body, one per stream event); for
//! embeddings, the `BatchEmbedContentsRequest` it writes and the `BatchEmbedContentsResponse`
//! it reads.
//!
//! Field names are the API's JSON (camelCase) names. Views read only what has an OpenAI
//! counterpart: safety ratings, citations, grounding and the like are skipped unread.

use crate::text::Str;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use switchyard_plugin_api::sdk::TokenCount;

// ------------------------------------------------------------------------------ request

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentRequest<'a> {
    pub contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub generation_config: GenerationConfig,
}

#[derive(Serialize)]
pub(crate) struct Content<'a> {
    /// `user` or `model`; absent on `systemInstruction`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    pub parts: Vec<PartOut<'a>>,
}

/// One request part; exactly one data field is set.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Blob<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_data: Option<FileData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponse<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Blob<'a> {
    pub mime_type: &'a str,
    /// Base64, as the client sent it.
    pub data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<&'static str>,
    pub file_uri: &'a str,
}

#[derive(Serialize)]
pub(crate) struct FunctionCallOut<'a> {
    pub name: &'a str,
    pub args: &'a RawValue,
}

#[derive(Serialize)]
pub(crate) struct FunctionResponse<'a> {
    pub name: &'a str,
    pub response: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolOut<'a> {
    pub function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Serialize)]
pub(crate) struct FunctionDeclaration<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolConfig {
    pub function_calling_config: FunctionCallingConfig,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionCallingConfig {
    /// `AUTO`, `ANY` or `NONE`.
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_function_names: Vec<String>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig {
    fn is_empty(&self) -> bool {
        let GenerationConfig {
            temperature,
            top_p,
            top_k,
            candidate_count,
            max_output_tokens,
            stop_sequences,
            seed,
            presence_penalty,
            frequency_penalty,
            response_logprobs,
            logprobs,
            response_mime_type,
            response_schema,
            thinking_config,
        } = self;
        temperature.is_none()
            && top_p.is_none()
            && top_k.is_none()
            && candidate_count.is_none()
            && max_output_tokens.is_none()
            && stop_sequences.is_empty()
            && seed.is_none()
            && presence_penalty.is_none()
            && frequency_penalty.is_none()
            && response_logprobs.is_none()
            && logprobs.is_none()
            && response_mime_type.is_none()
            && response_schema.is_none()
            && thinking_config.is_none()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_thoughts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<&'static str>,
}

// ------------------------------------------------------------------------------ embeddings

/// `models.batchEmbedContents`: one `EmbedContentRequest` per text, each naming the model of
/// the URL again (the API requires them to match).
#[derive(Serialize)]
pub(crate) struct BatchEmbedContentsRequest<'a> {
    pub requests: Vec<EmbedContentRequest<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EmbedContentRequest<'a> {
    /// The resource name, `models/{model}`.
    pub model: &'a str,
    pub content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dimensionality: Option<u32>,
}

/// `BatchEmbedContentsResponse`: `embeddings[i].values`, in request order.
#[derive(Deserialize)]
pub(crate) struct BatchEmbedContentsResponse {
    #[serde(default)]
    pub embeddings: Option<Vec<ContentEmbedding>>,
    /// Non-null when the body is an error object.
    #[serde(default)]
    pub error: Option<IgnoredAny>,
}

impl BatchEmbedContentsResponse {
    /// Parses `json` if it is a JSON object (a derived struct would also accept an array).
    pub(crate) fn parse(json: &[u8]) -> Result<BatchEmbedContentsResponse, String> {
        match json.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => switchyard_plugin_api::json::from_bytes(json).map_err(|e| e.to_string()),
            Some(_) => Err("not a JSON object".into()),
            None => Err("empty body".into()),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ContentEmbedding {
    /// proto3 JSON leaves an empty list out, hence the default (refused by the decoder).
    #[serde(default)]
    pub values: Vec<f32>,
}

// ------------------------------------------------------------------------------ response views

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentResponse<'a> {
    #[serde(default, borrow)]
    pub candidates: Option<Vec<Candidate<'a>>>,
    #[serde(default, borrow)]
    pub prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default, borrow)]
    pub model_version: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub response_id: Option<Str<'a>>,
    /// Non-null when the body is an error object (a stream's failure after the headers).
    #[serde(default)]
    pub error: Option<IgnoredAny>,
}

impl<'a> GenerateContentResponse<'a> {
    /// Parses `json` if it is a JSON object (a derived struct would also accept an array).
    pub(crate) fn parse(json: &'a [u8]) -> Result<GenerateContentResponse<'a>, String> {
        match json.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => switchyard_plugin_api::json::from_bytes(json).map_err(|e| e.to_string()),
            Some(_) => Err("not a JSON object".into()),
            None => Err("empty body".into()),
        }
    }

    pub(crate) fn candidates(&self) -> &[Candidate<'a>] {
        self.candidates.as_deref().unwrap_or_default()
    }

    /// Why the prompt was refused, when it was (no candidates are generated then).
    pub(crate) fn block_reason(&self) -> Option<&PromptFeedback<'a>> {
        self.prompt_feedback.as_ref().filter(|f| f.block_reason.is_some())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate<'a> {
    #[serde(default, borrow)]
    pub content: Option<CandidateContent<'a>>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Str<'a>>,
    /// Omitted for the first candidate (proto3 leaves defaults out).
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default, borrow)]
    pub logprobs_result: Option<LogprobsResult<'a>>,
}

impl<'a> Candidate<'a> {
    pub(crate) fn parts(&self) -> &[Part<'a>] {
        self.content
            .as_ref()
            .and_then(|c| c.parts.as_deref())
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
pub(crate) struct CandidateContent<'a> {
    #[serde(default, borrow)]
    pub parts: Option<Vec<Part<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part<'a> {
    #[serde(default, borrow)]
    pub text: Option<Str<'a>>,
    #[serde(default)]
    pub thought: Option<bool>,
    #[serde(default, borrow)]
    pub thought_signature: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub function_call: Option<FunctionCall<'a>>,
}

impl Part<'_> {
    pub(crate) fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

#[derive(Deserialize)]
pub(crate) struct FunctionCall<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(default, borrow)]
    pub args: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback<'a> {
    #[serde(default, borrow)]
    pub block_reason: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub safety_ratings: Option<Vec<SafetyRating<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SafetyRating<'a> {
    #[serde(default, borrow)]
    pub category: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub probability: Option<Str<'a>>,
    #[serde(default)]
    pub blocked: Option<bool>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: Option<TokenCount>,
    #[serde(default)]
    pub cached_content_token_count: Option<TokenCount>,
    #[serde(default)]
    pub candidates_token_count: Option<TokenCount>,
    #[serde(default)]
    pub tool_use_prompt_token_count: Option<TokenCount>,
    #[serde(default)]
    pub thoughts_token_count: Option<TokenCount>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogprobsResult<'a> {
    #[serde(default, borrow)]
    pub top_candidates: Option<Vec<TopCandidates<'a>>>,
    #[serde(default, borrow)]
    pub chosen_candidates: Option<Vec<LogprobCandidate<'a>>>,
}

#[derive(Deserialize)]
pub(crate) struct TopCandidates<'a> {
    #[serde(default, borrow)]
    pub candidates: Option<Vec<LogprobCandidate<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogprobCandidate<'a> {
    #[serde(default, borrow)]
    pub token: Option<Str<'a>>,
    #[serde(default)]
    pub log_probability: Option<f64>,
}
