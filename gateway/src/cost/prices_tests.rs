use super::*;

#[test]
fn the_bundled_table_parses_and_holds_the_shipped_providers_models() {
    let entries = PriceTable::check_bundled().expect("every bundled entry parses and checks");
    assert!(entries > 1000, "{entries} models");
    let table = PriceTable::bundled();
    assert_eq!(table.len(), entries);
    for key in [
        "openai/gpt-4o",
        "openai/gpt-4o-mini-2024-07-18",
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-pro",
        "openai/text-embedding-3-small",
    ] {
        assert!(table.get(key).is_some(), "{key}");
    }
}

#[test]
fn a_target_resolves_by_provider_name_then_plugin_with_and_without_a_date() {
    let table = PriceTable::bundled();
    let gpt4o = table.get("openai/gpt-4o");
    // The configured provider name is not a table provider: the plugin's name is.
    assert_eq!(table.resolve("my-openai", "openai", "gpt-4o"), gpt4o);
    // A dated id the table does not list falls back to the undated one.
    assert_eq!(table.resolve("my-openai", "openai", "gpt-4o-2099-01-01"), gpt4o);
    assert!(table.resolve("x", "anthropic", "claude-sonnet-4-5-20991231").is_some());
    // The provider name wins when the table knows it (a `groq` provider on the openai plugin).
    let groq = table.resolve("groq", "openai", "openai/gpt-oss-120b");
    assert!(groq.is_some());
    assert_eq!(groq, table.get("groq/openai/gpt-oss-120b"));
    // The mock provider and unknown models have no price.
    assert_eq!(table.resolve("local", "mock", "echo"), None);
    assert_eq!(table.resolve("up", "openai", "no-such-model"), None);
}

#[test]
fn dates_are_recognised_only_at_the_end() {
    assert_eq!(without_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(without_date("claude-sonnet-4-5-20250929"), Some("claude-sonnet-4-5"));
    assert_eq!(without_date("claude-3-5-sonnet@20240620"), Some("claude-3-5-sonnet"));
    assert_eq!(without_date("gpt-4o"), None);
    assert_eq!(without_date("o1-2024"), None);
    assert_eq!(without_date("model-12-34"), None);
}

fn overrides(yaml: &[(&str, serde_json::Value)]) -> IndexMap<String, serde_json::Map<String, serde_json::Value>> {
    yaml.iter()
        .map(|(k, v)| (k.to_string(), v.as_object().cloned().expect("an object")))
        .collect()
}

#[test]
fn overrides_replace_fields_of_an_entry_or_add_one() {
    let base = PriceTable::bundled();
    let merged = PriceTable::with_overrides(
        &base,
        &overrides(&[
            ("openai/gpt-4o", serde_json::json!({"input_cost_per_token": 1e-6})),
            (
                "local/echo",
                serde_json::json!({"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7}),
            ),
        ]),
    )
    .expect("valid overrides");
    let gpt4o = merged.get("openai/gpt-4o").expect("kept");
    assert_eq!(gpt4o.input_cost_per_token, 1e-6);
    // The fields the override did not name stay the table's.
    assert_eq!(gpt4o.output_cost_per_token, 1e-5);
    assert_eq!(gpt4o.cache_read_input_token_cost, Some(1.25e-6));
    assert!(merged.resolve("local", "mock", "echo").is_some());
    // The bundled table itself is untouched.
    assert_eq!(base.get("openai/gpt-4o").expect("there").input_cost_per_token, 2.5e-6);
}

#[test]
fn bad_overrides_name_the_entry() {
    let base = PriceTable::bundled();
    let cases = [
        (
            "new/model",
            serde_json::json!({"input_cost_per_token": 1e-6}),
            "output_cost_per_token",
        ),
        (
            "openai/gpt-4o",
            serde_json::json!({"input_cost_per_tokn": 1e-6}),
            "input_cost_per_tokn",
        ),
        (
            "openai/gpt-4o",
            serde_json::json!({"input_cost_per_token": -1.0}),
            "non-negative",
        ),
        (
            "openai/gpt-4o",
            serde_json::json!({"input_cost_per_token": "cheap"}),
            "invalid type",
        ),
        (
            "openai/gpt-4o",
            serde_json::json!({"tiers": [{"above_tokens": 200000}, {"above_tokens": 100000}]}),
            "increasing",
        ),
    ];
    for (key, value, says) in cases {
        let e = PriceTable::with_overrides(&base, &overrides(&[(key, value.clone())])).expect_err("refused");
        assert_eq!(e.key, key);
        assert!(e.message.contains(says), "{value}: {}", e.message);
    }
}

#[test]
fn a_table_file_in_the_bundled_format_loads_and_a_broken_one_is_refused() {
    let t = PriceTable::parse(
        r#"{"_source":"mine","models":{"acme/m1":{"input_cost_per_token":1e-6,"output_cost_per_token":2e-6}}}"#,
    )
    .expect("parses");
    assert_eq!(t.len(), 1);
    assert!(PriceTable::parse("not json").is_err());
    // A model without its output rate: the parse names the problem.
    let e = PriceTable::parse(r#"{"models":{"acme/m1":{"input_cost_per_token":1e-6}}}"#).expect_err("no output rate");
    assert!(e.message.contains("output_cost_per_token"), "{}", e.message);
    let e = PriceTable::parse(r#"{"models":{"acme/m1":{"input_cost_per_token":-1,"output_cost_per_token":0}}}"#)
        .expect_err("negative");
    assert_eq!(e.key, "acme/m1");
}
