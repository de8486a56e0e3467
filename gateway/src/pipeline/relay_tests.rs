//! The relay on its own: a local source of items in, the SSE bytes a client would read out.

use super::*;
use crate::actors::usage_ledger::UsageLedgerHandle;
use crate::redact::Redactor;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use switchyard_plugin_api::abi::{chunk_flag, error_kind};
use switchyard_plugin_api::host::{PluginError, Usage};

fn ctx(include_usage: bool, ledger: UsageLedgerHandle) -> StreamContext {
    StreamContext {
        provider: Arc::from("p"),
        model_requested: Arc::from("alias"),
        model_deployment: Arc::from("m"),
        include_usage,
        stream: true,
        started: Instant::now(),
        request_id: Arc::from("rid"),
        api_key: Arc::from(""),
        redactor: Arc::new(Redactor::default()),
        ledger: Some(ledger),
        prompt_bytes: 400,
        price: None,
    }
}

fn chunk(content: &str, finish: Option<&str>, index: u64) -> Item {
    let v = json!({"id": "c", "object": "chat.completion.chunk", "model": "m-answered",
        "choices": [{"index": index, "delta": {"content": content}, "finish_reason": finish}]});
    Item::Chunk(Payload {
        json: serde_json::to_vec(&v).expect("json"),
        model: Arc::from("m-answered"),
        usage: None,
        flags: if finish.is_some() { chunk_flag::FINISH_REASON } else { 0 },
    })
}

fn usage_chunk() -> Item {
    let v = json!({"id": "c", "object": "chat.completion.chunk", "model": "m-answered", "choices": [],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}});
    Item::Chunk(Payload {
        json: serde_json::to_vec(&v).expect("json"),
        model: Arc::from("m-answered"),
        usage: Some(Usage {
            prompt_tokens: 7,
            completion_tokens: 3,
            total_tokens: 10,
            ..Usage::default()
        }),
        flags: chunk_flag::EMPTY_CHOICES | chunk_flag::HAS_USAGE,
    })
}

/// Runs the relay over `items` and returns the client's events: JSON values, and `None` for
/// `[DONE]`. Every event must be exactly one `data: <one line>` followed by a blank line.
async fn relay(items: Vec<Item>, include_usage: bool) -> Vec<Option<Value>> {
    relay_priced(items, include_usage, None).await
}

/// [`relay`] for a model with a price.
async fn relay_priced(
    items: Vec<Item>,
    include_usage: bool,
    price: Option<Arc<crate::cost::ModelPrice>>,
) -> Vec<Option<Value>> {
    let arbiter = actix::Arbiter::new();
    let table = crate::routing::RouteTable {
        providers: Default::default(),
        aliases: Default::default(),
        redactor: Arc::new(Redactor::default()),
        hooks: Default::default(),
        prices: Default::default(),
        cache: None,
    };
    let router = crate::actors::router::RouterHandle::start(&arbiter.handle(), table);
    let ledger = UsageLedgerHandle::start(&arbiter.handle(), router);
    let ctx = StreamContext {
        price,
        ..ctx(include_usage, ledger)
    };
    let body = Box::new(Relay::local(items, ctx)).into_body();
    let frames: Vec<Bytes> = body.map(|f| f.expect("frame")).collect().await;
    arbiter.stop();
    let text = String::from_utf8(frames.concat()).expect("utf-8");
    assert!(text.ends_with("\n\n"), "{text:?}");
    text.split_terminator("\n\n")
        .map(|event| {
            assert!(
                !event.contains('\n') && !event.contains('\r'),
                "one line per event: {event:?}"
            );
            let data = event.strip_prefix("data: ").expect("a data line");
            (data != "[DONE]").then(|| serde_json::from_str(data).expect("valid JSON"))
        })
        .collect()
}

fn indexes(events: &[Option<Value>]) -> Vec<u64> {
    events
        .iter()
        .flatten()
        .filter_map(|e| e["extra_fields"]["chunk_index"].as_u64())
        .collect()
}

#[actix_rt::test]
async fn chunks_are_numbered_and_the_stream_ends_with_done() {
    let events = relay(vec![chunk("a", None, 0), chunk("b", None, 0), Item::Done], false).await;
    assert_eq!(events.len(), 3);
    assert!(events[2].is_none(), "[DONE] last");
    assert_eq!(indexes(&events), [0, 1]);
    let first = events[0].as_ref().expect("chunk");
    assert_eq!(first["extra_fields"]["provider"], "p");
    assert_eq!(first["extra_fields"]["model_requested"], "alias");
    assert_eq!(first["extra_fields"]["request_type"], "chat_completion_stream");
}

#[actix_rt::test]
async fn usage_moves_onto_the_held_finish_chunk_when_the_client_did_not_ask_for_it() {
    let items = vec![
        chunk("a", None, 0),
        chunk("", Some("stop"), 0),
        usage_chunk(),
        Item::Done,
    ];
    let events = relay(items, false).await;
    let chunks: Vec<&Value> = events.iter().flatten().collect();
    assert_eq!(chunks.len(), 2, "the usage-only chunk is not sent: {events:?}");
    let last = chunks[1];
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["usage"]["total_tokens"], 10, "{last}");
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().is_some_and(Vec::is_empty))
    );
    assert_eq!(indexes(&events), [0, 1]);
    assert!(events.last().is_some_and(Option::is_none));
}

#[actix_rt::test]
async fn the_cost_rides_with_the_usage_on_the_last_chunk_in_both_forms() {
    let price = crate::cost::PriceTable::bundled().get("openai/gpt-4o");
    assert!(price.is_some());
    // 7 prompt tokens at $2.50/M and 3 completion tokens at $10/M.
    let expected =
        json!({"input_tokens_cost": 1.75e-5, "output_tokens_cost": 3e-5, "request_cost": 0.0, "total_cost": 4.75e-5});
    for include_usage in [false, true] {
        let items = vec![
            chunk("a", None, 0),
            chunk("", Some("stop"), 0),
            usage_chunk(),
            Item::Done,
        ];
        let events = relay_priced(items, include_usage, price.clone()).await;
        let chunks: Vec<&Value> = events.iter().flatten().collect();
        let (last, earlier) = chunks.split_last().expect("chunks");
        assert_eq!(last["usage"]["cost"], expected, "include_usage {include_usage}: {last}");
        assert_eq!(last["usage"]["total_tokens"], 10);
        assert!(earlier.iter().all(|c| c["usage"].get("cost").is_none()), "{earlier:?}");
    }
    // Without a price: the usage, and no cost.
    let items = vec![chunk("a", Some("stop"), 0), usage_chunk(), Item::Done];
    let events = relay(items, false).await;
    let last = events.iter().flatten().last().expect("a chunk");
    assert_eq!(last["usage"]["total_tokens"], 10);
    assert!(last["usage"].get("cost").is_none(), "{last}");
}

#[actix_rt::test]
async fn include_usage_keeps_openais_separate_usage_chunk() {
    let items = vec![
        chunk("a", None, 0),
        chunk("", Some("stop"), 0),
        usage_chunk(),
        Item::Done,
    ];
    let events = relay(items, true).await;
    let chunks: Vec<&Value> = events.iter().flatten().collect();
    assert_eq!(chunks.len(), 3, "{events:?}");
    assert!(chunks[1]["usage"].is_null(), "{}", chunks[1]);
    assert_eq!(chunks[2]["choices"], json!([]));
    assert_eq!(chunks[2]["usage"]["total_tokens"], 10);
    assert_eq!(indexes(&events), [0, 1, 2]);
}

#[actix_rt::test]
async fn with_several_choices_only_the_last_finish_chunk_carries_usage() {
    let items = vec![
        chunk("a", None, 0),
        chunk("b", None, 1),
        chunk("", Some("stop"), 0),
        chunk("", Some("length"), 1),
        usage_chunk(),
        Item::Done,
    ];
    let events = relay(items, false).await;
    let chunks: Vec<&Value> = events.iter().flatten().collect();
    assert_eq!(chunks.len(), 4, "{events:?}");
    assert!(
        chunks[2]["usage"].is_null(),
        "the first finish chunk was not the last: {}",
        chunks[2]
    );
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[3]["usage"]["completion_tokens"], 3);
    assert_eq!(indexes(&events), [0, 1, 2, 3]);
}

#[actix_rt::test]
async fn an_error_after_a_held_chunk_sends_the_chunk_then_an_error_event_and_no_done() {
    let err = PluginError {
        status: 500,
        kind: error_kind::SERVER,
        message: "upstream broke".into(),
        ..PluginError::default()
    };
    let items = vec![chunk("a", None, 0), chunk("", Some("stop"), 0), Item::Error(err)];
    let events = relay(items, false).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events[1].as_ref().map(|c| c["choices"][0]["finish_reason"].clone()),
        Some(json!("stop"))
    );
    let error = events[2].as_ref().expect("an error event, not [DONE]");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("upstream broke")),
        "{error}"
    );
    assert_eq!(error["error"]["type"], "server_error");
    assert!(events.iter().all(Option::is_some), "no [DONE] after a failure");
}

#[actix_rt::test]
async fn a_source_that_ends_without_done_is_finalised() {
    let events = relay(vec![chunk("a", None, 0), chunk("", Some("stop"), 0)], false).await;
    assert_eq!(indexes(&events), [0, 1]);
    assert!(
        events.last().is_some_and(Option::is_none),
        "[DONE] is added: {events:?}"
    );
}

#[actix_rt::test]
async fn a_chunk_spread_over_several_lines_is_sent_on_one() {
    let pretty = serde_json::to_vec_pretty(&json!({"id": "c", "choices": [{"index": 0,
        "delta": {"content": "multi\nline text"}, "finish_reason": null}]}))
    .expect("json");
    assert!(pretty.contains(&b'\n'));
    let item = Item::Chunk(Payload {
        json: pretty,
        model: Arc::from("m"),
        usage: None,
        flags: 0,
    });
    let events = relay(vec![item, Item::Done], false).await;
    let first = events[0].as_ref().expect("chunk");
    assert_eq!(
        first["choices"][0]["delta"]["content"], "multi\nline text",
        "escaped newlines survive"
    );
}
