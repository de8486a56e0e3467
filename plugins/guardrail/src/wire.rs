//! The members of requests, answers and chunks the guardrail reads, borrowed from the body (every other
//! member is skipped by the parser and kept by the splice).

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
pub(crate) struct Request<'a> {
    #[serde(borrow, default)]
    pub(crate) messages: Vec<Message<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct Message<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct Part<'a> {
    #[serde(borrow, default)]
    pub(crate) text: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct Completion<'a> {
    #[serde(borrow, default)]
    pub(crate) choices: Vec<CompletionChoice<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct CompletionChoice<'a> {
    #[serde(borrow, default)]
    pub(crate) message: Option<Message<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct Chunk<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) choices: Vec<ChunkChoice<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ChunkChoice<'a> {
    #[serde(default)]
    pub(crate) index: Option<u64>,
    #[serde(borrow, default)]
    pub(crate) delta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct Delta<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<&'a RawValue>,
}
