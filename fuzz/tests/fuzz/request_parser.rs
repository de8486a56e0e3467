//! Target `request`: the client's body into `ChatRequest::parse`, and what it parsed into
//! `encode_for`, the bytes every upstream receives.

use crate::harness::{Corpus, Outcome, Target, fail};
use crate::{json_text, mutate};
use proptest::prelude::*;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use switchyard::error::GatewayError;
use switchyard::pipeline::request::ChatRequest;

/// Upstream model names `encode_for` writes: a plain one, and one that needs every escape.
const UPSTREAM_MODELS: &[&str] = &["gpt-4o-2024-08-06", "team \"a\"\\b/\u{2028}é\u{1}"];

const WORDS: &[&[u8]] = &[
    b"\"model\":",
    b"\"messages\":",
    b"\"stream\":true,",
    b"\"stream_options\":",
    b"{\"include_usage\":true}",
    b"\"fallbacks\":[\"b\"],",
    b"\"role\":",
    b"\"content\":",
    b"\"tools\":",
    b"\"n\":2,",
];

#[test]
fn request() {
    let corpus = Corpus::load("request");
    let seeds = Arc::new(corpus.seeds());
    let strategy = prop_oneof![
        3 => mutate::bytes(seeds, mutate::dictionary(WORDS, false)),
        2 => json_text::chat_request().prop_map(String::into_bytes),
    ];
    Target::new(
        "request",
        1.0,
        |_, bytes: &[u8]| vec![bytes.to_vec()],
        strategy,
        |body: &Vec<u8>| check(body),
    )
    .run(&corpus);
}

fn check(body: &[u8]) -> Outcome {
    let request = match ChatRequest::parse_slice(body) {
        Ok(request) => request,
        Err(e) => return check_refusal(&e),
    };
    if request.model.trim().is_empty() {
        return fail("parse.model", "an empty model was accepted");
    }
    for upstream in UPSTREAM_MODELS {
        let encoded = request.encode_for(upstream);
        let members = match members(&encoded) {
            Ok(members) => members,
            Err(e) => {
                return fail(
                    "encode.invalid_json",
                    format!("{e} in {}", crate::harness::escape(&encoded, 2048)),
                );
            }
        };
        let model = members
            .get("model")
            .and_then(|m| serde_json::from_str::<String>(m.get()).ok());
        if model.as_deref() != Some(*upstream) {
            return fail("encode.model", format!("model is {model:?}, not {upstream:?}"));
        }
        if members.contains_key("fallbacks") {
            return fail(
                "encode.fallbacks",
                "the gateway-only `fallbacks` reached the upstream body",
            );
        }
        let include_usage = members
            .get("stream_options")
            .and_then(|o| serde_json::from_str::<Value>(o.get()).ok())
            .and_then(|o| o.get("include_usage").cloned());
        if request.stream && include_usage != Some(Value::Bool(true)) {
            return fail(
                "encode.include_usage",
                format!("a stream's stream_options.include_usage is {include_usage:?}"),
            );
        }
    }
    // What the gateway sends must be a request it would accept itself.
    let encoded = request.encode_for(UPSTREAM_MODELS[0]);
    match ChatRequest::parse_slice(&encoded) {
        Ok(again) if again.model == UPSTREAM_MODELS[0] && again.stream == request.stream => Ok(()),
        Ok(again) => fail(
            "encode.reparse",
            format!("parsed again as model {:?}, stream {}", again.model, again.stream),
        ),
        Err(e) => fail(
            "encode.reparse",
            format!("refused when parsed again: {}", e.client_message()),
        ),
    }
}

/// The top-level members of a JSON object text (the last of duplicates). Valid JSON here
/// means UTF-8 text in RFC 8259's grammar: values are kept raw, so an escaped lone surrogate
/// (grammatical, and forwarded as the client wrote it) is accepted, as upstreams accept it.
fn members(json: &[u8]) -> Result<HashMap<String, &RawValue>, String> {
    let text = std::str::from_utf8(json).map_err(|e| format!("not UTF-8: {e}"))?;
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// A refused body is a 400 with a message and a code, in the OpenAI error shape.
fn check_refusal(e: &GatewayError) -> Outcome {
    if !matches!(e, GatewayError::BadRequest { .. }) || e.status().as_u16() != 400 {
        return fail("error.kind", format!("refused with {} {e:?}", e.status()));
    }
    if e.client_message().trim().is_empty() || e.code().is_none() {
        return fail("error.shape", format!("refused without a message or code: {e:?}"));
    }
    let object = e.to_error_object();
    if object.get("message").and_then(Value::as_str).is_none() {
        return fail("error.shape", format!("error object without a message: {object}"));
    }
    Ok(())
}
