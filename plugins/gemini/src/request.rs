//! Unified request → `models.generateContent` / `models.streamGenerateContent`.
//!
//! | OpenAI | Gemini |
//! |---|---|
//! | `system` / `developer` messages | `systemInstruction.parts` (in order, wherever they stand) |
//! | `user` / `assistant` messages | `contents[]` with role `user` / `model`; consecutive turns of one kind merged |
//! | text parts | `{text}` |
//! | `image_url` data URL, `input_audio`, `file.file_data` | `inlineData {mimeType, data}` (base64 passed through) |
//! | `image_url` http(s)/gs URL | `fileData {mimeType?, fileUri}` (MIME type guessed from the extension) |
//! | assistant `tool_calls` (and legacy `function_call`) | `functionCall {name, args}` parts (+ `thoughtSignature` from `extra_content.google`) |
//! | `tool` (and legacy `function`) messages | `functionResponse {name, response}` parts, name found from the matching call |
//! | `tools[].function` | `tools[0].functionDeclarations[]`, parameters through [`crate::schema`] |
//! | `tool_choice` auto / none / required / named | `toolConfig.functionCallingConfig` AUTO / NONE / ANY / ANY + `allowedFunctionNames` |
//! | `temperature`, `top_p`, `top_k`, `seed`, `presence_penalty`, `frequency_penalty` | same-named `generationConfig` fields |
//! | `max_completion_tokens` (else `max_tokens`) | `maxOutputTokens` |
//! | `stop` | `stopSequences` |
//! | `n` | `candidateCount` |
//! | `logprobs`, `top_logprobs` | `responseLogprobs`, `logprobs` |
//! | `response_format` json_object / json_schema | `responseMimeType: application/json` (+ `responseSchema`) |
//! | `reasoning_effort` (or Bifrost's `reasoning`) | `thinkingConfig` (see [`thinking`]) |
//!
//! Ignored, having no Gemini counterpart: `logit_bias`, `user`, `metadata`, `store`,
//! `service_tier`, `prediction`, `parallel_tool_calls`, `modalities`/`audio`,
//! `web_search_options`, `stream_options` (Gemini streams always end with usage).

use crate::gemini::{
    Blob, Content, FileData, FunctionCallOut, FunctionCallingConfig, FunctionDeclaration, FunctionResponse,
    GenerateContentRequest, GenerationConfig, PartOut, ThinkingConfig, ToolConfig, ToolOut,
};
use crate::openai::{self, ChatRequest, Message, Stop};
use crate::schema::{self, Use};
use crate::setup::Endpoint;
use serde_json::Value;
use serde_json::value::RawValue;
use switchyard_plugin_api::sdk::{Context, Out, ProviderError};

pub(crate) fn encode(
    endpoint: &Endpoint,
    ctx: &Context<'_>,
    body: &[u8],
    out: &mut Out<'_>,
) -> Result<(), ProviderError> {
    let request: ChatRequest<'_> = switchyard_plugin_api::json::from_bytes(body)
        .map_err(|e| ProviderError::invalid_request(format!("the request cannot be read for Gemini: {e}")))?;
    let translated = translate(&request, ctx.model)?;
    let json = serde_json::to_vec(&translated)
        .map_err(|e| ProviderError::invalid_request(format!("the request cannot be written for Gemini: {e}")))?;
    out.method("POST");
    out.url(&endpoint.url(ctx.model, ctx.stream));
    out.header("content-type", "application/json");
    out.header(
        "accept",
        if ctx.stream {
            "text/event-stream"
        } else {
            "application/json"
        },
    );
    // The key travels in its header only: a URL ends up in logs and proxies.
    if !ctx.api_key.is_empty() {
        out.header("x-goog-api-key", ctx.api_key);
    }
    out.body(&json);
    Ok(())
}

fn invalid(message: impl Into<String>, param: impl Into<String>) -> ProviderError {
    ProviderError::invalid_request(message).with_param(param)
}

/// Builds the Gemini request; borrows every string it can from `req`.
pub(crate) fn translate<'r>(
    req: &'r ChatRequest<'r>,
    model: &str,
) -> Result<GenerateContentRequest<'r>, ProviderError> {
    let mut system: Vec<PartOut<'r>> = Vec::new();
    let mut turns: Vec<Turn<'r>> = Vec::new();
    for (i, message) in req.messages.iter().enumerate() {
        match &*message.role {
            "system" | "developer" => text_parts(message, i, &mut system)?,
            "user" => {
                let mut parts = Vec::new();
                user_parts(message, i, &mut parts)?;
                push_turn(&mut turns, TurnKind::User, parts);
            }
            "assistant" => {
                let mut parts = model_parts(message, i)?;
                if is_gemini_3(model) {
                    sign_replayed_calls(&mut parts);
                }
                push_turn(&mut turns, TurnKind::Model, parts);
            }
            "tool" | "function" => {
                let part = function_response(req, message, i)?;
                push_turn(&mut turns, TurnKind::ToolResults, vec![part]);
            }
            other => {
                return Err(invalid(
                    format!(
                        "messages[{i}] has role `{other}`, which Gemini cannot take (system, developer, user, assistant, tool)"
                    ),
                    format!("messages[{i}].role"),
                ));
            }
        }
    }
    if turns.is_empty() {
        return Err(invalid(
            "Gemini needs at least one user or assistant message besides the system prompt",
            "messages",
        ));
    }

    let (tools, tool_config) = tools(req)?;
    Ok(GenerateContentRequest {
        contents: turns
            .into_iter()
            .map(|t| Content {
                role: Some(t.kind.role()),
                parts: t.parts,
            })
            .collect(),
        system_instruction: (!system.is_empty()).then_some(Content {
            role: None,
            parts: system,
        }),
        tools,
        tool_config,
        generation_config: generation_config(req, model)?,
    })
}

// ------------------------------------------------------------------------------ messages

#[derive(Clone, Copy, PartialEq, Eq)]
enum TurnKind {
    User,
    Model,
    /// Function responses go back as a `user` turn of their own: the results of parallel
    /// calls belong together, and apart from the next user message.
    ToolResults,
}

impl TurnKind {
    fn role(self) -> &'static str {
        match self {
            TurnKind::User | TurnKind::ToolResults => "user",
            TurnKind::Model => "model",
        }
    }
}

struct Turn<'r> {
    kind: TurnKind,
    parts: Vec<PartOut<'r>>,
}

/// Appends `parts` as a turn, merged into the previous one of the same kind. A message that
/// translates to nothing (an empty assistant message) adds no turn: Gemini refuses empty ones.
fn push_turn<'r>(turns: &mut Vec<Turn<'r>>, kind: TurnKind, mut parts: Vec<PartOut<'r>>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.kind == kind => last.parts.append(&mut parts),
        _ => turns.push(Turn { kind, parts }),
    }
}

fn text<'r>(text: &'r str) -> PartOut<'r> {
    PartOut {
        text: Some(text),
        ..PartOut::default()
    }
}

/// System messages: text only.
fn text_parts<'r>(message: &'r Message<'r>, i: usize, out: &mut Vec<PartOut<'r>>) -> Result<(), ProviderError> {
    match &message.content {
        None => {}
        Some(openai::Content::Text(s)) => out.push(text(s)),
        Some(openai::Content::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                match (&*part.kind, &part.text) {
                    ("text", Some(s)) => out.push(text(s)),
                    _ => {
                        return Err(invalid(
                            format!(
                                "messages[{i}].content[{j}] is a `{}` part; Gemini's system instruction takes text only",
                                &*part.kind
                            ),
                            format!("messages[{i}].content[{j}]"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn user_parts<'r>(message: &'r Message<'r>, i: usize, out: &mut Vec<PartOut<'r>>) -> Result<(), ProviderError> {
    let parts = match &message.content {
        None => return Ok(()),
        Some(openai::Content::Text(s)) => {
            out.push(text(s));
            return Ok(());
        }
        Some(openai::Content::Parts(parts)) => parts,
    };
    for (j, part) in parts.iter().enumerate() {
        let param = || format!("messages[{i}].content[{j}]");
        let translated = match &*part.kind {
            "text" => part.text.as_deref().map(text),
            "image_url" => match &part.image_url {
                Some(image) => Some(media_part(&image.url, "image/jpeg").map_err(|m| invalid(m, param()))?),
                None => None,
            },
            "input_audio" => part.input_audio.as_ref().map(|audio| PartOut {
                inline_data: Some(Blob {
                    mime_type: audio_mime(audio.format.as_deref()),
                    data: &audio.data,
                }),
                ..PartOut::default()
            }),
            "file" => match &part.file {
                Some(file) => match (&file.file_data, &file.file_id) {
                    (Some(data), _) => {
                        Some(media_part(data, "application/octet-stream").map_err(|m| invalid(m, param()))?)
                    }
                    (None, Some(_)) => {
                        return Err(invalid(
                            "OpenAI file ids cannot be sent to Gemini; send the file inline as `file_data`",
                            param(),
                        ));
                    }
                    (None, None) => None,
                },
                None => None,
            },
            other => {
                return Err(invalid(
                    format!("content part type `{other}` is not supported by the Gemini provider"),
                    param(),
                ));
            }
        };
        let Some(translated) = translated else {
            return Err(invalid(
                format!("messages[{i}].content[{j}] (`{}`) is missing its data", &*part.kind),
                param(),
            ));
        };
        out.push(translated);
    }
    Ok(())
}

/// A data URL becomes inline data; an http(s) or gs URL a file reference.
fn media_part<'r>(url: &'r str, default_mime: &'static str) -> Result<PartOut<'r>, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((header, data)) = rest.split_once(',') else {
            return Err("the data URL has no `,` before its data".into());
        };
        let Some(mime) = header
            .strip_suffix(";base64")
            .or_else(|| header.strip_suffix(";BASE64"))
        else {
            return Err("only base64 data URLs (data:<type>;base64,<data>) can be sent to Gemini".into());
        };
        // Parameters such as `;charset=…` are not part of the MIME type Gemini wants.
        let mime = mime.split(';').next().unwrap_or_default().trim();
        return Ok(PartOut {
            inline_data: Some(Blob {
                mime_type: if mime.is_empty() { default_mime } else { mime },
                data,
            }),
            ..PartOut::default()
        });
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("gs://") {
        return Ok(PartOut {
            file_data: Some(FileData {
                mime_type: guess_mime(url),
                file_uri: url,
            }),
            ..PartOut::default()
        });
    }
    Err("a media URL must be a base64 data URL or an http(s):// or gs:// URL".into())
}

/// The MIME type of a file URL from its extension; `None` lets Gemini decide (Files API URIs
/// have no extension).
fn guess_mime(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = name.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "txt" => "text/plain",
        _ => return None,
    })
}

fn audio_mime(format: Option<&str>) -> &'static str {
    match format {
        Some("mp3") => "audio/mp3",
        Some("flac") => "audio/flac",
        Some("ogg") => "audio/ogg",
        Some("aac") => "audio/aac",
        _ => "audio/wav",
    }
}

fn model_parts<'r>(message: &'r Message<'r>, i: usize) -> Result<Vec<PartOut<'r>>, ProviderError> {
    let mut parts = Vec::new();
    match &message.content {
        Some(openai::Content::Text(s)) if !s.is_empty() => parts.push(text(s)),
        None | Some(openai::Content::Text(_)) => {}
        Some(openai::Content::Parts(list)) => {
            for part in list {
                // A refusal is what the assistant said; Gemini has no separate slot for it.
                if let Some(s) = part.text.as_deref().or(part.refusal.as_deref()) {
                    parts.push(text(s));
                }
            }
        }
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let param = format!("messages[{i}].tool_calls[{j}].function.arguments");
        parts.push(PartOut {
            function_call: Some(FunctionCallOut {
                name: &call.function.name,
                args: arguments(call.function.arguments.as_deref(), &param)?,
            }),
            thought_signature: call.thought_signature().map(|s| &**s),
            ..PartOut::default()
        });
    }
    if let Some(call) = &message.function_call {
        let param = format!("messages[{i}].function_call.arguments");
        parts.push(PartOut {
            function_call: Some(FunctionCallOut {
                name: &call.name,
                args: arguments(call.arguments.as_deref(), &param)?,
            }),
            ..PartOut::default()
        });
    }
    Ok(parts)
}

/// Gemini 3 models and later refuse a replayed `functionCall` without the `thoughtSignature`
/// they attached to it. The codec hands signatures to clients in `extra_content` and takes them
/// back from there, but many clients rebuild tool calls from `id`, `type` and `function` only.
/// For those, Google documents a sentinel that skips the check.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

fn is_gemini_3(model: &str) -> bool {
    let name = model.strip_prefix("models/").unwrap_or(model);
    name.starts_with("gemini-3")
}

/// Gemini signs the first call of a step (parallel calls after it carry none), so an assistant
/// message whose calls carry no signature at all gets the sentinel on its first call.
fn sign_replayed_calls(parts: &mut [PartOut<'_>]) {
    let calls = || parts.iter().filter(|p| p.function_call.is_some());
    if calls().any(|p| p.thought_signature.is_some()) {
        return;
    }
    if let Some(first) = parts.iter_mut().find(|p| p.function_call.is_some()) {
        first.thought_signature = Some(SKIP_SIGNATURE);
    }
}

const EMPTY_OBJECT: &str = "{}";

/// OpenAI's arguments are JSON text; Gemini wants the object itself.
fn arguments<'r>(text: Option<&'r str>, param: &str) -> Result<&'r RawValue, ProviderError> {
    let text = text.map(str::trim).filter(|t| !t.is_empty()).unwrap_or(EMPTY_OBJECT);
    let raw: &RawValue = serde_json::from_str(text).map_err(|e| {
        invalid(
            format!("{param} is not valid JSON ({e}); Gemini needs an object"),
            param,
        )
    })?;
    if !raw.get().starts_with('{') {
        return Err(invalid(format!("{param} must be a JSON object for Gemini"), param));
    }
    Ok(raw)
}

/// A tool result. Gemini matches responses to calls by function name, which OpenAI tool
/// messages do not carry: it is found from the assistant call with the same id.
fn function_response<'r>(
    req: &'r ChatRequest<'r>,
    message: &'r Message<'r>,
    i: usize,
) -> Result<PartOut<'r>, ProviderError> {
    let name = match (&message.tool_call_id, &message.name) {
        (Some(id), _) => req.messages[..i]
            .iter()
            .rev()
            .flat_map(|m| m.tool_calls.iter().flatten())
            .find(|c| c.id.as_deref() == Some(&**id))
            .map(|c| &*c.function.name)
            .or(message.name.as_deref())
            .ok_or_else(|| {
                invalid(
                    format!(
                        "messages[{i}] answers tool call `{}`, which no earlier assistant message made; Gemini needs the function's name",
                        &**id
                    ),
                    format!("messages[{i}].tool_call_id"),
                )
            })?,
        (None, Some(name)) => &**name,
        (None, None) => {
            return Err(invalid(
                format!("messages[{i}] is a tool result without `tool_call_id`"),
                format!("messages[{i}].tool_call_id"),
            ));
        }
    };
    let mut joined = String::new();
    let content: &str = match &message.content {
        None => "",
        Some(openai::Content::Text(s)) => s,
        Some(openai::Content::Parts(parts)) => {
            for part in parts {
                if let Some(s) = part.text.as_deref() {
                    joined.push_str(s);
                }
            }
            &joined
        }
    };
    Ok(PartOut {
        function_response: Some(FunctionResponse {
            name,
            response: tool_output(content),
        }),
        ..PartOut::default()
    })
}

/// `functionResponse.response` must be an object: a JSON object result is sent as is;
/// anything else (text, a number, a list) is wrapped as `{"content": …}`.
fn tool_output(content: &str) -> Value {
    match serde_json::from_str::<Value>(content) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(other) if !content.trim().is_empty() => serde_json::json!({ "content": other }),
        _ => serde_json::json!({ "content": content }),
    }
}

// ------------------------------------------------------------------------------ tools

fn tools<'r>(req: &'r ChatRequest<'r>) -> Result<(Vec<ToolOut<'r>>, Option<ToolConfig>), ProviderError> {
    let mut declarations = Vec::new();
    for (i, tool) in req.tools.iter().flatten().enumerate() {
        let kind = tool.kind.as_deref().unwrap_or("function");
        let function = match (&tool.function, kind) {
            (Some(f), "function") => f,
            _ => {
                return Err(invalid(
                    format!("tools[{i}] is a `{kind}` tool; the Gemini provider translates function tools only"),
                    format!("tools[{i}]"),
                ));
            }
        };
        let parameters = function
            .parameters
            .as_ref()
            .map(|p| schema::to_gemini(p, Use::Parameters))
            .filter(|p| !schema::is_empty_object(p));
        declarations.push(FunctionDeclaration {
            name: &function.name,
            description: function.description.as_deref(),
            parameters,
        });
    }
    let config = tool_config(req.tool_choice.as_ref())?;
    let tools = if declarations.is_empty() {
        Vec::new()
    } else {
        vec![ToolOut {
            function_declarations: declarations,
        }]
    };
    Ok((tools, config))
}

fn tool_config(choice: Option<&Value>) -> Result<Option<ToolConfig>, ProviderError> {
    let config = |mode: &'static str, names: Vec<String>| {
        Some(ToolConfig {
            function_calling_config: FunctionCallingConfig {
                mode,
                allowed_function_names: names,
            },
        })
    };
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(config("AUTO", Vec::new())),
            "none" => Ok(config("NONE", Vec::new())),
            "required" => Ok(config("ANY", Vec::new())),
            other => Err(invalid(
                format!("tool_choice `{other}` is not one of auto, none, required"),
                "tool_choice",
            )),
        },
        Some(object) => match object.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Ok(config("ANY", vec![name.to_string()])),
            None => Err(invalid(
                "tool_choice must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}} for Gemini",
                "tool_choice",
            )),
        },
    }
}

// ------------------------------------------------------------------------------ generation

fn generation_config(req: &ChatRequest<'_>, model: &str) -> Result<GenerationConfig, ProviderError> {
    let stop_sequences = match &req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.to_string()],
        Some(Stop::Many(all)) => all.iter().map(|s| s.to_string()).collect(),
    };
    let (response_mime_type, response_schema) = response_format(req.response_format.as_ref())?;
    Ok(GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        candidate_count: req.n,
        max_output_tokens: req.max_completion_tokens.or(req.max_tokens),
        stop_sequences,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        response_logprobs: req.logprobs.filter(|l| *l),
        logprobs: req.top_logprobs.filter(|_| req.logprobs == Some(true)),
        response_mime_type,
        response_schema,
        thinking_config: thinking(req, model)?,
    })
}

fn response_format(format: Option<&Value>) -> Result<(Option<&'static str>, Option<Value>), ProviderError> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok((None, None));
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok((None, None)),
        Some("json_object") => Ok((Some("application/json"), None)),
        Some("json_schema") => {
            let schema = format
                .pointer("/json_schema/schema")
                .filter(|s| s.is_object())
                .map(|s| schema::to_gemini(s, Use::Response));
            Ok((Some("application/json"), schema))
        }
        other => Err(invalid(
            format!(
                "response_format type {} is not supported by Gemini (text, json_object, json_schema)",
                other.map_or("(missing)".to_string(), |t| format!("`{t}`"))
            ),
            "response_format",
        )),
    }
}

/// `reasoning_effort` → `thinkingConfig`.
///
/// Gemini 3 models take a `thinkingLevel`: `minimal`, `low`, `medium`, `high` pass through,
/// `none` becomes `low` (they cannot stop thinking), `xhigh` becomes `high`. Earlier models
/// take a `thinkingBudget` in tokens: none 0 (thinking off), minimal 512, low 1024,
/// medium 8192, high and xhigh 24576 (the budgets Google documents for its own OpenAI
/// endpoint). Bifrost's `reasoning.max_tokens` sets the budget directly, on any model.
/// Unless thinking is off, `includeThoughts` is set so the thoughts come back as `reasoning`.
fn thinking(req: &ChatRequest<'_>, model: &str) -> Result<Option<ThinkingConfig>, ProviderError> {
    let reasoning = req.reasoning.as_ref();
    let effort = req
        .reasoning_effort
        .as_deref()
        .or_else(|| reasoning.and_then(|r| r.effort.as_deref()));
    let budget = reasoning.and_then(|r| r.max_tokens);
    if effort.is_none() && budget.is_none() {
        return Ok(None);
    }
    let param = if req.reasoning_effort.is_some() {
        "reasoning_effort"
    } else {
        "reasoning.effort"
    };
    let off = effort == Some("none") || budget == Some(0);
    let include_thoughts = (!off).then_some(true);
    if let Some(budget) = budget {
        return Ok(Some(ThinkingConfig {
            include_thoughts,
            thinking_budget: Some(budget),
            thinking_level: None,
        }));
    }
    let effort = effort.unwrap_or_default();
    let unknown = || {
        invalid(
            format!("{param} `{effort}` is not one of none, minimal, low, medium, high, xhigh"),
            param,
        )
    };
    if is_gemini_3(model) {
        let level = match effort {
            "none" | "low" => "low",
            "minimal" => "minimal",
            "medium" => "medium",
            "high" | "xhigh" => "high",
            _ => return Err(unknown()),
        };
        return Ok(Some(ThinkingConfig {
            include_thoughts,
            thinking_budget: None,
            thinking_level: Some(level),
        }));
    }
    let budget = match effort {
        "none" => 0,
        "minimal" => 512,
        "low" => 1024,
        "medium" => 8192,
        "high" | "xhigh" => 24576,
        _ => return Err(unknown()),
    };
    Ok(Some(ThinkingConfig {
        include_thoughts,
        thinking_budget: Some(budget),
        thinking_level: None,
    }))
}
