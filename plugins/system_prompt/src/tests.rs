//! The hook driven through the real C ABI, as the gateway loads and calls it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use switchyard_plugin_api::abi::{PluginDecl, hook_phase};
use switchyard_plugin_api::host::{self, HookCall, HookInstance, LoadError, PanicPolicy, PreAction};

// The export macro's entry symbol, reached by its C name as the host's loader does.
unsafe extern "C" {
    fn switchyard_plugin_entry_v1() -> *const PluginDecl;
}

fn try_hook(config: &str) -> Result<Arc<HookInstance>, LoadError> {
    // SAFETY: the static declaration exported by this crate.
    let lib = unsafe { host::from_declaration(switchyard_plugin_entry_v1(), Path::new("in-process")) }.unwrap();
    lib.hook("sp", config.as_bytes(), PanicPolicy::default()).map(Arc::new)
}

fn hook(config: Value) -> Arc<HookInstance> {
    try_hook(&config.to_string()).unwrap()
}

fn create_error(config: &str) -> String {
    try_hook(config).err().unwrap().to_string()
}

/// The request as the hook leaves it for a client that asked for `alias` (`None`: unchanged).
fn pre(h: &Arc<HookInstance>, alias: &str, request: &str) -> Option<String> {
    let call = HookCall {
        request_id: "r1",
        operation: "chat",
        alias,
        ..HookCall::default()
    };
    match h.start().pre_request(&call, request.as_bytes()).unwrap() {
        PreAction::Continue => None,
        PreAction::Replace(r) => Some(String::from_utf8(r).unwrap()),
        other => panic!("{other:?}"),
    }
}

const REQUEST: &str =
    r#"{"model":"fast","temperature":0.70,"messages":[{"role":"user","content":"hi"}],"stream":false}"#;

fn config() -> Value {
    json!({
        "default": {"text": "Be kind."},
        "aliases": {"fast": {"text": "Be \"brief\".", "position": "append"}}
    })
}

#[test]
fn only_pre_request_is_declared() {
    assert_eq!(hook(config()).phases(), hook_phase::PRE_REQUEST);
}

#[test]
fn an_alias_entry_appends_and_keeps_every_other_byte() {
    let out = pre(&hook(config()), "fast", REQUEST).unwrap();
    assert_eq!(
        out,
        r#"{"model":"fast","temperature":0.70,"messages":[{"role":"user","content":"hi"},{"role":"system","content":"Be \"brief\"."}],"stream":false}"#
    );
}

#[test]
fn other_models_get_the_default_prepended() {
    let out = pre(&hook(config()), "openai/gpt-4o", REQUEST).unwrap();
    assert_eq!(
        out,
        r#"{"model":"fast","temperature":0.70,"messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"hi"}],"stream":false}"#
    );
}

#[test]
fn an_empty_messages_array_gets_just_the_prompt() {
    let h = hook(config());
    let req = r#"{"model":"x","messages":[ ]}"#;
    assert_eq!(
        pre(&h, "x", req).unwrap(),
        r#"{"model":"x","messages":[{"role":"system","content":"Be kind."} ]}"#
    );
    let out = pre(&h, "fast", req).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["messages"], json!([{"role": "system", "content": "Be \"brief\"."}]));
}

#[test]
fn without_an_entry_the_request_goes_on_unchanged() {
    let h = hook(json!({"aliases": {"fast": {"text": "x"}}}));
    assert_eq!(pre(&h, "slow", REQUEST), None);
    assert_eq!(pre(&hook(Value::Null), "fast", REQUEST), None);
    // No messages array: nothing to add to.
    assert_eq!(pre(&hook(config()), "fast", r#"{"model":"fast"}"#), None);
}

#[test]
fn config_errors_name_the_key() {
    let e = create_error(r#"{"defaults":{"text":"x"}}"#);
    assert!(e.contains("defaults"), "{e}");
    let e = create_error(r#"{"aliases":{"fast":{"text":"x","where":"top"}}}"#);
    assert!(e.contains("aliases.fast") && e.contains("where"), "{e}");
    let e = create_error(r#"{"default":{"text":"x","position":"middle"}}"#);
    assert!(e.contains("default") && e.contains("middle"), "{e}");
    let e = create_error(r#"{"default":{"position":"append"}}"#);
    assert!(e.contains("default") && e.contains("text"), "{e}");
}

#[test]
fn an_unreadable_request_fails_the_hook() {
    let h = hook(config());
    let call = HookCall {
        alias: "fast",
        ..HookCall::default()
    };
    assert!(h.start().pre_request(&call, b"{not json").is_err());
}
