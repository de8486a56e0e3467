//! The official `openai` Python SDK (a client nobody here wrote) against the running daemon.
//!
//! Python: `SWITCHYARD_TEST_PYTHON`, else `<target>/py-venv/bin/python`, created on first use with
//! `python3 -m venv` + `pip install -r tests/python/requirements.txt`.

use serde_json::{Value, json};
use switchyard_e2e::python::{python, run_pytest};
use switchyard_e2e::upstream::MODEL_SUFFIX;
use switchyard_e2e::{Gateway, MockUpstream, UPSTREAM_KEY, standard_config};

const CLIENT_KEY: &str = "sk-python-client-key-must-not-leak";

#[test]
fn openai_python_sdk_against_the_daemon() {
    let python = python();
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let env = [
        ("E2E_GATEWAY_URL", gw.base_url()),
        ("E2E_MODEL", "gpt".to_owned()),
        ("E2E_UPSTREAM_MODEL", format!("gpt-4o{MODEL_SUFFIX}")),
        ("E2E_PROVIDER", "up".to_owned()),
        ("E2E_FAILING_MODEL", "up/fail-500".to_owned()),
        ("E2E_FALLBACK_MODEL", "local/echo".to_owned()),
        ("E2E_FALLBACK_PROVIDER", "local".to_owned()),
        ("E2E_CLIENT_KEY", CLIENT_KEY.to_owned()),
    ];
    let (ok, output) = run_pytest(&python, "tests/python/test_openai_sdk.py", &env);
    assert!(
        ok,
        "the openai Python SDK tests failed:\n{output}\n--- daemon output ---\n{}",
        gw.logs()
    );

    // What reached the upstream.
    let requests = up.requests();
    assert!(!requests.is_empty());
    let bodies: Vec<Value> = requests.iter().map(|r| r.json()).collect();
    let find = |pred: &dyn Fn(&Value) -> bool, what: &str| -> Value {
        bodies
            .iter()
            .find(|b| pred(b))
            .cloned()
            .unwrap_or_else(|| panic!("no upstream request {what}; got {bodies:#?}"))
    };

    let sampling = find(&|b| b["seed"] == 4242, "with seed 4242");
    assert_eq!(sampling["stop"], json!(["<END>"]), "{sampling:#}");
    assert_eq!(sampling["logprobs"], true, "{sampling:#}");
    assert_eq!(sampling["top_logprobs"], 2, "{sampling:#}");
    assert_eq!(sampling["max_completion_tokens"], 64, "{sampling:#}");
    assert_eq!(sampling["n"], 2, "{sampling:#}");
    assert_eq!(sampling["temperature"], 0.5, "{sampling:#}");
    assert_eq!(sampling["model"], "gpt-4o", "{sampling:#}");

    let structured = find(
        &|b| b.pointer("/response_format/json_schema/name") == Some(&json!("e2e_schema")),
        "with the json_schema response_format",
    );
    assert_eq!(
        structured["response_format"],
        json!({"type": "json_schema", "json_schema": {
            "name": "e2e_schema", "strict": true,
            "schema": {"type": "object", "properties": {"upstream_saw": {"type": "string"}},
                       "required": ["upstream_saw"], "additionalProperties": false}}}),
        "response_format reaches the upstream unchanged"
    );

    let tools = find(
        &|b| b.pointer("/tools/0/function/name") == Some(&json!("get_weather")),
        "with tools",
    );
    assert_eq!(tools["tools"][0]["function"]["strict"], true, "{tools:#}");
    assert_eq!(
        tools["tools"][0]["function"]["parameters"]["required"],
        json!(["query"]),
        "{tools:#}"
    );

    let marker = find(&|b| b.get("x_e2e_marker").is_some(), "with the unknown field");
    assert_eq!(marker["x_e2e_marker"], json!({"nested": [1, "two"]}));

    let failing = find(&|b| b["model"] == "fail-500", "for the failing model");
    assert!(failing.get("fallbacks").is_none(), "{failing:#}");

    for (rec, body) in requests.iter().zip(&bodies) {
        assert!(
            body.get("fallbacks").is_none(),
            "`fallbacks` must not reach the upstream: {body}"
        );
        assert_eq!(
            rec.header_all("authorization"),
            vec![format!("Bearer {UPSTREAM_KEY}").as_str()],
            "upstream auth is the configured key only"
        );
        let headers = format!("{:?}", rec.headers);
        assert!(
            !headers.contains(CLIENT_KEY),
            "the client's key reached the upstream: {headers}"
        );
        if body["stream"] == true {
            assert_eq!(
                body["stream_options"]["include_usage"], true,
                "streams always ask for usage: {body}"
            );
        }
    }
}
