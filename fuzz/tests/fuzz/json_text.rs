//! Structured JSON text: values written out by hand rather than through serde, so they can
//! carry what a value tree cannot (duplicate keys, numbers past every integer type, escapes
//! such as lone surrogates, odd whitespace) while still being JSON a parser gets far into.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// Strings a client or upstream might send: empty, blank, escapes, non-ASCII, control
/// characters, JSON-looking text, a line separator.
const STRINGS: &[&str] = &[
    r#""""#,
    r#"" ""#,
    r#""hi""#,
    r#""gpt-4o""#,
    r#""openai/gpt-4o""#,
    r#""user""#,
    r#""assistant""#,
    r#""system""#,
    r#""tool""#,
    r#""text""#,
    r#""image_url""#,
    r#""function""#,
    r#""auto""#,
    r#""data:image/png;base64,iVBORw0KGgo=""#,
    r#""https://example.com/cat.png""#,
    r#""\u00e9\u4e2d\ud83d\ude00""#,
    r#""\ud800""#,
    r#""\udc00x""#,
    r#""\u0000""#,
    r#""a\nb\r\n\t\"\\\/""#,
    r#""\u2028\u2029""#,
    "\"é中😀\"",
    "\"\u{7f}\"",
    r#""{\"nested\": [1, 2]}""#,
    r#""data: [DONE]\n\n""#,
];

/// Keys seen in chat requests, and a few that are not.
pub const KEYS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "include_usage",
    "temperature",
    "top_p",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "user",
    "metadata",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "reasoning_effort",
    "fallbacks",
    "role",
    "content",
    "type",
    "text",
    "image_url",
    "url",
    "detail",
    "name",
    "arguments",
    "function",
    "parameters",
    "tool_calls",
    "tool_call_id",
    "x_vendor_knob",
    "",
    "mod\\u0065l",
];

fn key() -> impl Strategy<Value = String> {
    select(KEYS).prop_map(|k| format!("\"{k}\""))
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        select(crate::mutate::NUMBERS).prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(STRINGS).prop_map(str::to_string),
        1 => any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
    ]
}

/// Whitespace JSON allows between tokens, usually none.
fn space() -> impl Strategy<Value = &'static str> {
    prop_oneof![6 => Just(""), 1 => Just(" "), 1 => Just("\n  "), 1 => Just("\r\n\t")]
}

/// Any JSON value, nested up to `depth` levels.
pub fn value(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        number(),
        string(),
    ];
    leaf.prop_recursive(depth, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
            object(inner),
        ]
    })
    .boxed()
}

/// An object (keys may repeat) whose values come from `values`.
pub fn object(values: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    vec((key(), space(), values), 0..6).prop_map(|members| {
        let members: Vec<String> = members.into_iter().map(|(k, s, v)| format!("{k}:{s}{v}")).collect();
        format!("{{{}}}", members.join(","))
    })
}

/// A chat message: usually the right shape, with content as text or parts.
fn message() -> impl Strategy<Value = String> {
    let role = prop_oneof![
        4 => select(&["\"user\"", "\"system\"", "\"assistant\"", "\"tool\"", "\"developer\""][..]).prop_map(str::to_string),
        1 => value(1),
    ];
    let part = prop_oneof![
        string().prop_map(|t| format!(r#"{{"type":"text","text":{t}}}"#)),
        string().prop_map(|u| format!(r#"{{"type":"image_url","image_url":{{"url":{u},"detail":"low"}}}}"#)),
        value(2),
    ];
    let content = prop_oneof![
        3 => string(),
        2 => vec(part, 0..4).prop_map(|parts| format!("[{}]", parts.join(","))),
        1 => value(2),
    ];
    let extra = vec((key(), value(2)), 0..3);
    (role, content, extra).prop_map(|(role, content, extra)| {
        let mut members = vec![format!("\"role\":{role}"), format!("\"content\":{content}")];
        members.extend(extra.into_iter().map(|(k, v)| format!("{k}:{v}")));
        format!("{{{}}}", members.join(","))
    })
}

/// A chat completion request: `model` and `messages` mostly well formed, then any known or
/// unknown fields with values of the right type or not, duplicates included.
pub fn chat_request() -> impl Strategy<Value = String> {
    let model = prop_oneof![
        6 => select(&["\"gpt-4o\"", "\"openai/gpt-4o\"", "\"default\"", "\"m\""][..]).prop_map(str::to_string),
        1 => string(),
        1 => value(1),
    ];
    let messages = prop_oneof![
        6 => vec(message(), 1..4).prop_map(|m| format!("[{}]", m.join(","))),
        1 => value(2),
    ];
    let field_value = prop_oneof![
        3 => value(3),
        1 => Just("{\"include_usage\":true}".to_string()),
        1 => Just("[\"a\",\"b/c\"]".to_string()),
    ];
    let fields = vec((key(), space(), field_value), 0..8);
    (model, messages, fields, space()).prop_map(|(model, messages, fields, s)| {
        let mut members = vec![format!("\"model\":{s}{model}"), format!("\"messages\":{messages}")];
        members.extend(fields.into_iter().map(|(k, s, v)| format!("{k}:{s}{v}")));
        format!("{{{s}{}{s}}}", members.join(&format!(",{s}")))
    })
}
