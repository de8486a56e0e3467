//! The Anthropic Messages API side: the request body this codec writes (serialised from
//! borrowed parts, in a fixed field order) and borrowed views of what the API answers (a
//! `message`, stream events, the usage object).

use serde::de;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use switchyard_plugin_api::sdk::TokenCount;

type Str<'a> = Cow<'a, str>;

// ------------------------------------------------------------------------------------------
// Request
// ------------------------------------------------------------------------------------------

#[derive(Serialize)]
pub(crate) struct MessagesRequest<'a> {
    pub model: Str<'a>,
    pub max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<System<'a>>,
    pub messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<Str<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// `system`: a plain string when it is one uncached text, blocks otherwise.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum System<'a> {
    Text(Str<'a>),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
pub(crate) struct Turn<'a> {
    pub role: Role,
    pub content: Vec<Block<'a>>,
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    User,
    Assistant,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block<'a> {
    Text {
        text: Str<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Image {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Document {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<Str<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    ToolUse {
        id: Str<'a>,
        name: Str<'a>,
        input: Box<RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    ToolResult {
        tool_use_id: Str<'a>,
        content: ToolResultContent<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Thinking {
        thinking: Str<'a>,
        signature: Str<'a>,
    },
    RedactedThinking {
        data: Str<'a>,
    },
}

impl<'a> Block<'a> {
    pub(crate) fn text(text: Str<'a>, cache_control: Option<&'a RawValue>) -> Block<'a> {
        Block::Text { text, cache_control }
    }

    /// Sets `cache_control` unless the block has its own (thinking blocks cannot carry one).
    pub(crate) fn cache(&mut self, value: &'a RawValue) {
        match self {
            Block::Text { cache_control, .. }
            | Block::Image { cache_control, .. }
            | Block::Document { cache_control, .. }
            | Block::ToolUse { cache_control, .. }
            | Block::ToolResult { cache_control, .. } => {
                cache_control.get_or_insert(value);
            }
            Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
        }
    }

    pub(crate) fn is_tool_result(&self) -> bool {
        matches!(self, Block::ToolResult { .. })
    }

    /// A text block with its own `cache_control` (a system prompt stays a plain string only
    /// without one).
    pub(crate) fn has_cache_control(&self) -> bool {
        matches!(
            self,
            Block::Text {
                cache_control: Some(_),
                ..
            }
        )
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Source<'a> {
    Base64 { media_type: Str<'a>, data: Str<'a> },
    Url { url: Str<'a> },
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ToolResultContent<'a> {
    Text(Str<'a>),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
pub(crate) struct ToolDef<'a> {
    pub name: Str<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Str<'a>>,
    pub input_schema: Schema<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
}

/// A tool's JSON Schema: the client's, forwarded as written, or a fixed one.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Schema<'a> {
    Raw(&'a RawValue),
    Fixed(FixedSchema),
}

/// The schemas the codec writes itself.
#[derive(Clone, Copy)]
pub(crate) enum FixedSchema {
    /// A tool without `parameters`: no arguments.
    NoArguments,
    /// `response_format: json_object`: any JSON object.
    AnyObject,
}

impl Serialize for FixedSchema {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", "object")?;
        match self {
            FixedSchema::NoArguments => map.serialize_entry("properties", &serde_json::Map::new())?,
            FixedSchema::AnyObject => map.serialize_entry("additionalProperties", &true)?,
        }
        map.end()
    }
}

#[derive(Serialize)]
pub(crate) struct ToolChoice<'a> {
    #[serde(rename = "type")]
    pub kind: ToolChoiceKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable_parallel_tool_use: bool,
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ToolChoiceKind {
    Auto,
    Any,
    Tool,
    None,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Thinking<'a> {
    /// The client's own `thinking` object.
    Raw(&'a RawValue),
    Budget(ThinkingBudget),
}

#[derive(Serialize)]
pub(crate) struct ThinkingBudget {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub budget_tokens: u64,
}

#[derive(Serialize)]
pub(crate) struct Metadata<'a> {
    pub user_id: Str<'a>,
}

// ------------------------------------------------------------------------------------------
// Response and stream events
// ------------------------------------------------------------------------------------------

/// A `message` object (a whole response, or the skeleton in `message_start`), or an error body.
#[derive(Deserialize)]
pub(crate) struct MessageView<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub model: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub content: Option<Vec<BlockView<'a>>>,
    #[serde(borrow, default)]
    pub stop_reason: Option<Str<'a>>,
    #[serde(default)]
    pub usage: Option<UsageView>,
    /// Set on `{"type":"error","error":{…}}` bodies.
    #[serde(default)]
    pub error: Option<de::IgnoredAny>,
}

impl<'a> MessageView<'a> {
    pub(crate) fn parse(json: &'a [u8]) -> Result<MessageView<'a>, String> {
        match json.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => switchyard_plugin_api::json::from_bytes(json).map_err(|e| e.to_string()),
            Some(_) => Err("not a JSON object".into()),
            None => Err("empty body".into()),
        }
    }
}

/// One content block (all block types' fields, flat; each type fills its own).
#[derive(Deserialize)]
pub(crate) struct BlockView<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub text: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub thinking: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub signature: Option<Str<'a>>,
    /// `redacted_thinking`'s encrypted payload.
    #[serde(borrow, default)]
    pub data: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
}

/// One stream event's data (every event type's fields, flat).
#[derive(Deserialize)]
pub(crate) struct EventView<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub message: Option<MessageView<'a>>,
    #[serde(default)]
    pub index: Option<usize>,
    #[serde(borrow, default)]
    pub content_block: Option<BlockView<'a>>,
    #[serde(borrow, default)]
    pub delta: Option<DeltaView<'a>>,
    #[serde(default)]
    pub usage: Option<UsageView>,
}

/// A `content_block_delta`'s or a `message_delta`'s `delta`. Text fields stay raw JSON
/// strings: they are copied into the OpenAI chunk as they are, never unescaped.
#[derive(Deserialize)]
pub(crate) struct DeltaView<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub partial_json: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub thinking: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub signature: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub stop_reason: Option<Str<'a>>,
}

/// Anthropic's `usage`. Every count is optional: `message_delta` repeats only some of them.
#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct UsageView {
    #[serde(default)]
    pub input_tokens: Option<TokenCount>,
    #[serde(default)]
    pub output_tokens: Option<TokenCount>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<TokenCount>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<TokenCount>,
    /// The cache writes by lifetime (their sum is `cache_creation_input_tokens`).
    #[serde(default)]
    pub cache_creation: Option<CacheCreationView>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct CacheCreationView {
    #[serde(default)]
    pub ephemeral_1h_input_tokens: Option<TokenCount>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_serialises_in_a_fixed_order_and_skips_empties() {
        let raw = serde_json::from_str::<&RawValue>(r#"{"type":"ephemeral"}"#).expect("raw");
        let mut block = Block::text("hi".into(), None);
        block.cache(raw);
        let request = MessagesRequest {
            model: "claude-x".into(),
            max_tokens: 10,
            system: Some(System::Text("sys".into())),
            messages: vec![Turn {
                role: Role::User,
                content: vec![block],
            }],
            temperature: None,
            top_p: None,
            top_k: None,
            stop_sequences: Vec::new(),
            tools: vec![ToolDef {
                name: "f".into(),
                description: None,
                input_schema: Schema::Fixed(FixedSchema::NoArguments),
                cache_control: None,
            }],
            tool_choice: Some(ToolChoice {
                kind: ToolChoiceKind::Any,
                name: None,
                disable_parallel_tool_use: true,
            }),
            thinking: None,
            metadata: None,
            stream: false,
        };
        let json = serde_json::to_string(&request).expect("json");
        assert_eq!(
            json,
            r#"{"model":"claude-x","max_tokens":10,"system":"sys","messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true}}"#
        );
    }

    #[test]
    fn views_tolerate_nulls_and_lax_counts() {
        let m = MessageView::parse(
            br#"{"id":"msg_1","type":"message","content":[{"type":"text","text":"x","citations":null}],
               "stop_reason":null,"usage":{"input_tokens":3.0,"output_tokens":2,"cache_read_input_tokens":null}}"#,
        )
        .expect("parsed");
        let usage = m.usage.expect("usage");
        assert_eq!(
            (usage.input_tokens, usage.output_tokens),
            (Some(TokenCount(3)), Some(TokenCount(2)))
        );
        assert_eq!(usage.cache_read_input_tokens, None);
        assert!(m.stop_reason.is_none());
        assert!(MessageView::parse(b"[1]").is_err());
        assert!(MessageView::parse(b"").is_err());
    }
}
