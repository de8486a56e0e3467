//! Unified request → `POST /v1/messages`.
//!
//! The request is read once into borrowed views and written once: strings move from the
//! views into the Anthropic body, JSON Schemas and tool inputs are copied as raw JSON.
//! Everything that cannot be expressed is refused with a 400 naming the field, never
//! silently changed; fields with no Anthropic meaning are dropped (listed in the crate docs).

use crate::chat::{ChatRequest, Content, Message, Part, ReasoningDetail, ResponseFormat, ToolCall, ToolChoice};
use crate::messages::{
    Block, FixedSchema, MessagesRequest, Metadata, Role, Schema, Source, System, Thinking, ThinkingBudget,
    ToolChoice as ToolChoiceOut, ToolChoiceKind, ToolDef, ToolResultContent, Turn,
};
use crate::setup::Endpoint;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use switchyard_plugin_api::sdk::{Context, Out, ProviderError};

type Str<'a> = Cow<'a, str>;

/// The tool that carries `response_format` answers (see the crate docs). Clients may not use
/// the name for a tool of their own: answers through it become `content`, not `tool_calls`.
pub(crate) const RESPONSE_TOOL: &str = "switchyard_json_response";

/// The smallest thinking budget the API accepts.
const MIN_THINKING_BUDGET: u64 = 1024;

pub(crate) fn encode(
    endpoint: &Endpoint,
    ctx: &Context<'_>,
    body: &[u8],
    out: &mut Out<'_>,
) -> Result<(), ProviderError> {
    let request = ChatRequest::parse(body).map_err(|e| {
        ProviderError::invalid_request(format!("the request is not a valid chat completion request: {e}"))
    })?;
    let messages = translate(endpoint, ctx, request)?;
    let json = serde_json::to_vec(&messages)
        .map_err(|e| ProviderError::invalid_request(format!("the request could not be translated: {e}")))?;
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
    out.header("anthropic-version", &endpoint.version);
    // A keyless provider (a local proxy that adds its own auth) gets no empty header.
    if !ctx.api_key.is_empty() {
        out.header("x-api-key", ctx.api_key);
    }
    out.body(&json);
    Ok(())
}

fn invalid(param: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::invalid_request(message).with_param(param)
}

/// Where in `messages` a value sits; spelled out only when an error names it.
#[derive(Clone, Copy)]
enum At {
    /// `messages[i].content[j]`
    Part(usize, usize),
    /// `messages[i].tool_calls[j]`
    ToolCall(usize, usize),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Part(i, j) => write!(f, "messages[{i}].content[{j}]"),
            At::ToolCall(i, j) => write!(f, "messages[{i}].tool_calls[{j}]"),
        }
    }
}

fn invalid_at(at: At, suffix: &str, message: impl Into<String>) -> ProviderError {
    invalid(&format!("{at}{suffix}"), message)
}

/// The whole translation; public to the crate for the golden tests.
pub(crate) fn translate<'a>(
    endpoint: &Endpoint,
    ctx: &Context<'_>,
    request: ChatRequest<'a>,
) -> Result<MessagesRequest<'a>, ProviderError> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(invalid(
            "n",
            "Anthropic answers one choice per request: `n` greater than 1 is not supported",
        ));
    }
    if request
        .modalities
        .as_ref()
        .is_some_and(|m| m.iter().any(|m| m == "audio"))
    {
        return Err(invalid("modalities", "Anthropic models cannot answer with audio"));
    }
    let model = match request.model {
        Some(model) if !model.is_empty() => model,
        _ if !ctx.model.is_empty() => Cow::Owned(ctx.model.to_owned()),
        _ => return Err(invalid("model", "the request names no model")),
    };

    let (system, messages) = conversation(request.messages)?;
    let structured = structured_output(request.response_format)?;
    let thinking_requested = thinking_request(request.thinking.as_ref(), request.reasoning_effort.as_deref())?;

    let client_max = match (request.max_completion_tokens, request.max_tokens) {
        (Some(0), _) => return Err(invalid("max_completion_tokens", "must be at least 1")),
        (None, Some(0)) => return Err(invalid("max_tokens", "must be at least 1")),
        (Some(n), _) | (None, Some(n)) => Some(n),
        (None, None) => None,
    };
    let (max_tokens, thinking) = match thinking_requested {
        ThinkingRequest::Off => (client_max.unwrap_or(endpoint.default_max_tokens), None),
        ThinkingRequest::Raw { raw, budget } => (
            // The client's own budget: leave the default room for the visible answer.
            client_max.unwrap_or(endpoint.default_max_tokens.saturating_add(budget)),
            Some(Thinking::Raw(raw)),
        ),
        ThinkingRequest::Effort(budget) => {
            let (max, budget) = size_thinking(client_max, budget, endpoint.default_max_tokens)?;
            (
                max,
                Some(Thinking::Budget(ThinkingBudget {
                    kind: "enabled",
                    budget_tokens: budget,
                })),
            )
        }
    };
    let thinking_on = !matches!(thinking_requested, ThinkingRequest::Off);

    let (tools, tool_choice) = tools(
        request.tools,
        request.tool_choice,
        request.parallel_tool_calls,
        structured,
        thinking_on,
    )?;

    let stop_sequences = request
        .stop
        .map(|s| s.0.into_iter().filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();

    // Extended thinking fixes the sampling parameters (the API refuses changes to them).
    let (temperature, top_p, top_k) = if thinking_on {
        (None, None, None)
    } else {
        (request.temperature, request.top_p, request.top_k)
    };

    Ok(MessagesRequest {
        model,
        max_tokens,
        system,
        messages,
        temperature,
        top_p,
        top_k,
        stop_sequences,
        tools,
        tool_choice,
        thinking,
        metadata: request
            .user
            .filter(|u| !u.is_empty())
            .map(|user_id| Metadata { user_id }),
        stream: ctx.stream,
    })
}

// ------------------------------------------------------------------------------------------
// Messages
// ------------------------------------------------------------------------------------------

/// System messages → `system`; the rest → alternating turns.
fn conversation(messages: Vec<Message<'_>>) -> Result<(Option<System<'_>>, Vec<Turn<'_>>), ProviderError> {
    let mut system: Vec<Block<'_>> = Vec::new();
    let mut turns: Vec<Turn<'_>> = Vec::with_capacity(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        let (role, mut blocks) = match message.role.as_ref() {
            // Anthropic has one system prompt: every system message joins it, in order.
            "system" | "developer" => {
                let start = system.len();
                text_blocks(message.content, &mut system, i)?;
                if let Some(cc) = message.cache_control
                    && system.len() > start
                    && let Some(last) = system.last_mut()
                {
                    last.cache(cc);
                }
                continue;
            }
            "user" => (Role::User, user_blocks(message.content, i)?),
            "assistant" => (Role::Assistant, assistant_blocks(message, i)?),
            "tool" => (Role::User, vec![tool_result(message, i)?]),
            "function" => {
                return Err(invalid(
                    &format!("messages[{i}].role"),
                    "the legacy `function` role is not supported; send `tool` messages with a `tool_call_id`",
                ));
            }
            other => {
                return Err(invalid(
                    &format!("messages[{i}].role"),
                    format!("unknown role `{other}`"),
                ));
            }
        };
        // The API refuses empty turns; a message with nothing to say adds nothing.
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            // The API wants strictly alternating turns: consecutive ones are merged.
            Some(last) if last.role == role => last.content.append(&mut blocks),
            _ => turns.push(Turn { role, content: blocks }),
        }
    }
    for turn in &mut turns {
        if turn.role == Role::User {
            tool_results_first(&mut turn.content);
        }
    }
    let system = match system.len() {
        0 => None,
        1 if !system[0].has_cache_control() => match system.pop() {
            Some(Block::Text { text, .. }) => Some(System::Text(text)),
            other => Some(System::Blocks(other.into_iter().collect())),
        },
        _ => Some(System::Blocks(system)),
    };
    Ok((system, turns))
}

/// In a user turn, `tool_result` blocks must come before anything else.
fn tool_results_first(blocks: &mut [Block<'_>]) {
    let first_other = blocks.iter().position(|b| !b.is_tool_result());
    if let Some(first_other) = first_other
        && blocks[first_other..].iter().any(Block::is_tool_result)
    {
        // Stable: results keep their order, and so does everything else.
        blocks.sort_by_key(|b| !b.is_tool_result());
    }
}

fn text_blocks<'a>(content: Content<'a>, out: &mut Vec<Block<'a>>, i: usize) -> Result<(), ProviderError> {
    match content {
        Content::None => {}
        Content::Text(text) => {
            if !text.is_empty() {
                out.push(Block::text(text, None));
            }
        }
        Content::Parts(parts) => {
            for (j, part) in parts.into_iter().enumerate() {
                match part.kind.as_ref() {
                    "text" => {
                        let text = part.text.unwrap_or_default();
                        if !text.is_empty() {
                            out.push(Block::text(text, part.cache_control));
                        }
                    }
                    other => {
                        return Err(invalid_at(
                            At::Part(i, j),
                            "",
                            format!("a `{other}` part cannot appear here; only text is supported"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn user_blocks(content: Content<'_>, i: usize) -> Result<Vec<Block<'_>>, ProviderError> {
    let mut blocks = Vec::new();
    match content {
        Content::None => {}
        Content::Text(text) => {
            if !text.is_empty() {
                blocks.push(Block::text(text, None));
            }
        }
        Content::Parts(parts) => {
            blocks.reserve(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                if let Some(block) = media_or_text(part, At::Part(i, j))? {
                    blocks.push(block);
                }
            }
        }
    }
    Ok(blocks)
}

/// A user (or tool result) part: text, image or PDF file.
fn media_or_text<'a>(part: Part<'a>, at: At) -> Result<Option<Block<'a>>, ProviderError> {
    let cache_control = part.cache_control;
    match part.kind.as_ref() {
        "text" => {
            let text = part.text.unwrap_or_default();
            Ok((!text.is_empty()).then(|| Block::text(text, cache_control)))
        }
        "image_url" => {
            let url = part
                .image_url
                .ok_or_else(|| invalid_at(at, "", "an `image_url` part needs `image_url.url`"))?
                .url;
            let source = image_source(url, at)?;
            Ok(Some(Block::Image { source, cache_control }))
        }
        "file" => {
            let file = part
                .file
                .ok_or_else(|| invalid_at(at, "", "a `file` part needs a `file` object"))?;
            if file.file_id.is_some() && file.file_data.is_none() {
                return Err(invalid_at(
                    at,
                    "",
                    "`file.file_id` refers to an OpenAI upload, which Anthropic cannot read; send `file_data`",
                ));
            }
            let data = file
                .file_data
                .ok_or_else(|| invalid_at(at, "", "a `file` part needs `file.file_data` (a base64 data URL)"))?;
            let (media_type, data) = data_url(data).ok_or_else(|| {
                invalid_at(
                    at,
                    "",
                    "`file.file_data` must be a base64 data URL (data:application/pdf;base64,…)",
                )
            })?;
            if media_type != "application/pdf" {
                return Err(invalid_at(
                    at,
                    "",
                    format!("Anthropic reads PDF documents only, not `{media_type}`"),
                ));
            }
            Ok(Some(Block::Document {
                source: Source::Base64 { media_type, data },
                title: file.filename,
                cache_control,
            }))
        }
        "input_audio" => Err(invalid_at(at, "", "Anthropic models do not accept audio input")),
        other => Err(invalid_at(at, "", format!("unknown content part type `{other}`"))),
    }
}

fn image_source<'a>(url: Str<'a>, at: At) -> Result<Source<'a>, ProviderError> {
    if url.starts_with("data:") {
        let (media_type, data) = data_url(url)
            .ok_or_else(|| invalid_at(at, "", "an image data URL must be base64 (data:image/png;base64,…)"))?;
        return Ok(Source::Base64 { media_type, data });
    }
    let lower = url.get(..8).unwrap_or(&url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(Source::Url { url });
    }
    Err(invalid_at(
        at,
        "",
        "an image must be an http(s) URL or a base64 data URL",
    ))
}

/// `data:<media type>[;params];base64,<data>` → (media type, data), borrowing when it can.
fn data_url(url: Str<'_>) -> Option<(Str<'_>, Str<'_>)> {
    let rest = url.strip_prefix("data:")?;
    let comma = rest.find(',')?;
    let meta = &rest[..comma];
    let mut params = meta.split(';');
    let media_type = params.next().filter(|m| !m.is_empty())?;
    if !params.any(|p| p.eq_ignore_ascii_case("base64")) {
        return None;
    }
    let media_start = "data:".len();
    let media_end = media_start + media_type.len();
    let data_start = media_start + comma + 1;
    let media_type = media_type.to_ascii_lowercase();
    Some(match url {
        Cow::Borrowed(s) => (
            if s[media_start..media_end] == media_type {
                Cow::Borrowed(&s[media_start..media_end])
            } else {
                Cow::Owned(media_type)
            },
            Cow::Borrowed(&s[data_start..]),
        ),
        Cow::Owned(mut s) => {
            let data = s.split_off(data_start);
            (Cow::Owned(media_type), Cow::Owned(data))
        }
    })
}

fn assistant_blocks(message: Message<'_>, i: usize) -> Result<Vec<Block<'_>>, ProviderError> {
    let mut blocks = Vec::new();
    // Signed thinking from an earlier answer goes first, as the API returned it.
    for detail in message.reasoning_details.into_iter().flatten() {
        if let Some(block) = thinking_block(detail) {
            blocks.push(block);
        }
    }
    match message.content {
        Content::None => {}
        Content::Text(text) => {
            if !text.is_empty() {
                blocks.push(Block::text(text, None));
            }
        }
        Content::Parts(parts) => {
            for (j, part) in parts.into_iter().enumerate() {
                match part.kind.as_ref() {
                    "text" => {
                        let text = part.text.unwrap_or_default();
                        if !text.is_empty() {
                            blocks.push(Block::text(text, part.cache_control));
                        }
                    }
                    // A refusal the model gave earlier has no block of its own in Anthropic's history.
                    "refusal" => {}
                    other => {
                        return Err(invalid_at(
                            At::Part(i, j),
                            "",
                            format!("an assistant message cannot carry a `{other}` part"),
                        ));
                    }
                }
            }
        }
    }
    for (j, call) in message.tool_calls.into_iter().flatten().enumerate() {
        blocks.push(tool_use(call, At::ToolCall(i, j))?);
    }
    if let (Some(cc), Some(last)) = (message.cache_control, blocks.last_mut()) {
        last.cache(cc);
    }
    Ok(blocks)
}

/// `reasoning_details` entries this codec emitted: signed thinking or redacted thinking.
/// Unsigned reasoning (from another provider) cannot be replayed to Anthropic and is dropped.
fn thinking_block(detail: ReasoningDetail<'_>) -> Option<Block<'_>> {
    match detail.kind.as_ref() {
        "reasoning.text" => {
            let signature = detail.signature.filter(|s| !s.is_empty())?;
            Some(Block::Thinking {
                thinking: detail.text.unwrap_or_default(),
                signature,
            })
        }
        "reasoning.encrypted" => detail
            .data
            .filter(|d| !d.is_empty())
            .map(|data| Block::RedactedThinking { data }),
        _ => None,
    }
}

fn tool_use<'a>(call: ToolCall<'a>, at: At) -> Result<Block<'a>, ProviderError> {
    if call.kind.as_deref().is_some_and(|k| k != "function") {
        return Err(invalid_at(at, ".type", "only `function` tool calls are supported"));
    }
    let id = call
        .id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid_at(at, ".id", "a tool call needs an `id`"))?;
    let function = call
        .function
        .ok_or_else(|| invalid_at(at, ".function", "a tool call needs a `function`"))?;
    let arguments = function.arguments.unwrap_or_default();
    let input = if arguments.trim().is_empty() {
        empty_object()
    } else {
        serde_json::from_str::<Box<RawValue>>(&arguments)
            .ok()
            .filter(|raw| raw.get().trim_start().starts_with('{'))
            .ok_or_else(|| {
                invalid_at(
                    at,
                    ".function.arguments",
                    "tool call arguments must be a JSON object serialised as a string",
                )
            })?
    };
    Ok(Block::ToolUse {
        id: tool_id(id),
        name: function.name,
        input,
        cache_control: None,
    })
}

fn empty_object() -> Box<RawValue> {
    // `{}` is valid JSON, so this never takes the default.
    RawValue::from_string("{}".to_owned()).unwrap_or_default()
}

fn tool_result<'a>(message: Message<'a>, i: usize) -> Result<Block<'a>, ProviderError> {
    let id = message.tool_call_id.filter(|id| !id.is_empty()).ok_or_else(|| {
        invalid(
            &format!("messages[{i}].tool_call_id"),
            "a `tool` message needs a `tool_call_id`",
        )
    })?;
    let content = match message.content {
        Content::None => ToolResultContent::Text(Cow::Borrowed("")),
        Content::Text(text) => ToolResultContent::Text(text),
        Content::Parts(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                if part.kind == "file" {
                    return Err(invalid_at(
                        At::Part(i, j),
                        "",
                        "a tool result can carry text and images only",
                    ));
                }
                if let Some(block) = media_or_text(part, At::Part(i, j))? {
                    blocks.push(block);
                }
            }
            ToolResultContent::Blocks(blocks)
        }
    };
    Ok(Block::ToolResult {
        tool_use_id: tool_id(id),
        content,
        cache_control: message.cache_control,
    })
}

/// Anthropic tool ids are `[A-Za-z0-9_-]+`; ids minted by other providers may hold other
/// characters. The same mapping applies to a call and its result, so they still match.
fn tool_id(id: Str<'_>) -> Str<'_> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if id.chars().all(ok) {
        return id;
    }
    Cow::Owned(id.chars().map(|c| if ok(c) { c } else { '_' }).collect())
}

// ------------------------------------------------------------------------------------------
// Thinking
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum ThinkingRequest<'a> {
    Off,
    Raw { raw: &'a RawValue, budget: u64 },
    Effort(u64),
}

fn thinking_request<'a>(
    raw: Option<&crate::chat::ThinkingView<'a>>,
    effort: Option<&str>,
) -> Result<ThinkingRequest<'a>, ProviderError> {
    if let Some(view) = raw {
        return Ok(if view.enabled {
            ThinkingRequest::Raw {
                raw: view.raw,
                budget: view.budget_tokens.unwrap_or(0),
            }
        } else {
            ThinkingRequest::Off
        });
    }
    let budget = match effort {
        None | Some("none") => return Ok(ThinkingRequest::Off),
        Some("minimal") => 1024,
        Some("low") => 2048,
        Some("medium") => 8192,
        Some("high") => 16384,
        Some("xhigh") => 24576,
        Some(other) => {
            return Err(invalid(
                "reasoning_effort",
                format!("unknown reasoning_effort `{other}` (none, minimal, low, medium, high, xhigh)"),
            ));
        }
    };
    Ok(ThinkingRequest::Effort(budget))
}

/// `max_tokens` and the thinking budget. Without a client limit the visible answer keeps the
/// default room on top of the budget; with one, the limit holds (as OpenAI counts reasoning in
/// `max_completion_tokens`) and thinking gets at most half of it.
fn size_thinking(client_max: Option<u64>, budget: u64, default_max: u64) -> Result<(u64, u64), ProviderError> {
    match client_max {
        None => Ok((default_max.saturating_add(budget), budget)),
        Some(max) if max <= MIN_THINKING_BUDGET => Err(invalid(
            "max_completion_tokens",
            format!(
                "reasoning_effort needs a token limit above {MIN_THINKING_BUDGET}: Anthropic's smallest thinking budget is {MIN_THINKING_BUDGET} tokens and counts toward the limit"
            ),
        )),
        Some(max) => Ok((max, budget.min(max / 2).max(MIN_THINKING_BUDGET))),
    }
}

// ------------------------------------------------------------------------------------------
// Tools and structured output
// ------------------------------------------------------------------------------------------

/// `response_format` as a forced tool.
struct Structured<'a> {
    schema: Schema<'a>,
    description: String,
}

fn structured_output(format: Option<ResponseFormat<'_>>) -> Result<Option<Structured<'_>>, ProviderError> {
    let Some(format) = format else {
        return Ok(None);
    };
    match format.kind.as_ref() {
        "text" => Ok(None),
        "json_object" => Ok(Some(Structured {
            schema: Schema::Fixed(FixedSchema::AnyObject),
            description: "Give your complete answer as a JSON object by calling this tool.".into(),
        })),
        "json_schema" => {
            let spec = format.json_schema.ok_or_else(|| {
                invalid(
                    "response_format.json_schema",
                    "`json_schema` is required with type json_schema",
                )
            })?;
            let schema = spec.schema.ok_or_else(|| {
                invalid(
                    "response_format.json_schema.schema",
                    "a JSON Schema is required with type json_schema",
                )
            })?;
            if !schema.get().trim_start().starts_with('{') {
                return Err(invalid(
                    "response_format.json_schema.schema",
                    "the schema must be a JSON object",
                ));
            }
            let mut description = String::from("Give your complete answer by calling this tool");
            if let Some(name) = spec.name.as_deref().filter(|n| !n.is_empty()) {
                description.push_str(&format!(" with a `{name}` object"));
            }
            description.push('.');
            if let Some(about) = spec.description.as_deref().filter(|d| !d.is_empty()) {
                description.push(' ');
                description.push_str(about);
            }
            Ok(Some(Structured {
                schema: Schema::Raw(schema),
                description,
            }))
        }
        other => Err(invalid(
            "response_format.type",
            format!("unknown response_format type `{other}` (text, json_object, json_schema)"),
        )),
    }
}

type ToolsOut<'a> = (Vec<ToolDef<'a>>, Option<ToolChoiceOut<'a>>);

fn tools<'a>(
    tools: Option<Vec<crate::chat::Tool<'a>>>,
    choice: Option<ToolChoice<'a>>,
    parallel: Option<bool>,
    structured: Option<Structured<'a>>,
    thinking: bool,
) -> Result<ToolsOut<'a>, ProviderError> {
    let mut defs = Vec::new();
    for (i, tool) in tools.into_iter().flatten().enumerate() {
        if tool.kind.as_deref().is_some_and(|k| k != "function") {
            return Err(invalid(
                &format!("tools[{i}].type"),
                "only `function` tools are supported",
            ));
        }
        let function = tool
            .function
            .ok_or_else(|| invalid(&format!("tools[{i}].function"), "a tool needs a `function`"))?;
        if function.name == RESPONSE_TOOL {
            return Err(invalid(
                &format!("tools[{i}].function.name"),
                format!("the tool name `{RESPONSE_TOOL}` is reserved by the gateway"),
            ));
        }
        defs.push(ToolDef {
            name: function.name,
            description: function.description.filter(|d| !d.is_empty()),
            input_schema: function
                .parameters
                .map_or(Schema::Fixed(FixedSchema::NoArguments), Schema::Raw),
            cache_control: tool.cache_control.or(function.cache_control),
        });
    }
    let disable_parallel = parallel == Some(false);
    let choice = match choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => Some(match mode.as_ref() {
            "auto" => ToolChoiceKind::Auto,
            "none" => ToolChoiceKind::None,
            "required" => ToolChoiceKind::Any,
            other => {
                return Err(invalid(
                    "tool_choice",
                    format!("unknown tool_choice `{other}` (auto, none, required, or a named function)"),
                ));
            }
        }),
        Some(ToolChoice::Function(name)) => {
            if !defs.iter().any(|d| d.name == name) {
                return Err(invalid(
                    "tool_choice",
                    format!("tool_choice names `{name}`, which is not among `tools`"),
                ));
            }
            return Ok((
                defs,
                Some(tool_choice(ToolChoiceKind::Tool, Some(name), disable_parallel)),
            ));
        }
    };

    let Some(structured) = structured else {
        if defs.is_empty() {
            // Without tools a tool_choice means nothing (and the API would refuse it).
            return Ok((defs, None));
        }
        let kind = choice.unwrap_or(ToolChoiceKind::Auto);
        let needed = choice.is_some() || disable_parallel;
        return Ok((defs, needed.then(|| tool_choice(kind, None, disable_parallel))));
    };

    // Structured output: the answer comes through the response tool. `none` means "no tools,
    // but answer in JSON": the client's tools go.
    if choice == Some(ToolChoiceKind::None) {
        defs.clear();
    }
    defs.push(ToolDef {
        name: Cow::Borrowed(RESPONSE_TOOL),
        description: Some(Cow::Owned(structured.description)),
        input_schema: structured.schema,
        cache_control: None,
    });
    let choice = if thinking {
        // The API refuses forced tool use with extended thinking.
        tool_choice(ToolChoiceKind::Auto, None, disable_parallel)
    } else if defs.len() == 1 {
        tool_choice(
            ToolChoiceKind::Tool,
            Some(Cow::Borrowed(RESPONSE_TOOL)),
            disable_parallel,
        )
    } else {
        // The client's tools stay callable, but the turn must end in a tool call: its own, or
        // the final answer through the response tool.
        tool_choice(ToolChoiceKind::Any, None, disable_parallel)
    };
    Ok((defs, Some(choice)))
}

fn tool_choice(kind: ToolChoiceKind, name: Option<Str<'_>>, disable_parallel: bool) -> ToolChoiceOut<'_> {
    ToolChoiceOut {
        kind,
        name,
        // `none` takes no other field.
        disable_parallel_tool_use: disable_parallel && kind != ToolChoiceKind::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        let (m, d) = data_url(Cow::Borrowed("data:image/png;base64,iVBORw0KGgo=")).expect("png");
        assert!(matches!(
            (&m, &d),
            (Cow::Borrowed("image/png"), Cow::Borrowed("iVBORw0KGgo="))
        ));
        let (m, d) = data_url(Cow::Owned("data:Image/JPEG;charset=x;BASE64,/9j/4A==".into())).expect("jpeg");
        assert_eq!((m.as_ref(), d.as_ref()), ("image/jpeg", "/9j/4A=="));
        assert!(data_url(Cow::Borrowed("data:image/svg+xml,<svg/>")).is_none());
        assert!(data_url(Cow::Borrowed("data:;base64,AAAA")).is_none());
        assert!(data_url(Cow::Borrowed("https://x")).is_none());
    }

    #[test]
    fn tool_ids_are_made_acceptable_the_same_way_twice() {
        assert!(matches!(tool_id(Cow::Borrowed("toolu_01A-b")), Cow::Borrowed(_)));
        assert_eq!(tool_id(Cow::Borrowed("call:0/ä")), "call_0__");
    }

    #[test]
    fn thinking_sizes() {
        assert_eq!(size_thinking(None, 8192, 4096).expect("default"), (12288, 8192));
        assert_eq!(size_thinking(Some(10000), 16384, 4096).expect("half"), (10000, 5000));
        assert_eq!(size_thinking(Some(1500), 1024, 4096).expect("floor"), (1500, 1024));
        assert!(size_thinking(Some(1024), 1024, 4096).is_err());
    }

    #[test]
    fn tool_results_move_before_text_stably() {
        let result = |id: &'static str| Block::ToolResult {
            tool_use_id: Cow::Borrowed(id),
            content: ToolResultContent::Text(Cow::Borrowed("")),
            cache_control: None,
        };
        let mut blocks = vec![
            Block::text("a".into(), None),
            result("1"),
            Block::text("b".into(), None),
            result("2"),
        ];
        tool_results_first(&mut blocks);
        let order: Vec<String> = blocks
            .iter()
            .map(|b| match b {
                Block::Text { text, .. } => text.to_string(),
                Block::ToolResult { tool_use_id, .. } => tool_use_id.to_string(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(order, ["1", "2", "a", "b"]);
    }
}
