//! `hook_fixture`: a hook plugin for the end-to-end tests that takes every hook action on demand.
//!
//! It runs on all phases. The client picks what it does per request with the
//! `x-fixture-action` header; without that header every phase is a no-op that keeps no state
//! and writes nothing (the bench measures "one no-op hook on all phases" with it, so that path
//! must not allocate).
//!
//! | `x-fixture-action` | phase | what happens |
//! |---|---|---|
//! | `short-circuit` | pre_request | a plain answer "short-circuited by fixture" (model `fixture`, usage 1/3/4); a streaming client gets chunks: role, "short-circuited", " by", " fixture", finish `stop` |
//! | `reject` | pre_request | 429 `rate_limit_error` / `fixture_reject`, header `retry-after: 7` |
//! | `replace-request` | pre_request | the last message's content becomes "replaced by fixture" |
//! | `replace-stream` | pre_request | a replacement with `stream` flipped (the gateway must refuse it) |
//! | `replace-invalid` | pre_request | a replacement that is not a chat request (the gateway must refuse it) |
//! | `error-pre` | pre_request | the hook fails (a `HookError`) |
//! | `panic-pre` | pre_request | panics |
//! | `post-replace` | post_response | the answer's content becomes "replaced answer by fixture" |
//! | `post-reject` | post_response | 403 `permission_error` / `fixture_post_reject` |
//! | `panic-post` | post_response | panics |
//! | `replace-chunk` | on_chunks | the first chunk with text is replaced by one whose text is "[fixture]" |
//! | `drop-chunk` | on_chunks | the second chunk with text is dropped |
//! | `end-stream` | on_chunks | after the second chunk with text (kept) the stream ends with 500 `server_error` / `fixture_end` |
//! | `hold` | on_chunks, end_of_stream | every text is held back (its chunk dropped; chunks without text kept) and released as one chunk at the end of the stream |
//! | `panic-chunk` | on_chunks | panics |
//!
//! An unknown action is a hook failure, so a typo in a test fails loudly.
//!
//! Config (all optional; tests read these files while the gateway runs, each line flushed at once):
//! - `done_file` (path): `on_done` appends each request's summary JSON as one line.
//! - `pre_file` (path): `pre_request` appends the request id as one line for each request that
//!   names an action (so a test can count how often `pre_request` ran).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::Mutex;

use serde_json::Value;
use switchyard_plugin_api::sdk::hook::phase;
use switchyard_plugin_api::sdk::unified::{
    Choice, ChunkHead, ChunkWriter, Completion, Message, UsageJson, UsageParts, created,
};
use switchyard_plugin_api::sdk::{
    ChunkBatch, ChunkInfo, ChunkOut, Hook, HookContext, HookError, HookSetup, PostAction, PreAction, Rejection, Reply,
    ReplyChunk, Usage,
};

/// The client header that picks the action.
const ACTION_HEADER: &str = "x-fixture-action";

/// The text of a short-circuit answer, and the pieces its stream is cut into.
const SHORT_CIRCUIT_TEXT: &str = "short-circuited by fixture";
const SHORT_CIRCUIT_PIECES: [&str; 3] = ["short-circuited", " by", " fixture"];
const SHORT_CIRCUIT_USAGE: Usage = Usage {
    prompt_tokens: 1,
    completion_tokens: 3,
    total_tokens: 4,
    cached_tokens: 0,
    cache_write_tokens: 0,
    cache_write_1h_tokens: 0,
    reasoning_tokens: 0,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    ShortCircuit,
    Reject,
    ReplaceRequest,
    ReplaceStream,
    ReplaceInvalid,
    ErrorPre,
    PanicPre,
    PostReplace,
    PostReject,
    PanicPost,
    ReplaceChunk,
    DropChunk,
    EndStream,
    Hold,
    PanicChunk,
}

impl Action {
    fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "short-circuit" => Action::ShortCircuit,
            "reject" => Action::Reject,
            "replace-request" => Action::ReplaceRequest,
            "replace-stream" => Action::ReplaceStream,
            "replace-invalid" => Action::ReplaceInvalid,
            "error-pre" => Action::ErrorPre,
            "panic-pre" => Action::PanicPre,
            "post-replace" => Action::PostReplace,
            "post-reject" => Action::PostReject,
            "panic-post" => Action::PanicPost,
            "replace-chunk" => Action::ReplaceChunk,
            "drop-chunk" => Action::DropChunk,
            "end-stream" => Action::EndStream,
            "hold" => Action::Hold,
            "panic-chunk" => Action::PanicChunk,
            _ => return None,
        })
    }
}

/// One request's state: its action, and what the chunk actions count and hold across batches.
struct State {
    action: Action,
    /// Chunks with text seen so far.
    text_chunks: u32,
    /// `end-stream` has ended the stream: anything offered after is dropped.
    ended: bool,
    /// `hold`: the text held back, and the head of the stream's chunks to release it with.
    held: String,
    head: Option<(String, u64, String)>,
}

struct Fixture {
    done_file: Option<LineFile>,
    pre_file: Option<LineFile>,
}

/// A file the tests read while the gateway runs: whole lines, each flushed at once.
struct LineFile(Mutex<File>);

impl LineFile {
    /// The file named by config `key` (a path string), opened for appending; `None` when unset.
    fn open(config: &Value, key: &str) -> Result<Option<LineFile>, String> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(path)) => OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(|f| Some(LineFile(Mutex::new(f))))
                .map_err(|e| format!("hook_fixture: cannot open {key} {path}: {e}")),
            Some(other) => Err(format!("hook_fixture: {key} must be a path string, got {other}")),
        }
    }

    fn append(&self, text: &[u8]) -> Result<(), HookError> {
        let mut line = Vec::with_capacity(text.len() + 1);
        line.extend_from_slice(text);
        line.push(b'\n');
        let mut file = self
            .0
            .lock()
            .map_err(|_| HookError::from("hook_fixture: line file lock poisoned"))?;
        // One write per line, so concurrent requests never interleave within a line.
        file.write_all(&line)
            .and_then(|()| file.flush())
            .map_err(|e| HookError(format!("hook_fixture: writing a line file: {e}")))
    }
}

impl Hook for Fixture {
    type State = State;
    const PHASES: u32 = phase::ALL;

    fn create(setup: HookSetup) -> Result<Self, String> {
        Ok(Fixture {
            done_file: LineFile::open(&setup.config, "done_file")?,
            pre_file: LineFile::open(&setup.config, "pre_file")?,
        })
    }

    fn wanted_headers(&self) -> Vec<String> {
        vec![ACTION_HEADER.to_owned()]
    }

    fn pre_request(
        &self,
        ctx: &HookContext<'_>,
        request: &[u8],
        state: &mut Option<State>,
    ) -> Result<PreAction, HookError> {
        let Some(name) = ctx.header(ACTION_HEADER) else {
            return Ok(PreAction::Continue);
        };
        let action = Action::parse(name).ok_or_else(|| format!("hook_fixture: unknown action `{name}`"))?;
        if let Some(file) = &self.pre_file {
            file.append(ctx.base.request_id.as_bytes())?;
        }
        *state = Some(State {
            action,
            text_chunks: 0,
            ended: false,
            held: String::new(),
            head: None,
        });
        Ok(match action {
            Action::ShortCircuit if ctx.base.stream => PreAction::ShortCircuitChunks(short_circuit_chunks(ctx)),
            Action::ShortCircuit => PreAction::ShortCircuit(short_circuit_reply(ctx)?),
            Action::Reject => PreAction::Reject(
                Rejection::new(429, "rate_limit_error", Some("fixture_reject"), "rejected by fixture")
                    .with_header("retry-after", "7"),
            ),
            Action::ReplaceRequest => PreAction::Replace(replace_last_message(request)?),
            Action::ReplaceStream => PreAction::Replace(flip_stream(request, ctx.base.stream)?),
            Action::ReplaceInvalid => PreAction::Replace(br#"{"model":"x"}"#.to_vec()),
            Action::ErrorPre => return Err(HookError::from("hook_fixture: error-pre asked for")),
            Action::PanicPre => panic!("hook_fixture: panic-pre asked for"),
            _ => PreAction::Continue,
        })
    }

    fn post_response(
        &self,
        _ctx: &HookContext<'_>,
        state: Option<&mut State>,
        response: &[u8],
    ) -> Result<PostAction, HookError> {
        let Some(state) = state else {
            return Ok(PostAction::Keep);
        };
        Ok(match state.action {
            Action::PostReplace => PostAction::Replace(replace_answer(response)?),
            Action::PostReject => PostAction::Reject(Rejection::new(
                403,
                "permission_error",
                Some("fixture_post_reject"),
                "answer rejected by fixture",
            )),
            Action::PanicPost => panic!("hook_fixture: panic-post asked for"),
            _ => PostAction::Keep,
        })
    }

    fn on_chunks(
        &self,
        _ctx: &HookContext<'_>,
        state: Option<&mut State>,
        chunks: ChunkBatch<'_>,
        out: &mut ChunkOut<'_, '_>,
    ) -> Result<(), HookError> {
        let Some(state) = state else {
            return Ok(());
        };
        match state.action {
            Action::ReplaceChunk | Action::DropChunk | Action::EndStream | Action::Hold => {}
            Action::PanicChunk => panic!("hook_fixture: panic-chunk asked for"),
            _ => return Ok(()),
        }
        for (i, json) in chunks.iter().enumerate() {
            if state.ended {
                out.drop_chunk(i);
                continue;
            }
            let mut chunk: Value =
                serde_json::from_slice(json).map_err(|e| format!("hook_fixture: a chunk is not JSON: {e}"))?;
            let Some(text) = chunk_text(&chunk).map(str::to_owned) else {
                out.keep(i);
                continue;
            };
            state.text_chunks += 1;
            match state.action {
                Action::ReplaceChunk if state.text_chunks == 1 => {
                    set_chunk_text(&mut chunk, "[fixture]");
                    let json = serde_json::to_vec(&chunk).map_err(|e| format!("hook_fixture: {e}"))?;
                    out.emit(&json, chunk_model(&chunk), &chunk_info(&chunk));
                }
                Action::DropChunk if state.text_chunks == 2 => out.drop_chunk(i),
                Action::EndStream if state.text_chunks == 2 => {
                    out.keep(i);
                    out.end_with(&Rejection::new(
                        500,
                        "server_error",
                        Some("fixture_end"),
                        "stream ended by fixture",
                    ));
                    // The stream ends here: the rest of this batch never goes out.
                    state.ended = true;
                    return Ok(());
                }
                Action::Hold => {
                    if state.head.is_none() {
                        let id = chunk["id"].as_str().unwrap_or_default().to_owned();
                        let created = chunk["created"].as_u64().unwrap_or_default();
                        state.head = Some((id, created, chunk_model(&chunk).to_owned()));
                    }
                    state.held.push_str(&text);
                    out.drop_chunk(i);
                }
                _ => out.keep(i),
            }
        }
        Ok(())
    }

    fn end_of_stream(
        &self,
        _ctx: &HookContext<'_>,
        state: Option<&mut State>,
        out: &mut ChunkOut<'_, '_>,
    ) -> Result<(), HookError> {
        let Some(state) = state else {
            return Ok(());
        };
        if state.action != Action::Hold || state.held.is_empty() {
            return Ok(());
        }
        let (id, created, model) = state.head.take().unwrap_or_default();
        let mut writer = ChunkWriter::new();
        writer.start(&ChunkHead {
            id: &id,
            created,
            model: &model,
            ..ChunkHead::default()
        });
        writer.choice(0, None, None, |delta| delta.content(state.held.as_str()));
        let chunk = writer.end();
        out.emit(chunk.json, chunk.model, &chunk.info);
        state.held.clear();
        Ok(())
    }

    fn on_done(&self, _ctx: &HookContext<'_>, _state: Option<&mut State>, summary: &[u8]) -> Result<(), HookError> {
        match &self.done_file {
            Some(file) => file.append(summary),
            None => Ok(()),
        }
    }
}

fn short_circuit_reply(ctx: &HookContext<'_>) -> Result<Reply, HookError> {
    let id = format!("chatcmpl-fixture-{}", ctx.base.request_id);
    let completion = Completion {
        id: &id,
        created: created(&ctx.base),
        model: "fixture",
        system_fingerprint: None,
        choices: [Choice::new(0, Message::text(SHORT_CIRCUIT_TEXT), "stop")],
        usage: Some(UsageJson::new(SHORT_CIRCUIT_USAGE, UsageParts::TOTALS)),
    };
    let json = completion.to_json().map_err(|e| HookError(e.message))?;
    Ok(Reply {
        json,
        model: "fixture".to_owned(),
        usage: Some(SHORT_CIRCUIT_USAGE),
    })
}

fn short_circuit_chunks(ctx: &HookContext<'_>) -> Vec<ReplyChunk> {
    let id = format!("chatcmpl-fixture-{}", ctx.base.request_id);
    let mut writer = ChunkWriter::new();
    writer.start(&ChunkHead {
        id: &id,
        created: created(&ctx.base),
        model: "fixture",
        ..ChunkHead::default()
    });
    let mut chunks = Vec::with_capacity(SHORT_CIRCUIT_PIECES.len() + 2);
    let mut push = |writer: &mut ChunkWriter| {
        let chunk = writer.end();
        chunks.push(ReplyChunk {
            json: chunk.json.to_vec(),
            model: chunk.model.to_owned(),
            info: chunk.info,
        });
    };
    writer.choice(0, None, None, |delta| {
        delta.role();
        delta.content("");
    });
    push(&mut writer);
    for piece in SHORT_CIRCUIT_PIECES {
        writer.choice(0, None, None, |delta| delta.content(piece));
        push(&mut writer);
    }
    writer.choice(0, Some("stop"), None, |_| {});
    push(&mut writer);
    chunks
}

/// The request with its last message's content replaced.
fn replace_last_message(request: &[u8]) -> Result<Vec<u8>, HookError> {
    let mut request: Value =
        serde_json::from_slice(request).map_err(|e| format!("hook_fixture: the request is not JSON: {e}"))?;
    let last = request
        .get_mut("messages")
        .and_then(Value::as_array_mut)
        .and_then(|m| m.last_mut())
        .ok_or("hook_fixture: the request has no messages")?;
    last["content"] = Value::from("replaced by fixture");
    serde_json::to_vec(&request).map_err(|e| HookError(format!("hook_fixture: {e}")))
}

/// The request with `stream` set to the opposite of what the client asked.
fn flip_stream(request: &[u8], stream: bool) -> Result<Vec<u8>, HookError> {
    let mut request: Value =
        serde_json::from_slice(request).map_err(|e| format!("hook_fixture: the request is not JSON: {e}"))?;
    request["stream"] = Value::from(!stream);
    serde_json::to_vec(&request).map_err(|e| HookError(format!("hook_fixture: {e}")))
}

/// The answer with choice 0's content replaced (usage and model kept).
fn replace_answer(response: &[u8]) -> Result<Reply, HookError> {
    let mut response: Value =
        serde_json::from_slice(response).map_err(|e| format!("hook_fixture: the answer is not JSON: {e}"))?;
    let message = response
        .pointer_mut("/choices/0/message")
        .ok_or("hook_fixture: the answer has no choices[0].message")?;
    message["content"] = Value::from("replaced answer by fixture");
    let usage = response.get("usage").and_then(usage_of);
    Ok(Reply {
        json: serde_json::to_vec(&response).map_err(|e| format!("hook_fixture: {e}"))?,
        model: response["model"].as_str().unwrap_or_default().to_owned(),
        usage,
    })
}

fn usage_of(usage: &Value) -> Option<Usage> {
    let n = |k: &str| usage.get(k).and_then(Value::as_u64);
    Some(Usage {
        prompt_tokens: n("prompt_tokens")?,
        completion_tokens: n("completion_tokens")?,
        total_tokens: n("total_tokens")?,
        ..Usage::default()
    })
}

/// Choice 0's non-empty `delta.content`.
fn chunk_text(chunk: &Value) -> Option<&str> {
    chunk
        .pointer("/choices/0/delta/content")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn set_chunk_text(chunk: &mut Value, text: &str) {
    if let Some(delta) = chunk.pointer_mut("/choices/0/delta") {
        delta["content"] = Value::from(text);
    }
}

fn chunk_model(chunk: &Value) -> &str {
    chunk["model"].as_str().unwrap_or_default()
}

fn chunk_info(chunk: &Value) -> ChunkInfo {
    let choices = chunk["choices"].as_array();
    ChunkInfo {
        finish_reason: choices.is_some_and(|c| c.iter().any(|c| !c["finish_reason"].is_null())),
        empty_choices: choices.is_some_and(Vec::is_empty),
        usage: chunk.get("usage").and_then(usage_of),
    }
}

switchyard_plugin_api::export_hook!(Fixture, name = "hook_fixture", version = env!("CARGO_PKG_VERSION"));
